"""The real sender's failure paths through real channels: a mail server that is down (definite failure: tried
again later, then failed for a person), a provider that never answers (uncertain: not resent, a person checks),
and a recipient with no address (nothing sent, said why)."""

from __future__ import annotations

import socket
from datetime import date

from cloud.channels.contact_log import ContactAttempt
from cloud.channels.dispatch import Dispatcher
from cloud.channels.email_smtp import SmtpChannel, SmtpSettings
from cloud.channels.sms_aliyun import AliyunSms, AliyunSmsSettings
from cloud.escalation import timeline
from cloud.escalation.engine import Engine
from cloud.escalation.models import AbsenceCase, CaseStep, CaseTask
from cloud.escalation.outbound import OutboundSender
from cloud.escalation.sender import PlannedStep, SendFailed
from cloud.notices.settings import NoticeSettings
from tests.cloud.escalation import wiring
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local
from tests.harness.providers.aliyun import AliyunSmsServer
from tests.harness.providers.base import Fault

NOTICES = NoticeSettings(
    employer="某某电子有限公司", address="东莞", contact_person="王敏", contact_phone="0769-1", link_base="https://hr.x"
)
ONLY = {  # a ladder whose L1 goes by one channel only
    "key": "L1",
    "level": 1,
    "after_days": 1,
    "notice": "reminder",
    "recipients": ["employee"],
}


def _ladder(channel: str) -> list[dict]:
    from cloud.escalation.policy import DEFAULT_BODY

    return [{**ONLY, "channels": [channel]}, *DEFAULT_BODY["ladder"][1:]]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed


def _first_day(feed, engine, clock) -> AbsenceCase:  # type: ignore[no-untyped-def]
    feed.hire("2001")
    wiring.staff("2001")
    clock.advance_to(local(date(2025, 3, 3), "06:00"))
    day_passes(feed, engine, date(2025, 3, 3))
    clock.advance(hours=9)  # 08:30: inside the sending window
    return AbsenceCase.get()


def test_a_mail_server_that_is_down_is_tried_again_then_the_step_fails_for_a_person(db, clock):
    feed = PlantFeed(clock).start(ladder=_ladder("email"), handbook=wiring.HANDBOOK)
    smtp = SmtpChannel(
        SmtpSettings(host="127.0.0.1", port=closed_port(), sender="hr@x.cn", starttls=False), clock=clock
    )
    engine = Engine(clock, OutboundSender(Dispatcher([smtp], clock=clock), NOTICES, clock))
    case = _first_day(feed, engine, clock)
    first = engine.tick()
    step = CaseStep.get((CaseStep.case == case) & (CaseStep.key == "L1"))
    assert (first.held, step.status) == (1, "due") and step.due_ms > first.held  # due again in 10 minutes
    clock.advance(minutes=10)
    engine.tick()
    assert CaseStep.get_by_id(step.id).status == "due"
    clock.advance(hours=1)
    engine.tick()
    assert CaseStep.get_by_id(step.id).status == "failed"
    tries = ContactAttempt.select().where(ContactAttempt.step_id == "L1")
    assert [t.status for t in tries] == ["failed"] * 3 and {t.idem_key for t in tries} == {tries[0].idem_key}
    assert CaseTask.get((CaseTask.case == case) & (CaseTask.kind == "send_failed:L1")).status == "open"
    assert "send_failed" in timeline.kinds(case)


def test_a_provider_that_never_answers_is_not_sent_again_and_a_person_checks(db, clock):
    feed = PlantFeed(clock).start(ladder=_ladder("sms"), handbook=wiring.HANDBOOK)
    with AliyunSmsServer(clock, wiring.KEY_ID, wiring.KEY_SECRET) as aliyun:
        aliyun.inject(Fault.HANG)
        sms = AliyunSms(
            AliyunSmsSettings(
                wiring.KEY_ID,
                wiring.KEY_SECRET,
                "某某电子",
                {"reminder": "SMS_1"},
                endpoint=f"{aliyun.url}/",
                timeout_s=0.5,
            ),
            clock=clock,
        )
        engine = Engine(clock, OutboundSender(Dispatcher([sms], clock=clock), NOTICES, clock))
        case = _first_day(feed, engine, clock)
        engine.tick()
        step = CaseStep.get((CaseStep.case == case) & (CaseStep.key == "L1"))
        assert step.status == "uncertain"
        assert CaseTask.get((CaseTask.case == case) & (CaseTask.kind == "check_send:L1")).status == "open"
        clock.advance(hours=2)
        engine.tick()
        assert len(aliyun.requests) == 1  # never resent by itself
    assert [a.status for a in ContactAttempt.select()] == ["uncertain"]


def test_no_address_for_any_channel_fails_with_the_reason(db, clock):
    feed = PlantFeed(clock).start(ladder=_ladder("email"), handbook=wiring.HANDBOOK)
    smtp = SmtpChannel(SmtpSettings(host="127.0.0.1", port=closed_port(), sender="hr@x.cn"), clock=clock)
    sender = OutboundSender(Dispatcher([smtp], clock=clock), NOTICES, clock)
    engine = Engine(clock, sender)
    case = _first_day(feed, engine, clock)
    step = CaseStep.get((CaseStep.case == case) & (CaseStep.key == "L1"))
    planned = PlannedStep(
        step.id,
        case.id,
        "L1",
        1,
        "reminder",
        ("union",),
        ("email",),
        case.employee_id,
        "E2001",
        "p1",
        "2001",
        "*/v1",
        ("2025-03-03",),
        None,
        step.planned_ms,
    )
    try:
        sender.send(planned)
    except SendFailed as err:
        assert "union/email" in str(err) and "no address" in str(err)
    else:
        raise AssertionError("sent to nobody, yet no failure")
    assert ContactAttempt.select().count() == 0
