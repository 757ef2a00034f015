"""``punchproof emulate ...``: terminals played by emulators that speak the real protocols.

``zk`` is set up here; ``adms``, ``card``, ``r30x`` (and ``serial card|r30x``) hand their
arguments to the emulator's own ``main(argv)``, so ``punchproof emulate adms --help`` shows its options.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
import threading
from datetime import date, datetime, time, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from firmware_bridge.zk.emulator import SEND_IDLE_S, StoredPunch, TerminalState, ZKEmulator
from firmware_bridge.zk.records import UserRecord

log = logging.getLogger(__name__)

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超")


def demo_roster(size: int, first_badge: int = 1001) -> list[tuple[str, str]]:
    """A deterministic roster of workers with Chinese names (GBK-encodable)."""
    return [(str(first_badge + i), SURNAMES[i % len(SURNAMES)] + GIVEN[(i * 7) % len(GIVEN)]) for i in range(size)]


FIRST_LOG_DAY = date(2000, 1, 1)  # terminals refuse older times; so does the appliance


def demo_log(users: list[UserRecord], count: int, last_day: date, seed: str) -> list[StoredPunch]:
    """``count`` punches of ``users`` in the days up to ``last_day``, oldest first, as a terminal's log:
    each worker in between 07:30 and 08:30 and out between 17:00 and 19:00 every day (so the oldest
    day may be partly there). The same arguments give the same log."""
    if not users or count <= 0:
        return []
    rng = random.Random(seed)  # noqa: S311 - demo data
    days = -(-count // (2 * len(users)))
    punches: list[StoredPunch] = []
    for back in range(days - 1, -1, -1):
        day = last_day - timedelta(days=back)
        today = []
        for user in users:
            verify = rng.choice((1, 1, 1, 15))  # fingerprint, sometimes face
            arrive = datetime.combine(day, time(7, 30)) + timedelta(seconds=rng.randrange(3600))
            leave = datetime.combine(day, time(17, 0)) + timedelta(seconds=rng.randrange(7200))
            today += [
                StoredPunch(user.uid, user.user_id, arrive, verify, 0),
                StoredPunch(user.uid, user.user_id, leave, verify, 1),
            ]
        punches += sorted(today, key=lambda p: p.time)
    return punches[-count:]


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("emulate", help="run an emulated terminal")
    cmds = parser.add_subparsers(dest="command", required=True)
    p = cmds.add_parser("zk", help="a ZKTeco terminal (TCP, port 4370 protocol)")
    p.set_defaults(func=_zk)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4370)
    p.add_argument("--serial", default="EMU0000001")
    p.add_argument("--comm-key", type=int, default=0)
    p.add_argument("--timezone", default="Asia/Shanghai")
    p.add_argument("--roster", type=int, default=30, help="number of demo workers enrolled")
    p.add_argument(
        "--punch-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="a random worker punches this often (0: never)",
    )
    p.add_argument("--clock-offset", type=float, default=0.0, metavar="SECONDS", help="the terminal's clock error")
    p.add_argument(
        "--records",
        type=int,
        default=0,
        metavar="N",
        help="N punches of the roster already in the log, over the past days (the same every run on a day)",
    )
    p.add_argument(
        "--send-timeout",
        type=float,
        default=SEND_IDLE_S,
        metavar="SECONDS",
        help="a client that reads nothing this long is dropped; until then it is held under TCP flow control "
        "(default: %(default)s)",
    )
    _passthrough(cmds, "adms", "an ADMS (iclock) push terminal pushing to a receiver", _adms)
    _passthrough(cmds, "card", "a serial card reader on a pty or socket://", partial(_serial, "card"))
    _passthrough(cmds, "r30x", "an R30x fingerprint module on a pty or socket://", partial(_serial, "r30x"))
    _passthrough(cmds, "serial", "a serial reader: card or r30x", partial(_serial, None))


def _passthrough(cmds: argparse._SubParsersAction, name: str, help_text: str, func: object) -> None:  # type: ignore[type-arg]
    """A subcommand whose arguments (``--help`` included) all go to the emulator's own parser."""
    p = cmds.add_parser(name, help=help_text, add_help=False, prefix_chars="\0")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(func=func)


def _adms(args: argparse.Namespace) -> int:
    from firmware_bridge.adms.emulator import main

    return main(args.argv)


def _serial(kind: str | None, args: argparse.Namespace) -> int:
    from firmware_bridge.readers.emulators import main

    return main([kind, *args.argv] if kind else args.argv)


def _zk(args: argparse.Namespace) -> int:
    state = TerminalState(
        serial=args.serial,
        tz=ZoneInfo(args.timezone),
        comm_key=args.comm_key,
        clock_offset=timedelta(seconds=args.clock_offset),
    )
    roster = demo_roster(args.roster)
    users = [state.add_user(user_id, name) for user_id, name in roster]
    last_day = state.device_now().date() - timedelta(days=1)
    room = 2 * len(users) * ((last_day - FIRST_LOG_DAY).days + 1)
    if args.records < 0 or args.records > room:
        print(
            f"错误 / error: --records {args.records}: 每名工人每天两条，自 2000 年起最多 {room} 条；请加大 --roster / "
            f"two punches a worker a day since 2000 make at most {room} records; give a larger --roster",
            file=sys.stderr,
        )
        return 2
    state.record_capacity = max(state.record_capacity, args.records)
    loaded = state.load_log(demo_log(users, args.records, last_day, args.serial))
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    with ZKEmulator(state, args.host, args.port, send_idle_s=args.send_timeout) as emulator:
        host, port = emulator.address
        print(
            f"ZK 终端 / terminal {args.serial} {host}:{port}  工人 / workers {len(roster)}  记录 / records {loaded}",
            flush=True,
        )
        rng = random.Random(args.serial)  # noqa: S311 - demo data
        while not stopping.wait(args.punch_every or 3600):
            if args.punch_every:
                user_id, name = rng.choice(roster)
                punch = state.punch(user_id, state=rng.choice((0, 1)), verify=rng.choice((1, 15)))
                log.info("%s %s punched at %s", user_id, name, punch.time)
    return 0
