"""Escalation tick: 100,000 employees across 200 plants with 5,000 open absence cases.

Builds the cloud's database (SQLite, a temporary file; with ``--postgres`` a throwaway PostgreSQL
server, tests/harness/postgres.py) as ingest would leave it: 200 plants with one
appliance each, 500 badges per plant mapped to employees, a published policy, and the day facts of
one working day in the appliances' logs (the facts' records are stored directly: a tick never
re-verifies signatures, ingest did). Then measures, with the SQL statements each one issues:

1. the opening tick (22:00, after the day's shift): it reads one day's facts for everyone and opens
   the 5,000 cases; their L1 reminders, to the employees, wait for the morning (the policy's sending
   window for people is 08:00-21:00);
2. an idle tick a minute later: nothing new, 5,000 open cases, the reminders held (the common case,
   every interval);
3. the morning tick (08:30): the 5,000 L1 reminders go (recorded; an L2 follows its L1 only);
4. a day tick (22:00): the next day's facts for every employee (or ``--facts`` of them; the open
   cases' 5,000 missing ones among them) arrive at once; each open case gets its D2, is advanced to
   L2, and its L2 warning (to the manager and HR, whom the window does not hold) is sent and recorded.

Statements are counted as the database sees them: on SQLite every statement SQLite runs (its trace
callback, BEGIN and COMMIT included); on PostgreSQL every statement sent (a counting cursor). Each
time is printed beside the limit it must stay under, the tick interval (60 s by default), as a
ratio, with the machine's load average, since the cores may be shared.

Run: .venv/bin/python bench/escalation_tick.py [--postgres] [--plants 200] [--per-plant 500] [--open 5000]
     [--facts N (default: everyone)]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import peewee as pw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud.escalation import cases  # noqa: E402
from cloud.escalation.engine import Engine  # noqa: E402
from cloud.escalation.models import AbsenceCase  # noqa: E402
from cloud.escalation.policy import DEFAULT_BODY, publish  # noqa: E402
from cloud.escalation.sender import RecordingSender  # noqa: E402
from cloud.hr.models import Employee, PlantBadge  # noqa: E402
from cloud.store import Appliance, LogHead, LogRecord, Plant, bulk_insert, database, open_db  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def fact(user: str, day: date, status: str) -> dict:
    start = datetime(day.year, day.month, day.day, 8, tzinfo=TZ)
    return {
        "fv": 1,
        "key": f"{user}/{day}/D",
        "emp": user,
        "date": day.isoformat(),
        "shift": "D",
        "tz": "Asia/Shanghai",
        "status": status,
        "tier": "confirmed",
        "start_ms": int(start.timestamp() * 1000),
        "end_ms": int((start + timedelta(hours=9)).timestamp() * 1000),
        "watch": "",
        "excusal": "",
    }


def store_facts(appliances: dict[str, int], heads: dict[int, int], rows: list[tuple[str, str, dict]]) -> None:
    """Append day facts to the appliances' stored logs and move their heads, as ingest would."""
    records = []
    for plant, _user, body in rows:
        app = appliances[plant]
        heads[app] += 1
        data = json.dumps({"type": "dayfact", "fact": body}, ensure_ascii=False).encode()
        records.append((app, heads[app], "dayfact", data, b"", b"", 0, body["emp"], 0))
    with database.atomic():
        for start in range(0, len(records), 5000):
            bulk_insert(
                LogRecord,
                ("appliance_id", "seq", "type", "data", "sig", "leaf", "t_wall_ms", "employee", "received_ms"),
                records[start : start + 5000],
            )
        for app, seq in heads.items():
            LogHead.update(seq=seq).where(LogHead.appliance == app).execute()


class Counter:
    """Statements the database is asked to run during a tick."""

    def __init__(self) -> None:
        self.n = 0

    def __enter__(self) -> Counter:
        conn = database.connection()
        if isinstance(database.obj, pw.SqliteDatabase):
            conn.set_trace_callback(self._seen)
        else:
            import psycopg2.extensions

            counter = self

            class CountingCursor(psycopg2.extensions.cursor):
                def execute(self, query, args=None):  # type: ignore[no-untyped-def]
                    counter.n += 1
                    return super().execute(query, args)

                def executemany(self, query, args_list):  # type: ignore[no-untyped-def]
                    args_list = list(args_list)
                    counter.n += len(args_list)
                    return super().executemany(query, args_list)

            self._factory = conn.cursor_factory
            conn.cursor_factory = CountingCursor
        return self

    def _seen(self, _sql: str) -> None:
        self.n += 1

    def __exit__(self, *exc: object) -> None:
        conn = database.connection()
        if isinstance(database.obj, pw.SqliteDatabase):
            conn.set_trace_callback(None)
        else:
            conn.cursor_factory = self._factory


