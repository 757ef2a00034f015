"""The notice link page ``/n/<token>`` (issue #20, item 2): the 催告函 the real engine sent ends with its link;
opening it, 我已收到 and a reply with a 病假证明 go into the contact log, the case's timeline and the cloud's
signed evidence log; the reply pauses the automatic steps and is on the case's page for HR. A wrong, expired or
revoked token gets a plain Chinese page. Chromium at 360×740 does it as the employee would on a phone."""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading

from werkzeug.serving import make_server

from cloud.channels.contact_log import ContactAttempt
from cloud.escalation.casefiles import CaseDocument
from cloud.escalation.models import AbsenceCase, CaseEntry, CaseTask
from cloud.evidence.log import EvidenceLog, EvidenceRecord
from cloud.notices import links
from cloud.notices.links import Links, NoticeLink
from ledger.evidence import named_documents
from ledger.record import SignedRecord
from tests.cloud.escalation.plantfeed import ms
from tests.cloud.web.conftest import token as csrf_of
from tests.cloud.web.test_gate_preview import mail_to
from tests.harness.browser import chromium, shoot

PHONE_UA = "Mozilla/5.0 (Linux; Android 14; 2201123C) AppleWebKit/537.36 Chrome/124 Mobile Safari/537.36"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64  # the phone's photo of a 病假证明
PDF = b"%PDF-1.4\n% a doctor's note\n%%EOF\n"
LINK = re.compile(r"https://hr\.example\.cn/n/([A-Za-z0-9_-]{22})")


def sent_cuigao(site) -> tuple[AbsenceCase, str]:
    """The 催告函 approved and sent by the real sender (rendered, kept, by e-mail and SMS); its link's token."""
    case = site.at_cuigao_gate()
    site.login("staff").post(f"/cases/{case.id}/approve/approve_cuigao", {"note": "同意"})
    site.engine(real=True).tick()
    found = LINK.search(mail_to(site, "zhangsan@example.cn"))
    assert found, "the notice has no link"
    sms = [s for s in site.wired.aliyun.sent if found.group(0) in json.dumps(s, ensure_ascii=False, default=str)]
    assert sms, "the SMS carries the same link"
    return AbsenceCase.get_by_id(case.id), found.group(1)


def link_rows(status: str) -> list[ContactAttempt]:
    return list(
        ContactAttempt.select().where((ContactAttempt.provider == "notice_link") & (ContactAttempt.status == status))
    )


