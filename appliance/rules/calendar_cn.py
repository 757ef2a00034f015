"""Chinese public holidays and 调休 make-up working days: ``chinesecalendar`` plus head office's and the plant's files.

The State Council publishes each year's holidays in November or December; the package follows
with a release. Head office holds the statutory calendar: HR enters a year as soon as the notice
is out (``punchproof cloud calendar set-year``), and it reaches every appliance signed, inside the
plant configuration (the ``calendar`` section). A plant may still keep its own small file, for
plant closures (厂休); it is merged last, over both (format in ``parse_overrides``).

A date in a year nobody has published (neither the package nor a ``complete_years`` entry covers
it) is ``UNKNOWN`` and falls under the *provisional* calendar: no 法定节假日 and no 调休, each
roster's own week as it stands (a Monday-to-Friday roster rests at weekends). Attendance goes on
and absences are confirmed as usual, but every result that rests on it is flagged (the day fact's
``cal_provisional``, the reason's 临时日历), and ``unpublished_years`` lets both doctors warn 60
days before a year starts that nobody has published it yet.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache

import chinese_calendar

from appliance.rules.errors import RulesError


class DayKind(StrEnum):
    WORKDAY = "workday"  # Monday to Friday, no holiday
    WEEKEND = "weekend"
    HOLIDAY = "holiday"  # 法定节假日 (or a plant closure from the file)
    MAKEUP = "makeup"  # 调休: a weekend day worked in exchange for a holiday
    UNKNOWN = "unknown"  # a year nobody has published: the provisional calendar (the roster's own week)


@dataclass(frozen=True, slots=True)
class CalendarDay:
    date: date
    kind: DayKind
    name_zh: str = ""
    name_en: str = ""
    source: str = "package"  # "package", "override" or "weekday" (no entry: an ordinary day)


@dataclass(frozen=True, slots=True)
class CalendarOverrides:
    version: str
    holidays: Mapping[date, str] = field(default_factory=dict)
    workdays: Mapping[date, str] = field(default_factory=dict)
    complete_years: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class PlantCalendar:
    """Holidays and make-up days by date, with names (zh, en), and the years covered."""

    holidays: Mapping[date, tuple[str, str, str]]  # date -> (zh, en, source)
    workdays: Mapping[date, tuple[str, str, str]]
    covered_years: frozenset[int]
    version: str

    def day(self, when: date) -> CalendarDay:
        entry = self.workdays.get(when)
        if entry is not None:
            kind = DayKind.MAKEUP if when.weekday() >= 5 else DayKind.WORKDAY
            return CalendarDay(when, kind, entry[0], entry[1], entry[2])
        entry = self.holidays.get(when)
        if entry is not None:
            return CalendarDay(when, DayKind.HOLIDAY, entry[0], entry[1], entry[2])
        if when.year not in self.covered_years:
            return CalendarDay(when, DayKind.UNKNOWN, source="none")
        return CalendarDay(when, DayKind.WEEKEND if when.weekday() >= 5 else DayKind.WORKDAY, source="weekday")


@lru_cache(maxsize=1)
def package_calendar() -> PlantCalendar:
    """The calendar as the installed ``chinesecalendar`` knows it (built once: it is constant)."""

    def named(entries: Mapping[date, str]) -> dict[date, tuple[str, str, str]]:
        return {day: (chinese_calendar.Holiday(name).chinese, name, "package") for day, name in entries.items()}

    holidays = named(chinese_calendar.holidays)
    years = {day.year for day in holidays}
    covered = frozenset(range(min(years), max(years) + 1))
    return PlantCalendar(
        holidays=holidays,
        workdays=named(chinese_calendar.workdays),
        covered_years=covered,
        version=f"chinesecalendar-{chinese_calendar.__version__}",
    )


def with_overrides(base: PlantCalendar, overrides: CalendarOverrides) -> PlantCalendar:
    """The file wins over the package date by date; ``complete_years`` become covered."""
    holidays = dict(base.holidays)
    workdays = dict(base.workdays)
    for day, name in overrides.holidays.items():
        workdays.pop(day, None)
        holidays[day] = (name, name, "override")
    for day, name in overrides.workdays.items():
        holidays.pop(day, None)
        workdays[day] = (name, name, "override")
    return PlantCalendar(
        holidays=holidays,
        workdays=workdays,
        covered_years=base.covered_years | overrides.complete_years,
        version=f"{base.version}+{overrides.version}",
    )


def unpublished_years(calendar: PlantCalendar, today: date, *, ahead_days: int = 60) -> list[int]:
    """This year, and next year once it starts within ``ahead_days``, where the calendar does not cover them."""
    years = {today.year, (today + timedelta(days=ahead_days)).year}
    return sorted(y for y in years if y not in calendar.covered_years)


def parse_overrides(text: str, *, source: str = "calendar.toml") -> CalendarOverrides:
    """Read the plant's calendar file (TOML); report every bad entry at once.

    ```toml
    version = "gov-2027"          # required; shown in each day fact as part of the calendar version
    complete_years = [2027]       # years this file describes entirely (the State Council notice)

    [holidays]                    # rest days: 法定节假日, or plant closures (厂休)
    2027-01-01 = "元旦"

    [workdays]                    # 调休 make-up working days, or a holiday the plant works
    2027-02-07 = "春节调休"
    ```
    A year listed in ``complete_years`` is taken as fully known: its dates absent from the file
    are ordinary weekdays and weekends. Without it, only the listed dates of that year are known.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RulesError(f"{source}: not TOML: {err}") from err
    problems: list[str] = []
    version = data.get("version")
    if not isinstance(version, str) or not version:
        problems.append("version: required, a non-empty string")
    years = data.get("complete_years", [])
    if not isinstance(years, list) or not all(isinstance(y, int) and 1900 < y < 2200 for y in years):
        problems.append("complete_years: a list of years, e.g. [2027]")
        years = []
    tables = {name: _dates(data.get(name, {}), name, problems) for name in ("holidays", "workdays")}
    for day in sorted(tables["holidays"].keys() & tables["workdays"].keys()):
        problems.append(f"{day}: listed both as a holiday and as a workday")
    for key in sorted(set(data) - {"version", "complete_years", "holidays", "workdays"}):
        problems.append(f"{key}: unknown key")
    if problems:
        raise RulesError(f"{source}: {len(problems)} problem(s): " + "; ".join(problems), problems)
    return CalendarOverrides(str(version), tables["holidays"], tables["workdays"], frozenset(years))


def _dates(table: object, name: str, problems: list[str]) -> dict[date, str]:
    if not isinstance(table, dict):
        problems.append(f"{name}: must be a table of date = name")
        return {}
    result: dict[date, str] = {}
    for key, label in table.items():
        try:
            day = date.fromisoformat(key)
        except ValueError:
            problems.append(f"{name}.{key}: not a date YYYY-MM-DD")
            continue
        if not isinstance(label, str) or not label.strip():
            problems.append(f'{name}.{key}: the value must be the day\'s name, e.g. "春节"')
            continue
        result[day] = label.strip()
    return result
