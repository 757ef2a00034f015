"""Sync: a backlog drained end to end, against raw MQTT on the same broker.

The appliance's signed log holds N punches taken while the link was down: weeks of a plant's
punches, written with the appliance's own key and log writer (what the daemon would have stored
poll by poll; setup, not timed). The cloud worker (a real ``punchproof cloud ingest``) is connected
to the broker and waiting. Then the link returns: the real ``punchproof appliance run`` starts,
and the clock runs from the moment it is connected until the cloud has verified and committed
the whole log.

Beside it, in the same run on the same broker: raw paho -> Mosquitto QoS 1 throughput, one
publisher streaming as many messages of the same size as the drain's batches to one subscriber,
i.e. the floor any MQTT pipeline of this shape pays; and the ratio.

Run: .venv/bin/python bench/sync_drain.py [--records 1000000] [--postgres]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import paho.mqtt.client as mqtt  # noqa: E402
from _common import TERM  # noqa: E402

from appliance.capture.punchlog import Entry, LogWriter  # noqa: E402
from appliance.clock import SystemClock  # noqa: E402
from appliance.config import Settings  # noqa: E402
from appliance.identity import load_or_create_key  # noqa: E402
from appliance.store import open_db  # noqa: E402
from firmware_bridge.zk.emulator import TerminalState, ZKEmulator  # noqa: E402
from ledger.messages import Batch  # noqa: E402
from ledger.record import SignedRecord  # noqa: E402
from punchproof.broker import Mosquitto, free_port  # noqa: E402
from tests.harness.system import System  # noqa: E402

TARGET_S = 60.0


def wait(condition, timeout: float, what: str, every: float = 0.2, progress=None) -> None:
    deadline, shown = time.monotonic() + timeout, time.monotonic()
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        if progress is not None and time.monotonic() - shown > 10:
            print(f"  … {progress()}", flush=True)
            shown = time.monotonic()
        time.sleep(every)


def write_backlog(config: Path, count: int) -> None:
    """N punch records in the appliance's log, signed with its key, 256 per commit as a poll would."""
    settings = Settings.load(config)
    db = open_db(settings.db_path)
    writer = LogWriter(db, load_or_create_key(settings.key_path), settings.log_origin, SystemClock(), "bench")
    writer.start()
    for first in range(0, count, 256):
        writer.append(
            [
                Entry("punch", {"emp": str(100000 + i % 5000), "src": "zk", "term": TERM})
                for i in range(first, min(count, first + 256))
            ]
        )
    writer.checkpoint()
    db.close()


