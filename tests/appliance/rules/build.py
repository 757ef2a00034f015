"""Small builders for the rules' tests: local times in, UTC out; a plant with named terminals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from appliance.rules import (
    STATE_UNKNOWN,
    EmployeeRoster,
    Evaluation,
    Plant,
    Policy,
    Punch,
    Shift,
    WeeklyRoster,
    evaluate_day,
    make_shift,
    package_calendar,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
TERMINALS = ("ZK1", "ZK2")
NAMES = {"ZK1": "1 号机", "ZK2": "2 号机"}
DAY = make_shift("D", "08:00-17:00")
NIGHT = make_shift("N", "20:00-08:00")
SPLIT = make_shift("S", "08:00-12:00", "13:30-17:30")
WEEKDAYS_DAY = WeeklyRoster("week-D", (("D",),) * 5 + ((), ()))


def local(y: int, m: int, d: int, h: int = 0, mi: int = 0, s: int = 0, tz: ZoneInfo = SHANGHAI) -> datetime:
    return datetime(y, m, d, h, mi, s, tzinfo=tz).astimezone(UTC)


def punch(at: datetime, terminal: str = "ZK2", state: int = STATE_UNKNOWN, emp: str = "E1", ref: str = "") -> Punch:
    return Punch(emp, terminal, at, state, ref=ref)


def plant(*shifts: Shift, tz: ZoneInfo = SHANGHAI, policy: Policy | None = None, calendar=None) -> Plant:
    table = {s.id: s for s in (shifts or (DAY, NIGHT, SPLIT))}
    return Plant(tz, calendar or package_calendar(), table, TERMINALS, NAMES, policy or Policy(version="test"))


def read_to(at: datetime) -> dict[str, datetime]:
    """Every terminal read up to ``at``."""
    return dict.fromkeys(TERMINALS, at)


def one(
    work_date: date,
    punches: list[Punch] = (),  # type: ignore[assignment]
    *,
    now: datetime,
    roster: EmployeeRoster | None = None,
    the_plant: Plant | None = None,
    watermarks: dict[str, datetime] | None = None,
    **extra: object,
) -> Evaluation:
    """The single evaluation of a day with one shift (or none)."""
    results = evaluate_day(
        the_plant or plant(),
        roster or EmployeeRoster("E1", WEEKDAYS_DAY),
        work_date,
        punches=punches,
        now=now,
        watermarks=read_to(now) if watermarks is None else watermarks,
        **extra,  # type: ignore[arg-type]
    )
    assert len(results) == 1, results
    return results[0]


LATER = timedelta(days=2)
