"""The union's reply window counts from the day its letter actually goes out: a letter held back (the channels
down for two days) moves the window, the termination date it proposes and the union reply task with it, and
the 解除通知书 waits for that later date."""

from __future__ import annotations

from datetime import date, timedelta

from cloud.escalation import actions, machine, timeline, workdays
from cloud.escalation.engine import Engine
from cloud.escalation.models import AbsenceCase, CaseStep, CaseTask
from cloud.escalation.sender import HoldingSender, RecordingSender
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local, ms, new_engine, pass_deadline, serve_cuigao

START = date(2025, 3, 3)  # Monday


def test_a_union_letter_sent_late_gives_the_union_its_whole_window_and_the_termination_waits(db, clock):
    sender = RecordingSender()
    feed = PlantFeed(clock).start(gates={"approve_cuigao": False, "termination_approvers": 1})
    feed.hire("2001")
    engine = new_engine(clock, sender)
    clock.advance_to(local(START, "06:00"))
    for day in (START, START + timedelta(days=1), START + timedelta(days=2)):
        day_passes(feed, engine, day)
    case = AbsenceCase.get()
    actions.open_welfare(case.id, by="hr-wang", now_ms=ms(clock.now()), note="无人接听")
    actions.close_welfare(case.id, "none_found", by="hr-wang", now_ms=ms(clock.now()), note="紧急联系人无法接通")
    clock.advance(hours=9)
    engine.tick()
    assert "L3" in sender.step_keys()
    serve_cuigao(clock, case.id, local(START + timedelta(days=3), "15:00"), by="hr-wang", proof="EMS 妥投")
    pass_deadline(clock, engine, case.id)
    assert AbsenceCase.get().level == 5
    actions.approve(case.id, "confirm_termination", by="hr-wang", now_ms=ms(clock.now()))
    confirmed = AbsenceCase.get()
    assert confirmed.level == 6
    planned_window = confirmed.union_wait_until_ms

    down = Engine(clock, HoldingSender(), runner_id="r1")  # the channels are down: the letter waits
    down.tick()
    assert CaseStep.get(CaseStep.key == "L6:union").status == "due"
    clock.advance(days=4)  # the next Monday the channels are back, and the letter goes out
    assert workdays.local_day(ms(clock.now()), "Asia/Shanghai").weekday() == 0
    sent_at = ms(clock.now())
    engine.tick()
    assert CaseStep.get(CaseStep.key == "L6:union").status == "sent"
    case = AbsenceCase.get()
    tz = case.plant.timezone
    expected = machine.calendar(machine.policy_of(case), tz).union_deadline(sent_at)
    assert case.union_wait_until_ms == expected > planned_window, (case.union_wait_until_ms, planned_window)
    assert CaseTask.get((CaseTask.case == case) & (CaseTask.kind == "union_reply")).due_ms == expected
    assert "union_window" in timeline.kinds(case)

    proposed = workdays.next_workday_start(expected, tz)  # the date the letter proposes
    clock.advance_to(local(workdays.local_day(planned_window, tz), "09:00"))  # the first window's end: too early
    assert ms(clock.now()) < proposed
    engine.tick()
    assert AbsenceCase.get().level == 6 and "L7:termination" not in sender.step_keys()
    clock.advance_to(local(workdays.local_day(proposed, tz), "09:00"))
    engine.tick()
    assert AbsenceCase.get().level == 7 and sender.step_keys()[-1] == "L7:termination"
