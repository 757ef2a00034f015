"""Issue #19.5, the truth about who was reached, over real wires (a real SMTP server, Aliyun SMS and WeCom speaking
their APIs): a step's timeline entry says what each recipient×channel got — a manager with no address on file was
not reached, HR was, by e-mail — and a 催告函's 联系记录 lists the attempts to reach the employee, at the employee's
own addresses, once each with its latest result: not the warnings to the manager and HR, not the call to the
father, not a person's open task, and an SMS tried three times is one line with its delivery receipt's result."""

from __future__ import annotations

import email
import re
from datetime import date
from email import policy as email_policy

from cloud.channels import contact_log, manual
from cloud.channels.base import OutboundMessage
from cloud.escalation import timeline
from cloud.escalation.models import AbsenceCase, CaseStep
from cloud.escalation.policy import DEFAULT_BODY
from cloud.hr.models import Employee
from tests.cloud.escalation import wiring
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local
from tests.harness.providers.base import Fault

MON = date(2025, 3, 3)
LINE = re.compile(r"^\s+\d+\. (\d{4}年\d{2}月\d{2}日 \d{2}:\d{2})，([^，]+)，([^；]+)；$")


def _entry(case: AbsenceCase, key: str) -> timeline.Item:
    (entry,) = [e for e in timeline.items(case) if e.kind == "sent" and e.data.get("step") == key]
    return entry


def test_a_manager_with_no_address_is_said_not_reached_and_hr_reached_by_email(wired, clock):
    feed = PlantFeed(clock).start(handbook=wiring.HANDBOOK)
    feed.hire("2001")
    emp = wiring.staff("2001")
    manager = Employee.get_by_id(emp.manager_id)
    manager.email, manager.wecom_id, manager.phone = "", "", ""  # HR's master data has no address for him
    manager.save()
    service = wired.service(clock)
    clock.advance_to(local(MON, "06:00"))
    day_passes(feed, service, MON)  # D1: the reminder waits for the morning
    day_passes(feed, service, date(2025, 3, 4))  # 09:00 the reminder; 23:30 D2, the warning to manager and HR
    case = AbsenceCase.get()
    assert CaseStep.get((CaseStep.case == case) & (CaseStep.key == "L2")).status == "sent"
    assert wired.smtp_to() == ["hr-team@factory.example.cn"]  # nobody else got an e-mail
    entry = _entry(case, "L2")
    assert entry.text_zh.startswith("已发出 预警：")
    assert "主管：无联系方式，未发送" in entry.text_zh and "人事·邮件 已发出" in entry.text_zh
    assert "人事·企业微信 已发出" in entry.text_zh and entry.text_zh.endswith("未联系到：主管")
    assert "L2" not in entry.text_zh and "manager" not in entry.text_zh  # no internal codes in Chinese
    outcomes = {(o["role"], o["channel"]): o["result"] for o in entry.data["outcomes"]}
    assert outcomes == {
        ("manager", "wecom"): "no_address",
        ("manager", "email"): "no_address",
        ("hr", "wecom"): "sent",
        ("hr", "email"): "sent",
    }
    assert entry.data["unreached"] == ["manager"]
    reminder = _entry(case, "L1")  # the employee's reminder reached him by both channels
    assert reminder.data["unreached"] == [] and "员工·短信 已发出；员工·企业微信 已发出" in reminder.text_zh


def _hr_call(clock, case_id: int, number: str, outcome: manual.Outcome, at, n: int) -> None:  # type: ignore[no-untyped-def]
    """A call HR made and recorded on the case page (``cloud.web.casecontact.record_call`` does exactly this)."""
    message = OutboundMessage(
        case_ref=f"case-{case_id}",
        step_id=f"call-{n}",
        recipient=number,
        channel="voice",
        template_id="manual_call",
        template_version="1",
        subject="人工电话联系 / call by a person",
        text="",
        operator="hr-wang",
    )
    opened = manual.ManualChannel("voice", clock=clock).send(message)
    key = contact_log.idempotency_key(message.case_ref, message.step_id, message.channel, message.recipient)
    stored = contact_log.record_attempt(message, opened, key=key)
    assert stored.attempt_id is not None
    manual.record_result(stored.attempt_id, outcome, operator="hr-wang", happened_at=at, clock=clock)


def _contact_lines(wired) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    (mail,) = [
        m
        for m in (email.message_from_bytes(e.content, policy=email_policy.default) for e in wired.mailbox.envelopes)
        if m["To"] == "zhangsan@example.cn" and "催告函" in str(m["Subject"])
    ]
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")
    head = "本单位已通过以下方式与您联系，均未取得您的答复：\n"
    assert head in text, text
    block = text.split(head, 1)[1].split("\n\n", 1)[0]
    lines = [LINE.match(line) for line in block.splitlines()]
    assert all(lines), block
    return [m.groups() for m in lines if m]


def test_the_cuigao_lists_the_attempts_to_reach_the_employee_once_each(wired, clock):
    ladder = [dict(s) for s in DEFAULT_BODY["ladder"]]
    ladder[0]["channels"] = ["sms", "wecom", "voice"]  # the reminder also opens a call task nobody completes
    feed = PlantFeed(clock).start(handbook=wiring.HANDBOOK, ladder=ladder)
    feed.hire("2001")
    wiring.staff("2001")
    service = wired.service(clock)
    clock.advance_to(local(MON, "06:00"))
    day_passes(feed, service, MON)  # D1
    case = AbsenceCase.get()
    wired.aliyun.inject(Fault.HTTP_500, Fault.HTTP_500)  # the reminder's SMS fails twice, goes the third time
    clock.advance_to(local(date(2025, 3, 4), "09:00"))
    service.tick()
    clock.advance(minutes=10)
    service.tick()
    clock.advance(hours=1)
    service.tick()
    assert CaseStep.get((CaseStep.case == case) & (CaseStep.key == "L1")).status == "sent"
    sms = contact_log.ContactAttempt.select().where(contact_log.ContactAttempt.provider == "aliyun")
    assert [a.status for a in sms] == ["failed", "failed", "sent"] and len({a.idem_key for a in sms}) == 1
    wired.aliyun.push_reports()  # the carrier's delivery report for the SMS that went
    _hr_call(clock, case.id, "+8613800138000", manual.Outcome.CALL_NO_ANSWER, local(date(2025, 3, 4), "11:00"), 1)
    _hr_call(clock, case.id, "+8613900139000", manual.Outcome.CALL_CONNECTED, local(date(2025, 3, 4), "11:05"), 2)
    day_passes(feed, service, date(2025, 3, 4))  # D2: the warning to the manager and HR (e-mail, WeCom)
    day_passes(feed, service, date(2025, 3, 5))  # D3: the 催告函, held for the morning
    clock.advance_to(local(date(2025, 3, 6), "08:30"))
    service.tick()
    assert CaseStep.get((CaseStep.case == case) & (CaseStep.key == "L3")).status == "sent"
    assert _contact_lines(wired) == [
        ("2025年03月04日 09:00", "企业微信", "已发出"),
        ("2025年03月04日 10:10", "短信", "已送达"),  # three tries, one message: its last try and its receipt
        ("2025年03月04日 11:00", "电话", "无人接听"),  # HR's own call, at the time HR says it was made
    ]  # not: the warnings to the manager and HR, the call to the father, the call task still open
