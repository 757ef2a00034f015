"""Clearing a terminal's log: on command only, and only of records the cloud has acknowledged.

Two processes take part. ``punchproof appliance clear-terminal`` queues a ``TerminalCommand`` and
waits for its outcome; the daemon's worker for that terminal carries it out, because the daemon
is the log's only writer and the only one talking to the terminal. The worker reads the terminal
once more, then checks, in this order: no live punch of it is still on its way to the log; every
punch and bad record stored from it is at or below ``SyncState.acked_seq``; and only then asks the
driver to clear exactly the ``cursor`` records it has stored. The driver disables the terminal,
counts again and refuses if anyone punched in between (``TerminalLogChanged``), so a punch is
never cleared unstored. The signed ``terminal_log_cleared`` incident, the cursor's return to 0
and the command's outcome are one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo

from appliance.capture.punchlog import Entry
from appliance.store import BadRecord, LogClearRecord, Punch, SyncState, TerminalCommand, TerminalHealth

CLEAR_LOG = "clear_log"
REQUEST_TTL_S = 600  # a request nobody waits for any more (the CLI was killed) is not carried out
WAIT_POLL_S = 0.25


class ClearRefused(Exception):
    """The log was not cleared, and why (zh-CN / English), for the person who asked."""


# -- the CLI's side -------------------------------------------------------------------------------


def request_clear(terminal: str, by: str, now_ms: int) -> int:
    return TerminalCommand.insert(terminal=terminal, kind=CLEAR_LOG, requested_by=by, requested_ms=now_ms).execute()


def wait_outcome(
    request: int,
    timeout_s: float,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> TerminalCommand:
    """Wait for the daemon to finish the command. If it has not even started it within
    ``timeout_s`` the request is withdrawn (status ``expired``); once started, it is waited for."""
    deadline = monotonic() + timeout_s
    while True:
        command = TerminalCommand.get_by_id(request)
        if command.status in ("done", "refused", "expired"):
            return command
        if command.status == "pending" and monotonic() > deadline:
            withdrawn = (
                TerminalCommand.update(status="expired", message="no answer from the daemon")
                .where((TerminalCommand.id == request) & (TerminalCommand.status == "pending"))
                .execute()
            )
            if withdrawn:
                return TerminalCommand.get_by_id(request)
        sleep(WAIT_POLL_S)  # another process writes the answer: nothing to wake us but the database


def withdraw(request: int) -> None:
    TerminalCommand.update(status="expired", message="withdrawn").where(
        (TerminalCommand.id == request) & (TerminalCommand.status == "pending")
    ).execute()


# -- the daemon's side ----------------------------------------------------------------------------


def claim(terminal: str, now_ms: int) -> TerminalCommand | None:
    """The oldest pending command for the terminal, now ``running``; stale ones expire unrun."""
    TerminalCommand.update(status="expired", message="too old; not carried out", finished_ms=now_ms).where(
        (TerminalCommand.terminal == terminal)
        & (TerminalCommand.status == "pending")
        & (TerminalCommand.requested_ms < now_ms - REQUEST_TTL_S * 1000)
    ).execute()
    pending = TerminalCommand.select(TerminalCommand.id).where(
        (TerminalCommand.terminal == terminal) & (TerminalCommand.status == "pending")
    )
    for row in pending.order_by(TerminalCommand.id):
        claimed = (
            TerminalCommand.update(status="running")
            .where((TerminalCommand.id == row.id) & (TerminalCommand.status == "pending"))
            .execute()
        )
        if claimed:  # else the CLI withdrew it a moment ago
            return TerminalCommand.get_by_id(row.id)
    return None


def finish(request: int, status: str, message: str, now_ms: int) -> None:
    TerminalCommand.update(status=status, message=message, finished_ms=now_ms).where(
        TerminalCommand.id == request
    ).execute()


def check_acknowledged(terminal: str, serial: str, tz: tzinfo) -> int:
    """Raise ``ClearRefused`` unless every record stored from the terminal is acknowledged by the
    cloud; return the acknowledged seq."""
    acked = SyncState.get_by_id(1).acked_seq
    mine = (Punch.terminal == terminal) | (Punch.terminal_sn == serial)
    unsynced = Punch.select().where(mine & (Punch.seq > acked))
    count = unsynced.count()
    if count:
        oldest = datetime.fromtimestamp(unsynced.order_by(Punch.at_utc_ms).first().at_utc_ms / 1000, UTC)
        raise ClearRefused(
            f"{terminal}: {count} 条打卡尚未被云端确认（最早 {oldest.astimezone(tz):%Y-%m-%d %H:%M:%S}），未清除；"
            f"请检查与云端的连接后重试 / {count} punch(es) not yet acknowledged by the cloud (oldest "
            f"{oldest.astimezone(tz):%Y-%m-%d %H:%M:%S}); not cleared: check the link to the cloud and retry"
        )
    bad = BadRecord.select().where((BadRecord.terminal_sn == serial) & (BadRecord.seq > acked)).count()
    if bad:
        raise ClearRefused(
            f"{terminal}: {bad} 条异常记录尚未被云端确认，未清除 / {bad} bad record(s) kept from the terminal are "
            "not yet acknowledged by the cloud; not cleared"
        )
    return acked


def cleared_entry(terminal: str, request: int, serial: str, records: int, acked_seq: int) -> Entry:
    body = {
        "kind": "terminal_log_cleared",
        "term": {"name": terminal, "sn": serial},
        "records": records,
        "acked_seq": acked_seq,
    }

    def derive(seq: int, _now_ms: int) -> tuple[type[LogClearRecord], dict[str, object]]:
        return LogClearRecord, {
            "seq": seq,
            "request": request,
            "terminal": terminal,
            "terminal_sn": serial,
            "records": records,
        }

    return Entry("incident", body, derive)


def after_clear(terminal: str, request: int, records: int, now_ms: int) -> Callable[[], None]:
    """What moves with the signed incident, in its transaction: the cursor, the command's outcome."""

    def then() -> None:
        TerminalHealth.update(cursor=0).where(TerminalHealth.name == terminal).execute()
        finish(request, "done", f"{terminal}: 已清除 {records} 条记录 / {records} record(s) cleared", now_ms)

    return then
