"""What people do on a case page, each through ``cloud.escalation.actions`` with the user as actor:
acknowledge, approve the 催告函, confirm a termination (two different people), record a call, upload a
document, welfare check, resolve; and what the page shows of it."""

from __future__ import annotations

import hashlib
import json
from datetime import date

from cloud.audit import AuditEntry
from cloud.channels.contact_log import ContactAttempt, DeliveryReceipt
from cloud.escalation import timeline
from cloud.escalation.casefiles import CaseDocument
from cloud.escalation.engine import Engine
from cloud.escalation.models import AbsenceCase, CaseStep, CaseTask, Gate
from cloud.escalation.sender import RecordingSender
from cloud.notices.records import NoticeDocument
from cloud.store import database
from tests.cloud.escalation.plantfeed import local, pass_deadline
from tests.cloud.web.conftest import the_case


def entries(case_id: int) -> list[tuple[str, str]]:
    with database.connection_context():
        return [(i.kind, i.actor) for i in timeline.items(case_id)]


def test_acknowledge_needs_a_reason_then_pauses_and_shows(app, login):
    case_id = the_case("2001").id
    pm = login("pm1")
    response = pm.post(f"/cases/{case_id}/ack", {"reason": ""})
    assert response.status_code == 302
    assert "原因代码" in pm.get(f"/cases/{case_id}").get_data(as_text=True)  # the refusal, shown in Chinese
    assert ("ack", "pm1") not in entries(case_id)
    pm.post(f"/cases/{case_id}/ack", {"reason": "sick", "note": "家属来电：住院"})
    assert ("ack", "pm1") in entries(case_id)
    with database.connection_context():
        case = AbsenceCase.get_by_id(case_id)
        assert case.acked_until_ms == app.config["CLOCK"].now().timestamp() * 1000 + 24 * 3_600_000
        audit = [(a.action, a.outcome, a.username) for a in AuditEntry.select().order_by(AuditEntry.id)]
    assert audit == [("case.ack", "refused", "pm1"), ("case.ack", "done", "pm1")]
    page = pm.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="acked"' in page and "员工生病" in page and "家属来电：住院" not in page.split('id="timeline"')[0]


def test_approve_the_cuigao_gate_makes_the_step_due(login):
    case_id = the_case("2001").id
    page = login("staff").get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'data-gate="approve_cuigao" data-status="open"' in page
    login("staff").post(f"/cases/{case_id}/approve/approve_cuigao", {"note": "已核对地址"})
    with database.connection_context():
        assert Gate.get((Gate.case == case_id) & (Gate.kind == "approve_cuigao")).status == "approved"
        assert CaseStep.get((CaseStep.case == case_id) & (CaseStep.key == "L3")).status == "due"
    assert ("approval", "staff") in entries(case_id)
    page = login("aud").get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'data-gate="approve_cuigao" data-status="approved"' in page and "已核对地址" in page
    assert 'action="/cases/' not in page.split('id="actions"')[1].split("</section>")[0]  # read-only: no forms


