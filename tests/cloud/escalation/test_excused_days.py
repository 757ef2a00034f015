"""Issue 19 item 7: a day HR resolved (理由已接受, approved leave, 补卡) never counts toward 旷工 again.

Real SQLite and PostgreSQL, the appliance's real rules, real signed logs and the cloud's real ingest
(``plantfeed``), a frozen clock moved day by day. The monthly and yearly limits are set at four days
and the consecutive one at five, so only the cumulative totals can bring a case to L4.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cloud.escalation import actions, cases, timeline
from cloud.escalation.models import AbsenceCase, CaseDay, CaseStep, Gate
from cloud.escalation.policy import DEFAULT_BODY
from cloud.escalation.sender import RecordingSender
from cloud.store import open_db
from tests.cloud.escalation.plantfeed import (
    PlantFeed,
    day_passes,
    local,
    ms,
    new_engine,
    pass_deadline,
    serve_cuigao,
)

CUMULATIVE = {"consecutive_days": 5, "month_days": 4, "year_days": 0}
YEARLY = {"consecutive_days": 5, "month_days": 0, "year_days": 4}


@pytest.fixture
def db(cloud_db_url):
    database = open_db(cloud_db_url)
    cases._policies.clear()
    yield database
    database.close()


def worker(clock, sender: RecordingSender, thresholds: dict):  # type: ignore[no-untyped-def]
    ladder = [
        dict(s, after_days=thresholds["consecutive_days"]) if s["level"] == 4 else s for s in DEFAULT_BODY["ladder"]
    ]
    feed = PlantFeed(clock).start(thresholds=thresholds, ladder=ladder, welfare_check_day=0)
    feed.hire("1001")
    return feed, new_engine(clock, sender)


def absent(feed, engine, *days: date) -> None:  # type: ignore[no-untyped-def]
    for day in days:
        day_passes(feed, engine, day)


def present(feed, engine, first: date, last: date) -> None:  # type: ignore[no-untyped-def]
    day = first
    while day <= last:
        if day.weekday() < 5:
            feed.punch("1001", local(day, "07:55"))
            feed.punch("1001", local(day, "17:05"))
        day_passes(feed, engine, day)
        day += timedelta(days=1)


def case_of(day: str) -> AbsenceCase:
    return AbsenceCase.get(AbsenceCase.first_day == day)


def step_status(case: AbsenceCase, key: str) -> str:
    return CaseStep.get((CaseStep.case == case) & (CaseStep.key == key)).status


def days_of(case: AbsenceCase) -> dict[str, str]:
    return {d.work_date: d.status for d in CaseDay.select().where(CaseDay.case == case)}


@pytest.mark.parametrize(
    ("thresholds", "first"),
    [(CUMULATIVE, date(2025, 3, 3)), (YEARLY, date(2025, 2, 24))],
    ids=["month", "year"],
)
@pytest.mark.parametrize("reason", ["accepted_reason", "approved_leave", "correction"])
def test_days_resolved_by_hr_do_not_count_toward_the_limits_or_l4(db, clock, reason, thresholds, first):
    sender = RecordingSender()
    feed, engine = worker(clock, sender, thresholds)
    clock.advance_to(local(first, "06:00"))
    absent(feed, engine, first, first + timedelta(days=1))  # Monday, Tuesday: a case at L2
    clock.advance(hours=9)
    engine.tick()
    one = case_of(first.isoformat())
    assert (one.level, one.days) == (2, 2) and step_status(one, "L2") == "sent"
    actions.resolve(one.id, reason, by="hr-wang", now_ms=ms(clock.now()), note="医院急诊证明")
    one = AbsenceCase.get_by_id(one.id)
    assert one.resolution == reason and step_status(one, "L2") == "sent"  # what was done stays done

    present(feed, engine, first + timedelta(days=2), date(2025, 3, 9))
    mon = date(2025, 3, 10)
    absent(feed, engine, mon, mon + timedelta(days=1), mon + timedelta(days=2))
    clock.advance(hours=9)
    engine.tick()
    two = case_of("2025-03-10")
    assert (two.days, two.consecutive, two.cumulative_month, two.cumulative_year) == (3, 3, 3, 3)
    assert two.level == 3 and two.state == "L3_CUIGAO_ISSUED"
    assert "L4" not in timeline.kinds(two) and "L4" not in sender.step_keys()
    assert [s.absent_days for s in sender.sent if s.key == "L3"] == [("2025-03-10", "2025-03-11", "2025-03-12")]

    absent(feed, engine, mon + timedelta(days=3))  # a fourth absent day of the new spell: now the limit is met
    two = AbsenceCase.get_by_id(two.id)
    assert (two.cumulative_month, two.cumulative_year, two.level) == (4, 4, 3)  # 旷工 waits for the 催告函
    serve_cuigao(clock, two.id, local(date(2025, 3, 14), "15:00"))  # EMS 妥投 the day after it went out
    pass_deadline(clock, engine, two.id)  # the deadline it states (Wednesday 03-19 18:00) passes
    two = AbsenceCase.get_by_id(two.id)
    # 旷工 (L4) recorded, and the termination draft (L5) with it: both waited for the same served, passed deadline
    assert (two.cumulative_month, two.cumulative_year, two.level) == (4, 4, 5)
    l4 = next(e for e in timeline.items(two) if e.kind == "L4")
    assert "本月累计 4" in l4.text_zh or "本年 4" in l4.text_zh

    one = AbsenceCase.get_by_id(one.id)  # the resolved case says so too: its days excused, nothing counted
    assert set(days_of(one).values()) == {"excused"}
    assert (one.days, one.consecutive, one.cumulative_month, one.cumulative_year) == (0, 0, 0, 0)
    assert timeline.kinds(one).count("excused") == 2 and timeline.verify(one) == []


def test_a_returned_case_still_counts_toward_the_limits(db, clock):
    """The control: HR closing a case as "employee returned" excuses nothing; those were absences."""
    sender = RecordingSender()
    feed, engine = worker(clock, sender, CUMULATIVE)
    first = date(2025, 3, 3)
    clock.advance_to(local(first, "06:00"))
    absent(feed, engine, first, first + timedelta(days=1))
    one = case_of("2025-03-03")
    actions.resolve(one.id, "returned", by="hr-wang", now_ms=ms(clock.now()))
    assert set(days_of(one).values()) == {"counted"}
    present(feed, engine, first + timedelta(days=2), date(2025, 3, 9))
    absent(feed, engine, date(2025, 3, 10), date(2025, 3, 11), date(2025, 3, 12))
    two = case_of("2025-03-10")
    assert (two.days, two.cumulative_month, two.level) == (3, 5, 3)  # 旷工 waits for the 催告函
    clock.advance(hours=9)  # Thursday morning: the 催告函 goes out
    engine.tick()
    serve_cuigao(clock, two.id, local(date(2025, 3, 14), "15:00"))
    pass_deadline(clock, engine, two.id)
    two = AbsenceCase.get_by_id(two.id)
    # the five days of the month are the basis: 旷工 recorded, and the draft with it once the deadline passed
    assert (two.days, two.cumulative_month, two.level) == (3, 5, 5) and "L4" in timeline.kinds(two)


def test_days_excused_after_l4_was_sent_keep_it_sent_and_hold_back_l5(db, clock):
    """Item 2: a resolution after a step was taken does not un-send it; the totals and the next step
    follow the corrected count, and both cases' timelines say what changed."""
    sender = RecordingSender()
    feed, engine = worker(clock, sender, CUMULATIVE)
    first = date(2025, 3, 3)
    clock.advance_to(local(first, "06:00"))
    absent(feed, engine, first, first + timedelta(days=1))
    present(feed, engine, first + timedelta(days=2), date(2025, 3, 9))  # back Wednesday: "returned"
    one = case_of("2025-03-03")
    assert one.resolution == "returned"
    mon = date(2025, 3, 10)
    absent(feed, engine, mon, mon + timedelta(days=1), mon + timedelta(days=2))
    clock.advance(hours=9)
    engine.tick()
    two = case_of("2025-03-10")
    assert (two.cumulative_month, two.level) == (5, 3)  # the 催告函 is out; 旷工 waits for its service and deadline
    serve_cuigao(clock, two.id, local(date(2025, 3, 14), "15:00"))
    pass_deadline(clock, engine, two.id)  # Thursday 03-20 08:30: the 旷工通知书 goes out, and the draft is made
    two = AbsenceCase.get_by_id(two.id)
    assert (two.cumulative_month, two.level) == (5, 5) and step_status(two, "L4") == "sent"

    # the doctor's note for the first spell arrives: HR accepts it for both days
    actions.excuse_days(
        one.id, "accepted_reason", ["2025-03-03", "2025-03-04"], by="hr-wang", now_ms=ms(clock.now()), note="病历"
    )
    assert set(days_of(one).values()) == {"excused"}
    one, two = AbsenceCase.get_by_id(one.id), AbsenceCase.get_by_id(two.id)
    assert (one.days, one.cumulative_month) == (0, 0) and one.resolution == "returned"
    assert (two.days, two.consecutive, two.cumulative_month, two.cumulative_year) == (3, 3, 3, 3)
    assert step_status(two, "L4") == "sent"  # not un-sent
    recount = [e for e in timeline.items(two) if e.kind == "recount"]
    assert len(recount) == 1 and "本月累计 5→3" in recount[0].text_zh
    assert timeline.verify(one) == [] and timeline.verify(two) == []

    clock.advance(days=4)  # the 催告函's return deadline is long past: no basis left for a termination draft
    engine.tick()
    two = AbsenceCase.get_by_id(two.id)
    assert two.level == 4 and "basis_met" in two.blocked
    # the draft made when the deadline passed is withdrawn, not left open for HR to confirm
    draft = Gate.get((Gate.case == two) & (Gate.kind == "confirm_termination"))
    assert draft.status == "superseded" and "withdrawn" in timeline.kinds(two)
    assert not Gate.select().where((Gate.case == two) & (Gate.status == "open")).exists()


