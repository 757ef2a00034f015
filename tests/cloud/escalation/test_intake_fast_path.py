"""The tick's intake at group scale decides as the appliance-at-a-time, badge-at-a-time path did.

``facts.read_new`` reads many appliances' records a part at a time, decodes them with orjson, hashes each fact's id
from orjson's bytes, stores a part's facts in one statement (PostgreSQL: COPY'd into a scratch table first), and
``intake.recount`` counts new absences in groups of up to 2,000 badges. The slow path here is the code it replaced:
one appliance at a time, ``json``, one upsert a fact, and every badge counted alone. The same random plants' facts
(absences, attendance, leave, rest days, a key superseded within a range, by a second appliance of the plant in
the same read, and in a later read; punches) go through both, into two databases, and the facts stored, the badges
found, the cases opened, their days and their timelines must be the same, row for row."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.rules.dayfact import fact_id as appliance_fact_id
from cloud.escalation import cases, facts, intake
from cloud.escalation.models import AbsenceCase, AttendanceDay, CaseDay, CaseEntry, FactCursor
from cloud.escalation.policy import publish
from cloud.hr.models import Employee, PlantBadge
from cloud.store import Appliance, LogHead, LogRecord, Plant, Punch, database, open_db
from ledger import canonical
from tests.cloud.escalation.plantfeed import policy_body

TZ = ZoneInfo("Asia/Shanghai")
MON = date(2025, 3, 3)
PLANTS = {"p1": 2, "p2": 1, "p3": 1}  # appliances per plant: p1's two both send facts of its badges
STATUSES = ("present", "present", "late", "missing", "missing", "missing", "on_leave", "rest_day", "incomplete")
ODD_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


def _ms(day: date, hour: int) -> int:
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=TZ).timestamp() * 1000)


def _fact(user: str, day: date, status: str, rng: random.Random) -> dict:
    body = {
        "fv": 1,
        "key": f"{user}/{day}/D",
        "emp": user,
        "date": day.isoformat(),
        "shift": "D",
        "tz": "Asia/Shanghai",
        "status": status,
        "tier": "confirmed",
        "start_ms": _ms(day, 8),
        "end_ms": _ms(day, 17),
        "watch": "",
        "excusal": "QJ-1" if status == "on_leave" else "",
        "reason_zh": rng.choice(["缺勤", '带"引号\\和\t制表', "多行\n原因", "{大括号,逗号}", "NULL"]),
        "late_min": rng.randrange(0, 90),
    }
    if rng.random() < 0.2:
        del body["watch"]  # a fact without the field: stored as ""
    return body


class World:
    """Plants, appliances, employees and badges, and the records ingest would have stored, written into
    whichever database is open (the two databases get the very same rows)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.users = {p: [f"{n:04d}" for n in range(1, 9)] for p in PLANTS}
        self.records: list[tuple[int, str, dict]] = []  # (appliance, type, body) in the order ingest stored them

    def build(self) -> None:
        publish("*", policy_body(), by="hr", now_ms=0)
        app = 0
        for plant, appliances in PLANTS.items():
            Plant.create(id=plant, name=plant)
            for n in range(appliances):
                app += 1
                Appliance.create(id=app, plant=plant, name=f"pi-{n}", log_origin=f"log/{plant}/{n}", registered_ms=0)
                LogHead.create(appliance=app, seq=-1)
            for user in self.users[plant]:
                emp = Employee.create(employee_no=f"{plant}-{user}", name=f"员工{user}", phone="13800138000")
                PlantBadge.create(plant=plant, user_id=user, employee=emp, roster="W")
        # one person works at two plants: one open case for the employee, whichever badge's facts come first
        shared = Employee.get(Employee.employee_no == "p2-0008")
        PlantBadge.update(employee=shared).where((PlantBadge.plant == "p3") & (PlantBadge.user_id == "0008")).execute()

    def appliances(self, plant: str) -> list[int]:
        first = 1 + sum(n for p, n in PLANTS.items() if p < plant)
        return list(range(first, first + PLANTS[plant]))

    def day(self, day: date, supersede: float) -> None:
        """Every badge's fact for ``day`` on one of its plant's appliances; some keys given again later, on the
        same appliance or the plant's other one, deciding otherwise."""
        again = []
        for plant, users in self.users.items():
            for user in users:
                body = _fact(user, day, self.rng.choice(STATUSES), self.rng)
                self.records.append((self.rng.choice(self.appliances(plant)), "dayfact", body))
                if self.rng.random() < supersede:
                    again.append((plant, user))
        for plant, user in again:
            body = _fact(user, day, self.rng.choice(STATUSES), self.rng)
            self.records.append((self.rng.choice(self.appliances(plant)), "dayfact", body))

    def punch(self, plant: str, user: str, at: datetime) -> None:
        self.records.append((self.rng.choice(self.appliances(plant)), "punch", {"emp": user, "at": at}))

    def store(self, upto: int) -> None:
        """Store records[..upto] not yet stored (as ingest: contiguous seqs per appliance, heads moved)."""
        heads = {a: s for a, s in LogHead.select(LogHead.appliance, LogHead.seq).tuples()}
        done = LogRecord.select().count()
        for appliance, kind, body in self.records[done:upto]:
            heads[appliance] += 1
            seq = heads[appliance]
            if kind == "dayfact":
                data = canonical.encode({"type": "dayfact", "fact": body})
                employee = body["emp"]
            else:
                data = canonical.encode({"type": "punch", "emp": body["emp"]})
                employee = body["emp"]
                Punch.create(
                    appliance=appliance,
                    seq=seq,
                    employee=body["emp"],
                    terminal="1号机",
                    terminal_sn="ZK1",
                    device_time=body["at"].astimezone(TZ).replace(tzinfo=None).isoformat(),
                    at_utc_ms=int(body["at"].timestamp() * 1000),
                    state=255,
                    verify=1,
                    received_ms=0,
                )
            LogRecord.create(
                appliance=appliance,
                seq=seq,
                type=kind,
                data=data,
                sig=b"",
                leaf=b"",
                t_wall_ms=0,
                employee=employee,
                received_ms=0,
            )
        for appliance, seq in heads.items():
            LogHead.update(seq=seq).where(LogHead.appliance == appliance).execute()


