"""The case page speaks to HR in words, not in the engine's codes: the level, the steps' recipients and
channels, how a closed case ended; and it leads to the work-injury claim."""

from __future__ import annotations

import re

from tests.cloud.web.conftest import the_case

CODES = re.compile(r"\bL[0-9]\b|\bemployee\b|\bmanager\b|\bemergency_contact\b|\bsms\b|\bwecom\b|\bemail\b")


def _visible(html: str, section: str) -> str:
    """The text a person reads in one section: tags and attribute values left out."""
    part = html.split(f'id="{section}"', 1)[1].split("</section>", 1)[0]
    return re.sub(r"<[^>]*>", " ", part.split(">", 1)[1])


def test_the_chinese_case_page_names_levels_steps_and_channels_in_words(login):
    case = the_case("2001")
    staff = login("staff")
    page = staff.get(f"/cases/{case.id}").get_data(as_text=True)
    summary, steps = _visible(page, "summary"), _visible(page, "steps")
    assert f"第{case.level}级" in summary and not CODES.search(summary), summary
    assert "员工" in steps and "短信" in steps and "主管" in steps, steps
    assert not CODES.search(steps), steps
    assert 'id="injury-link"' in page and f"/cases/{case.id}/injury" in page
    english = staff.get(f"/cases/{case.id}?lang=en").get_data(as_text=True)
    assert f"L{case.level}" in _visible(english, "summary") and "employee" in _visible(english, "steps")


def test_a_closed_case_says_how_it_ended_in_words(login):
    case = the_case("2001")
    staff = login("staff")
    staff.post(f"/cases/{case.id}/resolve", {"reason": "accepted_reason", "note": "病假证明已补交"})
    summary = _visible(staff.get(f"/cases/{case.id}").get_data(as_text=True), "summary")
    assert "理由已接受" in summary and "accepted_reason" not in summary, summary


def test_the_case_list_says_what_comes_next_in_words(login):
    case = the_case("2001")
    staff = login("staff")
    staff.post(f"/cases/{case.id}/approve/approve_cuigao", {"note": "已核对地址"})
    listed = staff.get("/cases").get_data(as_text=True)
    row = listed.split(f'href="/cases/{case.id}"', 1)[1].split("</tr>", 1)[0]
    assert "发送催告函" in row and not CODES.search(re.sub(r"<[^>]*>", " ", row)), row
    staff.post(f"/cases/{case.id}/resolve", {"reason": "accepted_reason", "note": "病假证明已补交"})
    listed = staff.get("/cases?status=all").get_data(as_text=True)
    assert "已结案：理由已接受" in listed and "accepted_reason" not in re.sub(r"<[^>]*>", " ", listed)


def test_the_case_page_shows_an_sms_as_the_phone_showed_it(login):
    from datetime import UTC, datetime

    from cloud.channels.base import Attempt, OutboundMessage, Status
    from cloud.channels.contact_log import idempotency_key, record_attempt
    from cloud.escalation.notice_facts import case_ref

    case = the_case("2001")
    words = (
        "【演示电子】张三：您自3月3日起未到岗，请于3月10日 09:00前返岗或说明原因。通知全文：https://hr.example.cn/n/x"
    )
    message = OutboundMessage(case_ref(case.id), "L3.cuigao", "13800138000", "sms", "cuigao", "1", "催告函", words)
    attempt = Attempt(
        datetime.now(UTC), "sms.aliyun", "aliyun", "13800138000", "cuigao", "1", "0" * 64, Status.SENT, sent_text=words
    )
    record_attempt(message, attempt, key=idempotency_key(message.case_ref, "L3.cuigao", "sms", "13800138000"))
    page = login("staff").get(f"/cases/{case.id}").get_data(as_text=True)
    assert f'短信原文（收件人手机所见）：<q translate="no">{words}</q>' in page
