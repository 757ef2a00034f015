"""ESCALATION.md §7 scenarios against a real SQLite database, the real rules engine, real signed
logs and the real ingest, with a frozen clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import chinese_calendar

from appliance import rules
from cloud.escalation import actions, timeline
from cloud.escalation.engine import Engine
from cloud.escalation.models import AbsenceCase, CaseStep, CaseTask, Gate
from cloud.escalation.sender import RecordingSender
from tests.cloud.escalation.plantfeed import (
    TZ,
    PlantFeed,
    day_passes,
    local,
    ms,
    new_engine,
    pass_deadline,
    run_days,
    serve_cuigao,
)


def open_cases():
    return list(AbsenceCase.select().where(AbsenceCase.open_key.is_null(False)))


def only_case() -> AbsenceCase:
    rows = list(AbsenceCase.select())
    assert len(rows) == 1, rows
    return rows[0]


def one_worker(clock, sender=None, *, hire: dict | None = None, **policy) -> tuple[PlantFeed, Engine]:
    """The start of each scenario: the plant (``policy`` changed as given), worker 1001 hired, an engine."""
    feed = PlantFeed(clock).start(**policy)
    feed.hire("1001", **(hire or {}))
    return feed, new_engine(clock, sender)


def step_status(case, key):
    return CaseStep.get((CaseStep.case == case) & (CaseStep.key == key)).status


def step_sent_ms(case, key) -> int:
    return CaseStep.get((CaseStep.case == case) & (CaseStep.key == key)).sent_ms


def test_night_shift_then_day_shift_is_not_an_absence(db, clock):
    mon = date(2025, 3, 3)
    tue = mon + timedelta(days=1)
    feed, engine = one_worker(clock, hire={"roster": None, "explicit": {mon: ("N",), tue: ("A",)}})
    clock.advance_to(local(mon, "17:50"))
    for hhmm, day in (("17:55", mon), ("07:02", tue), ("13:58", tue), ("22:01", tue)):
        feed.punch("1001", local(day, hhmm))
    run_days(feed, engine, mon, tue + timedelta(days=1))
    statuses = {f["key"]: f["status"] for f in feed.facts.values()}
    assert statuses == {"1001/2025-03-03/N": "present", "1001/2025-03-04/A": "present"}
    assert AbsenceCase.select().count() == 0


def test_night_shift_worked_then_day_shift_missed_is_one_absent_day(db, clock):
    mon = date(2025, 3, 3)
    tue = mon + timedelta(days=1)
    feed, engine = one_worker(clock, hire={"roster": None, "explicit": {mon: ("N",), tue: ("A",)}})
    clock.advance_to(local(mon, "17:50"))
    feed.punch("1001", local(mon, "17:55"))
    feed.punch("1001", local(tue, "07:02"))  # the night's check-out, never the afternoon's check-in
    run_days(feed, engine, mon, tue + timedelta(days=1))
    case = only_case()
    assert (case.first_day, case.days) == ("2025-03-04", 1)


def test_holidays_and_tiaoxiu_count_only_scheduled_working_days(db, clock):
    # 2025 National Day: 10-01..10-08 off; Sunday 09-28 and Saturday 10-11 are 调休 working days
    assert chinese_calendar.is_holiday(date(2025, 10, 3)) and chinese_calendar.is_workday(date(2025, 10, 11))
    feed, engine = one_worker(
        clock,
        thresholds={"consecutive_days": 5, "month_days": 0, "year_days": 0},
        ladder=_ladder(consecutive=5),
        welfare_check_day=0,
    )
    clock.advance_to(local(date(2025, 9, 26), "07:00"))
    feed.punch("1001", local(date(2025, 9, 26), "07:58"))
    feed.punch("1001", local(date(2025, 9, 26), "17:01"))
    counts = {}
    day = date(2025, 9, 26)
    while day <= date(2025, 10, 13):
        day_passes(feed, engine, day)
        case = AbsenceCase.get_or_none()
        counts[day.isoformat()] = case.days if case else 0
        day += timedelta(days=1)
    assert counts["2025-09-27"] == 0  # Saturday, rest
    assert counts["2025-09-28"] == 1  # Sunday 调休: a working day
    assert counts["2025-09-30"] == 3
    assert counts["2025-10-08"] == 3  # the whole holiday counts nothing
    assert counts["2025-10-09"] == 4
    assert counts["2025-10-10"] == 5
    assert counts["2025-10-11"] == 6  # Saturday 调休
    assert counts["2025-10-12"] == 6  # Sunday, rest
    case = only_case()
    assert counts["2025-10-13"] == 7
    assert case.consecutive == 7 and case.level == 3  # 旷工 waits for the 催告函's service and deadline
    # the basis (5 consecutive) is met on the 5th working day, not the 5th calendar day: 旷工 is held from then on
    held = next(e for e in timeline.items(case) if e.kind == "blocked")
    assert ms(local(date(2025, 10, 10), "21:00")) <= held.at_ms < ms(local(date(2025, 10, 11), "00:00"))
    clock.advance_to(local(date(2025, 10, 14), "08:30"))  # this test ticked only at 23:30: the morning's run
    engine.tick()  # the 催告函 goes out (people are not messaged at night)
    sent = datetime.fromtimestamp(step_sent_ms(case, "L3") / 1000, UTC).astimezone(TZ)
    serve_cuigao(clock, case.id, local(sent.date() + timedelta(days=1), "15:00"))  # EMS 妥投 the next day
    deadline = pass_deadline(clock, engine, case.id)
    case = only_case()
    assert case.consecutive == 7 and case.level >= 4
    entries = timeline.items(case)
    l4 = next(e for e in entries if e.kind == "L4")
    assert l4.at_ms >= ms(local(date(2025, 10, 10), "21:00"))  # the 5th working day, not the 5th calendar day
    assert l4.at_ms >= ms(deadline)  # and only once the 催告函's deadline passed


def _ladder(consecutive: int) -> list[dict]:
    from cloud.escalation.policy import DEFAULT_BODY

    return [dict(s, after_days=consecutive) if s["level"] == 4 else dict(s) for s in DEFAULT_BODY["ladder"]]


def test_leave_ending_on_a_friday_before_a_saturday_tiaoxiu_workday(db, clock):
    fri, sat = date(2025, 2, 7), date(2025, 2, 8)
    assert chinese_calendar.is_workday(sat) and sat.weekday() == 5
    feed, engine = one_worker(clock)
    feed.leave("1001", "QJ-1", local(date(2025, 2, 5), "00:00"), local(date(2025, 2, 8), "00:00"))
    clock.advance_to(local(date(2025, 2, 5), "06:00"))
    run_days(feed, engine, date(2025, 2, 5), fri)
    assert AbsenceCase.select().count() == 0
    day_passes(feed, engine, sat)
    case = only_case()
    assert (case.trigger, case.trigger_ref, case.first_day) == ("leave_end", "QJ-1", "2025-02-08")


def test_an_appliance_outage_never_becomes_an_absence(db, clock):
    mon = date(2025, 3, 3)
    feed, engine = one_worker(clock)
    clock.advance_to(local(mon, "07:00"))
    feed.watermark = local(mon, "07:30")  # the LAN goes down: the terminal is not read after 07:30
    feed.punches.append(rules.Punch("1001", "ZK1", local(mon, "07:58")))  # on the terminal, not yet read
    run_days(feed, engine, mon, mon + timedelta(days=2))
    assert [f for f in feed.facts.values() if f["shift"]] == []  # held, not confirmed: nothing to count
    feed.watermark = None  # back: the terminal is read, the punch that was there all along arrives
    feed.punches.pop()
    feed.punch("1001", local(mon, "07:58"))
    feed.punch("1001", local(mon, "17:02"))
    feed.evaluate(mon)
    engine.tick()
    assert AbsenceCase.select().count() == 0
    assert feed.facts["1001/2025-03-03/D"]["status"] == "present"


def test_retro_leave_after_l3_supersedes_what_is_pending_and_keeps_what_was_sent(db, clock):
    sender = RecordingSender()
    feed, engine = one_worker(
        clock,
        sender,
        thresholds={"consecutive_days": 4, "month_days": 0, "year_days": 0},
        ladder=_ladder(4),
        welfare_check_day=0,
    )
    mon = date(2025, 3, 3)
    clock.advance_to(local(mon, "06:00"))
    run_days(feed, engine, mon, mon + timedelta(days=2))
    clock.advance(hours=9)  # Thursday morning: quiet hours over, the 催告函 goes out
    engine.tick()
    case = only_case()
    assert case.level == 3 and step_status(case, "L3") == "sent"
    day_passes(feed, engine, mon + timedelta(days=3))  # D4 at 23:30: the basis is met
    serve_cuigao(clock, case.id, local(mon + timedelta(days=4), "15:00"))  # EMS 妥投 on Friday
    # the deadline (Wednesday 03-12 18:00) passed late in the evening: the 旷工 notice is planned, held till morning
    pass_deadline(clock, engine, case.id, hhmm="23:30")
    assert step_status(case, "L4") == "due"
    # HR records the sick leave the family reports, covering all four days
    feed.leave("1001", "BJ-7", local(mon, "00:00"), local(mon + timedelta(days=4), "00:00"), appliance=False)
    sent_before = list(sender.step_keys())
    engine.tick()
    case = AbsenceCase.get_by_id(case.id)
    assert case.state == "RESOLVED" and case.resolution == "excused"
    assert step_status(case, "L3") == "sent"  # what was done stays done
    assert step_status(case, "L4") == "superseded"
    assert timeline.kinds(case).count("superseded") == 5  # four days and the pending step
    clock.advance(hours=9)
    engine.tick()
    assert sender.step_keys() == sent_before
    assert timeline.verify(case) == []


def test_retro_leave_for_one_day_supersedes_a_cuigao_awaiting_approval(db, clock):
    feed, engine = one_worker(clock, gates={"approve_cuigao": True, "termination_approvers": 1})
    mon = date(2025, 3, 3)
    clock.advance_to(local(mon, "06:00"))
    run_days(feed, engine, mon, mon + timedelta(days=2))
    case = only_case()
    assert step_status(case, "L3") == "awaiting_approval"
    feed.leave(
        "1001",
        "BJ-8",
        local(mon + timedelta(days=2), "00:00"),
        local(mon + timedelta(days=3), "00:00"),
        appliance=False,
    )
    engine.tick()
    case = AbsenceCase.get_by_id(case.id)
    assert (case.days, case.level, case.state) == (2, 2, "L2_MANAGER_HR_WARNED")
    assert step_status(case, "L3") == "superseded"
    assert Gate.get((Gate.case == case) & (Gate.kind == "approve_cuigao")).status == "superseded"


def test_ack_pauses_outbound_steps_and_its_timeout_resumes_the_ladder(db, clock):
    sender = RecordingSender()
    feed, engine = one_worker(clock, sender)
    thu, fri = date(2025, 3, 6), date(2025, 3, 7)
    feed.rosters["1001"] = rules.EmployeeRoster("1001", feed.rosters["1001"].roster, valid_from=thu)
    clock.advance_to(local(thu, "06:00"))
    run_days(feed, engine, thu, fri)  # D1 Thursday, D2 Friday
    case = only_case()
    assert case.level == 2 and "L2" in sender.step_keys()
    actions.acknowledge(case.id, "contacted", by="hr-wang", now_ms=ms(clock.now()))
    sent = len(sender.sent)
    clock.advance(hours=9)  # Saturday morning, inside the sending window
    engine.tick()
    assert len(sender.sent) == sent  # acknowledged: nothing automatic goes out
    assert AbsenceCase.get_by_id(case.id).level == 2
    clock.advance(hours=16)  # 24 h after the ack: it times out (no new working day over the weekend)
    engine.tick()
    case = AbsenceCase.get_by_id(case.id)
    assert case.level == 3 and case.days == 2
    assert "ack_timeout" in timeline.kinds(case)
    assert sender.step_keys() == ["L1", "L2"]  # 00:30 on Sunday: messages to people wait for 08:00
    clock.advance(hours=8)
    engine.tick()
    assert sorted(sender.step_keys()) == ["L1", "L2", "L3:welfare"]  # the 催告函, a formal notice: not on Sunday
    clock.advance(days=1)  # Monday 08:30, a working day
    engine.tick()
    assert sorted(sender.step_keys()) == ["L1", "L2", "L3", "L3:welfare"]


def test_a_new_missed_shift_retriggers_an_acknowledged_case(db, clock):
    feed, engine = one_worker(clock, ack_timeout_hours=48)
    mon = date(2025, 3, 3)
    clock.advance_to(local(mon, "06:00"))
    day_passes(feed, engine, mon)
    case = only_case()
    actions.acknowledge(case.id, "family", by="hr-wang", now_ms=ms(clock.now()))
    day_passes(feed, engine, mon + timedelta(days=1))
    case = AbsenceCase.get_by_id(case.id)
    assert case.acked_until_ms is None and "retrigger" in timeline.kinds(case)
    assert case.level == 1  # the reminder the ack held goes out first (at 08:00), then the warning
    clock.advance(hours=9)
    engine.tick()
    assert AbsenceCase.get_by_id(case.id).level == 2


def test_statutory_timers_run_on_after_an_ack(db, clock):
    # ten days' acknowledgement: longer than the 催告函's deadline (three days' post, then three days to return)
    feed, engine = one_worker(clock, ack_timeout_hours=240)
    mon = date(2025, 3, 3)
    clock.advance_to(local(mon, "06:00"))
    run_days(feed, engine, mon, mon + timedelta(days=2))
    case = only_case()
    actions.close_welfare(case.id, "none_found", by="hr-wang", now_ms=ms(clock.now()), note="紧急联系人称其外出务工")
    clock.advance(hours=9)  # the 催告函 goes out in the morning; its deadline starts
    engine.tick()
    case = AbsenceCase.get_by_id(case.id)
    assert case.level == 3 and case.deadline_ms is not None  # 旷工 waits for service and the deadline
    deadline = case.deadline_ms
    actions.acknowledge(case.id, "leave_pending", by="hr-wang", now_ms=ms(clock.now()))
    serve_cuigao(clock, case.id, local(mon + timedelta(days=4), "15:00"))  # EMS 妥投 on Friday
    clock.advance(seconds=(deadline - ms(clock.now())) / 1000 + 60)
    engine.tick()
    case = AbsenceCase.get_by_id(case.id)
    assert case.acked_until_ms is not None and case.acked_until_ms > ms(clock.now())  # still acknowledged
    assert case.deadline_ms == deadline  # the ack moved no statutory or procedural clock
    assert case.level == 5 and Gate.get((Gate.case == case) & (Gate.kind == "confirm_termination")).status == "open"


def test_public_notice_is_deemed_served_after_thirty_days(db, clock):
    sender = RecordingSender()
    feed, engine = one_worker(clock, sender, union={"exists": False, "wait_working_days": 3, "channels": ["email"]})
    mon = date(2025, 3, 3)
    clock.advance_to(local(mon, "06:00"))
    run_days(feed, engine, mon, mon + timedelta(days=2))
    case = only_case()
    actions.close_welfare(case.id, "none_found", by="hr", now_ms=ms(clock.now()))
    clock.advance(hours=9)
    engine.tick()  # the 催告函 goes out; three days to return once served
    serve_cuigao(clock, case.id, local(mon + timedelta(days=4), "15:00"))  # EMS 妥投 on Friday
    pass_deadline(clock, engine, case.id)
    actions.approve(case.id, "confirm_termination", by="hr-li", now_ms=ms(clock.now()))
    clock.advance(hours=1)
    engine.tick()
    assert "L7:termination" in sender.step_keys()
    actions.record_service_failed(case.id, "termination", by="hr", now_ms=ms(clock.now()), proof="EMS 退回 EA123")
    published = ms(clock.now())
    actions.record_publication(
        case.id, "termination", by="hr", now_ms=published, published_ms=published, proof="报纸公告"
    )
    clock.advance(days=29, hours=23)
    engine.tick()
    assert AbsenceCase.get_by_id(case.id).level == 7
    clock.advance(hours=2)
    engine.tick()
    case = AbsenceCase.get_by_id(case.id)
    assert case.level == 8 and case.effective_ms == published + 30 * 86_400_000
    task = CaseTask.get((CaseTask.case == case) & (CaseTask.kind == "archive_transfer"))
    assert task.due_ms == case.effective_ms + 15 * 86_400_000 and task.statutory
