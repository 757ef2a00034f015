"""What owner tags cost the appliance per record (issue #22.1): records signed per second, as the log writer makes
them (canonical bytes, leaf, Ed25519), in version 1 and in version 2 (one HMAC-SHA256 for the tag, 44 bytes more
in the record, a leaf over tag and record hash). Prints both rates and their ratio.

    .venv/bin/python bench/owner_tags.py [records]
"""

from __future__ import annotations

import sys
import time

from ledger import GENESIS_PREV, SigningKey, make_record
from ledger.ownertags import TagKeys, appliance_owner, new_key

LOG = "punchproof/bench/pi-01/1"
TERM = {"sn": "ZK1", "t": "2026-03-02T07:58:00", "tz": "Asia/Shanghai", "state": 0, "verify": 1, "idx": 1}


def rate(count: int, version: int) -> float:
    key, keys = SigningKey.generate(), TagKeys(appliance_owner)
    for emp in range(100):
        keys.add(str(1000 + emp), new_key())
    prev, started = GENESIS_PREV, time.perf_counter()
    for seq in range(count):
        emp = str(1000 + seq % 100)
        tag = {"tag": keys.tag(LOG, seq, emp)} if version == 2 else {}
        record = make_record(
            key=key,
            log=LOG,
            seq=seq,
            type="punch",
            prev=prev,
            t_wall_ms=1_772_409_480_000 + seq,
            version=version,
            emp=emp,
            term=TERM,
            **tag,
        )
        prev = record.leaf
    return count / (time.perf_counter() - started)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rate(1000, 2)  # warm up
    v1, v2 = rate(count, 1), rate(count, 2)
    print(f"version 1 (no tags):   {v1:10.0f} records/s")
    print(f"version 2 (owner tags): {v2:10.0f} records/s")
    print(f"ratio v2/v1: {v2 / v1:.3f} ({(1 - v2 / v1) * 100:.1f}% slower, {1e6 / v2 - 1e6 / v1:.1f} µs more a record)")


if __name__ == "__main__":
    main()