def test_a_termination_needs_two_different_people(app, login):
    case_id = the_case("2001").id
    clock = app.config["CLOCK"]
    engine = Engine(clock, RecordingSender(), runner_id="test")
    staff = login("staff")
    staff.post(f"/cases/{case_id}/approve/approve_cuigao")
    staff.post(f"/cases/{case_id}/welfare/close", {"finding": "none_found", "note": "紧急联系人无法接通，医院无记录"})
    with database.connection_context():
        engine.tick()  # L3 sent (Tuesday 03-18); the deadline it states is stored on the case
    clock.advance_to(local(date(2025, 3, 19), "16:00"))
    login("staff").post(  # the EMS tracking shows 妥投: HR records it on the case page
        f"/cases/{case_id}/service",
        {"document": "cuigao", "outcome": "served", "at": "2025-03-19T15:00", "method": "EMS", "proof": "EMS 妥投"},
    )
    with database.connection_context():
        assert AbsenceCase.get_by_id(case_id).level == 3  # served, the deadline not yet over
        pass_deadline(clock, engine, case_id)  # Monday 03-24 18:00 passes; Tuesday 08:30
        assert AbsenceCase.get_by_id(case_id).level == 5
    staff, staff2 = login("staff"), login("staff2")  # a week's idle days ended the sessions: sign in again
    staff.post(f"/cases/{case_id}/approve/confirm_termination", {"note": "已复核"})
    staff.post(f"/cases/{case_id}/approve/confirm_termination", {"note": "再次"})
    page = staff.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "需另一人确认" in page  # the second click by the same person is refused, in Chinese
    with database.connection_context():
        assert AbsenceCase.get_by_id(case_id).level == 5
    staff2.post(f"/cases/{case_id}/approve/confirm_termination", {"note": "同意"})
    with database.connection_context():
        case = AbsenceCase.get_by_id(case_id)
        assert case.level == 6 and case.state == "L6_UNION_NOTIFIED"
        refused = AuditEntry.get((AuditEntry.outcome == "refused") & (AuditEntry.username == "staff"))
        assert json.loads(refused.detail)["note"] == "再次"
    approvals = [actor for kind, actor in entries(case_id) if kind == "approval"]
    assert approvals == ["staff", "staff", "staff2"]  # 催告函, then the two confirmations
    staff.post(f"/cases/{case_id}/resolve", {"reason": "accepted_reason", "note": "x"})
    assert "解除已确认" in staff.get(f"/cases/{case_id}").get_data(as_text=True)  # no quiet undo after confirming


def test_record_a_call_goes_into_the_contact_log_with_its_receipt(login):
    case_id = the_case("2001").id
    pm = login("pm1")
    pm.post(
        f"/cases/{case_id}/calls",
        {"number": "13800138000", "outcome": "CALL_SWITCHED_OFF", "at": "2025-03-17T10:05", "note": "关机"},
    )
    with database.connection_context():
        rows = list(ContactAttempt.select().order_by(ContactAttempt.id))
        assert [(r.status, r.operator, r.case_ref) for r in rows] == [
            ("task_open", "pm1", f"case-{case_id}"),
            ("done", "pm1", f"case-{case_id}"),
        ]
        receipt = DeliveryReceipt.get()
        assert (receipt.status, receipt.attempt_id) == ("no_answer", rows[1].id)
        assert json.loads(receipt.raw)["happened_at"].startswith("2025-03-17T02:05")  # 10:05 Shanghai, kept UTC
    page = pm.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "13800138000" in page and "无人接听" in page and "no_answer" not in page and 'class="ev ev-attempt"' in page


def test_an_ems_task_result_needs_the_waybill(login):
    case_id = the_case("2001").id
    staff = login("staff")
    with database.connection_context():
        task = ContactAttempt.create(
            idem_key="k" * 64,
            attempt_no=1,
            case_ref=f"case-{case_id}",
            step_id="L3",
            channel="ems",
            provider="person.ems",
            recipient="上海市某区某路1号",
            template_id="cuigao",
            template_version="1",
            content_sha256="0" * 64,
            status="task_open",
            operator="system",
            at_ms=0,
        )
    staff.post(f"/cases/{case_id}/attempts/{task.id}/result", {"outcome": "EMS_POSTED"})
    assert "waybill" in staff.get(f"/cases/{case_id}").get_data(as_text=True)
    staff.post(f"/cases/{case_id}/attempts/{task.id}/result", {"outcome": "EMS_DELIVERED", "waybill": "EA1CN"})
    with database.connection_context():
        done = ContactAttempt.get(ContactAttempt.status == "done")
        assert (done.provider_message_id, done.operator) == ("EA1CN", "staff")
        assert DeliveryReceipt.get().status == "delivered"


def test_upload_a_document_keeps_its_hash_in_the_timeline(login):
    case_id = the_case("2001").id
    staff = login("staff")
    data = "病历：2025-03-15 入院".encode() * 100
    import io

    staff.post(
        f"/cases/{case_id}/documents",
        {"file": (io.BytesIO(data), "病历.pdf"), "note": "家属送来"},
        content_type="multipart/form-data",
    )
    digest = hashlib.sha256(data).hexdigest()
    with database.connection_context():
        doc = CaseDocument.get()
        assert (doc.sha256, doc.size, doc.uploaded_by) == (digest, len(data), "staff")
        entry = [i for i in timeline.items(case_id) if i.kind == "document"][0]
        assert (entry.actor, entry.data["sha256"]) == ("staff", digest)
        assert timeline.verify(case_id) == []
    got = login("aud").get(f"/cases/{case_id}/documents/{doc.id}")
    assert got.status_code == 200 and got.data == data and got.headers["X-Content-SHA256"] == digest
    assert login("pm2").get(f"/cases/{case_id}/documents/{doc.id}").status_code == 404


