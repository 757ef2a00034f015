from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from appliance.rules import Punch, RulesError, Segment, Shift, make_shift, materialize
from tests.appliance.rules.build import SHANGHAI, local

NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("spans", "offsets", "crosses"),
    [
        (("08:00-17:00",), ((480, 1020),), False),
        (("20:00-08:00",), ((1200, 1920),), True),
        (("00:00-08:00",), ((0, 480),), False),
        (("08:00-12:00", "13:30-17:30"), ((480, 720), (810, 1050)), False),
        (("22:00-02:00", "03:00-06:00"), ((1320, 1560), (1620, 1800)), True),
        (("18:00-23:00", "01:00-05:00"), ((1080, 1380), (1500, 1740)), True),  # second part after midnight
        (("06:00-14:00", "14:00-22:00"), ((360, 840), (840, 1320)), False),  # back to back
        (("08:00-08:00",), ((480, 1920),), True),  # 24 hours exactly
    ],
)
def test_segments_are_laid_out_in_order_from_the_start_date(spans, offsets, crosses):
    shift = make_shift("X", *spans)
    assert shift.offsets == offsets
    assert shift.crosses_midnight is crosses


@pytest.mark.parametrize(
    "spans",
    [(), ("08:00-20:00", "21:00-09:00"), ("08:00-07:00", "07:30-08:30")],
)
def test_a_shift_spans_at_most_24_hours_and_has_a_segment(spans):
    with pytest.raises(RulesError):
        make_shift("X", *spans)


@pytest.mark.parametrize(
    "options",
    [{"late_grace": timedelta(minutes=-1)}, {"checkout_after": timedelta(hours=25)}, {"checkin_before": timedelta(-1)}],
)
def test_grace_and_windows_are_bounded(options):
    with pytest.raises(RulesError):
        make_shift("X", "08:00-17:00", **options)


def test_shift_times_are_whole_minutes_without_zone():
    with pytest.raises(RulesError):
        Shift("X", "X", (Segment(time(8, 0, 30), time(17)),))
    with pytest.raises(RulesError):
        Shift("X", "X", (Segment(time(8, tzinfo=UTC), time(17)),))
    with pytest.raises(RulesError):
        make_shift("X", "8h-17h")


def test_punch_times_must_be_aware_utc():
    with pytest.raises(RulesError):
        Punch("E1", "ZK1", datetime(2026, 3, 2, 8, 0))
    with pytest.raises(RulesError):
        Punch("E1", "ZK1", datetime(2026, 3, 2, 8, 0, tzinfo=SHANGHAI))
    assert Punch("E1", "ZK1", local(2026, 3, 2, 8)).at.hour == 0


def test_a_night_shift_belongs_to_its_start_date():
    inst = materialize(make_shift("N", "20:00-08:00"), date(2026, 3, 2), SHANGHAI)
    assert (inst.start, inst.end) == (local(2026, 3, 2, 20), local(2026, 3, 3, 8))
    assert inst.window.start == local(2026, 3, 2, 18) and inst.window.end == local(2026, 3, 3, 12)


@pytest.mark.parametrize(
    ("work_date", "hours"),
    [
        (date(2026, 3, 6), 12),  # no change that night
        (date(2026, 3, 7), 11),  # clocks go forward at 02:00 on 8 March 2026
        (date(2026, 10, 31), 13),  # clocks go back at 02:00 on 1 November 2026
    ],
)
def test_in_a_zone_with_dst_a_night_shift_lasts_what_the_clock_says(work_date, hours):
    inst = materialize(make_shift("N", "20:00-08:00"), work_date, NEW_YORK)
    assert inst.end - inst.start == timedelta(hours=hours)
    following = work_date + timedelta(days=1)
    assert inst.end == local(following.year, following.month, following.day, 8, tz=NEW_YORK)


def test_a_segment_inside_the_spring_gap_keeps_its_order():
    inst = materialize(make_shift("G", "01:30-02:30", "02:30-03:30"), date(2026, 3, 8), NEW_YORK)
    bounds = [b for seg in inst.segments for b in (seg.start, seg.end)]
    assert bounds == sorted(bounds)
    assert inst.end - inst.start == timedelta(hours=1)  # 01:30 EST to 03:30 EDT
