"""Escalation tick at group scale: 1,000,000 employees, 50,000 open absence cases, on PostgreSQL.

Builds the cloud's database on a throwaway PostgreSQL server (tests/harness/postgres.py, fsync on) as
ingest would leave it, written with COPY: ``--plants`` plants (2,000) with one appliance each,
``--per-plant`` badges (500) mapped to employees, the default policy, and one working day's confirmed day
facts in the appliances' logs, ``--open`` (50,000) of them missing: each stored as ingest stores a record, the
canonical bytes of the whole record (about 1 KB: the envelope and a fact with every field an appliance gives one)
beside a signature's and a leaf's bytes. Then times, each beside the limit a
tick must stay under (the 60 s interval) as a ratio:

1. the opening tick: it reads 1,000,000 facts and opens the 50,000 cases (sending nothing: their first
   reminder waits for the morning);
2. an idle tick: 50,000 open cases, nothing new, nothing due (the common case, every interval);
3. a tick with nothing to send but every case's timer due: 09:00 the next morning, each case's reminder
   falls due at once (``--share`` of them past quiet hours is not modelled: all are due);
4. a tick where a realistic share is due: the next day's facts of ``--share`` (10 %) of the plants arrive
   (their employees' D2, so their open cases advance to L2 and their warnings go out through a recording
   sender, which answers at once: provider time is bench/escalation_sends.py's figure).

Only measured figures are printed. Run it niced, the cores may be shared:

    nice -n 10 .venv/bin/python bench/escalation_tick_group.py [--plants 2000] [--per-plant 500] [--open 50000]
        [--share 0.1]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import peewee as pw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.escalation_tick import TZ, Clock, Counter, fact  # noqa: E402
from cloud.escalation import cases, facts, intake  # noqa: E402
from cloud.escalation.engine import Engine  # noqa: E402
from cloud.escalation.models import AbsenceCase, CaseStep  # noqa: E402
from cloud.escalation.policy import DEFAULT_BODY, publish  # noqa: E402
from cloud.escalation.sender import RecordingSender  # noqa: E402
from cloud.hr.models import Employee, PlantBadge  # noqa: E402
from cloud.rows import copy_text  # noqa: E402
from cloud.store import Appliance, LogHead, LogRecord, Plant, database, open_db  # noqa: E402
from ledger import canonical  # noqa: E402

LIMIT_S = 60.0
CHUNK = 50_000  # rows per COPY


def copy_rows(model: type[pw.Model], rows: Iterable[dict[str, Any]]) -> int:
    """COPY dict rows into ``model``'s table; a column a row does not give takes the field's default (peewee's
    defaults are the ORM's, not the table's, so COPY has to write them)."""
    fields = [f for f in model._meta.sorted_fields if not isinstance(f, pw.AutoField)]
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    cursor = database.cursor()
    total = 0
    for part in _chunks(rows, CHUNK):
        tuples = []
        for row in part:
            values = []
            for f in fields:
                value = row.get(f.name, row.get(f.column_name, f.default() if callable(f.default) else f.default))
                values.append(value)
            tuples.append(tuple(values))
        cursor.copy_expert(f'COPY "{model._meta.table_name}" ({columns}) FROM STDIN', io.StringIO(copy_text(tuples)))
        total += len(tuples)
    return total


def copy_with_ids(model: type[pw.Model], rows: Iterable[dict[str, Any]]) -> int:
    """As ``copy_rows``, the ids given in the rows; the table's sequence moved past them."""
    fields = model._meta.sorted_fields
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    cursor = database.cursor()
    total = 0
    for part in _chunks(rows, CHUNK):
        tuples = [
            tuple(row.get(f.name, f.default() if callable(f.default) else f.default) for f in fields) for row in part
        ]
        cursor.copy_expert(f'COPY "{model._meta.table_name}" ({columns}) FROM STDIN', io.StringIO(copy_text(tuples)))
        total += len(tuples)
    table = model._meta.table_name
    database.execute_sql(
        f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), (SELECT max(id) FROM \"{table}\"))"
    )
    return total


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    part: list[dict[str, Any]] = []
    for row in rows:
        part.append(row)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


def plant_id(i: int) -> str:
    return f"p{i:04d}"


