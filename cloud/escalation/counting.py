"""Counting a group of badges' confirmed days again: open a case for a new spell, or update the open one.

One read per table for the whole group (badges, open cases, day facts, leave, trips, 补卡, what
earlier cases covered), then each badge in order, as the row-at-a-time code did it: a badge with no
open case may open one (the spell of absent working days at the end of its last 62 days), then its
case's days are counted again, the case advanced, and everything written at the end by the batch.

Day facts are read from the start of the year (the cumulative-year threshold), but before the day
ahead of a case's first day only ``missing`` facts can change a count, so only those are read there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import peewee as pw

from cloud.appliances.trust import Trust
from cloud.escalation import bulk, ladder, machine
from cloud.escalation.batch import CaseBatch, Refused
from cloud.escalation.facts import ATTENDED, EXCUSED
from cloud.escalation.models import AbsenceCase, CaseDay, CaseTask
from cloud.escalation.policy import PolicyVersion
from cloud.store import database

log = logging.getLogger(__name__)
WINDOW_DAYS = 62  # how far back a spell is looked for when no case is open
CORRECTION_BEFORE_MS, CORRECTION_AFTER_MS = 2 * 3_600_000, 4 * 3_600_000
FACT_COLUMNS = (
    "plant_id, user_id, fact_key, work_date, shift, status, start_ms, end_ms, watch, excusal, fact_id, "
    "appliance_id, seq"
)


class Fact(NamedTuple):
    """A stored day fact (``AttendanceDay``), as counting reads it."""

    plant_id: str
    user_id: str
    fact_key: str
    work_date: str
    shift: str
    status: str
    start_ms: int | None
    end_ms: int | None
    watch: str
    excusal: str
    fact_id: str
    appliance_id: int
    seq: int


@dataclass(frozen=True)
class Day:
    row: Fact
    kind: str  # absent | attended | excused | untrusted (signed after the appliance's key may have leaked)
    why: str = ""  # what excuses it
    by_case: bool = False  # excused by HR's resolution on a case (理由已接受, leave or 补卡 named there)


@dataclass
class Excusals:
    """An employee's approved leave and trips (ref, start, end) and 补卡 (ref, at), as HR recorded them, and
    the days HR resolved on a case ((plant, fact_key) -> why: ``CaseDay`` rows ``excused``)."""

    spans: list[tuple[str, int, int]] = field(default_factory=list)
    fixes: list[tuple[str, int]] = field(default_factory=list)
    resolved: dict[tuple[str, str], str] = field(default_factory=dict)


class Totals(NamedTuple):
    """What a case counts: its absent days, the run at its end, and the month's and year's absent days
    (those of its latest absent day's month and year, every case of the employee's included)."""

    days: int
    consecutive: int
    month: int
    year: int


def totals(days: Sequence[Day], first_start_ms: int, until_ms: int | None = None) -> Totals:
    """The counts of the case whose spell starts at ``first_start_ms`` (and ends at ``until_ms``, for a
    closed case): only ``absent`` days count, anywhere; an excused day breaks the run like a worked one."""
    upto = [d for d in days if until_ms is None or (d.row.start_ms or 0) <= until_ms]
    spell = [d for d in upto if (d.row.start_ms or 0) >= first_start_ms]
    run = 0
    for d in spell:
        run = run + 1 if d.kind == "absent" else 0
    counted = [d for d in spell if d.kind == "absent"]
    if not counted:
        return Totals(0, 0, 0, 0)
    latest = max(d.row.work_date for d in counted)
    absent = [d for d in upto if d.kind == "absent"]
    month = sum(1 for d in absent if d.row.work_date[:7] == latest[:7])
    year = sum(1 for d in absent if d.row.work_date[:4] == latest[:4])
    return Totals(len(counted), run, month, year)


Item = tuple[str, str, int | None]  # (plant, user_id, latest new punch)
Current = Callable[[str], PolicyVersion | None]


UNTRUSTED_ZH = "密钥可能泄露后的记录，不作为证据"
UNTRUSTED_TASK = (
    "untrusted_facts",
    "核实设备密钥可能泄露期间的考勤",
    "check the attendance of the days the terminal's key may have leaked: those records are not evidence",
)


def classify(rows: Sequence[Fact], hr: Excusals, trust: Trust | None = None) -> list[Day]:
    """Working days in order; an absence HR excused in the cloud (leave, trip, 补卡) counts as excused
    here at once, before the plant's superseding fact arrives. A fact its appliance signed at or past the
    key's compromise point (``trust``) is ``untrusted``: neither an absence nor a return, whatever it says."""
    working = [r for r in rows if r.status in ATTENDED | EXCUSED or r.status == "missing"]
    if not working:
        return []
    lo = min(r.start_ms or 0 for r in working) - CORRECTION_AFTER_MS
    approved = [s for s in hr.spans if s[2] > lo]
    fixes = [f for f in hr.fixes if f[1] > lo]
    out = []
    for r in sorted(working, key=lambda r: (r.start_ms or 0, r.fact_key)):
        if trust and trust.untrusted(r.appliance_id, r.seq):
            out.append(Day(r, "untrusted", UNTRUSTED_ZH))
        elif r.status in ATTENDED:
            out.append(Day(r, "attended"))
        elif r.status in EXCUSED:
            out.append(Day(r, "excused", r.excusal))
        else:
            start, end = r.start_ms or 0, r.end_ms or 0
            why = next((ref for ref, a, b in approved if a <= start and b >= end), "")
            why = why or next(
                (ref for ref, at in fixes if start - CORRECTION_BEFORE_MS <= at <= end + CORRECTION_AFTER_MS), ""
            )
            resolved = "" if why else hr.resolved.get((r.plant_id, r.fact_key), "")
            out.append(Day(r, "excused" if why or resolved else "absent", why or resolved, bool(resolved)))
    return out