def test_open_ack_and_reply_are_recorded_signed_pause_the_case_and_reach_hr(site):
    case, token = sent_cuigao(site)
    phone = site.app.test_client()
    via_proxy = {"X-Forwarded-For": "203.0.113.7", "User-Agent": PHONE_UA}  # nginx on this machine forwards

    page = phone.get(f"/n/{token}", headers=via_proxy, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    text = page.get_data(as_text=True)
    assert page.status_code == 200, text
    link = NoticeLink.get(NoticeLink.token_sha256 == hashlib.sha256(token.encode()).hexdigest())
    assert link.doc_no in text and "东莞市某某电子有限公司" in text and "关于限期返岗的通知（催告函）" in text
    assert "请于2025年" in text and "我已收到" in text and 'lang="zh-CN"' in text
    [read] = link_rows("read")
    assert read.case_ref == f"case-{case.id}" and read.step_id == "L3" and "203.0.113.7" in read.reason
    assert PHONE_UA in read.reason and read.operator == "员工本人（通知链接）"
    phone.get(f"/n/{token}", headers=via_proxy)  # a reload within the minute: the same read
    assert len(link_rows("read")) == 1
    site.clock.advance(seconds=61)
    phone.get(f"/n/{token}", headers={"User-Agent": PHONE_UA}, environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert len(link_rows("read")) == 2 and "198.51.100.9" in link_rows("read")[1].reason  # a later open is evidence

    csrf = csrf_of(phone.get(f"/n/{token}").get_data(as_text=True))
    assert phone.post(f"/n/{token}/ack", data={}).status_code == 400  # no CSRF token: refused, as everywhere
    for _twice in range(2):
        assert phone.post(f"/n/{token}/ack", data={"csrf": csrf}, headers=via_proxy).status_code == 302
    assert len(link_rows("acknowledged")) == 1
    assert "您已确认收到" in phone.get(f"/n/{token}").get_data(as_text=True)

    bad = phone.post(
        f"/n/{token}/reply",
        data={"csrf": csrf, "reason": "sick", "file": (io.BytesIO(b"MZ\x90\x00 not a photo"), "note.exe")},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 400 and "附件只能是图片" in bad.get_data(as_text=True)
    answer = phone.post(
        f"/n/{token}/reply",
        data={
            "csrf": csrf,
            "reason": "sick",
            "return_on": "2025-03-12",
            "text": "急性肠胃炎住院，附病假证明",
            "file": (io.BytesIO(PNG), "病假证明.png"),
        },
        content_type="multipart/form-data",
        headers=via_proxy,
    )
    assert answer.status_code == 302 and "replied=1" in answer.headers["Location"]
    digest = hashlib.sha256(PNG).hexdigest()
    kept = CaseDocument.get((CaseDocument.case_id == case.id) & (CaseDocument.sha256 == digest))
    assert bytes(kept.data) == PNG and kept.mime == "image/png"
    [replied] = link_rows("replied")
    assert "病假" in replied.reason and "2025-03-12" in replied.reason and digest in replied.reason

    # the reply pauses the automatic steps as HR's acknowledgement does, and is a task for HR
    case = AbsenceCase.get_by_id(case.id)
    assert case.acked_until_ms > ms(site.clock.now()) and case.ack_reason == "sick" and case.contacted
    task = CaseTask.get((CaseTask.case == case.id) & (CaseTask.kind == "review_reply"))
    assert task.status == "open"
    kinds = [e.kind for e in CaseEntry.select().where(CaseEntry.case == case.id).order_by(CaseEntry.seq)]
    assert kinds[-5:] == ["notice_read", "notice_read", "notice_ack", "notice_reply", "ack"], kinds

    # on the case's page, in front of HR
    staff = site.login("staff").get(f"/cases/{case.id}").get_data(as_text=True)
    replies = staff.split('<section id="replies">')[1].split("</section>")[0]
    assert "原因：病假" in replies and "2025-03-12" in replies and "急性肠胃炎住院" in replies
    assert digest in replies and "203.0.113.7" in replies and "确认收到" in replies
    download = re.search(r'class="reply-file" href="([^"]+)"', replies).group(1)
    assert site.login("staff").get(download).data == PNG

    # the cloud's signed log takes them in: contact records and the employee's actions, the file named by hash
    EvidenceLog(site.wired.evidence_key, site.wired.witness, site.clock).catch_up()
    signed = list(EvidenceRecord.select().where(EvidenceRecord.case_ref == f"case-{case.id}"))
    fields = []
    for record in signed:
        SignedRecord(bytes(record.data), bytes(record.sig)).verify(site.wired.evidence_key.verify_key)
        fields.append(json.loads(bytes(record.data)))
    statuses = [f["status"] for f in fields if f["type"] == "contact" and f["provider"] == "notice_link"]
    assert statuses == ["read", "read", "acknowledged", "replied"]
    actions = {f["kind"]: f for f in reversed(fields) if f["type"] == "case_action"}  # each kind's first
    assert {"notice_read", "notice_ack", "notice_reply"} <= set(actions)
    assert "203.0.113.7" in actions["notice_read"]["text"] and PHONE_UA in actions["notice_read"]["data"]
    assert digest in named_documents(actions["notice_reply"])  # so the case's bundle carries the file


def test_a_wrong_expired_or_revoked_link_gets_a_plain_chinese_page(site):
    app, clock = site.app, site.clock
    client = app.test_client()
    live = Links(clock, days=60).token(1, "L1", "人通〔2025〕00001-L1")  # links need no case to be refused
    old = Links(clock, days=1).token(1, "L3", "人通〔2025〕00001-L3")
    gone = Links(clock, days=60).token(1, "L4", "人通〔2025〕00001-L4")
    links.revoke(1, "L4", ms(clock.now()))
    clock.advance(days=2)
    for path, status, words in (
        ("/n/AAAAAAAAAAAAAAAAAAAAAA", 404, "链接无效"),
        ("/n/' or 1=1 --", 404, "链接无效"),
        (f"/n/{live[:-1]}", 404, "链接无效"),
        (f"/n/{old}", 410, "链接已过期"),
        (f"/n/{gone}", 410, "链接已停用"),
        (f"/n/{old}/notice.pdf", 410, "链接已过期"),
    ):
        page = client.get(path)
        text = page.get_data(as_text=True)
        assert page.status_code == status and words in text and "致电人力资源部" in text, (path, text)
        assert "Traceback" not in text and "case" not in text.lower() and "token" not in text.lower()
    assert client.post(f"/n/{gone}/ack", data={}).status_code in (400, 410)
    assert "This link has expired" in client.get(f"/n/{old}?lang=en").get_data(as_text=True)
    assert client.get(f"/n/{live}").status_code == 200  # a page without its kept notice still opens

    guesser = app.test_client()
    for n in range(30):
        assert guesser.get(f"/n/{n:022d}", environ_base={"REMOTE_ADDR": "192.0.2.50"}).status_code == 404
    refused = guesser.get(f"/n/{live}", environ_base={"REMOTE_ADDR": "192.0.2.50"})
    assert refused.status_code == 429 and "尝试次数过多" in refused.get_data(as_text=True)
    assert client.get(f"/n/{live}").status_code == 200  # another address is not held back


def test_the_employee_reads_acknowledges_and_replies_on_a_phone_in_chromium(site):
    case, token = sent_cuigao(site)
    server = make_server("127.0.0.1", 0, site.app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 360, "height": 740}, locale="zh-CN", user_agent=PHONE_UA)
            page.goto(f"http://127.0.0.1:{server.server_port}/n/{token}")  # the link as the SMS gives it
            page.locator("#notice-text").wait_for(timeout=15_000)
            assert "请通过以下链接阅读本通知全文并确认收到" in page.locator("#notice-text").inner_text()
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= 360, f"the page is {wide} px wide on a 360 px phone"
            shoot(page, "notice-link", {"phone": (360, 740)})
            page.click("#ack-button")
            page.locator("#acked").wait_for(timeout=15_000)
            page.select_option("#reason", "sick")
            page.fill("#return_on", "2025-03-12")
            page.fill("#text", "发烧住院")
            page.set_input_files(
                "#file", files=[{"name": "病假证明.pdf", "mimeType": "application/pdf", "buffer": PDF}]
            )
            page.click("#reply-button")
            page.locator("#replied").wait_for(timeout=15_000)
            shoot(page, "notice-link-replied", {"phone": (360, 740)})
    finally:
        server.shutdown()
    rows = list(ContactAttempt.select().where(ContactAttempt.provider == "notice_link").order_by(ContactAttempt.id))
    assert [r.status for r in rows] == ["read", "acknowledged", "replied"]  # the redirects' reloads: same minute
    assert all(PHONE_UA in r.reason for r in rows)
    assert CaseDocument.get(CaseDocument.sha256 == hashlib.sha256(PDF).hexdigest()).case_id == case.id
    assert AbsenceCase.get_by_id(case.id).ack_reason == "sick"
