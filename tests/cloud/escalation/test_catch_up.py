"""Issue #19.6: catch-up and order. A runner that starts late (the employee already has three counted days) climbs
the ladder in the policy's order and spacing (ladder's docstring: not before the rung below has gone out, not on
the local date that rung was climbed); 旷工 is never recorded before a 催告函 was served; a 旷工通知书 sent in the
same tick as its 催告函 states it; and a notice that cannot be made says which fact is missing and what to do."""

from __future__ import annotations

import email
from datetime import UTC, date, datetime, timedelta
from email import policy as email_policy

from cloud.escalation import actions, timeline
from cloud.escalation.engine import Engine
from cloud.escalation.models import AbsenceCase, CaseStep, CaseTask
from cloud.escalation.sender import PlannedStep, RecordingSender
from tests.cloud.escalation import wiring
from tests.cloud.escalation.plantfeed import TZ, PlantFeed, day_passes, local, ms, serve_cuigao

MON = date(2025, 3, 3)


class TimedSender(RecordingSender):
    """Keeps each step with the moment it went out."""

    def __init__(self, clock) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.clock = clock
        self.at: dict[str, int] = {}

    def send(self, step: PlannedStep) -> None:
        super().send(step)
        self.at[step.key] = ms(self.clock.now())


def _late_start(clock, engine) -> PlantFeed:  # type: ignore[no-untyped-def]
    """Monday to Wednesday missed and confirmed by the appliance while no runner ran; it starts Thursday 10:00."""
    feed = PlantFeed(clock).start(handbook=wiring.HANDBOOK)
    feed.hire("2001")
    wiring.staff("2001")
    clock.advance_to(local(MON + timedelta(days=2), "23:30"))
    for n in range(3):
        feed.evaluate(MON + timedelta(days=n))
    clock.advance_to(local(MON + timedelta(days=3), "10:00"))
    engine.tick()
    return feed


def _hours(clock, engine, hours: int) -> None:  # type: ignore[no-untyped-def]
    """The runner ticking every half hour."""
    for _ in range(hours * 2):
        clock.advance(minutes=30)
        engine.tick()


def _day(at_ms: int) -> date:
    return datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(TZ).date()


def test_a_late_start_keeps_the_ladders_order_and_spacing(db, clock):
    sender = TimedSender(clock)
    engine = Engine(clock, sender)
    _late_start(clock, engine)
    case = AbsenceCase.get()
    assert case.days == 3 and sender.step_keys() == ["L1"]  # the reminder at once; nothing else this minute
    _hours(clock, engine, 96)  # to Monday 10:00
    at = sender.at
    assert list(at) == ["L1", "L2", "L3:welfare", "L3"]  # in the policy's order
    thu, fri, sat, mon = (MON + timedelta(days=n) for n in (3, 4, 5, 7))
    assert _day(at["L1"]) == thu and _day(at["L2"]) == fri  # a rung a local day, not all in one minute
    assert _day(at["L3:welfare"]) == sat  # the emergency contact: at the day's sending window
    assert _day(at["L3"]) == mon  # the 催告函, a formal notice: the next working day, in the window
    assert at["L3"] == ms(local(mon, "08:00"))
    (cuigao,) = [s for s in sender.sent if s.key == "L3"]
    assert cuigao.absent_days == ("2025-03-03", "2025-03-04", "2025-03-05")  # it states every counted day
    entries = {e.kind: e.at_ms for e in timeline.items(case)}
    assert entries["L2"] >= ms(local(fri, "00:00")) and entries["L3"] >= ms(local(sat, "00:00"))


def test_no_absence_is_recorded_before_a_cuigao_was_served(db, clock):
    sender = TimedSender(clock)
    engine = Engine(clock, sender)
    _late_start(clock, engine)
    case = AbsenceCase.get()
    actions.close_welfare(case.id, "none_found", by="hr-wang", now_ms=ms(clock.now()), note="紧急联系人无法接通")
    _hours(clock, engine, 24 * 9)  # the 催告函 went out Monday; ten days on, no service recorded
    assert "L3" in sender.at and "L4" not in sender.at
    assert AbsenceCase.get_by_id(case.id).level == 3 and "L4" not in timeline.kinds(case)
    served = local(MON + timedelta(days=14), "15:00")
    serve_cuigao(clock, case.id, served)
    _hours(clock, engine, 24 * 6)
    (l4,) = [e for e in timeline.items(case) if e.kind == "L4"]
    assert l4.at_ms > ms(served) and l4.at_ms >= AbsenceCase.get_by_id(case.id).deadline_ms


