"""Working days of the Chinese calendar (法定节假日 and 调休), for the dates a case states and waits for.

The union's wait is counted in working days. The 催告函's return deadline and the proposed termination
date are calendar dates moved off rest days and statutory holidays (民法典 第二百零一条: the day a period
starts from does not count; 第二百零三条: a period whose last day is a 法定休假日 ends on the day after
the holiday, when business stops). Absences are counted from the plants' day facts (the employee's own
roster), and statutory periods after a termination are calendar days. The calendar is head office's
(``cloud.hr.calendar``: the package plus the years HR published), the one every appliance is sent.
A year nobody has published counts Monday–Friday, which can only make the wait end earlier than a
holiday would: the wait is a courtesy period (no statute sets it), so this is noted, not refused.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cloud.hr.calendar import head_office_calendar


def is_workday(day: date) -> bool:
    return head_office_calendar().is_workday(day)


def local_day(ms: int, tz: str) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(ZoneInfo(tz)).date()


def at(day: date, clock: time, tz: str) -> int:
    """``day`` at ``clock`` local time, in epoch milliseconds."""
    return int(datetime.combine(day, clock, ZoneInfo(tz)).timestamp() * 1000)


def first_workday(day: date) -> date:
    """``day`` itself when it is a working day, else the next working day."""
    calendar = head_office_calendar()
    while not calendar.is_workday(day):
        day += timedelta(days=1)
    return day


def add_working_days(start_ms: int, days: int, tz: str) -> int:
    """The end (local midnight) of the ``days``-th working day after the day a letter issued at ``start_ms`` is
    received: that day itself when it is a working day, else the next working day (a formal letter goes out on
    working days only, and a period counts from the day after its receipt): the union's reply window is the
    one its letter states, and the termination date the letter proposes falls after it."""
    calendar = head_office_calendar()
    day = first_workday(local_day(start_ms, tz))
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if calendar.is_workday(day):
            counted += 1
    return at(day + timedelta(days=1), time(0), tz)


def period_end(base_ms: int, days: int, tz: str, ends_at: time) -> int:
    """The end of a period of ``days`` calendar days from the day of ``base_ms`` (that day not counted), its
    last day moved off rest days and holidays to the next working day, at ``ends_at`` local time."""
    return at(first_workday(local_day(base_ms, tz) + timedelta(days=days)), ends_at, tz)


def next_workday_start(ms: int, tz: str) -> int:
    """00:00 of the first working day on or after the local day of ``ms``."""
    return at(first_workday(local_day(ms, tz)), time(0), tz)
