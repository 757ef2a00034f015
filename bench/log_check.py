"""Figure: the appliance's start-up check of its signed log against the latest checkpoint (issue #18).

Before the daemon appends anything it re-hashes the log's leaves into the Merkle tree and compares
the root with its latest signed checkpoint (appliance.capture.logcheck). From genesis (the first start after
the upgrade, and ``appliance doctor``) that is every leaf; at later starts only the leaves after the
checkpoint the previous start verified. Measured on a database of ``--records`` records (random
leaves; the check reads only the leaf column and the checkpoint), beside systemd's start timeout
for the unit (TimeoutStartSec=300 in systemd/punchproof-appliance.service).

    .venv/bin/python bench/log_check.py [--records 1000000] [--since 10000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from appliance.capture.logcheck import check_latest_checkpoint
from appliance.store import open_db
from ledger import SigningKey, note
from ledger.merkle import CompactRange

START_TIMEOUT_S = 300.0  # systemd/punchproof-appliance.service TimeoutStartSec
ORIGIN = "punchproof/bench/pi-01/1"
ROW = "INSERT INTO log_record (seq, type, data, sig, leaf, t_wall_ms) VALUES (?, 'seal', x'', x'', ?, 0)"
CHECKPOINT = "INSERT INTO checkpoint (size, root, note, compact, created_ms) VALUES (?, ?, ?, ?, 0)"


def build(path: Path, records: int, since: int, key: SigningKey) -> None:
    """``records`` records, a checkpoint at ``records - since`` (the one a previous start verified) and one
    at the end."""
    open_db(path).close()
    tree = CompactRange()
    with sqlite3.connect(path) as conn:
        batch = []
        for seq in range(records):
            leaf = os.urandom(32)
            tree.append(leaf)
            batch.append((seq, leaf))
            if len(batch) == 10_000 or seq == records - 1:
                conn.executemany(ROW, batch)
                batch.clear()
            if tree.size in (records - since, records):
                body = note.Checkpoint(ORIGIN, tree.size, tree.root())
                compact = json.dumps([base64.b64encode(h).decode() for h in tree.hashes])
                conn.execute(CHECKPOINT, (tree.size, tree.root(), note.render(body, [note.sign(body, key)]), compact))


def timed(path: Path, key: SigningKey, from_size: int) -> tuple[float, int]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        started = time.perf_counter()
        checked = check_latest_checkpoint(conn, keys=[key.verify_key], from_size=from_size)
        return time.perf_counter() - started, checked.records - checked.hashed_from
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--since", type=int, default=10_000, help="records appended since the last verified start")
    args = parser.parse_args()
    key = SigningKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "appliance.sqlite3"
        started = time.perf_counter()
        build(path, args.records, args.since, key)
        print(
            f"built {args.records:,} records in {time.perf_counter() - started:.1f} s ({path.stat().st_size >> 20} MiB)"
        )
        for label, from_size in (
            ("from genesis (first start, doctor)", 0),
            ("incremental (later starts)", args.records - args.since),
        ):
            seconds, hashed = timed(path, key, from_size)
            print(
                f"{label:36} {hashed:>9,} leaves hashed in {seconds:6.2f} s   "
                f"limit TimeoutStartSec {START_TIMEOUT_S:.0f} s   ratio {seconds / START_TIMEOUT_S:.4f}"
            )


if __name__ == "__main__":
    main()