def _mail(wired, title: str) -> str:  # type: ignore[no-untyped-def]
    (mail,) = [
        m
        for m in (email.message_from_bytes(e.content, policy=email_policy.default) for e in wired.mailbox.envelopes)
        if m["To"] == "zhangsan@example.cn" and title in str(m["Subject"])
    ]
    return mail.get_body(("plain",)).get_content()


def test_an_absence_notice_sent_beside_its_cuigao_states_it(wired, clock):
    """A 旷工通知书 step due in the same tick as the 催告函 (as the engine before 713da23 planned them, and as such a
    step stands in a database upgraded since): it is rendered after the 催告函 is recorded sent, and states it."""
    feed = PlantFeed(clock).start(handbook=wiring.HANDBOOK)
    feed.hire("2001")
    wiring.staff("2001")
    service = wired.service(clock)
    clock.advance_to(local(MON, "06:00"))
    for n in range(3):
        day_passes(feed, service, MON + timedelta(days=n))  # D3 Wednesday 23:30: the 催告函 waits for the morning
    case = AbsenceCase.get()
    cuigao = CaseStep.get((CaseStep.case == case) & (CaseStep.key == "L3"))
    assert cuigao.status == "due"
    CaseStep.create(  # planned beside it by an older engine
        case=case,
        key="L4",
        level=4,
        notice="kuanggong",
        recipients="employee",
        channels="email",
        to_people=True,
        automatic=True,
        status="due",
        planned_ms=cuigao.planned_ms,
        due_ms=cuigao.due_ms,
    )
    clock.advance_to(local(MON + timedelta(days=3), "08:30"))
    service.tick()
    steps = {s.key: s.status for s in CaseStep.select().where(CaseStep.case == case)}
    assert steps["L3"] == "sent" and steps["L4"] == "sent", steps
    text = _mail(wired, "旷工通知书")
    assert "本单位此前已向您发出催告：\n  1. 2025年03月06日《关于限期返岗的通知（催告函）》" in text.replace(
        "\r\n", "\n"
    )
    assert not CaseTask.select().where(CaseTask.kind.startswith("send_failed")).exists()


def test_a_notice_that_cannot_be_made_says_which_fact_is_missing_and_what_to_do(wired, clock):
    handbook = {k: v for k, v in wiring.HANDBOOK.items() if k != "text"}  # the clause's text never published
    feed = PlantFeed(clock).start(handbook=handbook)
    feed.hire("2001")
    wiring.staff("2001")
    service = wired.service(clock)
    clock.advance_to(local(MON, "06:00"))
    for n in range(3):
        day_passes(feed, service, MON + timedelta(days=n))
    clock.advance_to(local(MON + timedelta(days=3), "08:30"))
    service.tick()
    case = AbsenceCase.get()
    assert CaseStep.get((CaseStep.case == case) & (CaseStep.key == "L3")).status == "failed"
    tasks = {t.kind: t for t in CaseTask.select().where(CaseTask.case == case)}
    assert "send_failed:L3" not in tasks  # no channel failed: nobody is sent to check contact details
    task = tasks["render_failed:L3"]
    assert task.title_zh.startswith("催告函无法生成：缺少员工手册条款")
    assert "请在政策中发布员工手册条款原文" in task.title_zh and "handbook" in task.title_en
    (entry,) = [e for e in timeline.items(case) if e.kind == "render_failed"]
    assert entry.text_zh.startswith("未发出：催告函无法生成") and entry.data["missing"] == ["handbook"]
    assert "zhangsan@example.cn" not in wired.smtp_to()  # nothing of it went out
