"""``punchproof``: every process and tool of the system behind one command."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from punchproof import __version__


def build_parser() -> argparse.ArgumentParser:
    from appliance.cli import add_commands as appliance_commands
    from cloud.cli import add_commands as cloud_commands
    from firmware_bridge.cli import add_commands as emulate_commands

    parser = argparse.ArgumentParser(prog="punchproof", description="Attendance evidence for factories.")
    parser.add_argument("--version", action="version", version=f"punchproof {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="area", required=True)
    appliance_commands(sub)
    cloud_commands(sub)
    emulate_commands(sub)
    demo = sub.add_parser("demo", help="run the whole system on this machine with emulated terminals")
    demo.set_defaults(func=_demo)
    demo.add_argument("--dir", default=".demo", help="working directory, wiped at start (default: %(default)s)")
    demo.add_argument("--zk-port", type=int, default=4370)
    demo.add_argument("--mqtt-port", type=int, default=18830)
    demo.add_argument("--appliance-port", type=int, default=8080)
    demo.add_argument("--cloud-port", type=int, default=8000)
    demo.add_argument("--punch-every", type=float, default=2.0, metavar="SECONDS")
    return parser


def _demo(args: argparse.Namespace) -> int:
    from punchproof.demo import Demo, DemoPorts

    ports = DemoPorts(args.zk_port, args.mqtt_port, args.appliance_port, args.cloud_port)
    return Demo(args.dir, ports, punch_every=args.punch_every).run()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        # journald stamps each line itself; a terminal gets the time from us
        format=("%(asctime)s " if sys.stderr.isatty() or "INVOCATION_ID" not in os.environ else "")
        + "%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from appliance.config import ConfigError as ApplianceConfigError
    from cloud.config import ConfigError as CloudConfigError
    from cloud.witness import WitnessKeyMissing

    try:
        return int(args.func(args) or 0)
    except (ApplianceConfigError, CloudConfigError, WitnessKeyMissing) as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