def fact_rows(
    appliances: dict[str, int], heads: dict[int, int], badges: Iterable[tuple[str, str, str]], day: date
) -> Iterator[dict[str, Any]]:
    """Day-fact records in the appliances' logs (stored, not re-verified: ingest did that), heads moved: each the
    canonical bytes of a whole record as an appliance signs it (the envelope's fields, random where they are
    random or hashes, and a fact with every field ``appliance.rules.dayfact.day_fact`` gives one), about 1 KB,
    with a signature's and a leaf's worth of bytes beside it."""
    for plant, user, status in badges:
        app = appliances[plant]
        heads[app] += 1
        body = fact(user, day, status)
        body.update(
            late_min=0,
            early_min=0,
            missed=0 if status == "present" else 2,
            n_punches=2 if status == "present" else 0,
            n_dups=0,
            held_by="",
            cal_unknown=0,
            cal_provisional=0,
            day_kind="workday",
            in_ref=f"zk:ZK1:{heads[app]}:{body['start_ms']}" if status == "present" else "",
            out_ref=f"zk:ZK1:{heads[app]}:{body['end_ms']}" if status == "present" else "",
            as_of_ms=body["end_ms"] + 3_600_000,
            reason_zh="正常出勤" if status == "present" else "未打卡，确认缺勤",
            reason_en="attended" if status == "present" else "no punch: confirmed absent",
            rules_v="rules/1",
            policy_v="policy/3",
            cal_v="cn-2025/1",
            confirm_at_ms=body["end_ms"] + 3_600_000,
            wm_ms=body["end_ms"] + 3_600_000,
        )
        record = {
            "v": 2,
            "log": f"punchproof/{plant}/pi-01/1",
            "seq": heads[app],
            "type": "dayfact",
            "salt": _b64(16),
            "prev": _b64(32),
            "t_wall_ms": body["end_ms"] + 3_600_000,
            "t_boot_us": 86_400_000_000,
            "boot_id": "8f14e45f-ceea-467f-a8f0-4f6e3b2c1d0a",
            "kid": "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eA==",
            "clk": {"sync": 1, "src": "kernel", "err_us": 1200},
            "anchor": _b64(32),
            "tag": _b64(32),
            "fact": body,
        }
        yield {
            "appliance": app,
            "seq": heads[app],
            "type": "dayfact",
            "data": canonical.encode(record),
            "sig": os.urandom(64),
            "leaf": os.urandom(32),
            "t_wall_ms": record["t_wall_ms"],
            "employee": user,
            "received_ms": 0,
        }


def _b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


def move_heads(heads: dict[int, int]) -> None:
    values = ", ".join(f"({app}, {seq})" for app, seq in heads.items())
    database.execute_sql(
        f"UPDATE log_head SET seq = v.seq FROM (VALUES {values}) AS v(app, seq) WHERE log_head.appliance_id = v.app"
    )


