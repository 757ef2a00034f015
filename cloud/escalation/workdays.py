"""Working days of the Chinese calendar (法定节假日 and 调休), for timers set in working days.

Only the union's wait is counted this way; absences are counted from the plants' day facts (the
employee's own roster), and statutory periods are calendar days. The calendar is head office's
(``cloud.hr.calendar``: the package plus the years HR published), the one every appliance is sent.
A year nobody has published counts Monday–Friday, which can only make the wait end earlier than a
holiday would: the wait is a courtesy period (no statute sets it), so this is noted, not refused.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from cloud.hr.calendar import head_office_calendar


def is_workday(day: date) -> bool:
    return head_office_calendar().is_workday(day)


def add_working_days(start_ms: int, days: int, tz: str) -> int:
    """The end (local midnight) of the ``days``-th working day after the day of ``start_ms``."""
    calendar = head_office_calendar()
    zone = ZoneInfo(tz)
    day = datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(zone).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if calendar.is_workday(day):
            counted += 1
    end = day + timedelta(days=1)
    return int(datetime(end.year, end.month, end.day, tzinfo=zone).timestamp() * 1000)
