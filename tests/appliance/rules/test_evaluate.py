"""Day evaluation: statuses, tiers and reasons, one table row per edge case."""

from datetime import date, timedelta

import pytest

from appliance.rules import (
    BusinessTrip,
    Confirmation,
    Correction,
    Direction,
    EmployeeRoster,
    HolidayRule,
    Leave,
    Status,
    WeeklyRoster,
    evaluate_day,
    make_shift,
    package_calendar,
    parse_overrides,
    with_overrides,
)
from tests.appliance.rules.build import NIGHT, SPLIT, local, one, plant, punch, read_to

MON = date(2026, 3, 2)


def test_the_late_reason_reads_as_the_brief_says():
    ev = one(MON, [punch(local(2026, 3, 2, 8, 22)), punch(local(2026, 3, 2, 17, 5), "ZK1")], now=local(2026, 3, 3, 0))
    assert (ev.status, ev.late_min, ev.confirmation) == (Status.LATE, 17, Confirmation.CONFIRMED)
    assert ev.reason_zh == "迟到 17 分钟：班次 08:00，宽限 5 分钟，首次打卡 08:22 于 2 号机"
    assert ev.reason_en == "Late 17 min: shift 08:00, grace 5 min, first punch 08:22 at 2 号机"


@pytest.mark.parametrize(
    ("presses", "status", "late", "early", "missed"),
    [
        ([(7, 58), (17, 3)], Status.PRESENT, 0, 0, 0),
        ([(8, 5, 59), (17, 0)], Status.PRESENT, 0, 0, 0),  # whole minutes, in the worker's favour
        ([(8, 6), (17, 0)], Status.LATE, 1, 0, 0),
        ([(7, 58), (16, 59, 1)], Status.PRESENT, 0, 0, 0),
        ([(7, 58), (16, 59)], Status.LEFT_EARLY, 0, 1, 0),
        ([(7, 58), (16, 30)], Status.LEFT_EARLY, 0, 30, 0),
        ([(9, 0), (16, 0)], Status.LATE, 55, 60, 0),  # both: late first, early in the figures
        ([(7, 58)], Status.INCOMPLETE, 0, 0, 1),  # 缺卡: no check-out
        ([(17, 2)], Status.INCOMPLETE, 0, 0, 1),  # no check-in
        ([], Status.MISSING, 0, 0, 2),
    ],
)
def test_single_shift_after_the_fact(presses, status, late, early, missed):
    ev = one(MON, [punch(local(2026, 3, 2, *p)) for p in presses], now=local(2026, 3, 3, 0))
    assert (ev.status, ev.late_min, ev.early_min, ev.missed_punches) == (status, late, early, missed)
    assert ev.confirmation is Confirmation.CONFIRMED
    assert ev.reason_zh and ev.reason_en


@pytest.mark.parametrize(
    ("now", "status", "tier"),
    [
        ((7, 0), Status.UPCOMING, ""),
        ((8, 19, 59), Status.UPCOMING, ""),  # start + grace 5 + N 15 = 08:20
        ((8, 20), Status.MISSING, "tentative"),
        ((17, 0), Status.MISSING, "tentative"),
        ((21, 59), Status.MISSING, "tentative"),  # confirmed only from 17:00 + max(1 h, window 4 h) = 21:00
    ],
)
def test_live_tiers_before_the_shift_is_over(now, status, tier):
    at = local(2026, 3, 2, *now)
    ev = one(MON, [], now=at, watermarks=read_to(local(2026, 3, 2, 20, 59)))
    assert (ev.status, ev.missing_tier) == (status, tier)


def test_confirmation_needs_the_moment_and_every_terminal():
    confirm_at = local(2026, 3, 2, 21)  # 17:00 + checkout window 4 h (more than the 1 h margin)
    before = one(MON, [], now=confirm_at - timedelta(seconds=1), watermarks=read_to(confirm_at))
    assert before.confirmation is Confirmation.OPEN and before.missing_tier == "tentative"
    done = one(MON, [], now=confirm_at, watermarks=read_to(confirm_at))
    assert done.confirmation is Confirmation.CONFIRMED and done.missing_tier == "confirmed"
    assert done.reason_zh == "缺勤：班次 08:00–17:00 无打卡；所有考勤机已读取至 21:00 之后"
    assert done.confirm_at == confirm_at and done.watermark == confirm_at


