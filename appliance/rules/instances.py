"""A shift on a given date, as instants in UTC: when each segment starts and ends, and its window.

Wall-clock times are read in the plant's zone once, here. In a zone with daylight saving, a time
that does not exist (spring forward) or exists twice (fall back) is read with the offset in
force before the change (PEP 495 ``fold=0``), and boundaries are kept in order, so that a night
shift across a change simply lasts an hour less or more, as it really does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from appliance.rules.model import Shift


@dataclass(frozen=True, slots=True)
class Span:
    start: datetime
    end: datetime

    def contains(self, at: datetime) -> bool:
        return self.start <= at <= self.end


@dataclass(frozen=True, slots=True)
class ShiftInstance:
    shift: Shift
    work_date: date  # the date the shift starts on: a night shift belongs to its first day
    segments: tuple[Span, ...]
    window: Span  # punches in here may count for this shift

    @property
    def start(self) -> datetime:
        return self.segments[0].start

    @property
    def end(self) -> datetime:
        return self.segments[-1].end

    @property
    def key(self) -> tuple[date, str]:
        return (self.work_date, self.shift.id)


@lru_cache(maxsize=16384)
def materialize(shift: Shift, work_date: date, tz: ZoneInfo) -> ShiftInstance:
    """The shift on ``work_date`` (memoised: a plant has few shifts and thousands of workers)."""
    midnight = datetime(work_date.year, work_date.month, work_date.day)
    bounds: list[datetime] = []
    for start, end in shift.offsets:
        for offset in (start, end):
            at = (midnight + timedelta(minutes=offset)).replace(tzinfo=tz).astimezone(UTC)
            bounds.append(max(at, bounds[-1]) if bounds else at)
    segments = tuple(Span(bounds[i], bounds[i + 1]) for i in range(0, len(bounds), 2))
    window = Span(segments[0].start - shift.checkin_before, segments[-1].end + shift.checkout_after)
    return ShiftInstance(shift, work_date, segments, window)


@lru_cache(maxsize=1024)
def local_day_span(work_date: date, tz: ZoneInfo) -> Span:
    """The local calendar day as UTC instants (23 or 25 hours on a DST change)."""
    start = datetime(work_date.year, work_date.month, work_date.day, tzinfo=tz).astimezone(UTC)
    following = work_date + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz).astimezone(UTC)
    return Span(start, end)


def punch_range(work_date: date, tz: ZoneInfo) -> Span:
    """The punches to load to evaluate ``work_date``: the day before to the day after, since a
    shift's windows reach into neighbouring days and the neighbours' shifts compete for punches.
    """
    return Span(
        local_day_span(work_date - timedelta(days=1), tz).start, local_day_span(work_date + timedelta(days=2), tz).end
    )
