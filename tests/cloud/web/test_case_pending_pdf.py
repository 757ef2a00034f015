"""A notice sent by its words whose PDF the tick's PDF pass has not made yet (#25 item 4) is on the case page: HR
sees that it went out, its number and its text's SHA-256, and that its PDF is being made, not "无"."""

from __future__ import annotations

from cloud.notices.records import NoticeDocument, PendingPdf
from cloud.web.caseview import case_refs
from tests.cloud.web.conftest import the_case


def test_a_notice_whose_pdf_is_not_made_yet_shows_on_the_case_page(app, login):
    case = the_case("2001")
    refs = case_refs(case.id)
    made = list(NoticeDocument.select().where(NoticeDocument.case_ref.in_(refs)))
    browser = login("staff")
    before = browser.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "PDF 生成中" not in before
    # the case's notices as they stand between a tick's sends and its PDF pass: kept as words, no PDF yet
    for doc in made:
        PendingPdf.create(
            case_ref=doc.case_ref,
            doc_no=doc.doc_no,
            template_id=doc.template_id,
            template_version=doc.template_version,
            title=doc.title,
            text=doc.text,
            text_sha256=doc.text_sha256,
            sms_text=doc.sms_text,
            sms_sha256=doc.sms_sha256,
            source="{}",
            font="{}",
            rendered_ms=doc.rendered_ms,
        )
        doc.delete_instance()
    if not made:  # a case whose first notice went out by SMS only
        PendingPdf.create(
            case_ref=refs[0],
            doc_no="T-0001",
            template_id="reminder",
            template_version="1",
            title="返岗提醒",
            text="请于明日返岗。",
            text_sha256="a" * 64,
            sms_text="请于明日返岗。",
            sms_sha256="b" * 64,
            source="{}",
            font="{}",
            rendered_ms=case.opened_ms,
        )
    pending = list(PendingPdf.select().where(PendingPdf.case_ref.in_(refs)))
    page = browser.get(f"/cases/{case.id}").get_data(as_text=True)
    notices = page.split('<section id="notices">', 1)[1].split("</section>", 1)[0]
    assert notices.count('class="notice pending-pdf"') == len(pending)
    for p in pending:
        assert p.doc_no in notices and p.text_sha256 in notices
    assert "已按文字发出，PDF 生成中" in notices
    assert "无</p>" not in notices  # not "none" while notices wait for their PDF
    english = browser.get(f"/cases/{case.id}?lang=en").get_data(as_text=True)
    assert "PDF being made" in english
