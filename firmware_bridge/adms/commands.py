"""Commands queued for push terminals, and the results the terminals report back.

A push terminal cannot be called: it polls ``/iclock/getrequest`` every few seconds and takes
whatever is queued as ``C:<id>:<command>`` lines, then reports each result to
``/iclock/devicecmd`` as ``ID=<id>&Return=<code>&CMD=<verb>``. Ids are unique per queue and
start from the clock's seconds, so a result reported late for a command queued before a
restart cannot be matched to a different, newer command. A command sent but not confirmed
within ``resend_after`` is sent again (every command we queue is safe to repeat).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

RETURN_CODES = {
    0: "成功 / success",
    -1: "不支持或无数据 / not supported, or no data",
    -2: "文件操作失败 / file operation failed",
    -1002: "命令格式错误 / invalid command syntax",
    -1004: "设备不支持该表 / table not supported by this model",
}


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a terminal said about a command it ran."""

    serial: str
    command_id: int
    return_code: int
    verb: str  # the CMD= echo: INFO, DATA, SET OPTION, Shell, ...
    content: str  # INFO options or Shell output, when the terminal sends any
    received_at: datetime
    matched: bool  # False: the terminal reported an id we never sent it
    command: str = ""  # the command as sent ("" when not matched)

    @property
    def ok(self) -> bool:
        return self.return_code == 0

    @property
    def meaning(self) -> str:
        return RETURN_CODES.get(self.return_code, f"未知返回码 / unknown return code {self.return_code}")


@dataclass(slots=True)
class Command:
    id: int
    serial: str
    render: Callable[[datetime], str]  # the command text at delivery time (a time sync says "now" then)
    description: str
    queued_at: datetime
    text: str = ""  # as last sent
    sent_at: datetime | None = None
    sends: int = 0
    result: CommandResult | None = None

    @property
    def state(self) -> str:
        if self.result is not None:
            return "done" if self.result.ok else "failed"
        return "sent" if self.sends else "queued"

    def wire(self) -> str:
        return f"C:{self.id}:{self.text}"


class CommandQueue:
    """Commands per terminal. Thread-safe: the HTTP server answers terminals concurrently."""

    def __init__(self, *, resend_after: timedelta = timedelta(minutes=2), per_poll: int = 16) -> None:
        self._resend_after = resend_after
        self._per_poll = per_poll
        self._next_id: int | None = None
        self._commands: dict[str, list[Command]] = {}
        self._lock = threading.Lock()

    def add(self, serial: str, render: Callable[[datetime], str], description: str, now: datetime) -> Command:
        with self._lock:
            if self._next_id is None:
                self._next_id = int(now.timestamp()) % 1_000_000_000
            command = Command(self._next_id, serial, render, description, now)
            self._next_id += 1
            self._commands.setdefault(serial, []).append(command)
            return command

    def due(self, serial: str, now: datetime) -> list[Command]:
        """The commands to hand the terminal on this poll, marked as sent."""
        out = []
        with self._lock:
            for command in self._commands.get(serial, []):
                if len(out) >= self._per_poll:
                    break
                if command.result is not None:
                    continue
                if command.sent_at is not None and now - command.sent_at < self._resend_after:
                    continue
                command.text = command.render(now)
                command.sent_at = now
                command.sends += 1
                out.append(command)
        return out

    def confirm(self, serial: str, reports: list[dict[str, str]], now: datetime) -> list[CommandResult]:
        results = []
        with self._lock:
            pending = {c.id: c for c in self._commands.get(serial, [])}
            for report in reports:
                try:
                    command_id = int(report.get("ID", ""))
                    code = int(report.get("Return", ""))
                except ValueError:
                    continue  # not a result line; the caller logs the body
                command = pending.get(command_id)
                result = CommandResult(
                    serial,
                    command_id,
                    code,
                    report.get("CMD", ""),
                    report.get("Content", ""),
                    now,
                    command is not None,
                    command.text if command is not None else "",
                )
                if command is not None:
                    command.result = result
                results.append(result)
        return results

    def list(self, serial: str) -> list[Command]:
        with self._lock:
            return list(self._commands.get(serial, []))

    def forget(self, serial: str, ids: set[int]) -> None:
        """Drop these commands (done, and their outcomes taken): a template's command text goes with them."""
        with self._lock:
            self._commands[serial] = [c for c in self._commands.get(serial, []) if c.id not in ids]

    def forget_done(self, serial: str) -> None:
        with self._lock:
            self._commands[serial] = [c for c in self._commands.get(serial, []) if c.result is None]


def parse_results(text: str) -> list[dict[str, str]]:
    """The body of ``/iclock/devicecmd``: one ``ID=..&Return=..&CMD=..`` per line (batched),
    or ``ID=``/``Return=``/``CMD=``/``Content=`` on separate lines (Shell). Lines that follow a
    result and are none of these (an INFO's options) become its ``Content``.
    """
    reports: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    extra: list[str] = []

    def flush() -> None:
        if current is not None:
            if extra:
                current["Content"] = "\n".join(filter(None, [current.get("Content", ""), *extra]))
            reports.append(current)

    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("ID="):
            flush()
            extra = []
            if "&" in line:
                current = dict(part.partition("=")[::2] for part in line.split("&"))
            else:
                current = {"ID": line[3:].strip()}
            continue
        if current is None:
            continue
        key, sep, value = line.partition("=")
        if sep and key in ("Return", "CMD", "Content") and key not in current:
            current[key] = value.strip() if key != "Content" else value
        else:
            extra.append(line)
    flush()
    return reports