# -- the slow path: the code the fast one replaced -----------------------------------------------------------------


def slow_read() -> facts.Fresh:
    """``facts.read_new`` as it was: appliance after appliance, ``json``, one upsert a fact."""
    fresh = facts.Fresh()
    for appliance_id, head, plant_id in (
        LogHead.select(LogHead.appliance, LogHead.seq, Appliance.plant)
        .join(Appliance, on=(Appliance.id == LogHead.appliance))
        .order_by(LogHead.appliance)
        .tuples()
    ):
        FactCursor.insert(appliance=appliance_id, seq=-1).on_conflict_ignore().execute()
        done = FactCursor.get_by_id(appliance_id).seq
        if head <= done:
            continue
        latest: dict[str, tuple[int, dict]] = {}
        for seq, data in (
            LogRecord.select(LogRecord.seq, LogRecord.data)
            .where((LogRecord.appliance == appliance_id) & (LogRecord.seq > done) & (LogRecord.type == "dayfact"))
            .order_by(LogRecord.seq)
            .tuples()
        ):
            fact = json.loads(bytes(data))["fact"]
            latest[str(fact["key"])] = (seq, fact)
        for key, (seq, fact) in latest.items():
            values = {
                "plant": plant_id,
                "user_id": str(fact["emp"]),
                "fact_key": key,
                "work_date": str(fact["date"]),
                "shift": str(fact.get("shift", "")),
                "status": str(fact["status"]),
                "start_ms": fact.get("start_ms"),
                "end_ms": fact.get("end_ms"),
                "watch": str(fact.get("watch", "")),
                "excusal": str(fact.get("excusal", "")),
                "fact_id": appliance_fact_id(fact),
                "appliance": appliance_id,
                "seq": seq,
            }
            row = AttendanceDay.get_or_none((AttendanceDay.plant == plant_id) & (AttendanceDay.fact_key == key))
            if row is None:
                AttendanceDay.create(**values)
                versions = 1
            else:
                versions = row.versions + 1
                AttendanceDay.update(versions=versions, **values).where(AttendanceDay.id == row.id).execute()
            badge = (plant_id, values["user_id"])
            if versions > 1:
                fresh.touched.add(badge)
            else:
                (fresh.attended if values["status"] in facts.ATTENDED | facts.OFF else fresh.touched).add(badge)
            fresh.facts += 1
        for employee, at_ms in (
            Punch.select(Punch.employee, Punch.at_utc_ms)
            .where((Punch.appliance == appliance_id) & (Punch.seq > done) & (Punch.seq <= head))
            .tuples()
        ):
            badge = (plant_id, employee)
            fresh.punches[badge] = max(at_ms, fresh.punches.get(badge, 0))
        FactCursor.update(seq=head).where(FactCursor.appliance == appliance_id).execute()
    return fresh


# -- what a path decided, as comparable rows ------------------------------------------------------------------------


def decided() -> dict[str, object]:
    days = sorted(
        AttendanceDay.select(
            AttendanceDay.plant,
            AttendanceDay.user_id,
            AttendanceDay.fact_key,
            AttendanceDay.work_date,
            AttendanceDay.shift,
            AttendanceDay.status,
            AttendanceDay.start_ms,
            AttendanceDay.end_ms,
            AttendanceDay.watch,
            AttendanceDay.excusal,
            AttendanceDay.fact_id,
            AttendanceDay.appliance,
            AttendanceDay.seq,
            AttendanceDay.versions,
        ).tuples()
    )
    out_cases = {}
    for case in AbsenceCase.select():
        key = (case.employee_id, case.opened_ms, case.first_day)
        out_cases[key] = {
            "case": {k: v for k, v in case.__data__.items() if k not in ("id", "policy")},
            "days": sorted(
                (d.fact_key, d.work_date, d.start_ms, d.fact_id, d.status, d.superseded_by)
                for d in CaseDay.select().where(CaseDay.case == case.id)
            ),
            "timeline": [
                (e.seq, e.at_ms, e.kind, e.text_zh, e.text_en, e.data, e.hash)
                for e in CaseEntry.select().where(CaseEntry.case == case.id).order_by(CaseEntry.seq)
            ],
        }
    return {"facts": days, "cases": out_cases}


