"""Head office's statutory calendar: ``chinesecalendar`` plus the years HR publishes itself.

The State Council publishes next year's 法定节假日 and 调休 in November or December; the package
follows with a release weeks later, or after New Year. HR enters the notice as soon as it is out
(``punchproof cloud calendar set-year 2027 notice.toml``), each time as a new version of that year;
the newest version of each year is in force, over the package, date by date. It reaches every
appliance signed, inside the plant configuration (``calendar_text``: the ``calendar`` section),
with the plant's own 厂休 merged over it; the escalation's working days read the same calendar.

A year neither covers is *unpublished*: appliances judge it by the provisional calendar (each
roster's own week, no holidays, no 调休) and flag every day and case resting on it; the working
days here count Monday to Friday. ``unpublished_years`` lets ``doctor`` warn 60 days ahead.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import chinese_calendar
import peewee as pw

from cloud.hr.models import PlantCalendar, StatutoryYear
from cloud.store import Plant

WARN_AHEAD_DAYS = 60


class CalendarError(ValueError):
    """A calendar file that cannot be published; ``problems`` lists every one, Chinese first."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


@dataclass(frozen=True)
class Entries:
    """Rest days and working days by date, with their names, as one calendar file gives them."""

    holidays: Mapping[date, str]
    workdays: Mapping[date, str]
    complete_years: frozenset[int] = frozenset()
    version: str = ""


@dataclass(frozen=True)
class HeadOfficeCalendar:
    holidays: Mapping[date, str]
    workdays: Mapping[date, str]
    package_years: frozenset[int]
    published: Mapping[int, int]  # year -> the version in force

    @property
    def covered_years(self) -> frozenset[int]:
        return self.package_years | frozenset(self.published)

    def is_workday(self, day: date) -> bool:
        """法定节假日 and 调休 where known; Monday to Friday in a year nobody has published."""
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def unpublished_years(self, today: date, ahead_days: int = WARN_AHEAD_DAYS) -> list[int]:
        """This year, and next year once it starts within ``ahead_days``, where nothing covers them."""
        years = {today.year, (today + timedelta(days=ahead_days)).year}
        return sorted(y for y in years if y not in self.covered_years)


