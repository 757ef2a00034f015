"""Master data in the database, read as the rules' inputs, and written by importers.

The tables (``store.MASTER_MODELS``) are the only source the evaluator reads; the CSV/XLSX
import (``roster_import``), the demo (``demo_roster``) and, later, the cloud's signed
configuration channel all write them through ``save`` here, each row tagged with its ``source``.
A row a later source no longer sends is not deleted by the importers: leave is ``cancelled``,
an employee ``active = False``, so that what a past decision rested on stays readable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import peewee as pw

from appliance.rules import (
    BusinessTrip,
    Correction,
    Direction,
    EmployeeRoster,
    HolidayRule,
    Leave,
    Plant,
    PlantCalendar,
    Policy,
    RotatingRoster,
    RulesError,
    Shift,
    WeeklyRoster,
    make_shift,
    package_calendar,
    parse_overrides,
    with_overrides,
)
from appliance.store import (
    CalendarFile,
    CorrectionEntry,
    Employee,
    EvalRequest,
    LeaveEntry,
    PlantPolicy,
    RosterDef,
    ScheduleDay,
    ShiftDef,
    TerminalHealth,
    TripEntry,
)

REST = "-"
REEVALUATE_DAYS = 62  # how far back leave or a 补卡 entered late makes the evaluator look again


class MasterDataError(ValueError):
    """Master data the rules cannot use (a roster naming an unknown shift, a bad pattern...)."""


@dataclass(frozen=True, slots=True)  # 5,000 of them, read again at every pass
class Person:
    user_id: str
    name: str
    line: str
    department: str


@dataclass(frozen=True)
class MasterData:
    """Everything the evaluator needs besides the punches, read in one go."""

    plant: Plant
    rosters: tuple[EmployeeRoster, ...]
    people: Mapping[str, Person]
    leaves: tuple[Leave, ...] = ()
    trips: tuple[BusinessTrip, ...] = ()
    corrections: tuple[Correction, ...] = ()
    problems: tuple[str, ...] = field(default=())  # rows skipped, with the reason


def utc_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def load(tz: ZoneInfo, terminals: Sequence[str]) -> MasterData:
    """Read the master tables into the rules' objects; a bad row is skipped and reported."""
    problems: list[str] = []
    shifts = {}
    for row in ShiftDef.select():
        try:
            shifts[row.id] = shift_of(row)
        except (RulesError, ValueError) as err:
            problems.append(f"shift {row.id}: {err}")
    rosters: dict[str, WeeklyRoster | RotatingRoster] = {}
    for row in RosterDef.select():
        try:
            rosters[row.id] = roster_of(row, shifts)
        except (RulesError, MasterDataError, ValueError) as err:
            problems.append(f"roster {row.id}: {err}")
    explicit: dict[str, dict[date, tuple[str, ...]]] = {}
    # Plain rows, one at a time: a peewee query keeps every model instance it made until the loop ends (5,000
    # employees, 3.5 MB more at the peak of a pass by tracemalloc, 45 kB with plain rows).
    days = ScheduleDay.select(ScheduleDay.employee, ScheduleDay.day, ScheduleDay.shifts)
    for employee, day, day_shifts in days.tuples().iterator():
        ids = split_day(day_shifts)
        unknown = [s for s in ids if s not in shifts]
        if unknown:
            problems.append(f"schedule {employee} {day}: unknown shift {', '.join(unknown)}")
            continue
        explicit.setdefault(employee, {})[date.fromisoformat(day)] = ids
    people, assignments = {}, []
    columns = (
        Employee.user_id,
        Employee.name,
        Employee.line,
        Employee.department,
        Employee.roster,
        Employee.valid_from,
        Employee.valid_to,
    )
    active = Employee.select(*columns).where(Employee.active == True).order_by(Employee.user_id)  # noqa: E712
    for user_id, name, line, department, roster_id, valid_from, valid_to in active.tuples().iterator():
        people[user_id] = Person(user_id, name, line, department)
        roster = rosters.get(roster_id) if roster_id else None
        if roster_id and roster is None:
            problems.append(f"employee {user_id}: roster {roster_id!r} is not defined")
        assignments.append(
            EmployeeRoster(
                user_id,
                roster,
                explicit=explicit.get(user_id, {}),
                valid_from=date.fromisoformat(valid_from) if valid_from else None,
                valid_to=date.fromisoformat(valid_to) if valid_to else None,
            )
        )
    calendar = plant_calendar(problems)
    names = {t: t for t in terminals}
    plant = Plant(tz, calendar, shifts, tuple(terminals), names, policy_of(), recording_since(terminals))
    approved = LeaveEntry.status == "approved"
    leaves = tuple(
        Leave(r.id, r.employee, utc_ms(r.start_ms), utc_ms(r.end_ms), r.kind or "请假")
        for r in LeaveEntry.select().where(approved)
        if r.end_ms > r.start_ms
    )
    trips = tuple(
        BusinessTrip(r.id, r.employee, utc_ms(r.start_ms), utc_ms(r.end_ms), r.destination)
        for r in TripEntry.select().where(TripEntry.status == "approved")
        if r.end_ms > r.start_ms
    )
    corrections = tuple(
        Correction(r.id, r.employee, utc_ms(r.at_ms), _direction(r.direction), r.reason, r.by, utc_ms(r.recorded_ms))
        for r in CorrectionEntry.select().where(CorrectionEntry.status == "approved")
    )
    return MasterData(plant, tuple(assignments), people, leaves, trips, corrections, tuple(problems))


