"""Who is scheduled for which shifts on a date: weekly or rotating rosters, explicit days on top.

Precedence, most specific first: an explicit assignment for the date (排班 by a manager, may be
empty = rest) wins over everything, public holidays included; then the employee's roster, only
between its ``valid_from`` and ``valid_to``; outside that the employee is not scheduled.

Public holidays apply to a roster that ``OBSERVE``s them (the usual 标准工时 week): a holiday is
a day off, and a 调休 make-up Saturday works the pattern of ``makeup_weekday`` when the pattern has
no shift that day. A roster that ``IGNORE``s them (continuous operation) runs its pattern through
the holiday. A date the calendar does not cover is scheduled by the pattern but flagged
``calendar_unknown`` when the roster observes holidays, because it may well be a day off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from appliance.rules.calendar_cn import CalendarDay, DayKind, PlantCalendar
from appliance.rules.errors import RulesError


class HolidayRule(StrEnum):
    OBSERVE = "observe"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class WeeklyRoster:
    """Shift ids for Monday..Sunday; an empty tuple is a rest day."""

    id: str
    days: tuple[tuple[str, ...], ...]
    holidays: HolidayRule = HolidayRule.OBSERVE
    makeup_weekday: int = 0  # the weekday whose shifts a 调休 working day takes (0 = Monday)

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise RulesError(f"weekly roster {self.id}: needs 7 days, Monday first, got {len(self.days)}")
        if not 0 <= self.makeup_weekday <= 6:
            raise RulesError(f"weekly roster {self.id}: makeup_weekday is 0 (Monday) to 6")

    def shifts_on(self, when: date, day: CalendarDay) -> tuple[str, ...]:
        shifts = self.days[when.weekday()]
        if day.kind is DayKind.MAKEUP and not shifts and self.holidays is HolidayRule.OBSERVE:
            return self.days[self.makeup_weekday]
        return shifts


@dataclass(frozen=True, slots=True)
class RotatingRoster:
    """A cycle of days (e.g. 白白夜夜休休); ``anchor`` is a date on which day 0 of the cycle falls."""

    id: str
    cycle: tuple[tuple[str, ...], ...]
    anchor: date
    holidays: HolidayRule = HolidayRule.IGNORE

    def __post_init__(self) -> None:
        if not self.cycle:
            raise RulesError(f"rotating roster {self.id}: empty cycle")

    def shifts_on(self, when: date, day: CalendarDay) -> tuple[str, ...]:
        return self.cycle[(when - self.anchor).days % len(self.cycle)]


Roster = WeeklyRoster | RotatingRoster


@dataclass(frozen=True, slots=True)
class EmployeeRoster:
    employee: str
    roster: Roster | None
    explicit: Mapping[date, tuple[str, ...]] = field(default_factory=dict)
    valid_from: date | None = None
    valid_to: date | None = None  # inclusive


class PlanKind(StrEnum):
    SCHEDULED = "scheduled"
    REST_DAY = "rest_day"
    HOLIDAY = "holiday"
    NOT_SCHEDULED = "not_scheduled"


@dataclass(frozen=True, slots=True)
class DayPlan:
    date: date
    kind: PlanKind
    shift_ids: tuple[str, ...]
    source: str  # "explicit", the roster's id, or "" when not scheduled
    calendar: CalendarDay
    calendar_unknown: bool  # scheduled by a pattern on a date whose holidays are not known


def plan_day(assignment: EmployeeRoster, calendar: PlantCalendar, when: date) -> DayPlan:
    day = calendar.day(when)
    explicit = assignment.explicit.get(when)
    if explicit is not None:
        return _plan(when, _unique(explicit), "explicit", day, unknown=False, holidays=True)
    roster = assignment.roster
    outside = (assignment.valid_from is not None and when < assignment.valid_from) or (
        assignment.valid_to is not None and when > assignment.valid_to
    )
    if roster is None or outside:
        return DayPlan(when, PlanKind.NOT_SCHEDULED, (), "", day, calendar_unknown=False)
    observe = roster.holidays is HolidayRule.OBSERVE
    if observe and day.kind is DayKind.HOLIDAY:
        return DayPlan(when, PlanKind.HOLIDAY, (), roster.id, day, calendar_unknown=False)
    shifts = _unique(roster.shifts_on(when, day))
    unknown = observe and day.kind is DayKind.UNKNOWN and bool(shifts)
    return _plan(when, shifts, roster.id, day, unknown=unknown, holidays=observe)


def _plan(
    when: date, shifts: tuple[str, ...], source: str, day: CalendarDay, *, unknown: bool, holidays: bool
) -> DayPlan:
    """A day without shifts is a holiday only where holidays are observed; else the pattern's rest."""
    kind = PlanKind.SCHEDULED
    if not shifts:
        kind = PlanKind.HOLIDAY if holidays and day.kind is DayKind.HOLIDAY else PlanKind.REST_DAY
    return DayPlan(when, kind, shifts, source, day, calendar_unknown=unknown)


def _unique(shift_ids: tuple[str, ...]) -> tuple[str, ...]:
    """A shift listed twice on one day is one shift: the same work cannot be owed twice."""
    return tuple(dict.fromkeys(shift_ids))
