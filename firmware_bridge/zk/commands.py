"""``punchproof bridge probe|dump``: look at a ZK terminal from the command line.

Every failure is one line on stderr (unreachable host, wrong comm key, not a ZK device) and a
non-zero exit status; records go to a file as JSON lines, progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from firmware_bridge.errors import TerminalError
from firmware_bridge.types import RawPunch, TerminalInfo
from firmware_bridge.zk.clock import ClockPolicy
from firmware_bridge.zk.driver import ZKTerminal
from firmware_bridge.zk.logread import read_log
from firmware_bridge.zk.session import ZKSession


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("bridge", help="talk to a terminal directly (ZK protocol, port 4370)")
    cmds = parser.add_subparsers(dest="command", required=True)
    probe = cmds.add_parser("probe", help="model, firmware, serial, users, records, capacity, clock offset")
    probe.set_defaults(func=_probe)
    dump = cmds.add_parser("dump", help="download the whole attendance log to a file (JSON lines)")
    dump.set_defaults(func=_dump)
    dump.add_argument("-o", "--output", required=True, help="file to write, one record per line")
    for p in (probe, dump):
        p.add_argument("host")
        p.add_argument("--port", type=int, default=4370)
        p.add_argument("--comm-key", type=int, default=0)
        p.add_argument("--udp", action="store_true", help="UDP instead of TCP")
        p.add_argument("--timezone", default="Asia/Shanghai", help="the terminal's time zone")
        p.add_argument("--encoding", default="gb18030", help="text encoding of names on the terminal")
        p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")
        p.add_argument("--alarm-above", type=float, default=60.0, metavar="SECONDS", help="clock offset alarm")


def _probe(args: argparse.Namespace) -> int:
    terminal = ZKTerminal(
        args.host,
        args.port,
        tz=ZoneInfo(args.timezone),
        comm_key=args.comm_key,
        timeout=args.timeout,
        encoding=args.encoding,
        udp=args.udp,
        clock_policy=ClockPolicy(alarm_above_ms=round(args.alarm_above * 1000)),
    )
    try:
        info = terminal.probe()
    except TerminalError as err:
        return _fail(err)
    print_info(info, sys.stdout)
    return 0


def print_info(info: TerminalInfo, out: TextIO) -> None:
    """What ``bridge probe`` prints; ``appliance init`` shows each terminal it is given the same way."""
    rows = [
        ("序列号 / serial", info.terminal_sn),
        ("型号 / model", f"{info.device_name} ({info.platform})"),
        ("固件 / firmware", info.firmware),
        ("用户 / users", str(info.users)),
        ("记录 / records", str(info.records)),
        ("容量 / capacity", f"{info.record_capacity} ({info.records_left} left / 剩余)"),
        ("终端时间 / terminal time", info.terminal_time.isoformat(sep=" ")),
        ("时钟偏差 / clock offset", f"{info.clock_offset_ms / 1000:+.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}", file=out)
    if info.clock_alarm is not None:
        print(f"警告 / warning: {info.clock_alarm}", file=out)


def _dump(args: argparse.Namespace) -> int:
    session = ZKSession(args.host, args.port, timeout=args.timeout, comm_key=args.comm_key, udp=args.udp)
    bar = ProgressBar(sys.stderr)
    try:
        session.open()
        try:
            download = read_log(session, tz=ZoneInfo(args.timezone), encoding=args.encoding, progress=bar.update)
        finally:
            session.close()
    except TerminalError as err:
        bar.finish()
        return _fail(err)
    bar.finish()
    with Path(args.output).open("w", encoding="utf-8") as out:
        for punch in download.punches:
            out.write(json.dumps(_punch_json(punch), ensure_ascii=False) + "\n")
        for bad in download.rejected:
            out.write(json.dumps({"rejected": bad.reason, "index": bad.index, "raw": bad.raw.hex()}) + "\n")
    print(
        f"{download.terminal_sn}: {len(download.punches)} 条记录 / records, {len(download.rejected)} 条无效 / "
        f"rejected, {download.record_size} B each, clock offset {download.clock_offset_ms / 1000:+.1f} s -> "
        f"{args.output}",
        file=sys.stderr,
    )
    return 0


def _punch_json(p: RawPunch) -> dict[str, object]:
    return {
        "terminal_sn": p.terminal_sn,
        "index": p.index,
        "user_id": p.user_id,
        "uid": p.uid,
        "device_time": p.device_time.isoformat(),
        "at_utc": p.at_utc.isoformat(),
        "verify": p.verify,
        "state": p.state,
        "workcode": p.workcode,
        "raw": p.raw.hex(),
    }


def _fail(err: TerminalError) -> int:
    print(f"错误 / error: {err}", file=sys.stderr)
    return 1


class ProgressBar:
    """A one-line bar on stderr, redrawn in place; plain lines when stderr is not a terminal."""

    WIDTH = 30

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._shown = -1
        self._tty = out.isatty()

    def update(self, done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        if percent == self._shown or (not self._tty and percent % 10 and percent != 100):
            return
        self._shown = percent
        filled = self.WIDTH * percent // 100
        line = f"下载 / downloading [{'#' * filled}{'.' * (self.WIDTH - filled)}] {percent:3d}% {done}/{total} B"
        self._out.write(("\r" + line) if self._tty else line + "\n")
        self._out.flush()

    def finish(self) -> None:
        if self._tty and self._shown >= 0:
            self._out.write("\n")