def test_one_day_excused_in_an_open_case_is_left_out_of_its_counts_and_notices(db, clock):
    sender = RecordingSender()
    feed, engine = worker(clock, sender, {"consecutive_days": 3, "month_days": 5, "year_days": 10})
    mon = date(2025, 3, 3)
    clock.advance_to(local(mon, "06:00"))
    absent(feed, engine, mon, mon + timedelta(days=1), mon + timedelta(days=2))  # D3 at 23:30: L3 waits for 08:00
    case = case_of("2025-03-03")
    # 3 consecutive days meet the basis, but 旷工 (L4) waits for the 催告函's service and deadline: not planned yet
    assert case.level == 3 and step_status(case, "L3") == "due"
    assert not CaseStep.select().where((CaseStep.case == case) & (CaseStep.key == "L4")).exists()
    actions.excuse_days(case.id, "correction", ["2025-03-04"], by="hr-li", now_ms=ms(clock.now()), note="补卡单 B-7")
    case = AbsenceCase.get_by_id(case.id)
    assert (case.days, case.consecutive, case.cumulative_month) == (2, 1, 2)
    assert days_of(case) == {"2025-03-03": "counted", "2025-03-04": "excused", "2025-03-05": "counted"}
    assert step_status(case, "L3") == "superseded"
    assert not CaseStep.select().where((CaseStep.case == case) & (CaseStep.key == "L4")).exists()
    clock.advance(hours=9)
    engine.tick()
    assert "L3" not in sender.step_keys()
    absent(feed, engine, mon + timedelta(days=3))  # Thursday: a third counted day
    clock.advance(hours=9)
    engine.tick()
    (cuigao,) = [s for s in sender.sent if s.key.startswith("L3") and s.notice == "cuigao"]
    assert cuigao.absent_days == ("2025-03-03", "2025-03-05", "2025-03-06")
    case = AbsenceCase.get_by_id(case.id)
    assert (case.days, case.cumulative_month) == (3, 3) and case.level == 3  # 2 consecutive: no L4
    with pytest.raises(cases.CaseError):
        actions.excuse_days(case.id, "accepted_reason", ["2025-03-07"], by="hr-li", now_ms=ms(clock.now()))
    with pytest.raises(cases.CaseError):
        actions.excuse_days(case.id, "returned", ["2025-03-03"], by="hr-li", now_ms=ms(clock.now()))