def seed(plants: int, per_plant: int, open_cases: int, day1: date) -> tuple[dict[str, int], dict[int, int], set]:
    ids = [plant_id(i) for i in range(plants)]
    with database.atomic():
        copy_rows(Plant, ({"id": p, "name": f"{i} 号厂"} for i, p in enumerate(ids)))
        copy_with_ids(
            Appliance,
            (
                {"id": i + 1, "plant": p, "name": "pi", "log_origin": f"log/{p}", "registered_ms": 0}
                for i, p in enumerate(ids)
            ),
        )
        copy_rows(LogHead, ({"appliance": i + 1, "seq": -1} for i in range(plants)))
        copy_with_ids(
            Employee,
            (
                {
                    "id": i * per_plant + j + 1,
                    "employee_no": f"{p}-{j:05d}",
                    "name": f"员工{i}-{j}",
                    "phone": "13800138000",
                }
                for i, p in enumerate(ids)
                for j in range(per_plant)
            ),
        )
        copy_with_ids(
            PlantBadge,
            (
                {
                    "id": i * per_plant + j + 1,
                    "plant": p,
                    "user_id": f"{j:05d}",
                    "employee": i * per_plant + j + 1,
                    "roster": "W",
                }
                for i, p in enumerate(ids)
                for j in range(per_plant)
            ),
        )
    body = dict(DEFAULT_BODY, handbook={"version": "v1", "article": "12", "adoption_ref": "a", "publication_ref": "b"})
    publish("*", body, by="bench", now_ms=0)
    appliances = {p: i + 1 for i, p in enumerate(ids)}
    heads = {a: -1 for a in appliances.values()}
    total = plants * per_plant
    step = max(1, total // open_cases)
    absent = {(ids[n // per_plant], f"{n % per_plant:05d}") for n in range(0, total, step)}
    absent = set(sorted(absent)[:open_cases])
    with database.atomic():
        copy_rows(
            LogRecord,
            fact_rows(
                appliances,
                heads,
                (
                    (p, f"{j:05d}", "missing" if (p, f"{j:05d}") in absent else "present")
                    for p in ids
                    for j in range(per_plant)
                ),
                day1,
            ),
        )
        move_heads(heads)
    database.execute_sql("ANALYZE")
    return appliances, heads, absent


class Phases:
    """Wall time of the tick's two intake phases (reading the facts, counting the badges), timed around the
    functions the engine calls; the rest of a tick is advancing due cases and sending."""

    def __init__(self) -> None:
        self.read = self.count = 0.0
        self._read, self._count = facts.read_new, intake.recount

        def read(*args: Any, **kwargs: Any) -> facts.Fresh:
            started = time.perf_counter()
            try:
                return self._read(*args, **kwargs)
            finally:
                self.read += time.perf_counter() - started

        def count(*args: Any, **kwargs: Any) -> int:
            started = time.perf_counter()
            try:
                return self._count(*args, **kwargs)
            finally:
                self.count += time.perf_counter() - started

        facts.read_new, intake.recount = read, count  # type: ignore[assignment]

    def __enter__(self) -> Phases:
        return self

    def __exit__(self, *exc: object) -> None:
        facts.read_new, intake.recount = self._read, self._count  # type: ignore[assignment]


def measured(engine: Engine, label: str, cases_touched: int) -> float:
    load = os.getloadavg()[0]
    with Counter() as count, Phases() as phases:
        started = time.perf_counter()
        report = engine.tick()
        took = time.perf_counter() - started
    print(
        f"{label:<58} {took:7.1f} s  limit {LIMIT_S:.0f} s  ratio {took / LIMIT_S:5.2f}  "
        f"{count.n:>7} statements  [{report.facts:,} facts, {report.recounted:,} badges recounted, "
        f"{report.advanced:,} cases due, {report.sent:,} sent, {report.held:,} held; "
        f"load {load:.1f} -> {os.getloadavg()[0]:.1f}]"
        + (f"  {took / cases_touched * 1000:.2f} ms/case" if cases_touched else ""),
        flush=True,
    )
    print(
        f"    of which reading the facts {phases.read:.1f} s, counting the badges {phases.count:.1f} s, "
        f"advancing and sending {took - phases.read - phases.count:.1f} s",
        flush=True,
    )
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plants", type=int, default=2000)
    parser.add_argument("--per-plant", type=int, default=500)
    parser.add_argument("--open", type=int, default=50_000)
    parser.add_argument("--share", type=float, default=0.1, help="share of plants whose next day's facts arrive")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a throwaway server)")
    args = parser.parse_args()
    server = None
    url = args.database_url
    if url is None:
        from tests.harness.postgres import PostgresServer

        server = PostgresServer(durable=True).start()
        url = server.create_database("esc_group")
    try:
        run(args, url)
    finally:
        if server is not None:
            server.stop()


def run(args: argparse.Namespace, url: str) -> None:
    open_db(url)
    cases._policies.clear()
    day1 = date(2025, 3, 3)  # a Monday
    clock = Clock(datetime(day1.year, day1.month, day1.day, 22, tzinfo=TZ).astimezone(UTC))
    t0 = time.perf_counter()
    appliances, heads, absent = seed(args.plants, args.per_plant, args.open, day1)
    people = args.plants * args.per_plant
    print(
        f"PostgreSQL: built {people:,} employees at {args.plants:,} plants, {len(absent):,} absent, by COPY in "
        f"{time.perf_counter() - t0:.0f} s; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    engine = Engine(clock, RecordingSender())
    measured(engine, f"opening tick ({people:,} facts, opens {len(absent):,} cases)", len(absent))
    opened = AbsenceCase.select().where(AbsenceCase.open_key.is_null(False)).count()
    assert opened == len(absent), opened
    clock.at += timedelta(minutes=1)
    measured(engine, f"idle tick ({opened:,} open cases, nothing due)", 0)
    clock.at = datetime(day1.year, day1.month, day1.day + 1, 9, 0, 30, tzinfo=TZ).astimezone(UTC)
    due_before = CaseStep.select().where(CaseStep.status == "due").count()
    sent_before = CaseStep.select().where(CaseStep.status == "sent").count()
    measured(engine, f"morning tick ({due_before:,} reminders due at 09:00)", opened)
    sent = CaseStep.select().where(CaseStep.status == "sent").count() - sent_before
    print(f"    reminders sent in that tick: {sent:,} of {due_before:,}", flush=True)
    # the next day's facts of a share of the plants arrive: D2 for their open cases, L2 warnings sent
    day2 = day1 + timedelta(days=1)
    share = sorted(appliances)[: max(1, round(args.plants * args.share))]
    chosen = set(share)
    with database.atomic():
        copy_rows(
            LogRecord,
            fact_rows(
                appliances,
                heads,
                (
                    (p, f"{j:05d}", "missing" if (p, f"{j:05d}") in absent else "present")
                    for p in share
                    for j in range(args.per_plant)
                ),
                day2,
            ),
        )
        move_heads({appliances[p]: heads[appliances[p]] for p in share})
    database.execute_sql("ANALYZE")
    affected = sum(1 for p, _ in absent if p in chosen)
    clock.at += timedelta(hours=2)
    before = dict(
        AbsenceCase.select(AbsenceCase.level, pw.fn.COUNT(AbsenceCase.id)).group_by(AbsenceCase.level).tuples()
    )
    measured(
        engine,
        f"day tick ({len(share) * args.per_plant:,} facts of {len(share)} plants, {affected:,} cases to L2)",
        affected,
    )
    levels = dict(
        AbsenceCase.select(AbsenceCase.level, pw.fn.COUNT(AbsenceCase.id)).group_by(AbsenceCase.level).tuples()
    )
    print(f"    case levels before {before}, after {levels}", flush=True)


if __name__ == "__main__":
    main()