def test_the_notice_pdf_is_shown_with_its_hash_and_downloads(login):
    case_id = the_case("2001").id
    pdf = b"%PDF-1.4 the rendered notice"
    digest = hashlib.sha256(pdf).hexdigest()
    with database.connection_context():
        notice = NoticeDocument.create(
            case_ref=f"case-{case_id}",
            doc_no="HR-2025-0001",
            template_id="cuigao",
            template_version="2",
            title="返岗通知书",
            pdf=pdf,
            pdf_sha256=digest,
            text_sha256="1" * 64,
            sms_text="请于3日内返岗",
            sms_sha256="2" * 64,
            rendered_ms=0,
        )
    page = login("staff").get(f"/cases/{case_id}").get_data(as_text=True)
    assert digest in page and "返岗通知书" in page
    got = login("staff").get(f"/cases/{case_id}/notices/{notice.id}.pdf")
    assert got.data == pdf and got.mimetype == "application/pdf"


def test_welfare_accident_moves_to_the_injury_track_with_its_30_day_task(login):
    case_id = the_case("2001").id
    login("staff").post(
        f"/cases/{case_id}/welfare/close",
        {"finding": "accident", "note": "3月15日车祸，住院", "accident_at": "2025-03-15T09:00"},
    )
    with database.connection_context():
        case = AbsenceCase.get_by_id(case_id)
        assert (case.state, case.welfare) == ("MEDICAL_OR_INJURY_TRACK", "injury")
        task = CaseTask.get((CaseTask.case == case_id) & (CaseTask.kind == "injury_report"))
        assert task.statutory and task.due_ms == 1742000400000 + 30 * 86_400_000  # 2025-03-15 01:00 UTC + 30 days


def test_resolve_closes_the_case_and_supersedes_what_is_pending(login):
    case_id = the_case("2001").id
    login("staff").post(f"/cases/{case_id}/resolve", {"reason": "accepted_reason", "note": "病假证明补交"})
    with database.connection_context():
        case = AbsenceCase.get_by_id(case_id)
        assert case.open_key is None and case.resolution == "accepted_reason"
        assert {s.status for s in CaseStep.select().where(CaseStep.case == case_id)} <= {"sent", "superseded"}
    assert ("resolved", "staff") in entries(case_id)
    listed = login("staff").get("/cases").get_data(as_text=True)
    assert f'data-case="{case_id}"' not in listed
    assert f'data-case="{case_id}"' in login("staff").get("/cases?status=resolved").get_data(as_text=True)


def test_the_timeline_shows_day_facts_and_decisions_in_the_plants_zone(login):
    case_id = the_case("2001").id
    page = login("staff").get(f"/cases/{case_id}").get_data(as_text=True)
    assert page.count('class="ev ev-day"') >= 3 and 'data-kind="opened"' in page
    assert "日结论 2025-03-13 D：缺勤" in page  # the status in Chinese, not its code
    assert "2025-03-18 08:30" in page  # the welfare check opened at 00:30 UTC, shown at 08:30 in Shanghai
    assert 'id="chain-ok"' in page
    english = login("staff").get(f"/cases/{case_id}?lang=en").get_data(as_text=True)
    assert "day fact 2025-03-13 D: absent" in english and "Timeline" in english


def test_the_list_shows_level_next_step_and_due_and_filters(login):
    staff = login("staff")
    page = staff.get("/cases").get_data(as_text=True)
    assert page.count('class="case"') == 2 and "待审批：批准发送催告函" in page
    assert staff.get("/cases?waiting=gate&q=2001").get_data(as_text=True).count('class="case"') == 1
    assert staff.get("/cases?plant=p2").get_data(as_text=True).count('class="case"') == 1
    assert staff.get("/cases?level=5").get_data(as_text=True).count('class="case"') == 0
