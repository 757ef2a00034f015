"""Every notice the ladder names can be produced (issue #19, item 9): the 解除劳动合同证明 owed once the termination
took effect, and the 公告 text when a notice could not be served, each by a button on the case page; kept with
its hash among the case's documents, in the timeline by the person who produced it."""

from __future__ import annotations

import io
import re
from datetime import date

from pypdf import PdfReader

from cloud.channels.contact_log import ContactAttempt
from cloud.escalation import actions, timeline
from cloud.escalation.models import AbsenceCase, CaseTask
from cloud.hr.models import Employee, PlantBadge
from cloud.notices.records import NoticeDocument
from tests.cloud.escalation.plantfeed import local, ms


def pdf_text(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).replace("\n", "")


def listed(page: str) -> str:
    """The case page's list of its documents (文书)."""
    return page.split('<section id="notices">')[1].split("</section>")[0]


def test_a_terminated_case_issues_its_certificate_from_the_page(site):
    case = site.at_termination_gate(union__exists=False)
    emp = PlantBadge.get(PlantBadge.user_id == "2001").employee
    Employee.update(contract_start="2022-11-15").where(Employee.id == emp.id).execute()
    actions.approve(case.id, "confirm_termination", by="staff2", now_ms=ms(site.clock.now()))
    site.engine().tick()  # no union: the termination notice goes out at once
    page = site.login("staff").get(f"/cases/{case.id}").get_data(as_text=True)
    assert 'id="certificate-form"' not in page  # sent, not served: the termination has not taken effect
    site.clock.advance_to(local(date(2025, 3, 17), "11:00"))
    actions.record_service(  # EMS signed for on Monday 03-17: the termination takes effect
        case.id,
        "termination",
        by="staff",
        now_ms=ms(site.clock.now()),
        served_ms=ms(local(date(2025, 3, 17), "10:00")),
        method="EMS",
        proof="EMS 妥投 EA100200301CN",
    )
    assert AbsenceCase.get_by_id(case.id).level == 8

    staff = site.login("staff")  # days later: signed in again
    page = staff.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "出具解除劳动合同证明" in page and 'id="certificate-form"' in page
    response = staff.post(f"/cases/{case.id}/certificate")
    assert response.status_code == 302
    cert = NoticeDocument.get(NoticeDocument.template_id == "jiechu_zhengming")
    assert cert.case_ref == f"case-{case.id}" and cert.doc_no.endswith("-解除证明")
    text = pdf_text(bytes(cert.pdf))
    assert "已于2025年3月17日解除" in text  # the day it took effect, in the plant's zone
    assert "于2022年11月15日入职" in text and "工作年限为2年4个月" in text  # 2022-11-15 to 2025-03-17
    task = CaseTask.get((CaseTask.case == case.id) & (CaseTask.kind == "certificate"))
    assert (task.status, task.done_by) == ("done", "staff") and cert.doc_no in task.proof
    entry = [i for i in timeline.items(case.id) if i.kind == "certificate"]
    assert [(i.actor, i.data["sha256"]) for i in entry] == [("staff", cert.pdf_sha256)]
    page = staff.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "解除劳动合同证明已出具并保存" in page
    documents = listed(page)
    assert "《解除劳动合同证明》" in documents and cert.pdf_sha256 in documents and cert.doc_no in documents
    download = re.search(r'href="(/cases/\d+/notices/\d+\.pdf)"', documents.split(cert.doc_no)[1]).group(1)
    assert staff.get(download).headers["X-Content-SHA256"] == cert.pdf_sha256


def test_a_cuigao_that_could_not_be_served_gets_its_public_notice_text(site):
    case = site.at_cuigao_gate()
    actions.approve(case.id, "approve_cuigao", by="staff", now_ms=ms(site.clock.now()))
    site.engine(real=True).tick()  # the 催告函 goes out (SMS, e-mail, WeCom) and EMS is a task for a person
    cuigao = NoticeDocument.get(NoticeDocument.template_id == "cuigao")
    ems = ContactAttempt.get((ContactAttempt.step_id == "L3") & (ContactAttempt.provider == "person.ems"))
    site.clock.advance(days=5)
    staff = site.login("staff")
    staff.post(
        f"/cases/{case.id}/attempts/{ems.id}/result",
        {"outcome": "EMS_RETURNED", "waybill": "EA100200300CN", "note": "查无此人"},
    )
    page = staff.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "生成公告送达文本" not in page  # service not recorded as failed: no 公告 yet
    staff.post(f"/cases/{case.id}/service", {"document": "cuigao", "outcome": "failed", "proof": "EMS 退回：查无此人"})
    page = staff.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "生成公告送达文本" in page and "登记公告刊登日期" in page and "30 日视为送达" in page

    staff.post(f"/cases/{case.id}/public-notice/cuigao")
    notice = NoticeDocument.get(NoticeDocument.template_id == "gonggao")
    text = pdf_text(bytes(notice.pdf))
    assert f"《{cuigao.title}》（文号：{cuigao.doc_no}）" in text  # the notice it serves, by its number
    assert "退回" in text and "EMS" in text  # the attempts that failed, from the contact log
    assert "自本公告视为送达之日起 3 日内" in text and "三十日" in text
    assert "2025年3月3日起未到岗" in text
    entry = [i for i in timeline.items(case.id) if i.kind == "public_notice_text"]
    assert [(i.actor, i.data["doc_no"]) for i in entry] == [("staff", notice.doc_no)]
    documents = listed(staff.get(f"/cases/{case.id}").get_data(as_text=True))
    assert "《公告》" in documents and notice.pdf_sha256 in documents
    task = CaseTask.get((CaseTask.case == case.id) & (CaseTask.kind == "public_notice_cuigao"))
    assert task.status == "open"  # done when HR records the publication date
