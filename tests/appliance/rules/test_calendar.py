from datetime import date

import pytest

from appliance.rules import DayKind, RulesError, package_calendar, parse_overrides, with_overrides

OVERRIDES = """
version = "gov-2027"
complete_years = [2027]

[holidays]
2027-01-01 = "元旦"
2026-03-09 = "厂休"

[workdays]
2027-02-07 = "春节调休"
2026-10-08 = "国庆照常上班"
"""


@pytest.mark.parametrize(
    ("day", "kind", "name"),
    [
        (date(2026, 2, 16), DayKind.HOLIDAY, "春节"),  # a Monday off
        (date(2026, 2, 14), DayKind.MAKEUP, "春节"),  # a Saturday worked (调休)
        (date(2026, 2, 28), DayKind.MAKEUP, "春节"),
        (date(2026, 1, 4), DayKind.MAKEUP, "元旦"),  # a Sunday worked
        (date(2026, 10, 1), DayKind.HOLIDAY, "国庆节"),
        (date(2026, 3, 2), DayKind.WORKDAY, ""),
        (date(2026, 3, 7), DayKind.WEEKEND, ""),
        (date(2004, 1, 1), DayKind.HOLIDAY, "元旦"),
        (date(2027, 3, 2), DayKind.UNKNOWN, ""),  # the package does not cover 2027
        (date(2003, 12, 31), DayKind.UNKNOWN, ""),
    ],
)
def test_package_calendar(day, kind, name):
    found = package_calendar().day(day)
    assert (found.kind, found.name_zh) == (kind, name)


def test_package_calendar_names_its_version():
    assert package_calendar().version == "chinesecalendar-1.11.0"


def test_overrides_merge_over_the_package_and_cover_their_years():
    cal = with_overrides(package_calendar(), parse_overrides(OVERRIDES))
    assert cal.version == "chinesecalendar-1.11.0+gov-2027"
    assert cal.day(date(2027, 1, 1)).kind is DayKind.HOLIDAY
    assert cal.day(date(2027, 2, 7)).kind is DayKind.MAKEUP  # a Sunday
    assert cal.day(date(2027, 3, 2)).kind is DayKind.WORKDAY  # covered now
    assert cal.day(date(2026, 3, 9)).kind is DayKind.HOLIDAY  # plant closure over an ordinary Monday
    assert cal.day(date(2026, 3, 9)).source == "override"
    assert cal.day(date(2026, 10, 8)).kind is DayKind.WORKDAY  # a holiday the plant works
    assert cal.day(date(2028, 1, 3)).kind is DayKind.UNKNOWN


def test_dates_without_complete_years_leave_the_rest_of_the_year_unknown():
    cal = with_overrides(package_calendar(), parse_overrides('version = "x"\n[holidays]\n2027-01-01 = "元旦"\n'))
    assert cal.day(date(2027, 1, 1)).kind is DayKind.HOLIDAY
    assert cal.day(date(2027, 1, 4)).kind is DayKind.UNKNOWN


def test_every_problem_in_the_file_is_listed_at_once():
    text = """
complete_years = ["2027"]
colour = "red"
[holidays]
2027-13-01 = "x"
2027-01-01 = ""
2027-05-01 = "劳动节"
[workdays]
2027-05-01 = "劳动节"
"""
    with pytest.raises(RulesError) as err:
        parse_overrides(text)
    problems = err.value.problems
    assert len(problems) == 6, problems
    assert any(p.startswith("version") for p in problems)
    assert any("2027-13-01" in p for p in problems)
    assert any("2027-05-01" in p and "both" in p for p in problems)
    assert any(p.startswith("colour") for p in problems)


def test_not_toml_is_reported_with_its_cause():
    with pytest.raises(RulesError) as err:
        parse_overrides("version = ")
    assert err.value.__cause__ is not None
