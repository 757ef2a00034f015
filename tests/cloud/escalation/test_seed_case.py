"""The seed's case, engine-level: a 10-day sick leave ends, the worker never comes back and cannot be
reached; the ladder runs to a termination draft, two HR people confirm, the union is told first, the
notice is served, and the post-termination tasks fall due. Every step in the timeline, in order."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cloud.escalation import actions, timeline
from cloud.escalation.cases import CaseError
from cloud.escalation.models import AbsenceCase, CaseTask
from cloud.escalation.sender import RecordingSender
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local, ms, new_engine, pass_deadline, serve_cuigao

DAY = 86_400_000


def test_sick_leave_ends_no_return_to_termination_served_and_tasks_due(db, clock):
    sender = RecordingSender()
    feed = PlantFeed(clock).start(gates={"approve_cuigao": True, "termination_approvers": 2})
    feed.hire("2001")
    engine = new_engine(clock, sender)
    start = date(2025, 3, 3)  # Monday; ten calendar days of 病假, ending Wednesday 03-12 at midnight
    feed.leave("2001", "BJ-2025-031", local(start, "00:00"), local(start + timedelta(days=10), "00:00"))
    clock.advance_to(local(start, "06:00"))
    day = start
    while day < date(2025, 3, 13):
        day_passes(feed, engine, day)
        day += timedelta(days=1)
    assert AbsenceCase.select().count() == 0  # on leave: nothing to escalate
    day_passes(feed, engine, date(2025, 3, 13))  # Thursday: the first shift after the leave, no punch
    case = AbsenceCase.get()
    assert (case.trigger, case.trigger_ref, case.first_day) == ("leave_end", "BJ-2025-031", "2025-03-13")
    clock.advance(hours=9)
    engine.tick()
    assert sender.step_keys() == ["L1"]  # the reminder waited for 08:00
    day_passes(feed, engine, date(2025, 3, 14))  # D2 Friday
    assert sender.step_keys() == ["L1", "L2"]
    day_passes(feed, engine, date(2025, 3, 17))  # D3 Monday (the weekend does not count)
    case = AbsenceCase.get()
    assert (case.days, case.level, case.welfare) == (3, 3, "open")  # nobody reached him: welfare check first
    actions.approve(case.id, "approve_cuigao", by="hr-wang", now_ms=ms(clock.now()))
    clock.advance(hours=9)
    engine.tick()
    assert sender.step_keys()[2:] == ["L3", "L3:welfare"]
    actions.complete_task(case.id, "ems_cuigao", by="hr-wang", now_ms=ms(clock.now()), proof="EMS EA100200300CN")
    actions.close_welfare(
        case.id, "none_found", by="hr-wang", now_ms=ms(clock.now()), note="紧急联系人电话无法接通；医院及派出所无记录"
    )
    assert AbsenceCase.get().level == 3  # 3 consecutive working days, but 旷工 waits for service and the deadline
    day_passes(feed, engine, date(2025, 3, 18))
    serve_cuigao(clock, case.id, local(date(2025, 3, 19), "15:00"), by="hr-wang", proof="EMS EA100200300CN 妥投")
    # the return deadline it states (Monday 03-24 18:00: issued Tuesday, three days' post, three days to return,
    # off the weekend) passes; Tuesday 03-25 08:30
    pass_deadline(clock, engine, case.id)
    case = AbsenceCase.get()
    assert case.level == 5 and case.state == "L5_TERMINATION_DRAFT"
    assert "L4" in sender.step_keys()
    actions.approve(case.id, "confirm_termination", by="hr-wang", now_ms=ms(clock.now()))
    with pytest.raises(CaseError):
        actions.approve(case.id, "confirm_termination", by="hr-wang", now_ms=ms(clock.now()))  # one person, once
    assert AbsenceCase.get().level == 5  # one approval of two: still a draft
    actions.approve(case.id, "confirm_termination", by="hr-li", now_ms=ms(clock.now()))
    case = AbsenceCase.get()
    assert case.level == 6 and case.union_wait_until_ms is not None
    engine.tick()
    assert "L6:union" in sender.step_keys()
    with pytest.raises(CaseError):
        actions.resolve(case.id, "accepted_reason", by="hr-li", now_ms=ms(clock.now()))  # confirmed: no quiet undo
    actions.complete_task(case.id, "union_reply", by="hr-li", now_ms=ms(clock.now()), proof="工会书面意见：无异议")
    clock.advance(hours=1)
    engine.tick()
    assert AbsenceCase.get().level == 6  # the union's reply does not bring forward the date its letter proposed
    # that date: the first working day after the three working days' reply window (letter Tuesday 03-25)
    clock.advance_to(local(date(2025, 3, 31), "08:30"))
    engine.tick()
    assert AbsenceCase.get().level == 7 and sender.step_keys()[-1] == "L7:termination"
    served = ms(clock.now()) + 2 * DAY
    clock.advance(days=2)
    actions.record_service(
        case.id,
        "termination",
        by="hr-li",
        now_ms=ms(clock.now()),
        served_ms=served,
        method="EMS",
        proof="EMS EA100200399CN 妥投",
    )
    case = AbsenceCase.get()
    assert case.level == 8 and case.effective_ms == served
    due = {t.kind: t.due_ms for t in CaseTask.select().where((CaseTask.case == case) & CaseTask.statutory)}
    assert due["unemployment_list"] == served + 7 * DAY
    assert due["archive_transfer"] == served + 15 * DAY
    assert due["social_insurance_stop"] >= served  # never before the contract lawfully ends
    assert due["certificate"] == served
    assert sender.step_keys() == ["L1", "L2", "L3", "L3:welfare", "L4", "L6:union", "L7:termination"]
    assert all(s.policy == "*/v1" for s in sender.sent)
    assert sender.sent[2].absent_days == ("2025-03-13", "2025-03-14", "2025-03-17")
    kinds = timeline.kinds(case)
    order = [
        "opened",
        "L1",
        "L2",
        "L3",
        "welfare_open",
        "approval",
        "deadline",
        "welfare_closed",
        "served",  # the 催告函's EMS 妥投
        "L4",
        "L5",
        "L6",
        "L7",
        "served",  # the termination notice's
        "L8",
    ]
    positions = []  # each in turn after the one before ("served" twice)
    for k in order:
        positions.append(kinds.index(k, positions[-1] + 1 if positions else 0))
    assert positions == sorted(positions), " ".join(kinds)
    assert timeline.verify(case) == []
    opened = next(i for i in timeline.items(case) if i.kind == "opened")
    assert opened.text_zh.endswith("（政策 全部工厂 · 第1版）"), opened.text_zh  # not "*/v1"