def today(tz: str, now_ms: int) -> date:
    return datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(ZoneInfo(tz)).date()


def _since(case: AbsenceCase) -> date:
    first = date.fromisoformat(case.first_day)
    return min(first, date(first.year, 1, 1))


@dataclass
class Recounted:
    cases: dict[tuple[str, str], AbsenceCase] = field(default_factory=dict)  # badge -> its case, if it has one
    retry: list[Item] = field(default_factory=list)  # another runner opened the case a moment ago (PostgreSQL)


def recount_group(items: Sequence[Item], *, tz: dict[str, str], now_ms: int, current: Current) -> Recounted:
    """Count ``items`` again, inside the caller's transaction; ``retry`` lists the items to count
    again alone, after this transaction.

    On PostgreSQL the cases the group opens take their ids from the table's sequence and are written once, at
    the flush, as they stand then (a row written when opened was written again whole at the flush, the morning's
    largest write). If another runner opened one of them meanwhile, the flush refuses before writing anything
    else: the group is rolled back to a savepoint and counted again the way SQLite counts it, each case inserted
    when opened and the refused ones retried alone."""
    if isinstance(database.obj, pw.SqliteDatabase):
        return _recount_group(items, tz=tz, now_ms=now_ms, current=current, deferred=False)
    try:
        with database.atomic():  # a savepoint inside the caller's transaction
            return _recount_group(items, tz=tz, now_ms=now_ms, current=current, deferred=True)
    except Refused:
        return _recount_group(items, tz=tz, now_ms=now_ms, current=current, deferred=False)