class LivePunches(threading.Thread):
    """During the drain, a worker punches at the terminal every ``every`` seconds; the time from the punch
    to the cloud holding it (provisional, from the live lane, or already verified) is what head office
    waits for a new punch while a backlog drains."""

    def __init__(self, state: TerminalState, system: System, every: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.state, self.system, self.every = state, system, every
        self.seen: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.done.wait(self.every):
            n += 1
            emp = f"LIVE{n:04d}"
            sent = time.perf_counter()
            self.state.punch(emp)
            query = (
                f"SELECT count(*) FROM provisional_record WHERE employee = '{emp}'"
                f" UNION ALL SELECT count(*) FROM punch WHERE employee = '{emp}'"
            )
            while not self.done.is_set():
                if sum(row[0] for row in self.system.cloud_rows(query)):
                    self.seen.append(time.perf_counter() - sent)
                    break
                time.sleep(0.2)  # each look is a new database connection: not too often


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, its children that ended and those still running (the ingest
    worker's parsing pool), from /proc (Linux)."""
    total, children = 0.0, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            after = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        children.setdefault(int(after[1]), []).append(int(stat.parent.name))
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        todo.extend(children.get(current, []))
    return total


def raw_qos1(broker: Mosquitto, size: int, count: int) -> float:
    """Seconds for one paho publisher to stream ``count`` QoS 1 messages of ``size`` bytes to one subscriber."""
    received = threading.Event()
    got = [0]

    def on_message(_c, _u, _m) -> None:
        got[0] += 1
        if got[0] == count:
            received.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect(broker.host, broker.port)
    sub.subscribe("raw/test", qos=1)
    sub.loop_start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(64)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    time.sleep(0.5)  # let the subscription settle before the stream starts
    payload = b"x" * size
    start = time.perf_counter()
    for _ in range(count):
        pub.publish("raw/test", payload, qos=1)
    if not received.wait(timeout=600):
        raise SystemExit(f"raw stream: {got[0]} of {count} arrived")
    elapsed = time.perf_counter() - start
    pub.loop_stop()
    sub.loop_stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--postgres", action="store_true", help="the cloud on a throwaway PostgreSQL")
    parser.add_argument("--batch-records", type=int, help="[mqtt] batch_records on the appliance (default: its own)")
    parser.add_argument("--profile-ingest", metavar="FILE", help="run the cloud worker under cProfile, stats to FILE")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pp-drain-"))
    state = TerminalState(serial="BENCH-ZK-01", tz=ZoneInfo("Asia/Shanghai"))  # today's terminal: no punches
    postgres = None
    database_url = ""
    if args.postgres:
        from tests.harness.postgres import PostgresServer

        postgres = PostgresServer(durable=True).start()  # fsync on, as in production; otherwise its defaults
        database_url = postgres.create_database("drain")
    broker = Mosquitto(root / "broker", port=free_port())
    with ZKEmulator(state, port=0) as terminal:
        system = System(root, broker.port, terminal.address).configure(database_url=database_url)
        try:
            if args.batch_records:
                conf = system.appliance_conf.read_text()
                system.appliance_conf.write_text(
                    conf.replace("[mqtt]\n", f"[mqtt]\nbatch_records = {args.batch_records}\n")
                )
            t = time.perf_counter()
            write_backlog(system.appliance_conf, args.records)
            print(f"  {args.records:,} punches signed into the appliance's log in {time.perf_counter() - t:.1f} s")
            broker.start()
            if args.profile_ingest:  # where the cloud worker spends its time, written when it stops
                system.spawn("ingest", "-m", "cProfile", "-o", args.profile_ingest, "-m", "punchproof",
                             "cloud", "ingest", "-c", system.cloud_conf, python_module=False)  # fmt: skip
            else:
                system.start_ingest()
            head = system.appliance_rows("SELECT max(seq) FROM log_record")[0][0]
            wait(lambda: "connected" in system.log("ingest"), timeout=60, what="the cloud worker on the broker")
            system.start_appliance()
            wait(
                lambda: system.appliance_rows("SELECT connected FROM sync_state")[0][0] == 1,
                timeout=120,
                what="the appliance to connect",
                every=0.02,
            )
            t0 = time.perf_counter()
            live = LivePunches(state, system)
            live.start()
            wait(
                lambda: system.cloud_rows("SELECT seq FROM log_head")[0][0] >= head,
                timeout=3600,
                what="the cloud to commit the backlog",
                every=0.1,
                progress=lambda: f"cloud holds seq {system.cloud_rows('SELECT seq FROM log_head')[0][0]:,} of {head:,}",
            )
            drain = time.perf_counter() - t0
            live.done.set()
            live.join()
            cpu = {name: cpu_seconds(proc.pid) for name, proc in system.processes.items()}
            cpu["broker"] = cpu_seconds(broker.pid)
            if postgres is not None:
                cpu["PostgreSQL"] = cpu_seconds(postgres.pid)
            rows = system.appliance_rows("SELECT data, sig FROM log_record WHERE seq BETWEEN 1000 AND 1255")
            sample = Batch("x" * 30, 1000, tuple(SignedRecord(bytes(d), bytes(s)) for d, s in rows)).encode()
            batches = -(-(head + 1) // 256)
        finally:
            system.stop_all()
    raw = statistics.median(raw_qos1(broker, len(sample), batches) for _ in range(3))
    broker.kill()
    if postgres is not None:
        postgres.stop()
    engine = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\nbacklog drain, {head + 1:,} records ({args.records:,} punches), cloud on {engine}:")
    print(f"  reconnect -> all verified and committed: {drain:.1f} s  ({(head + 1) / drain:,.0f} records/s)")
    print(f"  target {TARGET_S:.0f} s: ratio {drain / TARGET_S:.2f}x")
    if live.seen:
        print(
            f"  meanwhile {len(live.seen)} new punches, each in the cloud after: median "
            f"{statistics.median(live.seen):.2f} s, max {max(live.seen):.2f} s (the backlog did not hold them back)"
        )
    print(f"  raw paho->Mosquitto QoS 1, {batches:,} messages of {len(sample):,} B: {raw:.1f} s")
    print(f"  ratio to raw MQTT: {drain / raw:.2f}x")
    print("  CPU seconds, with child processes: " + ", ".join(f"{n} {c:.1f}" for n, c in cpu.items()))


if __name__ == "__main__":
    main()
