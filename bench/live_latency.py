"""Live punches: from the terminal announcing a punch to the punch durable in the appliance's signed log.

A ZK terminal emulator in its own process announces 1,000 punches over its real TCP protocol: at a
steady 5 per second, and in bursts of 50 within one second (a shift change at one terminal). The
appliance side is wired as the daemon wires it: live capture -> per-terminal dedup -> group commit
(LogWriter, SQLite WAL, synchronous=FULL) with the periodic full read running beside it.
Latency = the emulator's send time (wall clock, shared by both processes) to the commit of the
transaction holding the punch. Printed beside the 1 s kiosk target and the 100 ms group-commit target.

Run: .venv/bin/python bench/live_latency.py [--events 1000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.capture.groupcommit import GroupCommitter  # noqa: E402
from appliance.capture.ingest import PunchIngest  # noqa: E402
from appliance.capture.poller import TerminalWorker  # noqa: E402
from appliance.capture.punchlog import LogWriter  # noqa: E402
from appliance.clock import SystemClock  # noqa: E402
from appliance.store import open_db  # noqa: E402
from firmware_bridge.zk.driver import ZKTerminal  # noqa: E402
from firmware_bridge.zk.live import LiveCapture  # noqa: E402
from ledger import SigningKey  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")


def terminal(events: int, ready, go, address, sent) -> None:  # noqa: ANN001 - multiprocessing primitives
    """The emulator process: serve, then announce punches when told, recording each send time."""
    from firmware_bridge.zk.emulator import TerminalState, ZKEmulator

    state = TerminalState(serial="BENCH-ZK", tz=TZ, now=lambda: datetime.now(UTC))
    for i in range(events):
        state.add_user(str(10000 + i), f"工人{i}")
    with ZKEmulator(state, port=0) as emulator:
        address.extend(emulator.address)
        ready.set()
        go.wait()
        base = datetime(2026, 3, 2, 7, 0)
        i = 0
        while i < events:
            burst = (i // 100) % 2 == 1  # alternate: 100 steady punches, then two bursts of 50
            for _ in range(50 if burst else 1):
                if i >= events:
                    break
                sent[i] = time.time()
                state.punch(str(10000 + i), when=base + timedelta(seconds=i))
                i += 1
                if burst:
                    time.sleep(1 / 50)  # 50 punches within one second
            if not burst:
                time.sleep(0.2)
        time.sleep(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    manager = multiprocessing.Manager()
    address, sent = manager.list(), manager.dict()
    ready, go = manager.Event(), manager.Event()
    emulator = multiprocessing.Process(target=terminal, args=(args.events, ready, go, address, sent))
    emulator.start()
    ready.wait(30)
    host, port = address[0], address[1]
    done: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "appliance.sqlite3")
        clock = SystemClock()
        writer = LogWriter(db, SigningKey.generate(), "punchproof/bench/pi-01/1", clock, boot_id="bench")
        writer.start()
        committer = GroupCommitter(writer, clock)
        committer.start()
        ingest = PunchIngest(writer, clock, "Asia/Shanghai", committer)
        worker = TerminalWorker("gate-1", ZKTerminal(host, port, tz=TZ), ingest, clock, interval_s=5)

        def sink(live):  # noqa: ANN001
            future = ingest.accept_live("gate-1", live)
            if future is not None:
                user = live.punch.user_id
                future.add_done_callback(lambda _f: done.__setitem__(user, time.time()))

        capture = LiveCapture(host, port, tz=TZ, sink=sink, on_connect=lambda _a: worker.poll_soon())
        worker.start()
        capture.start()
        capture.connected.wait(10)
        go.set()
        emulator.join(timeout=args.events)
        capture.stop()
        worker.stop()
        committer.stop()
        db.close()
    latencies = sorted((done[str(10000 + i)] - sent[i]) * 1000 for i in range(args.events) if str(10000 + i) in done)
    missing = args.events - len(latencies)
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"{len(latencies)} live punches durable ({missing} came by the periodic read), commits: {committer.commits}")
    print(f"announce -> durable  p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   max {latencies[-1]:7.1f} ms")
    print(f"  p99 vs the kiosk's 1 s target: {p99 / 1000:.3f} x;  vs the 100 ms durability target: {p99 / 100:.2f} x")


if __name__ == "__main__":
    main()