def run(url: str, world: World, rounds: list[tuple[int, int]], *, fast: bool, monkeypatch) -> list:
    """Open ``url``, build the world, then each round: store the records up to its mark, read and count at its
    time. What each round found and what the database holds at the end."""
    db = open_db(url)
    cases._policies.clear()
    try:
        world.build()
        found = []
        with monkeypatch.context() as m:
            if not fast:
                m.setattr(intake, "OPENING_GROUP", 1)
            for upto, now_ms in rounds:
                world.store(upto)
                fresh = facts.read_new(part_records=7) if fast else slow_read()
                counted = intake.recount(fresh, now_ms, group=250 if fast else 1)
                found.append((fresh.touched, fresh.attended, fresh.punches, fresh.facts, counted))
        return [found, decided()]
    finally:
        db.close()


def _url(base: str, tmp_path, name: str) -> str:
    if base.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/{name}.sqlite3"
    import psycopg2

    server_url = base.rpartition("/")[0]
    name = f"intake_{name}_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(f"{server_url}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"{server_url}/{name}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fast_intake_stores_finds_and_opens_what_the_slow_one_did(cloud_db_url, tmp_path, monkeypatch, seed):
    world = World(seed)
    week = [MON + timedelta(days=n) for n in range(5)]
    for day in week[:2]:
        world.day(day, supersede=0.3)
    first = len(world.records)
    for day in week[2:4]:
        world.day(day, supersede=0.3)
    for plant, users in world.users.items():  # some come back: a punch on Friday morning
        for user in users[:3]:
            world.punch(plant, user, datetime(2025, 3, 7, 7, 55, tzinfo=TZ))
    for n in range(6):  # decisions changed later about the first days (a 补卡, leave approved late)
        plant = sorted(world.users)[n % 3]
        user = world.users[plant][world.rng.randrange(8)]
        world.records.append((world.appliances(plant)[-1], "dayfact", _fact(user, week[0], "on_leave", world.rng)))
    rounds = [
        (first, _ms(week[1], 23)),
        (len(world.records), _ms(week[4], 10)),
    ]
    fast = run(_url(cloud_db_url, tmp_path, "fast"), world, rounds, fast=True, monkeypatch=monkeypatch)
    slow = run(_url(cloud_db_url, tmp_path, "slow"), world, rounds, fast=False, monkeypatch=monkeypatch)
    assert fast[0] == slow[0]  # each read: the same badges touched, attended and punched, as many facts
    assert fast[1]["facts"] == slow[1]["facts"]  # the same facts stored, with the same ids and versions
    assert fast[1]["cases"] == slow[1]["cases"]  # the same cases, days and timelines
    assert len(fast[1]["cases"]) >= 3 and any(c["case"]["open_key"] is None for c in fast[1]["cases"].values())
    assert any(v[-1] > 1 for v in fast[1]["facts"])  # the run did supersede facts


@settings(max_examples=300, deadline=None)
@given(
    fact=st.dictionaries(
        st.text(alphabet=st.characters(max_codepoint=127, exclude_characters="\x00"), max_size=8),
        st.one_of(
            ODD_TEXT,
            st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
            st.booleans(),
            st.none(),
            st.lists(ODD_TEXT, max_size=3),
            st.dictionaries(st.sampled_from(["a", "B", "z", "key"]), ODD_TEXT, max_size=3),
        ),
        max_size=12,
    )
)
def test_a_facts_id_is_the_appliances_whatever_it_holds(fact):
    """orjson's sorted bytes hash to the id the appliance gives the fact (``appliance.rules.dayfact.fact_id``),
    for any value the record format allows: control characters, quotes, non-ASCII, nested values."""
    assert facts.fact_id(fact) == appliance_fact_id(fact) == facts.slow_fact_id(fact)
    assert facts.fact_id(fact) == hashlib.sha256(canonical.encode(fact)).hexdigest()


def test_the_reading_is_done_in_parts_each_holding_its_appliances_cursors(db):
    """Four appliances read 7 records a part: several transactions, every record read once."""
    world = World(9)
    world.build()
    for day in (MON, MON + timedelta(days=1)):
        world.day(day, supersede=0.0)
    world.store(len(world.records))
    statements: list[str] = []
    database.connection().set_trace_callback(statements.append)
    try:
        fresh = facts.read_new(part_records=7)
    finally:
        database.connection().set_trace_callback(None)
    assert fresh.facts == len(world.records)
    assert sum(1 for s in statements if s.startswith("BEGIN")) > 1
    assert facts.read_new().facts == 0
    assert dict(FactCursor.select(FactCursor.appliance, FactCursor.seq).tuples()) == dict(
        LogHead.select(LogHead.appliance, LogHead.seq).tuples()
    )