def measured(engine: Engine, label: str, limit_s: float, cases_touched: int) -> None:
    load = os.getloadavg()[0]
    with Counter() as count:
        started = time.perf_counter()
        report = engine.tick()
        took = time.perf_counter() - started
    per_case = (
        f"{count.n / cases_touched:5.1f}/case, {took / cases_touched * 1000:5.2f} ms/case" if cases_touched else ""
    )
    print(
        f"{label:<44} {took:7.2f} s  {count.n:>7} statements  ({per_case:<27})  limit {limit_s:.0f} s (interval)  "
        f"ratio {took / limit_s:.4f}   [{report.facts} facts, {report.recounted} badges recounted, "
        f"{report.advanced} due cases, {report.sent} sent, {report.held} held; load {load:.2f} -> "
        f"{os.getloadavg()[0]:.2f}]",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plants", type=int, default=200)
    parser.add_argument("--per-plant", type=int, default=500)
    parser.add_argument("--open", type=int, default=5000)
    parser.add_argument("--facts", type=int, default=0, help="facts arriving in the day tick (default: everyone's)")
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--postgres", action="store_true", help="on a throwaway PostgreSQL server instead of SQLite")
    args = parser.parse_args()
    server = None
    if args.postgres:
        from tests.harness.postgres import PostgresServer

        server = PostgresServer(durable=True).start()
        where = server.create_database("esc_tick")
    else:
        where = f"sqlite:///{Path(tempfile.mkdtemp(prefix='pp-esc-')) / 'cloud.sqlite3'}"
    try:
        run(args, where)
    finally:
        if server is not None:
            server.stop()


def seed(
    plants: int,
    per_plant: int,
    open_cases: int,
    day1: date,
    *,
    plant_name: str = "{} 厂",
    employee: Callable[[str, str], dict] = lambda _plant, user: {"name": user},
) -> tuple[dict[str, int], dict[int, int], list[tuple[str, str]], set[tuple[str, str]]]:
    """Plants with one appliance and ``per_plant`` badges each, the default policy with a handbook, and
    ``day1``'s facts in the appliances' logs, ``open_cases`` of them missing: what the engine's opening tick
    reads. Returns the appliances, their log heads, the (plant, badge) pairs and the absent ones."""
    with database.atomic():
        Plant.insert_many([{"id": f"p{i:03d}", "name": plant_name.format(i)} for i in range(plants)]).execute()
        Appliance.insert_many(
            [{"plant": f"p{i:03d}", "name": "pi", "log_origin": f"log/{i}", "registered_ms": 0} for i in range(plants)]
        ).execute()
    appliances = {a.plant_id: a.id for a in Appliance.select()}
    LogHead.insert_many([{"appliance": a, "seq": -1} for a in appliances.values()]).execute()
    heads = {a: -1 for a in appliances.values()}
    people = [(f"p{i:03d}", f"{j:05d}") for i in range(plants) for j in range(per_plant)]
    with database.atomic():
        for start in range(0, len(people), 5000):
            chunk = people[start : start + 5000]
            Employee.insert_many([{"employee_no": f"{p}-{u}", **employee(p, u)} for p, u in chunk]).execute()
        ids = dict(Employee.select(Employee.employee_no, Employee.id).tuples())
        for start in range(0, len(people), 5000):
            PlantBadge.insert_many(
                [
                    {"plant": p, "user_id": u, "employee": ids[f"{p}-{u}"], "roster": "W"}
                    for p, u in people[start : start + 5000]
                ]
            ).execute()
    body = dict(DEFAULT_BODY, handbook={"version": "v1", "article": "12", "adoption_ref": "a", "publication_ref": "b"})
    publish("*", body, by="bench", now_ms=0)
    step = max(1, len(people) // open_cases)
    absent = set(people[::step][:open_cases])
    store_facts(
        appliances, heads, [(p, u, fact(u, day1, "missing" if (p, u) in absent else "present")) for p, u in people]
    )
    return appliances, heads, people, absent


def run(args: argparse.Namespace, url: str) -> None:
    open_db(url)
    cases._policies.clear()
    day1 = date(2025, 3, 3)
    clock = Clock(datetime(day1.year, day1.month, day1.day, 22, tzinfo=TZ).astimezone(UTC))
    t0 = time.perf_counter()
    appliances, heads, people, absent = seed(args.plants, args.per_plant, args.open, day1)
    kind = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    print(
        f"{kind}: built {len(people):,} employees, {args.plants} plants, {len(absent):,} absent in "
        f"{time.perf_counter() - t0:.1f} s ({url}); {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    sender = RecordingSender()
    engine = Engine(clock, sender)
    measured(engine, f"opening tick ({len(people):,} facts)", args.interval, len(absent))
    assert AbsenceCase.select().where(AbsenceCase.open_key.is_null(False)).count() == len(absent)
    clock.at += timedelta(minutes=1)
    measured(engine, f"idle tick ({len(absent):,} open cases)", args.interval, 0)
    day2 = day1 + timedelta(days=1)
    clock.at = datetime(day2.year, day2.month, day2.day, 8, 30, tzinfo=TZ).astimezone(UTC)
    measured(engine, f"morning tick ({len(absent):,} L1 reminders)", args.interval, len(absent))
    assert sender.step_keys().count("L1") == len(absent), sender.step_keys().count("L1")
    wanted = args.facts or len(people)
    others = [b for b in people if b not in absent][: max(0, wanted - len(absent))]
    rows = [(p, u, fact(u, day2, "missing")) for p, u in sorted(absent)] + [
        (p, u, fact(u, day2, "present")) for p, u in others
    ]
    store_facts(appliances, heads, rows)
    clock.at = datetime(day2.year, day2.month, day2.day, 22, tzinfo=TZ).astimezone(UTC)
    measured(engine, f"day tick ({len(rows):,} facts, D2 for every case)", args.interval, len(absent))
    levels = dict(
        AbsenceCase.select(AbsenceCase.level, pw.fn.COUNT(AbsenceCase.id)).group_by(AbsenceCase.level).tuples()
    )
    assert levels == {2: len(absent)}, levels  # every case at L2: the figure measured the real work
    assert sender.step_keys().count("L2") == len(absent), sender.step_keys()  # ... every L2 warning went out once


if __name__ == "__main__":
    main()