def test_an_offline_terminal_holds_confirmation_and_says_so():
    now = local(2026, 3, 3, 9)
    marks = {"ZK1": now, "ZK2": local(2026, 3, 2, 10, 42)}
    ev = one(MON, [], now=now, watermarks=marks)
    assert (ev.status, ev.confirmation, ev.missing_tier) == (Status.MISSING, Confirmation.HELD, "tentative")
    assert ev.held_by == ("ZK2",)
    assert "2 号机仅读取至 10:42，未确认" in ev.reason_zh
    assert "2 号机 read only up to 10:42, not confirmed" in ev.reason_en
    never = one(MON, [], now=now, watermarks={"ZK1": now})
    assert never.confirmation is Confirmation.HELD and "2 号机未曾读取" in never.reason_zh


def test_a_shift_served_by_its_own_terminals_waits_only_for_them():
    gate = make_shift("D", "08:00-17:00", terminals=("ZK1",))
    now = local(2026, 3, 3, 9)
    ev = one(MON, [], now=now, the_plant=plant(gate), watermarks={"ZK1": now})
    assert ev.confirmation is Confirmation.CONFIRMED
    no_terminal = make_shift("D", "08:00-17:00", terminals=())
    held = one(MON, [], now=now, the_plant=plant(no_terminal), watermarks={"ZK1": now})
    assert held.confirmation is Confirmation.HELD and "无考勤机" in held.reason_zh


def test_night_shift_belongs_to_its_start_date_and_is_followed_by_a_day_shift():
    roster = EmployeeRoster("E1", WeeklyRoster("w", (("N",), ("D",), (), (), (), (), ())))
    presses = [punch(local(2026, 3, 2, 19, 55)), punch(local(2026, 3, 3, 8, 2)), punch(local(2026, 3, 3, 15, 58))]
    later = local(2026, 3, 5)
    monday = one(MON, presses, now=later, roster=roster, the_plant=plant(NIGHT, make_shift("D", "16:00-23:00")))
    tuesday = one(
        date(2026, 3, 3), presses, now=later, roster=roster, the_plant=plant(NIGHT, make_shift("D", "16:00-23:00"))
    )
    assert monday.shift_id == "N" and monday.status is Status.PRESENT
    assert (
        monday.reason_zh == "正常：班次 20:00–08:00（次日），上班打卡 19:55 于 2 号机，下班打卡 08:02（次日） 于 2 号机"
    )
    assert tuesday.shift_id == "D" and tuesday.status is Status.INCOMPLETE  # checked in 15:58, no check-out
    assert [p.at for p in tuesday.punches] == [local(2026, 3, 3, 15, 58)]


def test_split_shift_is_late_per_segment():
    roster = EmployeeRoster("E1", WeeklyRoster("w", (("S",),) * 7))
    presses = [(7, 58), (12, 1), (13, 40), (17, 31)]
    ev = one(MON, [punch(local(2026, 3, 2, *p)) for p in presses], now=local(2026, 3, 3), roster=roster)
    assert (ev.status, ev.late_min) == (Status.LATE, 5)
    assert ev.reason_zh == "迟到 5 分钟：班次 13:30，宽限 5 分钟，打卡 13:40 于 2 号机"
    missing_afternoon = one(
        MON, [punch(local(2026, 3, 2, *p)) for p in presses[:2]], now=local(2026, 3, 3), roster=roster
    )
    assert (missing_afternoon.status, missing_afternoon.missed_punches) == (Status.INCOMPLETE, 2)
    assert SPLIT.id == "S"


@pytest.mark.parametrize(
    ("day", "status", "reason"),
    [
        (date(2026, 2, 16), Status.HOLIDAY, "法定节假日：春节"),
        (date(2026, 3, 7), Status.REST_DAY, "休息日：排班无班次"),
    ],
)
def test_days_off_are_never_absences(day, status, reason):
    ev = one(day, [], now=local(2026, 3, 10))
    assert (ev.status, ev.shift_id, ev.missing_tier, ev.confirmation) == (status, "", "", Confirmation.CONFIRMED)
    assert ev.reason_zh == reason


def test_a_makeup_saturday_is_a_working_day():
    sat = date(2026, 2, 28)
    ev = one(sat, [], now=local(2026, 3, 10))
    assert (ev.status, ev.missing_tier) == (Status.MISSING, "confirmed")
    assert "调休上班日（春节）" in ev.reason_zh