def _recount_group(
    items: Sequence[Item], *, tz: dict[str, str], now_ms: int, current: Current, deferred: bool
) -> Recounted:
    employee_of = _employees(items)
    open_cases = _lock_open(sorted(set(employee_of.values())))
    by_employee = {c.open_key: c for c in open_cases}
    keys = {
        (c.plant_id, c.user_id): (_since(c), date.fromisoformat(c.first_day) - timedelta(days=1)) for c in open_cases
    }
    for plant, user, _punch in items:
        if (plant, user) in employee_of and employee_of[(plant, user)] not in by_employee:
            window = today(tz[plant], now_ms) - timedelta(days=WINDOW_DAYS)
            keys.setdefault((plant, user), (date(window.year, 1, 1), window))
    facts = _facts(keys)
    hr = _excusals(sorted({*employee_of.values(), *(c.employee_id for c in open_cases)}), facts)
    trust = Trust.load()
    new, retry = _open_all(
        items, employee_of, by_employee, facts, hr, trust, tz=tz, now_ms=now_ms, current=current, deferred=deferred
    )
    batch = CaseBatch.load([*open_cases, *(c for c, _ in new)], fresh=[c.id for c, _ in new])
    if deferred:
        batch.unstored = {c.id for c, _ in new}
    for case, note in new:
        batch.append(case, "opened", note[0], note[1], at_ms=now_ms, **note[2])
    out = Recounted(retry=retry)
    for plant, user, punch_ms in items:
        employee = employee_of.get((plant, user))
        case = by_employee.get(employee)
        if case is None:
            continue
        out.cases[(plant, user)] = case
        if case.open_key is None:
            continue
        rows = [r for r in facts.get((case.plant_id, case.user_id), []) if r.work_date >= _since(case).isoformat()]
        excusals = hr.get(case.employee_id, Excusals())
        _sync_days(batch, case, rows, excusals, trust, tz[case.plant_id], now_ms, punch_ms)
        machine.advance(batch, case, now_ms, tz[case.plant_id])
    batch.flush()
    return out


