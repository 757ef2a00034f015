"""No absence where nothing was recording: a shift that began before the appliance was recording a
terminal serving it is 未覆盖 (Status.UNCOVERED), never MISSING, whatever the watermarks say."""

from dataclasses import replace
from datetime import date

from appliance.rules import Confirmation, EmployeeRoster, Status, make_shift
from tests.appliance.rules.build import WEEKDAYS_DAY, local, one, plant, punch

MON, TUE = date(2026, 3, 2), date(2026, 3, 3)
INSTALLED = local(2026, 3, 2, 9, 30)  # the Pi's first read of both terminals: Monday, mid-shift


def installed(the_plant=None, since=None):
    base = the_plant or plant()
    return replace(base, recording_since={"ZK1": INSTALLED, "ZK2": INSTALLED} if since is None else since)


def test_no_punch_on_a_shift_begun_before_the_first_read_is_uncovered_not_absent():
    ev = one(MON, [], now=local(2026, 3, 4, 9), the_plant=installed())
    assert (ev.status, ev.confirmation, ev.missing_tier) == (Status.UNCOVERED, Confirmation.CONFIRMED, "")
    assert ev.reason_zh == (
        "未覆盖：班次 08:00 开始时本设备尚未记录（1 号机 自 2026-03-02 09:30 起才由本设备记录；"
        "2 号机 自 2026-03-02 09:30 起才由本设备记录），无打卡不能据此认定缺勤"
    )
    assert ev.reason_en.startswith("Not covered: this appliance was not recording when shift 08:00 began")


def test_the_first_whole_shift_after_the_first_read_can_be_an_absence():
    ev = one(TUE, [], now=local(2026, 3, 4, 9), the_plant=installed())
    assert (ev.status, ev.confirmation, ev.missing_tier) == (Status.MISSING, Confirmation.CONFIRMED, "confirmed")


def test_a_worker_the_terminal_recorded_before_the_first_read_is_present_all_the_same():
    """The terminal's own log, read at installation, proves attendance; only its silence proves nothing."""
    presses = [punch(local(2026, 3, 2, 7, 58)), punch(local(2026, 3, 2, 17, 3))]
    ev = one(MON, presses, now=local(2026, 3, 4, 9), the_plant=installed())
    assert (ev.status, ev.confirmation) == (Status.PRESENT, Confirmation.CONFIRMED)


def test_a_terminal_added_later_leaves_its_shifts_uncovered_until_then():
    later = {"ZK1": local(2026, 2, 1), "ZK2": local(2026, 3, 3, 12)}  # 2 号机 connected on Tuesday at noon
    assert one(MON, [], now=local(2026, 3, 5), the_plant=installed(since=later)).status is Status.UNCOVERED
    assert one(TUE, [], now=local(2026, 3, 5), the_plant=installed(since=later)).status is Status.UNCOVERED
    wed = one(date(2026, 3, 4), [], now=local(2026, 3, 5, 9), the_plant=installed(since=later))
    assert wed.status is Status.MISSING
    own = installed(plant(make_shift("D", "08:00-17:00", terminals=("ZK1",))), since=later)
    assert one(MON, [], now=local(2026, 3, 5), the_plant=own).status is Status.MISSING  # served by 1 号机 only


def test_a_terminal_never_read_covers_nothing_and_holds_the_result():
    never = {"ZK1": local(2026, 2, 1)}
    ev = one(TUE, [], now=local(2026, 3, 4, 9), the_plant=installed(since=never), watermarks={"ZK1": local(2026, 3, 4)})
    assert (ev.status, ev.confirmation) == (Status.UNCOVERED, Confirmation.HELD)
    assert "2 号机尚未读取" in ev.reason_zh


def test_a_tentative_miss_is_not_shown_for_a_shift_the_appliance_joined_late():
    """At 09:35 on installation day nobody on the 08:00 shift is 'missing' on the board, nor alerted."""
    ev = one(MON, [], now=local(2026, 3, 2, 9, 35), the_plant=installed())
    assert (ev.status, ev.confirmation, ev.missing_tier) == (Status.UNCOVERED, Confirmation.OPEN, "")


def test_hire_and_roster_start_still_decide_who_is_scheduled():
    hired = EmployeeRoster("E1", WEEKDAYS_DAY, valid_from=date(2026, 3, 4))
    ev = one(TUE, [], now=local(2026, 3, 5), the_plant=installed(since={}), roster=hired)
    assert ev.status is Status.NOT_SCHEDULED


def test_without_coverage_tracked_the_rules_behave_as_before():
    """Plant(recording_since=None): the rules' own tests; the daemon always passes what it knows."""
    ev = one(MON, [], now=local(2026, 3, 4, 9))
    assert ev.status is Status.MISSING