def test_punches_on_a_day_off_are_shown():
    ev = one(date(2026, 3, 7), [punch(local(2026, 3, 7, 9))], now=local(2026, 3, 10))
    assert ev.status is Status.REST_DAY and len(ev.punches) == 1 and "当日有打卡 1 次" in ev.reason_zh


def test_not_scheduled():
    ev = one(MON, [], now=local(2026, 3, 10), roster=EmployeeRoster("E1", None))
    assert (ev.status, ev.reason_zh, ev.reason_en) == (Status.NOT_SCHEDULED, "未排班", "Not scheduled")


def test_a_year_nobody_published_is_judged_by_the_provisional_calendar_and_flagged():
    day = date(2027, 3, 1)
    ev = one(day, [], now=local(2027, 3, 5))
    assert (ev.status, ev.confirmation, ev.missing_tier) == (Status.MISSING, Confirmation.CONFIRMED, "confirmed")
    assert ev.calendar_unknown and "临时日历（2027 年节假日安排尚未发布）" in ev.reason_zh
    present = one(day, [punch(local(2027, 3, 1, 7, 55)), punch(local(2027, 3, 1, 17, 1))], now=local(2027, 3, 5))
    assert present.confirmation is Confirmation.CONFIRMED and present.calendar_unknown
    known = plant(
        calendar=with_overrides(package_calendar(), parse_overrides('version = "v"\ncomplete_years = [2027]'))
    )
    assert one(day, [], now=local(2027, 3, 5), the_plant=known).missing_tier == "confirmed"


def _leave(start, end, kind="病假", lid="L1"):
    return Leave(lid, "E1", start, end, kind)


def test_a_shift_wholly_on_leave():
    leave = _leave(local(2026, 3, 1), local(2026, 3, 4))
    ev = one(MON, [], now=local(2026, 3, 10), leaves=[leave])
    assert (ev.status, ev.excusal, ev.missing_tier) == (Status.ON_LEAVE, "L1", "")
    assert ev.reason_zh.startswith("请假（病假）：")


def test_a_business_trip():
    trip = BusinessTrip("T1", "E1", local(2026, 3, 1), local(2026, 3, 4), "上海")
    ev = one(MON, [], now=local(2026, 3, 10), trips=[trip])
    assert (ev.status, ev.excusal) == (Status.BUSINESS_TRIP, "T1")
    assert ev.reason_zh.startswith("出差（上海）：") and ev.reason_en.startswith("Business trip (上海)")


def test_leave_ending_mid_shift_moves_the_expected_check_in_and_watches_the_shift():
    leave = _leave(local(2026, 2, 20), local(2026, 3, 2, 12))
    ok = one(
        MON, [punch(local(2026, 3, 2, 12, 4)), punch(local(2026, 3, 2, 17, 1))], now=local(2026, 3, 10), leaves=[leave]
    )
    assert (ok.status, ok.watch, ok.excusal) == (Status.PRESENT, "L1", "L1")
    assert "假期至 12:00，按 12:00 起计" in ok.reason_zh and "假期结束后首个班次（L1 于 12:00 结束）" in ok.reason_zh
    late = one(
        MON, [punch(local(2026, 3, 2, 12, 30)), punch(local(2026, 3, 2, 17, 1))], now=local(2026, 3, 10), leaves=[leave]
    )
    assert (late.status, late.late_min) == (Status.LATE, 25)


def test_leave_starting_mid_shift_moves_the_expected_check_out():
    leave = _leave(local(2026, 3, 2, 14), local(2026, 3, 3, 17))
    ev = one(
        MON, [punch(local(2026, 3, 2, 7, 58)), punch(local(2026, 3, 2, 14, 1))], now=local(2026, 3, 10), leaves=[leave]
    )
    assert (ev.status, ev.early_min) == (Status.PRESENT, 0)


def test_the_first_shift_after_a_leave_is_watched_even_after_a_weekend():
    leave = _leave(local(2026, 2, 23, 8), local(2026, 2, 27, 17))  # Monday to Friday
    roster = EmployeeRoster("E1", WeeklyRoster("w", (("D",),) * 5 + ((), ())))
    # Saturday 28 Feb is a 调休 working day: it is the first shift back, not Monday
    sat = one(date(2026, 2, 28), [], now=local(2026, 3, 10), leaves=[leave], roster=roster)
    assert (sat.watch, sat.missing_tier) == ("L1", "confirmed")
    mon = one(MON, [], now=local(2026, 3, 10), leaves=[leave], roster=roster)
    assert mon.watch == ""


