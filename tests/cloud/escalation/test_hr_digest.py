"""Nothing waits unseen (#20.3): the escalation runner's tick sends HR one digest by e-mail (the real SMTP server
on loopback) of the approval that started waiting, the send that failed, the task two working days from due, and
again on its due day; never the same item twice, a restarted runner included. On SQLite and PostgreSQL."""

from __future__ import annotations

import email
from datetime import timedelta
from email import policy as email_policy

import pytest

from cloud.channels.email_smtp import SmtpChannel, SmtpSettings
from cloud.escalation import cases, work_queue
from cloud.escalation.hr_digest import DigestItem, DigestMessage, HrDigest
from cloud.escalation.models import AbsenceCase, CaseTask
from cloud.escalation.sender import RecordingSender
from cloud.store import open_db
from cloud.workers.escalate import EscalationService
from tests.cloud.channels.test_email import free_port
from tests.cloud.escalation import wiring
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local, new_engine
from tests.cloud.web.conftest import CUIGAO_WEEK

HR = "hr-team@factory.example.cn"


@pytest.fixture
def db(cloud_db_url):
    database = open_db(cloud_db_url)
    cases._policies.clear()
    yield database
    database.close()


def at_the_gate(clock):  # type: ignore[no-untyped-def]
    """2001 absent from Monday 03-03 (his reminder failed on every channel); Thursday 09:00 the 催告函 waits for
    HR's approval and the welfare check is due Friday."""
    feed = PlantFeed(clock).start(gates={"approve_cuigao": True, "termination_approvers": 1}, handbook=wiring.HANDBOOK)
    feed.hire("2001")
    wiring.staff("2001")
    engine = new_engine(clock, RecordingSender(fail=frozenset({"reminder"})))
    clock.advance_to(local(CUIGAO_WEEK, "06:00"))
    for n in range(3):
        day_passes(feed, engine, CUIGAO_WEEK + timedelta(days=n))
    clock.advance_to(local(CUIGAO_WEEK + timedelta(days=3), "09:00"))
    engine.tick()
    return engine, AbsenceCase.get(AbsenceCase.user_id == "2001")


def mails(wired) -> list[email.message.EmailMessage]:
    found = []
    for envelope in wired.mailbox.envelopes:
        if HR in envelope.rcpt_tos:
            message = email.message_from_bytes(envelope.content, policy=email_policy.default)
            if message["Subject"].startswith("【人事待办】"):
                found.append(message)
    return found


def body(message) -> str:  # type: ignore[no-untyped-def]
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def runner(wired, clock, engine):  # type: ignore[no-untyped-def]
    """A runner process as ``punchproof cloud escalate`` makes it: channels, digest and all, from the TOML."""
    channels = wired.settings.channels.build(clock)
    return EscalationService(engine, clock, channels=channels, settings=wired.settings)


def test_hr_gets_one_digest_of_new_work_and_never_the_same_item_twice(wired, clock):
    engine, case = at_the_gate(clock)
    monday = local(CUIGAO_WEEK + timedelta(days=7), "17:00")
    CaseTask.create(  # two working days ahead (Friday, Monday)
        case=case,
        kind="termination_certificate",
        title_zh="出具解除劳动合同证明",
        title_en="issue the certificate of termination",
        due_ms=int(monday.timestamp() * 1000),
        statutory=True,
        created_ms=int(clock.now().timestamp() * 1000),
    )
    now = int(clock.now().timestamp() * 1000)
    queue = work_queue.for_person("staff", plant=None, may_approve=True, now_ms=now)  # the page's lists, same rows
    assert [i.what_zh for i in queue.approvals] == ["审批催告函（批准后发出）"]
    assert [i.what_zh for i in queue.sends] == ["第1级 提醒 发送失败"] and queue.replies == []
    assert [i.days_left for i in queue.tasks if i.due_ms] == [0] and [i.case_id for i in queue.new_cases] == [case.id]
    assert work_queue.for_person("pm2", plant="p2", may_approve=False, now_ms=now).new_cases == []

    service = runner(wired, clock, engine)
    notes = service.tick()
    assert any("HR digest: 4 item(s) to " + HR in n for n in notes.notes), notes.notes
    (first,) = mails(wired)
    text = body(first)
    assert first["Subject"] == "【人事待办】4 项工作等待处理 / 4 item(s) waiting for HR"
    link = f"https://hr.example.cn/cases/{case.id}"
    assert f"· 审批催告函（批准后发出） — 张三（E2001），p1：{link}" in text
    soon = "【即将到期（2 个工作日内）】1 项\n· 出具解除劳动合同证明 — 张三（E2001），p1，"
    assert soon + "期限 2025-03-10（法定期限），剩 4 天" in text
    assert "【今天到期或已逾期】1 项\n· 福利核查" in text and "期限 2025-03-06，今天到期" in text
    assert "【发送失败或结果不明】1 项" in text and "第1级 提醒 发送失败" in text and "手动重发" in text
    assert text.index("【待审批】") < text.index("【即将到期") < text.index("【今天到期") < text.index("【发送失败")
    assert text.index("—— English ——") > text.index("【发送失败"), "Chinese first"
    assert "approve the notice to return" in text and "due 2025-03-10 (statutory), 4 days left" in text

    service.tick()
    clock.advance(minutes=11)
    service.tick()
    assert len(mails(wired)) == 1, "nothing new: no second digest"

    restarted = runner(wired, clock, engine)  # the runner restarted: what was sent is in the database
    clock.advance_to(local(CUIGAO_WEEK + timedelta(days=4), "08:00"))  # Friday: the welfare check is overdue now
    restarted.tick()
    assert len(mails(wired)) == 1, "a restart sends nothing again, an overdue task told on its due day included"

    clock.advance_to(local(CUIGAO_WEEK + timedelta(days=7), "08:00"))  # Monday: the certificate's due day
    restarted.tick()
    (_, second) = mails(wired)
    text = body(second)
    assert "【今天到期或已逾期】1 项\n· 出具解除劳动合同证明" in text and "今天到期" in text
    assert "审批催告函" not in text and "发送失败" not in text and "福利核查" not in text, "each item once"
    clock.advance(hours=3)
    restarted.tick()
    assert len(mails(wired)) == 2
    assert [m.status for m in DigestMessage.select().order_by(DigestMessage.id)] == ["sent", "sent"]
    assert DigestItem.select().count() == 5


@pytest.mark.parametrize("cloud_db_url", ["sqlite"], indirect=True)
def test_a_digest_no_channel_took_is_sent_in_the_next_window(wired, clock):
    engine, case = at_the_gate(clock)
    nowhere = SmtpChannel(SmtpSettings("127.0.0.1", free_port(), "hr@factory.example.cn", starttls=False))
    notes = HrDigest([nowhere], wired.settings.notices, clock).run()
    assert notes and notes[0].startswith("HR digest not sent: email→" + HR), notes
    assert DigestMessage.get().status == "failed" and DigestItem.select().count() == 0
    assert mails(wired) == []
    channels = wired.settings.channels.build(clock)
    HrDigest(channels, wired.settings.notices, clock).run()
    assert len(mails(wired)) == 1 and "审批催告函" in body(mails(wired)[0])