def parse_entries(text: str, *, source: str, year: int | None = None) -> Entries:
    """A calendar file in the appliance's format (``appliance.rules.calendar_cn.parse_overrides``):

    ```toml
    [holidays]
    2027-01-01 = "元旦"
    [workdays]
    2027-02-07 = "春节调休"
    ```
    With ``year``, every date must be of that year (``version`` and ``complete_years`` may be left out).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CalendarError(f"{source}：不是有效的 TOML / not TOML: {err}") from err
    problems: list[str] = []
    tables: dict[str, dict[date, str]] = {}
    for name in ("holidays", "workdays"):
        table = data.get(name, {})
        tables[name] = {}
        if not isinstance(table, dict):
            problems.append(f"{name}：须为“日期 = 名称”表 / must be a table of date = name")
            continue
        for key, label in table.items():
            try:
                day = date.fromisoformat(key)
            except ValueError:
                problems.append(f"{name}.{key}：不是日期 YYYY-MM-DD / not a date YYYY-MM-DD")
                continue
            if year is not None and day.year != year:
                problems.append(f"{name}.{key}：不属于 {year} 年 / not in {year}")
            elif not isinstance(label, str) or not label.strip():
                problems.append(f'{name}.{key}：须写明名称，如 "春节" / the value must be the day\'s name')
            else:
                tables[name][day] = label.strip()
    for day in sorted(tables["holidays"].keys() & tables["workdays"].keys()):
        problems.append(f"{day}：同时列为假日和工作日 / listed both as a holiday and as a workday")
    years = data.get("complete_years", [] if year is None else [year])
    if not isinstance(years, list) or not all(isinstance(y, int) for y in years) or (year and years != [year]):
        problems.append(f"complete_years：须为 [{year or 2027}] / must be [{year or 2027}]")
        years = []
    for key in sorted(set(data) - {"version", "complete_years", "holidays", "workdays"}):
        problems.append(f"{key}：未知的项 / unknown key")
    if year is not None and not tables["holidays"]:
        problems.append(f"{year} 年没有列出任何假日 / no holiday listed for {year}")
    if problems:
        raise CalendarError(f"{source}：{len(problems)} 处问题 / problem(s): " + "; ".join(problems), problems)
    return Entries(tables["holidays"], tables["workdays"], frozenset(years), str(data.get("version", "")))


def set_year(year: int, text: str, *, by: str, now_ms: int, note: str = "") -> StatutoryYear:
    """Publish ``year`` (a new version; the same text as the version in force changes nothing)."""
    if not 2000 <= year <= 2100:
        raise CalendarError(f"年份 {year} 不合理 / {year} is not a plausible year")
    parse_entries(text, source=f"{year}", year=year)
    with StatutoryYear._meta.database.atomic():
        newest = _newest().where(StatutoryYear.year == year).first()
        if newest is not None and newest.text == text:
            return newest
        return StatutoryYear.create(
            year=year, version=(newest.version + 1) if newest else 1, text=text, note=note, by=by, created_ms=now_ms
        )


def _newest() -> pw.ModelSelect:
    latest = StatutoryYear.select(StatutoryYear.year, pw.fn.MAX(StatutoryYear.version).alias("v")).group_by(
        StatutoryYear.year
    )
    return (
        StatutoryYear.select()
        .join(latest, on=((StatutoryYear.year == latest.c.year) & (StatutoryYear.version == latest.c.v)))
        .order_by(StatutoryYear.year)
    )


def published_years() -> list[StatutoryYear]:
    """The version in force of each year HR has published, oldest year first."""
    return list(_newest())


def package_years() -> frozenset[int]:
    years = {day.year for day in chinese_calendar.holidays}
    return frozenset(range(min(years), max(years) + 1))


@lru_cache(maxsize=1)
def _package() -> tuple[Mapping[date, str], Mapping[date, str]]:
    def named(table: Mapping[date, str]) -> Mapping[date, str]:
        return {day: chinese_calendar.Holiday(name).chinese for day, name in table.items()}

    return named(chinese_calendar.holidays), named(chinese_calendar.workdays)


def head_office_calendar() -> HeadOfficeCalendar:
    """The package, with each published year's version in force over it."""
    holidays, workdays = (dict(table) for table in _package())
    published = {}
    for row in published_years():
        entries = parse_entries(row.text, source=f"{row.year} v{row.version}", year=row.year)
        _merge(holidays, workdays, entries)
        published[row.year] = row.version
    return HeadOfficeCalendar(holidays, workdays, package_years(), published)


def calendar_text(plant: Plant) -> str:
    """The ``calendar`` section for the plant's appliances: the published years, the plant's own file over
    them ("" when there is neither). The package itself is not sent: each appliance has the same one."""
    holidays: dict[date, str] = {}
    workdays: dict[date, str] = {}
    years: set[int] = set()
    versions = []
    for row in published_years():
        _merge(holidays, workdays, parse_entries(row.text, source=f"{row.year} v{row.version}", year=row.year))
        years.add(row.year)
        versions.append(f"{row.year}v{row.version}")
    own = PlantCalendar.get_or_none(PlantCalendar.plant == plant)
    if own is not None and own.text.strip():
        entries = parse_entries(own.text, source=f"厂区 {plant.id} 日历 / plant {plant.id} calendar")
        _merge(holidays, workdays, entries)
        years |= entries.complete_years
        versions.append(f"plant-{entries.version or own.updated_ms}")
    if not versions:
        return ""
    lines = [f"version = {json.dumps('head-office-' + '-'.join(versions))}"]
    lines.append(f"complete_years = [{', '.join(str(y) for y in sorted(years))}]")
    for name, table in (("holidays", holidays), ("workdays", workdays)):
        lines.append(f"\n[{name}]")
        lines += [f"{day.isoformat()} = {json.dumps(text, ensure_ascii=False)}" for day, text in sorted(table.items())]
    return "\n".join(lines) + "\n"


def _merge(holidays: dict[date, str], workdays: dict[date, str], entries: Entries) -> None:
    for day, label in entries.holidays.items():
        workdays.pop(day, None)
        holidays[day] = label
    for day, label in entries.workdays.items():
        holidays.pop(day, None)
        workdays[day] = label