def test_a_correction_is_a_punch_with_its_author_and_reason():
    fix = Correction("C1", "E1", local(2026, 3, 2, 8), Direction.IN, "忘带卡", "张主管", local(2026, 3, 2, 10))
    ev = one(MON, [punch(local(2026, 3, 2, 17, 2))], now=local(2026, 3, 10), corrections=[fix])
    assert ev.status is Status.PRESENT
    assert "上班打卡 08:00 于 补卡" in ev.reason_zh and "补卡 08:00（张主管：忘带卡）" in ev.reason_zh


def test_duplicates_and_strays_are_counted_in_the_reason():
    presses = [punch(local(2026, 3, 2, 7, 58)), punch(local(2026, 3, 2, 7, 58, 20)), punch(local(2026, 3, 2, 17, 1))]
    presses.append(punch(local(2026, 3, 2, 23, 30)))  # after the check-out window closed
    ev = one(MON, presses, now=local(2026, 3, 10))
    assert (ev.status, len(ev.duplicates), len(ev.stray)) == (Status.PRESENT, 1, 1)
    assert "忽略重复打卡 1 次" in ev.reason_zh and "班次外打卡 1 次" in ev.reason_zh


def test_wrong_state_is_explained():
    ev = one(
        MON,
        [punch(local(2026, 3, 2, 7, 58), state=1), punch(local(2026, 3, 2, 17, 1), state=0)],
        now=local(2026, 3, 10),
    )
    assert ev.status is Status.PRESENT
    assert (
        "07:58 记录为下班，按时间视为上班" in ev.reason_zh
        and "17:01 recorded as in, taken as out by time" in ev.reason_en
    )


def test_two_shifts_in_one_day():
    roster = EmployeeRoster("E1", None, explicit={MON: ("E", "L")})
    p = plant(make_shift("E", "06:00-14:00"), make_shift("L", "14:00-22:00"))
    presses = [punch(local(2026, 3, 2, 5, 55)), punch(local(2026, 3, 2, 14)), punch(local(2026, 3, 2, 22, 5))]
    evs = evaluate_day(p, roster, MON, punches=presses, now=local(2026, 3, 10), watermarks=read_to(local(2026, 3, 10)))
    assert [(e.shift_id, e.status) for e in evs] == [("E", Status.INCOMPLETE), ("L", Status.PRESENT)]


def test_dst_zone_late_minutes_use_the_local_wall_clock():
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    roster = EmployeeRoster("E1", WeeklyRoster("w", (("D",),) * 7, holidays=HolidayRule.IGNORE))
    p = plant(make_shift("D", "08:00-17:00"), tz=ny)
    sunday = date(2026, 3, 8)  # the clocks went forward at 02:00
    ev = one(
        sunday,
        [punch(local(2026, 3, 8, 8, 22, tz=ny)), punch(local(2026, 3, 8, 17, 1, tz=ny))],
        now=local(2026, 3, 10),
        roster=roster,
        the_plant=p,
    )
    assert (ev.status, ev.late_min) == (Status.LATE, 17)
    assert "首次打卡 08:22" in ev.reason_zh


def test_the_plant_pass_gives_what_each_employee_alone_gives():
    from appliance.rules import by_employee, evaluate_plant_day

    week = WeeklyRoster("w", (("D",),) * 5 + ((), ()))
    rosters = [EmployeeRoster(f"E{n}", week) for n in range(4)] + [EmployeeRoster("E9", week, explicit={MON: ("N",)})]
    presses = [punch(local(2026, 3, 2, 8, n * 7), emp=f"E{n}") for n in range(4)] + [
        punch(local(2026, 3, 2, 20), emp="E9")
    ]
    now, p = local(2026, 3, 3, 9), plant()
    together = evaluate_plant_day(p, rosters, MON, punches=by_employee(presses), now=now, watermarks=read_to(now))
    alone = [e for r in rosters for e in evaluate_day(p, r, MON, punches=presses, now=now, watermarks=read_to(now))]
    assert together == alone
    assert [e.status for e in together] == [
        Status.INCOMPLETE,
        Status.LATE,
        Status.LATE,
        Status.LATE,
        Status.PRESENT,
    ]  # night: out not due yet
