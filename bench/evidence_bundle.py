"""Evidence bundle: export and offline verification of one employee-year at a 5,000-worker plant.

Builds (once, cached in --db) the cloud's database for one appliance's year as the real system
would leave it: every worker punching in and out on working days, a seal record every minute, a
checkpoint after each seal cosigned by the cloud (the appliance syncs every minute), and the
cloud's witness log sealed over those checkpoints. The log is a version 1 log (records without
owner tags, as appliances wrote before the switch to version 2: leaf SHA-256(0x00 || record)).
Records are signed with Ed25519 exactly as the appliance signs them (the bundle verifier checks
them). Then times ``export_bundle`` for one employee over the whole year, and ``verify_bundle``
on the result, beside what the same machine needs in the same run to SHA-256 the bundle's bytes
and to recompute the Merkle root over the year's leaves: the floor any verifier has to pay.

Run: .venv/bin/python bench/evidence_bundle.py [--workers 5000] [--days 365] [--db /tmp/pp-bench-year.sqlite3]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import multiprocessing
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud.appliances import registry  # noqa: E402
from cloud.evidence.export import export_bundle  # noqa: E402
from cloud.evidence.witness_log import WitnessLog  # noqa: E402
from cloud.store import CloudCheckpoint, LogHead, LogRecord, Punch, bulk_insert, database, open_db  # noqa: E402
from ledger import GENESIS_PREV, SigningKey, canonical, leaf_hash, note  # noqa: E402
from ledger.evidence import verify_bundle  # noqa: E402
from ledger.merkle import CompactRange  # noqa: E402
from ledger.record import RECORD_DOMAIN  # noqa: E402
from tests.harness.clock import FrozenClock  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
LOG = "punchproof/bench-plant/pi-01/1"
FIRST_DAY = date(2025, 1, 1)
EMPLOYEE = "100042"
_KEY: SigningKey | None = None


def _init_signer(pem: bytes) -> None:
    global _KEY  # noqa: PLW0603 - one key per worker process
    path = Path(f"/tmp/pp-bench-key-{os.getpid()}.pem")  # noqa: S108 - a throwaway bench key
    path.write_bytes(pem)
    _KEY = SigningKey.load(path)
    path.unlink()


def _sign(leaves: list[bytes]) -> list[bytes]:
    assert _KEY is not None
    return [_KEY.sign(RECORD_DOMAIN + leaf) for leaf in leaves]


def minute_plan(workers: int, day: date) -> dict[int, list[tuple[str, int]]]:
    """Which workers punch in which minute of the day: in around 07:30-08:10, out around 17:30-18:10."""
    if day.weekday() == 6:
        return {}
    plan: dict[int, list[tuple[str, int]]] = {}
    for i in range(workers):
        plan.setdefault(450 + i % 40, []).append((str(100000 + i), 0))
        plan.setdefault(1050 + i % 40, []).append((str(100000 + i), 1))
    return plan


def build(db_path: Path, workers: int, days: int) -> tuple[SigningKey, SigningKey]:
    key, witness = SigningKey.generate(), SigningKey.generate()
    open_db(f"sqlite:///{db_path}")
    clock = FrozenClock(datetime.combine(FIRST_DAY, datetime.min.time(), TZ).astimezone(UTC))
    appliance = registry.register(
        {"plant": "bench-plant", "appliance": "pi-01", "log": LOG, "public_key": key.verify_key.pem()}, clock
    )
    pem = Path("/tmp/pp-bench-key.pem")  # noqa: S108
    pem.unlink(missing_ok=True)
    key.save(pem)
    pool = multiprocessing.Pool(initializer=_init_signer, initargs=(pem.read_bytes(),))
    pem.unlink()
    seq, prev, tree = 0, GENESIS_PREV, CompactRange()
    kid = key.kid
    started = time.perf_counter()
    for offset in range(days):
        day = FIRST_DAY + timedelta(days=offset)
        midnight = datetime.combine(day, datetime.min.time(), TZ)
        plan = minute_plan(workers, day)
        rows, punches, checkpoints, leaves = [], [], [], []
        for minute in range(1440):
            at = midnight + timedelta(minutes=minute)
            at_ms = int(at.timestamp() * 1000)
            events = [("punch", emp, state) for emp, state in plan.get(minute, [])] + [("seal", None, None)]
            for n, (kind, emp, state) in enumerate(events):
                t_ms = at_ms + n * 50
                fields = {
                    "v": 1,  # a version 1 log (no owner tags): its leaf is SHA-256(0x00 || record)
                    "log": LOG,
                    "seq": seq,
                    "type": kind,
                    "salt": base64.b64encode(os.urandom(16)).decode(),
                    "prev": base64.b64encode(prev).decode(),
                    "t_wall_ms": t_ms,
                    "t_boot_us": (t_ms - 1735660800000) * 1000,
                    "boot_id": "bench-boot",
                    "clk": {"sync": 1, "src": "chrony", "err_us": 800},
                    "kid": kid,
                }
                if kind == "punch":
                    local = (at + timedelta(milliseconds=n * 50)).replace(tzinfo=None, microsecond=0)
                    fields |= {
                        "emp": emp,
                        "src": "zk",
                        "term": {
                            "name": "gate-1",
                            "sn": "ZK-0001",
                            "t": local.isoformat(),
                            "tz": "Asia/Shanghai",
                            "state": state,
                            "verify": 1,
                            "wc": 0,
                            "idx": seq,
                            "off_ms": -120,
                            "raw": "",
                        },
                    }
                    punches.append(
                        (appliance.id, seq, emp, "gate-1", "ZK-0001", local.isoformat(), t_ms, state, 1, t_ms)
                    )
                else:
                    fields["why"] = "minute"
                data = canonical.encode(fields)
                prev = leaf_hash(data)
                tree.append(prev)
                leaves.append(prev)
                rows.append([appliance.id, seq, kind, data, None, prev, t_ms, emp, t_ms])
                seq += 1
            checkpoint = note.Checkpoint(LOG, tree.size, tree.root())
            cosigned_at = at_ms // 1000 + 70
            text = note.render(checkpoint, [note.sign(checkpoint, key)])
            line = note.cosign(checkpoint, witness, "punchproof-cloud/witness", cosigned_at).line()
            checkpoints.append((appliance.id, tree.size, checkpoint.root, text, line, cosigned_at, cosigned_at * 1000))
        chunk = max(1, len(leaves) // 8)
        signatures = [
            s for part in pool.map(_sign, [leaves[i : i + chunk] for i in range(0, len(leaves), chunk)]) for s in part
        ]
        for row, sig in zip(rows, signatures, strict=True):
            row[4] = sig
        with database.atomic():
            columns = ("appliance_id", "seq", "type", "data", "sig", "leaf", "t_wall_ms", "employee", "received_ms")
            bulk_insert(LogRecord, columns, [tuple(r) for r in rows])
            punch_columns = ("appliance_id", "seq", "employee", "terminal", "terminal_sn", "device_time")
            bulk_insert(Punch, punch_columns + ("at_utc_ms", "state", "verify", "received_ms"), punches)
            bulk_insert(
                CloudCheckpoint,
                ("appliance_id", "size", "root", "note", "cosignature", "cosigned_at", "received_ms"),
                checkpoints,
            )
        if offset % 30 == 29 or offset == days - 1:
            print(
                f"  built day {offset + 1}/{days}: {seq:,} records ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    pool.close()
    head = LogHead.get(LogHead.appliance == appliance)
    head.seq, head.leaf = seq - 1, prev
    head.compact = "[]"  # not needed by export
    head.save()
    WitnessLog(witness, clock).seal()
    witness_path = db_path.with_suffix(".witness-key.pem")
    witness_path.unlink(missing_ok=True)
    witness.save(witness_path)
    return key, witness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--db", type=Path, default=Path("/tmp/pp-bench-year.sqlite3"))  # noqa: S108
    args = parser.parse_args()
    witness_path = args.db.with_suffix(".witness-key.pem")
    if args.db.exists() and witness_path.exists():
        open_db(f"sqlite:///{args.db}")
        witness = SigningKey.load(witness_path)
        print(f"using the cached plant-year in {args.db}")
    else:
        args.db.unlink(missing_ok=True)
        print(f"building a plant-year in {args.db}: {args.workers} workers, {args.days} days (not timed)")
        _key, witness = build(args.db, args.workers, args.days)
    records = LogRecord.select().count()
    print(f"the log: {records:,} records, {CloudCheckpoint.select().count():,} cosigned checkpoints")
    last_day = FIRST_DAY + timedelta(days=args.days - 1)
    clock = FrozenClock(datetime.combine(last_day + timedelta(days=2), datetime.min.time(), TZ).astimezone(UTC))
    started = time.perf_counter()
    bundle = export_bundle(
        EMPLOYEE, FIRST_DAY, last_day, witness=witness.verify_key, clock=clock, witness_log=WitnessLog(witness, clock)
    )
    export_s = time.perf_counter() - started
    started = time.perf_counter()
    report = verify_bundle(bundle, witness_key=witness.verify_key)
    verify_s = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(
            "the bundle does not verify: " + "; ".join(f"{c.name}: {c.detail}" for c in report.checks if not c.ok)
        )
    started = time.perf_counter()
    hashlib.sha256(bundle).digest()
    sha_s = time.perf_counter() - started
    leaves = [bytes(r.leaf) for r in LogRecord.select(LogRecord.leaf).order_by(LogRecord.seq).iterator()]
    started = time.perf_counter()
    CompactRange().extend(leaves)
    merkle_s = time.perf_counter() - started
    print(
        f"employee {EMPLOYEE}, {FIRST_DAY} .. {last_day}: {len(report.disclosed)} of the employee's records disclosed"
    )
    print(f"bundle: {len(bundle) / 1e6:.1f} MB")
    print(f"export  {export_s:7.1f} s")
    print(
        f"verify  {verify_s:7.1f} s   ({verify_s / (sha_s + merkle_s):.1f} x the floor of {sha_s + merkle_s:.1f} s: "
        f"SHA-256 of the bundle {sha_s:.1f} s + the Merkle root over {len(leaves):,} leaves {merkle_s:.1f} s)"
    )


if __name__ == "__main__":
    main()
