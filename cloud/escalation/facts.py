"""Confirmed day facts and fresh punches, read from the plants' stored logs since the last tick.

Each appliance's records are stored contiguously in seq order while its ``LogHead`` row is locked
(``cloud.ingest.verifier``), so reading ``(cursor, head]`` per appliance misses nothing and reads nothing
twice, on SQLite and on PostgreSQL with several ingest workers alike. A fact that supersedes an
earlier one for the same key (leave approved later, a 补卡) replaces it in ``AttendanceDay``; the
signed log keeps both.

A punch its appliance signed at or past the key's compromise point (``punchproof cloud revoke-key
--compromised-since``, ``cloud.appliances.trust``) is not read as a fresh punch: whoever copied the key could
have made it, so it never resolves a case as "employee back". Such day facts are stored like any other; counting
marks them untrusted.

Only facts the appliance confirmed exist at all: a plant whose terminals have not been read past a
shift's end sends no fact for it, so an outage produces no absence here, only a later fact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import peewee as pw

from cloud.appliances.trust import Trust
from cloud.escalation import bulk
from cloud.escalation.models import AttendanceDay, FactCursor
from cloud.store import Appliance, LogHead, Punch, database

ATTENDED = frozenset({"present", "late", "left_early", "incomplete"})
EXCUSED = frozenset({"on_leave", "business_trip"})
OFF = frozenset({"rest_day", "holiday", "not_scheduled", "upcoming"})


@dataclass
class Fresh:
    """What a read found: badges whose facts changed, and each badge's latest new punch."""

    touched: set[tuple[str, str]] = field(default_factory=set)  # (plant, user_id) with a non-attended or changed fact
    attended: set[tuple[str, str]] = field(
        default_factory=set
    )  # a plain attended fact (matters only with an open case)
    punches: dict[tuple[str, str], int] = field(default_factory=dict)  # latest punch time (ms) per badge
    facts: int = 0


def read_new(limit_per_appliance: int = 20_000) -> Fresh:
    fresh = Fresh()
    behind = (
        LogHead.select(
            LogHead.appliance, LogHead.seq, Appliance.plant, pw.fn.COALESCE(FactCursor.seq, -1).alias("done")
        )
        .join(Appliance, on=(Appliance.id == LogHead.appliance))
        .join(FactCursor, pw.JOIN.LEFT_OUTER, on=(FactCursor.appliance == LogHead.appliance))
        .where(LogHead.seq > pw.fn.COALESCE(FactCursor.seq, -1))
        .tuples()
    )
    db = database.obj
    sqlite = isinstance(db, pw.SqliteDatabase)
    trust = Trust.load()
    for appliance_id, head, plant_id, _seen in list(behind):
        FactCursor.insert(appliance=appliance_id, seq=-1).on_conflict_ignore().execute()
        # the cursor row is the lock: two runners never project the same range
        with db.atomic("IMMEDIATE") if sqlite else db.atomic():
            query = FactCursor.select().where(FactCursor.appliance == appliance_id)
            done = (query if sqlite else query.for_update()).get().seq
            upto = min(head, done + limit_per_appliance)
            if upto <= done:
                continue
            _facts(appliance_id, plant_id, done, upto, fresh)
            point = trust.points.get(appliance_id)
            _punches(appliance_id, plant_id, done, min(upto, point.since_seq - 1) if point else upto, fresh)
            FactCursor.update(seq=upto).where(FactCursor.appliance == appliance_id).execute()
    return fresh


def _facts(appliance_id: int, plant_id: str, after: int, upto: int, fresh: Fresh) -> None:
    rows = bulk.execute(
        "SELECT seq, data FROM log_record WHERE appliance_id = ? AND seq > ? AND seq <= ? AND type = 'dayfact' "
        "ORDER BY seq",
        (appliance_id, after, upto),
    ).fetchall()
    latest: dict[str, tuple[int, dict]] = {}
    for seq, data in rows:
        fact = json.loads(bytes(data))["fact"]
        latest[str(fact["key"])] = (seq, fact)  # the last fact of a key in the range wins
    if not latest:
        return
    values = [
        {
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
            "fact_id": fact_id(fact),
            "appliance": appliance_id,
            "seq": seq,
        }
        for key, (seq, fact) in latest.items()
    ]
    status = {v["fact_key"]: v["status"] for v in values}
    for key, user_id, versions in _upsert(values):
        badge = (plant_id, user_id)
        if versions > 1:
            fresh.touched.add(badge)
        else:
            (fresh.attended if status[key] in ATTENDED | OFF else fresh.touched).add(badge)
        fresh.facts += 1


SUPERSEDE = '"versions" = attendance_day."versions" + 1'
_ARRAY_TYPES = {"BIGINT": "bigint", "INT": "integer", "INTEGER": "integer", "AUTO": "integer"}


def _upsert(values: list[dict]) -> list[tuple]:
    """Store the facts; a fact of a key already stored supersedes it: the row takes the new fact and counts one
    more version. Returns (fact_key, user_id, versions) of each row written.

    On PostgreSQL the rows go as one array per column (``INSERT ... SELECT FROM unnest``): a multi-row VALUES
    list of a plant's day (500 rows, 7,000 parameters) cost the server more to parse and plan than to store,
    and a group's day of a million facts spent most of its tick there (bench/escalation_tick_group.py)."""
    if not isinstance(database.obj, pw.PostgresqlDatabase):
        return bulk.insert(
            AttendanceDay,
            values,
            upsert_on=("plant_id", "fact_key"),
            also_set=SUPERSEDE,
            returning="fact_key, user_id, versions",
        )
    fields = [f for f in AttendanceDay._meta.sorted_fields if f.name != "id"]
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    arrays = ", ".join(f"%s::{_ARRAY_TYPES.get(f.field_type, 'text')}[]" for f in fields)
    sets = ", ".join(f'"{f.column_name}" = excluded."{f.column_name}"' for f in fields if f.name != "versions")
    text = (
        f"INSERT INTO attendance_day ({columns}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT (plant_id, fact_key) DO UPDATE SET {sets}, {SUPERSEDE} RETURNING fact_key, user_id, versions"
    )
    params = [_array_literal([row.get(f.name, 1) for row in values]) for f in fields]  # versions: 1 when new
    return list(database.execute_sql(text, params).fetchall())


def _array_literal(items: list[object]) -> str:
    """A PostgreSQL array literal of these values (text, whole numbers or None), one parameter however many."""
    out = []
    for item in items:
        if item is None:
            out.append("NULL")
        else:
            out.append('"' + str(item).replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(out) + "}"


def fact_id(fact: dict) -> str:
    """The id a superseding fact names: SHA-256 of the fact's canonical JSON, as ``appliance.rules.fact_id``."""
    data = json.dumps(fact, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _punches(appliance_id: int, plant_id: str, after: int, upto: int, fresh: Fresh) -> None:
    rows = (
        Punch.select(Punch.employee, pw.fn.MAX(Punch.at_utc_ms))
        .where((Punch.appliance == appliance_id) & (Punch.seq > after) & (Punch.seq <= upto))
        .group_by(Punch.employee)
        .tuples()
    )
    for employee, at_ms in rows:
        badge = (plant_id, employee)
        fresh.punches[badge] = max(at_ms, fresh.punches.get(badge, 0))


def badges(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    by_plant: dict[str, list[str]] = {}
    for plant, user in items:
        by_plant.setdefault(plant, []).append(user)
    return by_plant
