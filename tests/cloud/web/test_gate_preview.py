"""See before you approve (issue #19, item 9): each gate's panel shows the document it would release, as it would
go out now, marked 草稿/预览，未发出; looking records nothing; what then goes out is what was shown, deadline
included. The termination's confirmation closes its review task naming the drafts reviewed."""

from __future__ import annotations

import email
import hashlib
import html
import re
import threading
from email import policy as email_policy

from werkzeug.serving import make_server

from cloud.channels.contact_log import ContactAttempt
from cloud.escalation.casefiles import CaseDocument
from cloud.escalation.models import AbsenceCase, CaseTask
from cloud.escalation.preview import MARK
from cloud.notices.links import PLACEHOLDER
from cloud.notices.records import NoticeDocument
from tests.cloud.web.conftest import PASSWORD
from tests.harness.browser import chromium, shoot, sign_in


def previews(page: str) -> dict[str, dict[str, str]]:
    """Each preview on the page's gate panels: its data attributes, its text and its PDF link."""
    found = {}
    for attrs, body in re.findall(r'<div class="preview" ([^>]*)>(.*?)</div>', page, re.S):
        fields = dict(re.findall(r'data-([\w-]+)="([^"]*)"', attrs))
        text = re.search(r'<pre class="preview-text"[^>]*>(.*?)</pre>', body, re.S)
        pdf = re.search(r'<a class="preview-pdf" href="([^"]+)"', body)
        assert text and pdf, body
        found[fields["notice"]] = {**fields, "text": html.unescape(text.group(1)), "pdf": pdf.group(1), "html": body}
    return found


def mail_to(site, address: str) -> str:
    """The text of the last mail the local SMTP server took for ``address``."""
    for envelope in reversed(site.wired.mailbox.envelopes):
        if address in envelope.rcpt_tos:
            message = email.message_from_bytes(envelope.content, policy=email_policy.default)
            text = message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
            return text.split("\n\n附件及其 SHA-256")[0]  # the notice's text; then the list of attachments
    raise AssertionError(f"no mail to {address}")


def test_the_cuigao_gate_shows_the_notice_that_then_goes_out_deadline_and_all(site):
    case = site.at_cuigao_gate()
    staff = site.login("staff")
    staff.post(  # HR calls first: the call is in the contact history the notice states
        f"/cases/{case.id}/calls",
        {"number": "+8613800138000", "outcome": "CALL_SWITCHED_OFF", "at": "2025-03-06T08:40", "note": "关机"},
    )
    site.clock.advance(minutes=10)
    kept, logged = NoticeDocument.select().count(), ContactAttempt.select().count()

    page = staff.get(f"/cases/{case.id}").get_data(as_text=True)
    gate = page.split('data-gate="approve_cuigao"')[1].split('<div class="gate"')[0]
    shown = previews(gate)["cuigao"]
    assert shown["text"].startswith(f"关于限期返岗的通知（催告函）{MARK}\n文号：{shown['doc-no']}")
    assert '<dd class="absent">2025-03-03、2025-03-04、2025-03-05</dd>' in shown["html"]
    contacts = re.search(r'<dd class="contacts">(.*?)</dd>', shown["html"], re.S).group(1)
    assert "2025年03月06日" in contacts and "电话" in contacts  # HR's call, as the notice lists it
    pdf = staff.get(shown["pdf"])
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert pdf.headers["X-Content-SHA256"] == hashlib.sha256(pdf.data).hexdigest()
    # looking wrote nothing: no notice kept, no contact logged, no deadline stored
    assert (NoticeDocument.select().count(), ContactAttempt.select().count()) == (kept, logged)
    assert AbsenceCase.get_by_id(case.id).deadline_ms is None

    staff.post(f"/cases/{case.id}/approve/approve_cuigao", {"note": "已看过预览"})
    site.engine(real=True).tick()  # the 催告函 goes out, by e-mail among others, this same minute
    case = AbsenceCase.get_by_id(case.id)
    assert case.deadline_ms == int(shown["deadline-ms"])  # the deadline the engine stores and acts on
    sent = mail_to(site, "zhangsan@example.cn")
    # word for word, deadline included; the link's token is made when the notice goes out (cloud.notices.links)
    token = re.search(r"/n/([A-Za-z0-9_-]{22})", sent).group(1)
    assert sent.strip() == shown["text"].replace(MARK, "", 1).replace(PLACEHOLDER, token).strip()
    notice = NoticeDocument.get(NoticeDocument.template_id == "cuigao")
    assert notice.doc_no == shown["doc-no"]
    assert 'class="preview"' not in staff.get(f"/cases/{case.id}").get_data(as_text=True)  # the gate is closed


def test_the_termination_gate_shows_the_drafts_and_its_review_names_them(site):
    case = site.at_termination_gate()
    staff = site.login("staff")
    page = staff.get(f"/cases/{case.id}").get_data(as_text=True)
    gate = page.split('data-gate="confirm_termination"')[1]
    shown = previews(gate)
    assert set(shown) == {"termination", "union_letter"}  # the policy has a union: its letter goes first
    draft = shown["termination"]["text"]
    assert draft.startswith(f"解除劳动合同通知书{MARK}") and "张三" in draft and "HT-2024-0317" in draft
    assert "待工会答复" in draft  # the union's opinion is not made up
    assert "拟解除日期：" in shown["union_letter"]["text"]
    hashes = {}
    for notice, found in shown.items():
        pdf = staff.get(found["pdf"])
        assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
        hashes[notice] = hashlib.sha256(pdf.data).hexdigest()
        assert f"PDF SHA-256 {hashes[notice]}" in found["html"]
    assert not NoticeDocument.select().where(NoticeDocument.template_id.in_(("jiechu", "union_letter"))).exists()

    staff.post(f"/cases/{case.id}/approve/confirm_termination", {"note": "已复核草稿"})
    review = CaseTask.get((CaseTask.case == case.id) & (CaseTask.kind == "review_termination"))
    assert (review.status, review.done_by) == ("done", "staff")
    for notice, found in shown.items():  # what was reviewed: each draft's number and the hash of its PDF
        assert found["doc-no"] in review.proof and hashes[notice] in review.proof, review.proof
        kept = CaseDocument.get((CaseDocument.case_id == case.id) & (CaseDocument.sha256 == hashes[notice]))
        assert bytes(kept.data).startswith(b"%PDF")
    assert AbsenceCase.get_by_id(case.id).level == 6


def test_hr_sees_the_cuigao_preview_in_chromium_and_approves(site):
    case = site.at_cuigao_gate()
    server = make_server("127.0.0.1", 0, site.app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="zh-CN")
            page.goto(f"http://127.0.0.1:{server.server_port}/login")
            sign_in(page, "staff", PASSWORD)
            page.goto(f"http://127.0.0.1:{server.server_port}/cases/{case.id}")
            panel = page.locator('.gate[data-gate="approve_cuigao"]')
            preview = panel.locator('.preview[data-notice="cuigao"]')
            preview.wait_for(state="visible", timeout=15_000)
            assert "草稿/预览，未发出" in preview.inner_text()
            assert "请于2025年" in preview.locator("pre").inner_text()
            box = preview.bounding_box()
            assert box is not None and box["x"] + box["width"] <= 1366  # on the panel, in view at 1366 px
            shoot(page, "case-cuigao-preview", {"laptop": (1366, 900)})
            panel.locator("form.approve button").click()
            page.locator('.gate[data-gate="approve_cuigao"][data-status="approved"]').wait_for(timeout=15_000)
    finally:
        server.shutdown()
    assert AbsenceCase.get_by_id(case.id).level == 3
