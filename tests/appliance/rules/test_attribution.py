"""Punch attribution and roles, as tables of the cases the anchors got wrong."""

from datetime import date, timedelta

import pytest

from appliance.rules import assign_roles, attribute, collapse_duplicates, make_shift, materialize
from tests.appliance.rules.build import SHANGHAI, local, punch

D2 = date(2026, 3, 2)
D3 = date(2026, 3, 3)


def _instances(*pairs):
    return [materialize(shift, day, SHANGHAI) for shift, day in pairs]


def _owner(instances, at, state=255):
    result = attribute([punch(at, state=state)], instances)
    owners = [inst.key for inst, got in zip(instances, result.by_instance, strict=True) if got]
    return owners[0] if owners else None


@pytest.mark.parametrize(
    ("hh", "mm", "owner"),
    [
        # 18:00-07:00 night on the 2nd, 14:00 shift on the 3rd with a wide 8 h check-in window that
        # overlaps the night's check-out window (Frappe HRMS #3298)
        (7, 5, (D2, "N")),
        (6, 55, (D2, "N")),
        (10, 29, (D2, "N")),  # 3 h 29 after the night's end, 3 h 31 before the day's start
        (10, 31, (D3, "A")),
        (13, 50, (D3, "A")),
    ],
)
def test_night_shift_then_afternoon_shift(hh, mm, owner):
    night = make_shift("N", "18:00-07:00", checkout_after=timedelta(hours=6))
    afternoon = make_shift("A", "14:00-22:00", checkin_before=timedelta(hours=8))
    insts = _instances((night, D2), (afternoon, D3))
    assert _owner(insts, local(2026, 3, 3, hh, mm)) == owner


@pytest.mark.parametrize(
    ("state", "owner"),
    [
        (255, (D2, "L")),  # a tie at the handover: the shift that starts there
        (0, (D2, "L")),  # "in" key: the starting shift
        (1, (D2, "E")),  # "out" key: the ending shift
    ],
)
def test_a_punch_exactly_between_back_to_back_shifts(state, owner):
    early, late = make_shift("E", "06:00-14:00"), make_shift("L", "14:00-22:00")
    insts = _instances((early, D2), (late, D2))
    assert _owner(insts, local(2026, 3, 2, 14), state) == owner


@pytest.mark.parametrize(
    ("at", "owned"),
    [
        (local(2026, 3, 2, 6, 0), True),  # window opens exactly 2 h before 08:00: included
        (local(2026, 3, 2, 5, 59, 59), False),
        (local(2026, 3, 2, 21, 0), True),  # closes exactly 4 h after 17:00: included
        (local(2026, 3, 2, 21, 0, 1), False),
    ],
)
def test_window_boundaries_are_inclusive(at, owned):
    insts = _instances((make_shift("D", "08:00-17:00"), D2))
    result = attribute([punch(at)], insts)
    assert bool(result.by_instance[0]) is owned
    assert bool(result.stray) is not owned


def test_double_presses_collapse_to_the_first_and_are_reported():
    t = local(2026, 3, 2, 7, 58)
    presses = [
        punch(t + timedelta(seconds=30), "ZK1"),
        punch(t),
        punch(t + timedelta(seconds=60)),  # exactly the window: still a double press
        punch(t + timedelta(seconds=61)),  # 61 s after the kept one: a new punch
        punch(t, emp="E2"),  # someone else
    ]
    kept, dropped = collapse_duplicates(presses, timedelta(seconds=60))
    assert [(p.employee, p.at - t) for p in kept] == [
        ("E1", timedelta(0)),
        ("E2", timedelta(0)),
        ("E1", timedelta(seconds=61)),
    ]
    assert len(dropped) == 2 and all(d.kept == kept[0] for d in dropped)


def test_re_downloaded_records_are_duplicates_even_with_no_window():
    t = local(2026, 3, 2, 7, 58)
    kept, dropped = collapse_duplicates([punch(t), punch(t)], timedelta(0))
    assert len(kept) == 1 and len(dropped) == 1


D = make_shift("D", "08:00-17:00")


@pytest.mark.parametrize(
    ("presses", "check_in", "check_out", "mismatched"),
    [
        # (local hour, minute, state) ...
        ([(7, 58, 255), (17, 3, 255)], (7, 58), (17, 3), 0),
        ([(7, 58, 1), (17, 3, 0)], (7, 58), (17, 3), 2),  # keys pressed the wrong way round
        ([(7, 58, 1)], (7, 58), None, 1),  # "out" pressed on arrival (Horilla #340): still the check-in
        ([(16, 0, 255)], None, (16, 0), 0),  # one punch after midday: a check-out
        ([(12, 30, 255)], None, (12, 30), 0),  # exactly at the midpoint: the afternoon
        ([(12, 29, 255)], (12, 29), None, 0),
        ([(12, 40, 0)], (12, 40), None, 0),  # late arrival with the "in" key: believed
        ([(12, 40, 255), (17, 5, 255)], (12, 40), (17, 5), 0),  # two late punches: arrival and leaving
        ([(7, 50, 255), (7, 55, 255), (17, 0, 255)], (7, 50), (17, 0), 0),
        ([(7, 50, 255), (7, 55, 255)], (7, 50), None, 0),  # two presses at arrival: no check-out
        ([(10, 0, 1), (7, 55, 255)], (7, 55), (10, 0), 0),  # "out" at 10:00: left early
        ([(7, 40, 1), (7, 55, 0)], (7, 40), None, 1),
    ],
)
def test_roles_in_a_single_segment(presses, check_in, check_out, mismatched):
    inst = materialize(D, D2, SHANGHAI)
    punches = [punch(local(2026, 3, 2, h, m), state=s) for h, m, s in presses]
    (seg,) = assign_roles(inst, punches)

    def hm(p):
        return None if p is None else (p.at.astimezone(SHANGHAI).hour, p.at.astimezone(SHANGHAI).minute)

    assert (hm(seg.check_in), hm(seg.check_out), len(seg.mismatched)) == (check_in, check_out, mismatched)
    assert len(seg.extra) == len(presses) - (check_in is not None) - (check_out is not None)


def test_split_shift_punches_are_split_at_the_middle_of_the_break():
    inst = materialize(make_shift("S", "08:00-12:00", "13:30-17:30"), D2, SHANGHAI)
    presses = [(7, 55), (12, 2), (12, 44), (12, 45), (17, 31)]  # break midpoint 12:45
    morning, afternoon = assign_roles(inst, [punch(local(2026, 3, 2, h, m)) for h, m in presses])
    assert morning.check_in.at == local(2026, 3, 2, 7, 55) and morning.check_out.at == local(2026, 3, 2, 12, 44)
    assert afternoon.check_in.at == local(2026, 3, 2, 12, 45) and afternoon.check_out.at == local(2026, 3, 2, 17, 31)
    assert [p.at for p in morning.extra] == [local(2026, 3, 2, 12, 2)]
