"""Cloud: a weeks-long backlog from one appliance, verified and committed.

Generates N punch records as an appliance would (signed, chained, a signed checkpoint every
256 records), encodes them as MQTT batches, then times the cloud's ingest of all of them
(verification, storage, cosignature) on SQLite and, with --postgres, on a throwaway PostgreSQL.
Beside it, measured in the same run: the raw SHA-256 rate over the same record bytes and the raw
Ed25519 verify rate, i.e. what per-record signature checks alone would cost.

Run: .venv/bin/python bench/cloud_backlog.py [--records 1000000] [--postgres]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TERM  # noqa: E402

from cloud.appliances import registry  # noqa: E402
from cloud.ingest.prepare import AheadParser, default_processes  # noqa: E402
from cloud.ingest.verifier import BatchIngest  # noqa: E402
from cloud.store import open_db  # noqa: E402
from ledger import GENESIS_PREV, SigningKey, make_record, merkle, note, topics  # noqa: E402
from ledger.messages import Batch  # noqa: E402
from tests.harness.clock import FrozenClock  # noqa: E402

LOG = "punchproof/bench/pi-01/1"


def generate(key: SigningKey, count: int, per_batch: int = 256, log: str = LOG) -> list[bytes]:
    batches, prev, tree, pending = [], GENESIS_PREV, merkle.CompactRange(), []
    for seq in range(count):
        record = make_record(
            key=key,
            log=log,
            seq=seq,
            type="punch",
            prev=prev,
            t_wall_ms=1772409480000 + seq * 100,
            t_boot_us=seq,
            boot_id="bench",
            clk={"sync": 1, "src": "kernel", "err_us": 5000},
            emp=str(100000 + seq % 5000),
            src="zk",
            term=TERM,
        )
        prev = record.leaf
        tree.append(prev)
        pending.append(record)
        if len(pending) == per_batch or seq == count - 1:
            checkpoint = note.Checkpoint(log, tree.size, tree.root())
            signed = note.render(checkpoint, [note.sign(checkpoint, key)])
            batches.append(Batch(log, seq + 1 - len(pending), tuple(pending), signed).encode())
            pending = []
    return batches


def ingest(url: str, key: SigningKey, batches: list[bytes], processes: int) -> float:
    """The ingest worker's path: with ``processes``, batches are parsed ahead in a pool (cloud.ingest.prepare)."""
    clock = FrozenClock(datetime(2026, 3, 20, tzinfo=UTC))
    db = open_db(url)
    registry.register({"plant": "bench", "appliance": "pi-01", "log": LOG, "public_key": key.verify_key.pem()}, clock)
    cloud = BatchIngest(clock, SigningKey.generate())
    topic = topics.batch("bench", "pi-01")
    parser = AheadParser(processes).start() if processes else None
    pending = iter(batches)

    def take(_block: bool) -> tuple[str, bytes] | None:
        payload = next(pending, None)
        return (topic, payload) if payload is not None else None

    start = time.perf_counter()
    stream = parser.ordered(take) if parser else ((topic, p, None) for p in batches)
    for _topic, payload, prepared in stream:
        ack = cloud.handle(topic, payload, prepared).ack
        if ack.status != "ok":
            raise SystemExit(f"ingest failed: {ack.reason}")
    elapsed = time.perf_counter() - start
    if parser:
        parser.stop()
    db.close()
    return elapsed


def raw_rates(key: SigningKey, sample: list[bytes]) -> tuple[float, float]:
    start = time.perf_counter()
    for data in sample:
        hashlib.sha256(b"\x00" + data).digest()
    sha = len(sample) / (time.perf_counter() - start)
    message = b"punchlog/record/v1\n" + b"\x07" * 32
    signature = key.sign(message)
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        key.verify_key.verify(signature, message)
    return sha, n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--postgres", action="store_true", help="also on a throwaway PostgreSQL (needs it installed)")
    parser.add_argument("--parse-processes", type=int, help="pool size for parsing ahead (default: one per core, <= 4)")
    args = parser.parse_args()
    key = SigningKey.generate()
    started = time.perf_counter()
    batches = generate(key, args.records)
    print(
        f"generated {args.records} signed records in {len(batches)} checkpointed batches "
        f"({sum(map(len, batches)) / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s (not counted)"
    )
    sample = [b'{"emp":"100017","kid":"' + b"k" * 44 + b'"}' + b"x" * 380] * 200_000
    sha, verify = raw_rates(key, sample)
    print(f"raw SHA-256 over 430-byte records   {sha:12.0f} /s")
    print(
        f"raw Ed25519 verify                  {verify:12.0f} /s   -> per-record checks alone: "
        f"{args.records / verify:.0f} s for the backlog"
    )
    processes = args.parse_processes if args.parse_processes is not None else default_processes()
    targets = [("SQLite", None, 0), (f"SQLite, parsed ahead by {processes} processes", None, processes)]
    if args.postgres:
        targets.append((f"PostgreSQL, parsed ahead by {processes} processes", "postgres", processes))
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind, pool in targets:
            if kind is None:
                url = f"sqlite:///{tmp}/cloud-{pool}.sqlite3"
                server = None
            else:
                from tests.harness.postgres import PostgresServer

                server = PostgresServer(durable=True).start()
                url = server.create_database("bench")
            try:
                elapsed = ingest(url, key, batches, pool)
            finally:
                if server is not None:
                    server.stop()
            rate = args.records / elapsed
            print(
                f"{name}: verified + stored + cosigned: {elapsed:6.1f} s = {rate:8.0f} records/s\n    "
                f"({elapsed / 60:.2f} x the 60 s target; {rate / verify:.1f} x raw per-record verify, "
                f"{rate / sha:.3f} x raw SHA-256)"
            )


if __name__ == "__main__":
    main()
