"""Attendance rules: pure functions from shifts, rosters, punches, leave and corrections to
decisions with reasons. No I/O, no database, no wall clock: ``now`` and the terminals'
watermarks are passed in, so the same inputs always give the same answer.

The daemon and the board call:

- ``package_calendar()``, ``parse_overrides(text)``, ``with_overrides(cal, ov)``: the calendar;
- ``punch_range(work_date, tz)``: which punches to load for a day;
- ``evaluate_day(...)`` for one employee, ``evaluate_plant_day(...)`` for all;
- ``supersede(previous_fact, evaluation, plant)`` -> the ``dayfact`` record body to append, or None.
"""

from appliance.rules.attribution import Attribution, Duplicate, assign_roles, attribute, collapse_duplicates
from appliance.rules.calendar_cn import (
    CalendarDay,
    CalendarOverrides,
    DayKind,
    PlantCalendar,
    package_calendar,
    parse_overrides,
    with_overrides,
)
from appliance.rules.dayfact import RULES_VERSION, day_fact, epoch_ms, fact_id, supersede
from appliance.rules.errors import RulesError
from appliance.rules.evaluate import Confirmation, Evaluation, Plant, SegmentResult, Status, evaluate_day
from appliance.rules.instances import ShiftInstance, Span, local_day_span, materialize, punch_range
from appliance.rules.model import (
    STATE_UNKNOWN,
    BusinessTrip,
    Correction,
    Direction,
    Leave,
    Policy,
    Punch,
    Segment,
    Shift,
    make_shift,
)
from appliance.rules.plant import by_employee, evaluate_plant_day
from appliance.rules.roster import (
    DayPlan,
    EmployeeRoster,
    HolidayRule,
    PlanKind,
    RotatingRoster,
    WeeklyRoster,
    plan_day,
)

__all__ = [
    "RULES_VERSION",
    "STATE_UNKNOWN",
    "Attribution",
    "BusinessTrip",
    "CalendarDay",
    "CalendarOverrides",
    "Confirmation",
    "Correction",
    "DayKind",
    "DayPlan",
    "Direction",
    "Duplicate",
    "EmployeeRoster",
    "Evaluation",
    "HolidayRule",
    "Leave",
    "PlanKind",
    "Plant",
    "PlantCalendar",
    "Policy",
    "Punch",
    "RotatingRoster",
    "RulesError",
    "Segment",
    "SegmentResult",
    "Shift",
    "ShiftInstance",
    "Span",
    "Status",
    "WeeklyRoster",
    "assign_roles",
    "attribute",
    "by_employee",
    "collapse_duplicates",
    "day_fact",
    "epoch_ms",
    "evaluate_day",
    "evaluate_plant_day",
    "fact_id",
    "local_day_span",
    "make_shift",
    "materialize",
    "package_calendar",
    "parse_overrides",
    "plan_day",
    "punch_range",
    "supersede",
    "with_overrides",
]
