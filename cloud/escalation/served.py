"""A 催告函 served by a delivery receipt: the provider's report that the message reached the employee's own
phone or account (SMS 状态报告 DELIVRD, DingTalk read), kept in the contact log, is service achieved.

Electronic service counts from the moment the message reached the system the employee uses (民事诉讼法
第九十条, on the address the contract names for notices); the receipt's arrival time here is taken, which is
never earlier than the delivery itself. Mail (EMS 妥投) and service by 公告 are recorded by people
(``actions.record_service``, ``record_publication``); both end in the same place: the case's ``Service`` row,
from which the ladder computes the return deadline.
"""

from __future__ import annotations

from cloud.channels.contact_log import ContactAttempt
from cloud.escalation import cases, timeline
from cloud.escalation.models import AbsenceCase, Service
from cloud.escalation.notice_facts import CHANNEL_ZH, case_ref
from cloud.hr.models import Employee

DELIVERED = ("delivered", "read")


def _cuigao_round(step_id: str) -> bool:
    base = step_id.split("#", 1)[0]
    return base in ("L3", "L3:renew")


def _addresses(emp: Employee) -> set[str]:
    return {
        a for a in (emp.phone, emp.email, emp.wecom_id, emp.dingtalk_id, emp.service_address, emp.contract_address) if a
    }


def from_receipts(now_ms: int) -> int:
    """Cases whose 催告函 was sent and not yet served, served now if a receipt shows it reached the employee;
    returns how many were."""
    waiting = {
        case_ref(case_id): case_id
        for (case_id,) in Service.select(Service.case)
        .join(AbsenceCase)
        .where((Service.document == "cuigao") & (Service.status == "sent") & AbsenceCase.open_key.is_null(False))
        .tuples()
    }
    if not waiting:
        return 0
    first: dict[int, ContactAttempt] = {}
    for attempt in (
        ContactAttempt.select()
        .where(ContactAttempt.case_ref.in_(list(waiting)) & ContactAttempt.receipt_status.in_(DELIVERED))
        .order_by(ContactAttempt.receipt_ms, ContactAttempt.id)
    ):
        case_id = waiting[attempt.case_ref]
        if case_id not in first and _cuigao_round(attempt.step_id):
            first[case_id] = attempt
    done = 0
    for case_id, attempt in first.items():
        with cases.locked_case(case_id) as case:
            if attempt.recipient not in _addresses(Employee.get_by_id(case.employee_id)):
                continue  # a copy to someone else is no service on the employee
            service = Service.get((Service.case == case) & (Service.document == "cuigao"))
            if service.status != "sent":
                continue  # a person recorded service meanwhile
            channel = CHANNEL_ZH.get(attempt.channel.split(".")[0], attempt.channel)
            Service.update(
                status="served",
                served_ms=attempt.receipt_ms,
                method=f"{channel}送达回执",
                proof=f"contact attempt {attempt.id} ({attempt.provider} {attempt.provider_message_id})",
            ).where(Service.id == service.id).execute()
            timeline.append(
                case,
                "served",
                f"催告函已送达（{channel}送达回执）",
                f"notice to return served ({attempt.channel} delivery receipt)",
                at_ms=now_ms,
                served_ms=attempt.receipt_ms,
                attempt=attempt.id,
            )
            cases.advance(case, now_ms)
            done += 1
    return done
