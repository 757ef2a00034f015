"""Appliance: punches signed and durably committed per second, and punch-to-durable latency.

Prints, measured in the same run on this machine:
  - our rate (LogWriter, group commit of 256 records per transaction, synchronous=FULL) beside the
    raw Ed25519 sign rate and the raw SQLite insert rate with the same pragmas, as ratios;
  - p50/p99 from submitting a punch to it being committed, at 50 punches/s through the
    GroupCommitter, beside the 100 ms target.

Run: .venv/bin/python bench/appliance_signing.py [--records 20000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TERM  # noqa: E402

from appliance.capture.groupcommit import GroupCommitter  # noqa: E402
from appliance.capture.punchlog import Entry, LogWriter  # noqa: E402
from appliance.clock import SystemClock  # noqa: E402
from appliance.store import PRAGMAS, open_db  # noqa: E402
from ledger import SigningKey  # noqa: E402


def punch(i: int) -> Entry:
    return Entry("punch", {"emp": str(100000 + i % 5000), "src": "zk", "term": TERM})


def raw_sign_rate(n: int) -> float:
    key = SigningKey.generate()
    message = b"punchlog/record/v1\n" + b"\x07" * 32
    start = time.perf_counter()
    for _ in range(n):
        key.sign(message)
    return n / (time.perf_counter() - start)


def raw_insert_rate(folder: Path, n: int, per_commit: int) -> float:
    conn = sqlite3.connect(folder / f"raw-{per_commit}.sqlite3", isolation_level=None)
    for name, value in PRAGMAS.items():
        conn.execute(f"PRAGMA {name}={value}")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, data BLOB, sig BLOB, leaf BLOB)")
    row = (b"x" * 420, b"s" * 64, b"l" * 32)
    start = time.perf_counter()
    for first in range(0, n, per_commit):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [(i, *row) for i in range(first, first + per_commit)])
        conn.execute("COMMIT")
    return n / (time.perf_counter() - start)


def our_rate(folder: Path, n: int, per_commit: int) -> float:
    db = open_db(folder / "ours.sqlite3")
    writer = LogWriter(db, SigningKey.generate(), "punchproof/bench/pi-01/1", SystemClock(), "bench")
    writer.start()
    start = time.perf_counter()
    for first in range(0, n, per_commit):
        writer.append([punch(i) for i in range(first, first + per_commit)])
    rate = n / (time.perf_counter() - start)
    db.close()
    return rate


def latency_at(folder: Path, per_second: int, seconds: float) -> list[float]:
    db = open_db(folder / "latency.sqlite3")
    clock = SystemClock()
    writer = LogWriter(db, SigningKey.generate(), "punchproof/bench/pi-01/1", clock, "bench")
    writer.start()
    committer = GroupCommitter(writer, clock, window_s=0.05)
    committer.start()
    pending = []
    interval, start = 1 / per_second, time.perf_counter()
    for i in range(int(per_second * seconds)):
        due = start + i * interval
        while (now := time.perf_counter()) < due:
            time.sleep(min(due - now, 0.005))
        submitted = time.perf_counter()
        future = committer.submit(punch(i))
        future.add_done_callback(lambda _f, t=submitted: pending.append(time.perf_counter() - t))
    committer.stop()
    db.close()
    return pending


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sign = raw_sign_rate(args.records)
        insert_batched = raw_insert_rate(folder, args.records, 256)
        insert_single = raw_insert_rate(folder, min(args.records, 2000), 1)
        ours = our_rate(folder, args.records, 256)
        latencies = sorted(latency_at(folder, 50, args.seconds))
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"records: {args.records}, SQLite synchronous=FULL, WAL, on {folder.parent}")
    print(f"raw Ed25519 sign                     {sign:10.0f} /s")
    print(f"raw SQLite insert, 256 per commit    {insert_batched:10.0f} /s")
    print(f"raw SQLite insert, 1 per commit      {insert_single:10.0f} /s   (what a per-punch fsync would give)")
    print(
        f"ours: signed + chained + committed   {ours:10.0f} /s   = {ours / sign:.2f} x raw sign, "
        f"{ours / insert_batched:.2f} x raw batched insert, {ours / insert_single:.1f} x per-punch commits"
    )
    print(
        f"punch-to-durable at 50/s ({len(latencies)} punches): p50 {p50:.1f} ms, p99 {p99:.1f} ms   "
        f"(target p99 <= 100 ms: {p99 / 100:.2f} x target)"
    )


if __name__ == "__main__":
    main()
