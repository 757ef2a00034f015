"""Working days of the Chinese calendar (法定节假日 and 调休), for timers set in working days.

Only the union's wait is counted this way; absences are counted from the plants' day facts (the
employee's own roster), and statutory periods are calendar days. A year ``chinesecalendar`` does
not know falls back to Monday–Friday, which can only make the wait end earlier than a holiday
would: the wait is a courtesy period (no statute sets it), so the fallback is noted, not refused.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar


def is_workday(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5


def add_working_days(start_ms: int, days: int, tz: str) -> int:
    """The end (local midnight) of the ``days``-th working day after the day of ``start_ms``."""
    zone = ZoneInfo(tz)
    day = datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(zone).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_workday(day):
            counted += 1
    end = day + timedelta(days=1)
    return int(datetime(end.year, end.month, end.day, tzinfo=zone).timestamp() * 1000)
