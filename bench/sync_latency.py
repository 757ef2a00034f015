"""Sync, steady state: from a punch on the terminal to committed in the cloud, online, at 50 punches/s.

Real processes (``punchproof appliance run``, ``punchproof cloud ingest``), a real Mosquitto and
the ZK emulator, which announces each punch live as a terminal does. Each punch's moment on the
terminal is taken when the emulator stores it; its moment in the cloud is the ``received_ms`` the
cloud writes in the transaction that commits it. Printed beside the 2 s target, as a ratio.

Run: .venv/bin/python bench/sync_latency.py [--rate 50] [--seconds 60] [--postgres]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge.zk.emulator import TerminalState, ZKEmulator  # noqa: E402
from punchproof.broker import Mosquitto  # noqa: E402
from tests.harness.system import System  # noqa: E402

TARGET_P99_S = 2.0


def wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="punches per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pp-latency-"))
    state = TerminalState(serial="BENCH-ZK-01", tz=ZoneInfo("Asia/Shanghai"))
    for n in range(200):
        state.add_user(str(1000 + n), f"工人{n}")
    postgres, url = None, ""
    if args.postgres:
        from tests.harness.postgres import PostgresServer

        postgres = PostgresServer(durable=True).start()
        url = postgres.create_database("latency")
    broker = Mosquitto(root / "broker").start()
    sent: dict[str, float] = {}
    with ZKEmulator(state, port=0) as terminal:
        system = System(root, broker.port, terminal.address).configure(database_url=url)
        try:
            system.start_ingest()
            system.start_appliance()
            wait(lambda: system.cloud_rows("SELECT status FROM appliance") == [("online",)], 60, "the appliance online")
            count = int(args.rate * args.seconds)
            base = datetime(2026, 3, 2, 6, 0)
            start = time.monotonic()
            for i in range(count):
                due = start + i / args.rate
                time.sleep(max(0.0, due - time.monotonic()))
                when = base + timedelta(seconds=i)
                sent[when.isoformat(timespec="seconds")] = time.time()
                state.punch(str(1000 + i % 200), state=i % 2, when=when)
            wait(lambda: system.cloud_rows("SELECT count(*) FROM punch")[0][0] >= count, 120, "every punch")
            rows = system.cloud_rows("SELECT device_time, received_ms FROM punch")
        finally:
            system.stop_all()
            broker.kill()
            if postgres is not None:
                postgres.stop()
    latencies = [received / 1000 - sent[t] for t, received in rows if t in sent]
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    engine = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{len(latencies)} punches at {args.rate:.0f}/s for {args.seconds:.0f} s, cloud on {engine}")
    print(f"  punch on the terminal -> committed in the cloud: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")  # fmt: skip
    print(f"  p99 against the {TARGET_P99_S:.0f} s target: {p99 / TARGET_P99_S:.2f}x")


if __name__ == "__main__":
    main()
