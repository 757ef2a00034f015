from datetime import date

import pytest

from appliance.rules import (
    EmployeeRoster,
    HolidayRule,
    PlanKind,
    RotatingRoster,
    RulesError,
    WeeklyRoster,
    package_calendar,
    plan_day,
)

CAL = package_calendar()
WEEK = WeeklyRoster("w", (("D",),) * 5 + ((), ()))
SIX_DAYS = WeeklyRoster("w6", (("D",),) * 6 + ((),))  # 做六休一: Saturday already worked
LATE_MAKEUP = WeeklyRoster("wm", (("D",),) * 4 + (("E",),) + ((), ()), makeup_weekday=4)
CONTINUOUS = WeeklyRoster("cont", (("D",),) * 7, holidays=HolidayRule.IGNORE)
ROTA = RotatingRoster("rota", (("D",), ("D",), ("N",), ("N",), (), ()), anchor=date(2026, 3, 1))


@pytest.mark.parametrize(
    ("roster", "day", "kind", "shifts", "unknown"),
    [
        (WEEK, date(2026, 3, 2), PlanKind.SCHEDULED, ("D",), False),  # Monday
        (WEEK, date(2026, 3, 7), PlanKind.REST_DAY, (), False),  # Saturday
        (WEEK, date(2026, 2, 16), PlanKind.HOLIDAY, (), False),  # 春节 Monday
        (WEEK, date(2026, 2, 28), PlanKind.SCHEDULED, ("D",), False),  # 调休 Saturday takes Monday's shifts
        (WEEK, date(2026, 1, 4), PlanKind.SCHEDULED, ("D",), False),  # 调休 Sunday
        (LATE_MAKEUP, date(2026, 2, 28), PlanKind.SCHEDULED, ("E",), False),  # ... or the weekday configured
        (SIX_DAYS, date(2026, 2, 28), PlanKind.SCHEDULED, ("D",), False),
        (WEEK, date(2027, 3, 1), PlanKind.SCHEDULED, ("D",), True),  # not covered: scheduled, flagged
        (WEEK, date(2027, 3, 6), PlanKind.REST_DAY, (), False),  # nothing to flag on a rest day
        (CONTINUOUS, date(2026, 2, 16), PlanKind.SCHEDULED, ("D",), False),  # works through holidays
        (CONTINUOUS, date(2027, 3, 1), PlanKind.SCHEDULED, ("D",), False),  # the calendar does not matter
        (ROTA, date(2026, 3, 1), PlanKind.SCHEDULED, ("D",), False),  # the anchor: day 0
        (ROTA, date(2026, 3, 3), PlanKind.SCHEDULED, ("N",), False),
        (ROTA, date(2026, 3, 5), PlanKind.REST_DAY, (), False),
        (ROTA, date(2026, 3, 7), PlanKind.SCHEDULED, ("D",), False),  # cycle repeats
        (ROTA, date(2026, 2, 28), PlanKind.REST_DAY, (), False),  # before the anchor: day -1 = day 5
        (ROTA, date(2026, 2, 16), PlanKind.REST_DAY, (), False),  # day -13 = day 5; holidays ignored
    ],
)
def test_plan_from_the_roster_and_the_calendar(roster, day, kind, shifts, unknown):
    plan = plan_day(EmployeeRoster("E1", roster), CAL, day)
    assert (plan.kind, plan.shift_ids, plan.calendar_unknown) == (kind, shifts, unknown)


def test_explicit_days_win_over_roster_and_holidays():
    er = EmployeeRoster(
        "E1",
        WEEK,
        explicit={date(2026, 2, 16): ("N",), date(2026, 3, 2): (), date(2026, 3, 3): ("D", "N", "D")},
    )
    assert plan_day(er, CAL, date(2026, 2, 16)).shift_ids == ("N",)
    assert plan_day(er, CAL, date(2026, 2, 16)).source == "explicit"
    assert plan_day(er, CAL, date(2026, 3, 2)).kind is PlanKind.REST_DAY
    assert plan_day(er, CAL, date(2026, 3, 3)).shift_ids == ("D", "N")  # one shift cannot be owed twice


def test_outside_the_assignment_the_employee_is_not_scheduled():
    er = EmployeeRoster("E1", WEEK, valid_from=date(2026, 3, 3), valid_to=date(2026, 3, 4))
    assert plan_day(er, CAL, date(2026, 3, 2)).kind is PlanKind.NOT_SCHEDULED
    assert plan_day(er, CAL, date(2026, 3, 4)).kind is PlanKind.SCHEDULED
    assert plan_day(er, CAL, date(2026, 3, 5)).kind is PlanKind.NOT_SCHEDULED
    assert plan_day(EmployeeRoster("E2", None), CAL, date(2026, 3, 2)).kind is PlanKind.NOT_SCHEDULED


def test_rosters_are_checked():
    with pytest.raises(RulesError):
        WeeklyRoster("w", (("D",),) * 5)
    with pytest.raises(RulesError):
        WeeklyRoster("w", ((),) * 7, makeup_weekday=7)
    with pytest.raises(RulesError):
        RotatingRoster("r", (), anchor=date(2026, 1, 1))
