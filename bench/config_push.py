"""Figure: how large a plant's configuration is on the wire, and how long an appliance takes to apply it.

A plant of N workers (Chinese names, lines, departments, one of three rosters), with M months of
leave (one entry per worker per month; the appliance re-evaluates 62 days back, so 2-3 months is
what a cloud needs to send), a month of 补卡 (one per ten workers) and a schedule of
hand-made days (one per ten workers). Prints the canonical and the compressed size against the
512 KiB message limit, and the time to verify and apply the document to a fresh SQLite file and
then to apply the next version over it.

    .venv/bin/python bench/config_push.py [--workers 1000 5000 10000] [--leave-months 3 12]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from appliance.store import open_db
from appliance.sync.config_apply import apply
from ledger import SigningKey
from ledger.config_message import ConfigDocument, ConfigTooLarge, SignedConfig
from ledger.messages import MAX_MESSAGE_BYTES

TZ = ZoneInfo("Asia/Shanghai")
START_MS = 1_767_196_800_000  # 2026-01-01 00:00 Shanghai
DAY_MS = 86_400_000
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"


def sections(workers: int, months: int, seed: int = 7) -> dict:
    rnd = random.Random(seed)
    employees, leave, corrections, schedule = [], [], [], []
    for n in range(workers):
        emp = f"{100000 + n}"
        name = rnd.choice(SURNAMES) + "".join(rnd.choices(GIVEN, k=rnd.choice((1, 2))))
        employees.append(
            {"user_id": emp, "name": name, "line": f"{n % 24 + 1}号线", "department": "装配车间", "roster": f"w{n % 3}"}
        )
        for month in range(months):
            start = START_MS + (month * 30 + rnd.randrange(28)) * DAY_MS
            entry = {"id": f"QJ{emp}-{month:02d}", "employee": emp, "kind": "事假"}
            leave.append(entry | {"start_ms": start, "end_ms": start + DAY_MS})
        if n % 10 == 0:
            at = START_MS + rnd.randrange(30) * DAY_MS + 8 * 3600_000
            entry = {"id": f"BK{emp}", "employee": emp, "at_ms": at, "direction": "in"}
            corrections.append(entry | {"reason": "忘记打卡"})
            schedule.append({"employee": emp, "day": f"2026-03-{rnd.randrange(1, 29):02d}", "shifts": "B"})
    return {
        "shifts": [
            {"id": "A", "name": "早班", "spans": "08:00-16:00"},
            {"id": "B", "name": "中班", "spans": "16:00-00:00"},
            {"id": "C", "name": "夜班", "spans": "00:00-08:00"},
        ],
        "rosters": [{"id": f"w{i}", "pattern": ",".join([s] * 6 + ["-"])} for i, s in enumerate("ABC")],
        "employees": employees,
        "leave": leave,
        "corrections": corrections,
        "schedule": schedule,
        "policy": {"version": "bench"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--leave-months", type=int, nargs="+", default=[3, 12])
    args = parser.parse_args()
    key = SigningKey.generate()
    columns = ("workers", 8), ("leave", 5), ("rows", 7), ("canonical", 10), ("on wire", 9), ("of limit", 8)
    print(" ".join(f"{name:>{width}}" for name, width in (*columns, ("apply new", 9), ("apply next", 10))))
    for months, workers in ((m, w) for m in args.leave_months for w in args.workers):
        body = sections(workers, months)
        rows = sum(len(v) for v in body.values() if isinstance(v, list))
        first = SignedConfig.sign(ConfigDocument.build("p1", "pi-01", 1, START_MS, "bench", body), key)
        size = len(first.document.canonical())
        try:
            payload = first.encode()
        except ConfigTooLarge:
            print(f"{workers:>8} {months:>4}m {rows:>7} {size / 1024:>8.0f} K {'too large':>9}")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            db = open_db(Path(tmp) / "appliance.sqlite3")
            started = time.perf_counter()
            apply(SignedConfig.decode(payload).verify(key.verify_key), TZ, [], START_MS)
            new = time.perf_counter() - started
            body["employees"] = body["employees"][: workers * 9 // 10]  # a tenth left the plant
            second = SignedConfig.sign(ConfigDocument.build("p1", "pi-01", 2, START_MS, "bench", body), key).encode()
            started = time.perf_counter()
            apply(SignedConfig.decode(second).verify(key.verify_key), TZ, [], START_MS + DAY_MS)
            nxt = time.perf_counter() - started
            db.close()
        share = len(payload) / MAX_MESSAGE_BYTES
        print(
            f"{workers:>8} {months:>4}m {rows:>7} {size / 1024:>8.0f} K {len(payload) / 1024:>7.0f} K {share:>8.0%} "
            f"{new:>8.2f}s {nxt:>9.2f}s"
        )


if __name__ == "__main__":
    main()