def _employees(items: Sequence[Item]) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for part in bulk.chunks(sorted({(plant, user) for plant, user, _punch in items}), bulk.MAX_PARAMS // 2):
        for plant, user, employee in bulk.execute(
            f"WITH b(plant, usr) AS (VALUES {', '.join(['(?, ?)'] * len(part))}) "
            "SELECT p.plant_id, p.user_id, p.employee_id FROM b "
            "JOIN plant_badge p ON p.plant_id = b.plant AND p.user_id = b.usr",
            [v for badge in part for v in badge],
        ).fetchall():
            found[(plant, user)] = employee
    for plant, user, _punch in items:
        if (plant, user) not in found:
            log.warning("day facts for badge %s at %s, which no employee has: map it in HR", user, plant)
    return found


def _lock_open(employees: list[int]) -> list[AbsenceCase]:
    """The open cases of ``employees``, locked (PostgreSQL ``FOR UPDATE``, in id order)."""
    out: list[AbsenceCase] = []
    for part in bulk.chunks(employees, 10_000):
        query = AbsenceCase.select().where(bulk.where_in("open_key", part)).order_by(AbsenceCase.id)
        out.extend(query if isinstance(database.obj, pw.SqliteDatabase) else query.for_update())
    return out


def _facts(keys: dict[tuple[str, str], tuple[date, date]]) -> dict[tuple[str, str], list[Fact]]:
    """Day facts of each (plant, user) since its first date; before its second date, ``missing`` ones only.
    The dates of a plant's badges are the earliest of its badges' (more is read, never less; counting looks
    at each case's own days), and the whole group is read in one query (a few, for thousands of badges)."""
    since: dict[str, str] = {}
    cutoff: dict[str, str] = {}
    for (plant, _user), (first, second) in keys.items():
        since[plant] = min(since.get(plant, "9999"), first.isoformat())
        cutoff[plant] = min(cutoff.get(plant, "9999"), second.isoformat())
    out: dict[tuple[str, str], list[Fact]] = {key: [] for key in keys}
    for part in bulk.chunks(sorted(keys), bulk.MAX_PARAMS // 4):
        rows = bulk.execute(
            f"WITH b(plant, usr, since, cutoff) AS (VALUES {', '.join(['(?, ?, ?, ?)'] * len(part))}) "
            f"SELECT {', '.join('a.' + c for c in FACT_COLUMNS.split(', '))} FROM b JOIN attendance_day a "
            "ON a.plant_id = b.plant AND a.user_id = b.usr AND a.work_date >= b.since "
            "AND (a.status = 'missing' OR a.work_date >= b.cutoff) ORDER BY a.id",
            [v for plant, user in part for v in (plant, user, since[plant], cutoff[plant])],
        ).fetchall()
        for row in rows:
            out[(row[0], row[1])].append(Fact(*row))
    return out


def _excusals(employees: list[int], facts: dict[tuple[str, str], list[Fact]]) -> dict[int, Excusals]:
    starts = [r.start_ms or 0 for rows in facts.values() for r in rows]
    if not employees or not starts:
        return {}
    lo = min(starts) - CORRECTION_AFTER_MS
    out: dict[int, Excusals] = {}
    for table in ("leave", "trip"):
        for employee, ref, start, end in bulk.select_in(
            f"SELECT employee_id, ref, start_ms, end_ms FROM {table} "
            "WHERE status = 'approved' AND end_ms > ? AND employee_id IN ({}) ORDER BY id",
            employees,
            [lo],
        ):
            out.setdefault(employee, Excusals()).spans.append((ref, start, end))
    for employee, ref, at in bulk.select_in(
        "SELECT employee_id, ref, at_ms FROM correction "
        "WHERE status = 'approved' AND at_ms > ? AND employee_id IN ({}) ORDER BY id",
        employees,
        [lo],
    ):
        out.setdefault(employee, Excusals()).fixes.append((ref, at))
    for employee, plant, key, why in bulk.select_in(
        "SELECT c.employee_id, c.plant_id, d.fact_key, d.superseded_by FROM case_day d "
        "JOIN absence_case c ON c.id = d.case_id "
        "WHERE d.status = 'excused' AND d.start_ms > ? AND c.employee_id IN ({}) ORDER BY d.id",
        employees,
        [lo],
    ):
        out.setdefault(employee, Excusals()).resolved[(plant, key)] = why
    return out


def _open_all(
    items: Sequence[Item],
    employee_of: dict[tuple[str, str], int],
    by_employee: dict[int, AbsenceCase],
    facts: dict[tuple[str, str], list[Fact]],
    hr: dict[int, Excusals],
    trust: Trust,
    *,
    tz: dict[str, str],
    now_ms: int,
    current: Current,
    deferred: bool = False,
) -> tuple[list[tuple[AbsenceCase, tuple]], list[Item]]:
    """Open the cases the group's badges start, in one statement; the cases and their "opened" notes.
    ``deferred``: only draw their ids from the table's sequence (PostgreSQL); the batch's flush writes them."""
    candidates = [
        (plant, user)
        for plant, user, _punch in items
        if (plant, user) in employee_of and employee_of[(plant, user)] not in by_employee
    ]
    covered = dict(
        bulk.select_in(
            "SELECT c.employee_id, MAX(d.start_ms) FROM case_day d JOIN absence_case c ON c.id = d.case_id "
            "WHERE c.employee_id IN ({}) GROUP BY c.employee_id",
            sorted({employee_of[b] for b in candidates}),
        )
    )
    planned: dict[int, tuple[dict, tuple]] = {}
    for plant, user in candidates:
        employee = employee_of[(plant, user)]
        if employee in planned:
            continue
        window = (today(tz[plant], now_ms) - timedelta(days=WINDOW_DAYS)).isoformat()
        rows = [r for r in facts[(plant, user)] if r.work_date >= window]
        days = classify(rows, hr.get(employee, Excusals()), trust)
        opened = _opening(plant, user, employee, days, covered, now_ms, current)
        if opened is not None:
            planned[employee] = opened
    if not planned:
        return [], []
    if deferred:
        drawn = bulk.execute(
            "SELECT nextval(pg_get_serial_sequence('absence_case', 'id')) FROM generate_series(1, ?)", [len(planned)]
        ).fetchall()
        made = dict(zip(planned, sorted(i for (i,) in drawn), strict=True))  # open_key is the employee
    else:
        made = {
            key: cid
            for cid, key in bulk.insert(
                AbsenceCase, [v for v, _ in planned.values()], ignore=True, returning="id, open_key"
            )
        }
    new = [(AbsenceCase(id=made[e], **values), note) for e, (values, note) in planned.items() if e in made]
    for case, _note in new:
        by_employee[case.open_key] = case
    lost = {e for e in planned if e not in made}
    retry = [item for item in items if employee_of.get((item[0], item[1])) in lost]
    return new, retry


def _opening(
    plant: str, user: str, employee: int, days: list[Day], covered: dict[int, int], now_ms: int, current: Current
) -> tuple[dict, tuple] | None:
    """The case a badge's last days open (its row and its "opened" note), or None."""
    spell: list[Day] = []
    for day in reversed(days):
        if day.kind != "absent" or (day.row.start_ms or 0) <= (covered.get(employee) or 0):
            break
        spell.insert(0, day)
    if not spell:
        return None
    version = current(plant)
    if version is None:
        log.error("no escalation policy for plant %s: publish one; absence of %s not escalated", plant, user)
        return None
    first = spell[0].row
    before = days[len(days) - len(spell) - 1] if len(days) > len(spell) else None
    trigger, ref = "missed_shift", ""
    if first.watch:
        trigger, ref = "leave_end", first.watch
    elif before is not None and before.kind == "excused" and before.why and not before.by_case:
        trigger, ref = "leave_end", before.why
    values = {
        "employee": employee,
        "plant": plant,
        "user_id": user,
        "policy": version.id,
        "trigger": trigger,
        "trigger_ref": ref,
        "state": ladder.STATES[0],
        "opened_ms": now_ms,
        "first_day": first.work_date,
        "first_start_ms": first.start_ms or 0,
        "open_key": employee,
        "updated_ms": now_ms,
    }
    zh = f"假期 {ref} 结束后未返岗" if trigger == "leave_end" else "确认缺勤（未打卡）"
    en = f"not back after leave {ref} ended" if trigger == "leave_end" else "confirmed missed shift"
    note = (
        f"立案：{zh}，首日 {first.work_date}（政策 {version.label_zh}）",
        f"case opened: {en}, first day {first.work_date} (policy {version.label})",
        {"trigger": trigger, "trigger_ref": ref, "policy": version.label, "fact": first.fact_id},
    )
    return values, note


def _sync_days(
    b: CaseBatch,
    case: AbsenceCase,
    rows: list[Fact],
    hr: Excusals,
    trust: Trust,
    tz: str,
    now_ms: int,
    punch_ms: int | None,
) -> None:
    if case.effective_ms is not None:  # employment ended with the termination: no later day is anyone's absence
        ended = today(tz, case.effective_ms).isoformat()
        rows = [r for r in rows if r.work_date <= ended]
    days = classify(rows, hr, trust)
    spell = [d for d in days if (d.row.start_ms or 0) >= case.first_start_ms]
    counted = {d.row.fact_key: d for d in spell if d.kind == "absent"}
    existing = dict(b.days[case.id])
    retriggered = added = False
    for key, day in counted.items():
        row = existing.get(key)
        if row is None:
            added = True
            b.add(
                CaseDay,
                {
                    "case": case.id,
                    "fact_key": key,
                    "work_date": day.row.work_date,
                    "shift": day.row.shift,
                    "start_ms": day.row.start_ms or 0,
                    "fact_id": day.row.fact_id,
                },
            )
            b.append(
                case,
                "day",
                f"确认缺勤：{day.row.work_date} {day.row.shift}",
                f"confirmed absent: {day.row.work_date} {day.row.shift}",
                at_ms=now_ms,
                fact=day.row.fact_id,
                appliance=day.row.appliance_id,
                seq=day.row.seq,
            )
            retriggered = retriggered or (case.acked_until_ms is not None and case.acked_until_ms > now_ms)
        elif row["status"] == "superseded":
            b.change(CaseDay, row, status="counted", superseded_by="", fact_id=day.row.fact_id)
    by_key = {d.row.fact_key: d for d in days}
    for key, row in existing.items():
        if row["status"] == "counted" and key not in counted:
            day = by_key.get(key)
            why = (day.why or day.row.status) if day is not None else "fact withdrawn"
            b.change(CaseDay, row, status="superseded", superseded_by=why)
            b.append(
                case,
                "superseded",
                f"{row['work_date']} 不再计为缺勤：{why}",
                f"{row['work_date']} no longer counted as absent: {why}",
                at_ms=now_ms,
                day=key,
                by=why,
            )
    if retriggered:
        case.acked_until_ms = None
        for step in b.steps[case.id]:
            if step["status"] == "due":
                b.change_step(step, "status = 'due'", due_ms=now_ms)
        b.append(
            case,
            "retrigger",
            "又一个班次确认缺勤：确认失效，升级继续",
            "another missed shift: acknowledgement cleared, escalation resumes",
            at_ms=now_ms,
        )
    _set_totals(b, case, totals(days, case.first_start_ms), now_ms, quiet=added)
    back = next((d for d in spell if d.kind == "attended"), None)
    last_end = max(((d.row.end_ms or 0) for d in counted.values()), default=0)
    gate = b.gates[case.id].get("confirm_termination")
    confirmed = gate is not None and gate["status"] == "approved"
    if back is not None or (punch_ms is not None and counted and punch_ms > last_end):
        how = f"{back.row.work_date} 出勤" if back else f"打卡 {_local(punch_ms or 0, tz)}"
        how_en = f"attended {back.row.work_date}" if back else f"punched at {_local(punch_ms or 0, tz)}"
        if not confirmed and case.state != ladder.MEDICAL:
            machine.resolve(
                b, case, "returned", f"员工返岗：{how}", f"employee back: {how_en}", actor="engine", now_ms=now_ms
            )
        elif "review_return" not in b.tasks[case.id]:
            b.add(
                CaseTask,
                {
                    "case": case.id,
                    "kind": "review_return",
                    "title_zh": f"解除已确认后员工出现（{how}），请人事复核",
                    "title_en": f"employee appeared after the termination was confirmed ({how_en}): HR to review",
                    "created_ms": now_ms,
                },
            )
            b.append(
                case,
                "appeared",
                f"解除确认后员工出现：{how}",
                f"employee appeared after confirmation: {how_en}",
                at_ms=now_ms,
            )
    elif not counted and any(d.kind == "untrusted" for d in spell):
        pass  # not excused either: the absence is unproven, not disproved; HR's task says what to check
    elif not counted and any(row["status"] != "excused" for row in existing.values()):
        machine.resolve(
            b,
            case,
            "excused",
            "全部缺勤日已被假期/补卡/更正覆盖",
            "every absent day is now excused (leave, 补卡 or a correction)",
            actor="engine",
            now_ms=now_ms,
        )
    if case.open_key is not None:
        _untrusted_task(b, case, [d for d in spell if d.kind == "untrusted"], trust, now_ms)
    case.updated_ms = now_ms
    b.touch(case)


def _untrusted_task(b: CaseBatch, case: AbsenceCase, days: list[Day], trust: Trust, now_ms: int) -> None:
    """A case whose period holds records signed after a terminal's key may have leaked: HR checks those days by
    other means (a new terminal's records, the supervisor, the gate's log) before the case goes on; the task and a
    timeline entry once, naming the days and the terminal."""
    kind, zh, en = UNTRUSTED_TASK
    if not days or kind in b.tasks[case.id]:
        return
    dates = sorted({d.row.work_date for d in days})
    points = {p.appliance: p for d in days if (p := trust.untrusted(d.row.appliance_id, d.row.seq)) is not None}
    where_zh = "；".join(p.words()[0] for p in points.values())
    where_en = "; ".join(p.words()[1] for p in points.values())
    b.add(
        CaseTask,
        {
            "case": case.id,
            "kind": kind,
            "title_zh": f"{zh}：{'、'.join(dates)}",
            "title_en": f"{en}: {', '.join(dates)}",
            "created_ms": now_ms,
        },
    )
    b.append(
        case,
        "untrusted",
        f"{'、'.join(dates)} 的考勤记录不作为证据：{where_zh}。请人事另行核实是否确实缺勤",
        f"the records of {', '.join(dates)} are not evidence: {where_en}. HR to check by other means whether the "
        "employee was really absent",
        at_ms=now_ms,
        days=dates,
        appliances=sorted(points),
    )


def _local(ms: int, tz: str) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def _set_totals(b: CaseBatch, case: AbsenceCase, new: Totals, now_ms: int, *, quiet: bool = False) -> None:
    """Store the case's counts; a count that went down (a day excused, here or on another case of the
    employee) is written to the timeline, unless a new day came with it (``quiet``: the month moved on)."""
    old = Totals(case.days, case.consecutive, case.cumulative_month, case.cumulative_year)
    case.days, case.consecutive, case.cumulative_month, case.cumulative_year = new
    if quiet or (new.days >= old.days and new.month >= old.month and new.year >= old.year):
        return  # a run broken by a day worked or excused is no correction: the days say so themselves
    b.append(
        case,
        "recount",
        f"计数更正：缺勤 {old.days}→{new.days} 天，连续 {old.consecutive}→{new.consecutive}，"
        f"本月累计 {old.month}→{new.month}，本年累计 {old.year}→{new.year}",
        f"counts corrected: absent {old.days}→{new.days}, consecutive {old.consecutive}→{new.consecutive}, "
        f"month {old.month}→{new.month}, year {old.year}→{new.year}",
        at_ms=now_ms,
        before=list(old),
        after=list(new),
    )


def excuse(b: CaseBatch, case: AbsenceCase, keys: Sequence[str], why: str, *, by: str, now_ms: int) -> None:
    """HR resolved these counted days of ``case`` (理由已接受, leave or 补卡 named on the case): each row
    ``excused`` for good, so that no count of any case of the employee takes it again, with an entry each."""
    for key in keys:
        row = b.days[case.id][key]
        b.change(CaseDay, row, status="excused", superseded_by=why)
        b.append(
            case,
            "excused",
            f"{row['work_date']} 不再计为缺勤：{why}",
            f"{row['work_date']} no longer counted as absent: {why}",
            at_ms=now_ms,
            actor=by,
            day=key,
            by=why,
        )


def refresh_closed(b: CaseBatch, case: AbsenceCase, now_ms: int) -> None:
    """Count a closed case again (inside the caller's transaction), as far as its last day: after days of
    it were excused, its page shows what it counts now."""
    last = max((row["start_ms"] for row in b.days[case.id].values()), default=case.first_start_ms)
    keys = {(case.plant_id, case.user_id): (_since(case), date.fromisoformat(case.first_day) - timedelta(days=1))}
    facts = _facts(keys)
    hr = _excusals([case.employee_id], facts).get(case.employee_id, Excusals())
    for key, row in b.days[case.id].items():  # the batch's changes are not written yet: read them from it
        if row["status"] == "excused":
            hr.resolved[(case.plant_id, key)] = row["superseded_by"]
    days = classify(facts[(case.plant_id, case.user_id)], hr, Trust.load())
    _set_totals(b, case, totals(days, case.first_start_ms, last), now_ms)
    case.updated_ms = now_ms
    b.touch(case)