CALENDAR_PLANT_ROW = 1  # the plant's own file (``punchproof appliance import-calendar``): 厂休
CALENDAR_HEAD_OFFICE_ROW = 2  # head office's statutory calendar, from the signed plant configuration


def plant_calendar(problems: list[str]) -> PlantCalendar:
    """The package, then head office's statutory years, then the plant's own file, each over the one before."""
    calendar = package_calendar()
    for row_id in (CALENDAR_HEAD_OFFICE_ROW, CALENDAR_PLANT_ROW):
        row = CalendarFile.get_or_none(CalendarFile.id == row_id)
        if row is not None and row.text.strip():
            try:
                calendar = with_overrides(calendar, parse_overrides(row.text, source=f"calendar_file {row.source}"))
            except RulesError as err:
                problems.append(f"calendar overrides ignored: {err}")
    return calendar


def policy_of() -> Policy:
    row = PlantPolicy.get_or_none(PlantPolicy.id == 1)
    if row is None:
        return Policy()
    return Policy(
        version=row.version,
        duplicate_window=timedelta(seconds=row.duplicate_window_s),
        tentative_after=timedelta(minutes=row.tentative_after_min),
        confirm_margin=timedelta(minutes=row.confirm_margin_min),
    )


def shift_of(row: ShiftDef) -> Shift:
    spans = [s.strip() for s in row.spans.replace("，", ",").split(",") if s.strip()]
    terminals = tuple(t.strip() for t in row.terminals.split(",") if t.strip()) or None
    return make_shift(
        row.id,
        *spans,
        name=row.name or row.id,
        late_grace=timedelta(minutes=row.late_grace_min),
        early_grace=timedelta(minutes=row.early_grace_min),
        checkin_before=timedelta(minutes=row.checkin_before_min),
        checkout_after=timedelta(minutes=row.checkout_after_min),
        terminals=terminals,
    )


def split_day(text: str) -> tuple[str, ...]:
    """One day of a pattern: "D", "A+B" (split over two shifts), "-" or "" (rest)."""
    text = text.strip()
    if text in ("", REST, "休"):
        return ()
    return tuple(s.strip() for s in text.split("+") if s.strip())


def parse_pattern(pattern: str) -> tuple[tuple[str, ...], ...]:
    return tuple(split_day(day) for day in pattern.replace("，", ",").split(","))


def roster_of(row: RosterDef, shifts: Mapping[str, Shift]) -> WeeklyRoster | RotatingRoster:
    days = parse_pattern(row.pattern)
    unknown = sorted({s for day in days for s in day if s not in shifts})
    if unknown:
        raise MasterDataError(f"names undefined shift(s) {', '.join(unknown)}")
    holidays = HolidayRule(row.holidays)
    if row.kind == "weekly":
        return WeeklyRoster(row.id, days, holidays, row.makeup_weekday)
    if row.kind == "rotating":
        if not row.anchor:
            raise MasterDataError("a rotating roster needs an anchor date (day 0 of its cycle)")
        return RotatingRoster(row.id, days, date.fromisoformat(row.anchor), holidays)
    raise MasterDataError(f"kind {row.kind!r}: use 'weekly' or 'rotating'")


def _direction(text: str) -> Direction:
    try:
        return Direction(text)
    except ValueError:
        return Direction.UNKNOWN


# -- writing ---------------------------------------------------------------------------------


def save(model: type[pw.Model], rows: Iterable[Mapping[str, Any]], *, source: str, now_ms: int) -> int:
    """Insert or replace rows of a master table (by primary key); return how many."""
    stamped = [{**row, "source": source, "updated_ms": now_ms} for row in rows]
    if not stamped:
        return 0
    with model._meta.database.atomic():
        for start in range(0, len(stamped), 100):
            model.replace_many(stamped[start : start + 100]).execute()
    return len(stamped)


def request_reevaluation(spans: Iterable[tuple[int, int]], tz: ZoneInfo, now_ms: int) -> list[str]:
    """Ask the evaluator to look again at the past dates these spans (UTC ms) touch.

    Leave approved after an absence was confirmed must produce a superseding fact; the evaluator
    only re-reads the days it is asked to (plus today and yesterday), so importers call this.
    """
    today = utc_ms(now_ms).astimezone(tz).date()
    oldest = today - timedelta(days=REEVALUATE_DAYS)
    days: set[date] = set()
    for start_ms, end_ms in spans:
        first = max(utc_ms(start_ms).astimezone(tz).date() - timedelta(days=1), oldest)
        last = min(utc_ms(end_ms).astimezone(tz).date(), today)
        day = first
        while day <= last:
            days.add(day)
            day += timedelta(days=1)
    rows = [{"day": d.isoformat(), "requested_ms": now_ms} for d in sorted(days)]
    for start in range(0, len(rows), 100):
        EvalRequest.replace_many(rows[start : start + 100]).execute()
    return [r["day"] for r in rows]


def recording_since(terminals: Sequence[str]) -> dict[str, datetime]:
    """Since when this appliance has been recording each terminal (its first read); unread ones are absent."""
    rows = TerminalHealth.select(TerminalHealth.name, TerminalHealth.first_read_ms).where(
        TerminalHealth.name.in_(list(terminals)) & TerminalHealth.first_read_ms.is_null(False)
    )
    return {row.name: utc_ms(row.first_read_ms) for row in rows}
