"""Writing HR's day-to-day records: leave, trips, 补卡, contact verification, 送达 address confirmation.

Every change to leave, a trip or a 补卡 marks the employee in ``HrChange``, so that the escalation
engine re-counts their absence at its next tick: leave approved after an absence was confirmed
supersedes the pending steps of the case without waiting for the plant to send a new day fact. It also
marks the plants where the employee has a badge (``plantconfig.due``): the escalation runner pushes their
configuration once HR has been quiet for a moment, so the plant's board knows the leave without a command.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import peewee as pw

from cloud.hr import plant_changes as due
from cloud.hr.models import Correction, EmergencyContact, Employee, HrChange, Leave, PlantBadge, Trip

FRESHNESS = timedelta(days=182)  # emergency contacts are confirmed again every six months
VERIFICATION_STATES = ("unverified", "pending", "verified", "failed")
UNVERIFIED_WORDS = {
    "unverified": ("未核验", "not verified"),
    "pending": ("已发送核验短信，未回复", "verification SMS sent, no reply"),
    "failed": ("核验失败", "verification failed"),
}


class HrError(ValueError):
    """A record HR cannot make as asked; the message is zh-CN first, then English."""


def _touch(employee: Employee, now_ms: int) -> None:
    HrChange.insert(employee=employee, changed_ms=now_ms).on_conflict(
        conflict_target=[HrChange.employee], update={HrChange.changed_ms: now_ms}
    ).execute()
    plants = [p for (p,) in PlantBadge.select(PlantBadge.plant).where(PlantBadge.employee == employee).tuples()]
    due.mark(plants, now_ms)


def record_leave(
    employee: Employee,
    ref: str,
    kind: str,
    start_ms: int,
    end_ms: int,
    *,
    now_ms: int,
    approved_by: str = "",
    status: str = "approved",
) -> Leave:
    """Record (or replace, by 单号) a leave; a cancelled leave stays as a row."""
    if end_ms <= start_ms:
        raise HrError(f"请假 {ref}：结束时间早于开始时间 / leave {ref} ends before it starts")
    if status not in ("approved", "cancelled"):
        raise HrError(f"请假 {ref}：状态 {status!r} 无效 / status must be approved or cancelled")
    with Leave._meta.database.atomic():
        row = Leave.get_or_none(Leave.ref == ref) or Leave(ref=ref)
        row.employee, row.kind, row.start_ms, row.end_ms = employee, kind, start_ms, end_ms
        row.status, row.approved_by, row.recorded_ms = status, approved_by, now_ms
        row.save()
        _touch(employee, now_ms)
    return row


def record_trip(
    employee: Employee, ref: str, start_ms: int, end_ms: int, *, now_ms: int, destination: str = ""
) -> Trip:
    if end_ms <= start_ms:
        raise HrError(f"出差 {ref}：结束时间早于开始时间 / trip {ref} ends before it starts")
    with Trip._meta.database.atomic():
        row = Trip.get_or_none(Trip.ref == ref) or Trip(ref=ref)
        row.employee, row.start_ms, row.end_ms, row.destination = employee, start_ms, end_ms, destination
        row.status, row.recorded_ms = "approved", now_ms
        row.save()
        _touch(employee, now_ms)
    return row


def record_correction(
    employee: Employee, ref: str, at_ms: int, reason: str, *, now_ms: int, direction: str = "unknown", by: str = ""
) -> Correction:
    """补卡: needs a reason (it is evidence that the employee was at work)."""
    if not reason.strip():
        raise HrError(f"补卡 {ref}：必须填写原因 / a correction needs a reason")
    with Correction._meta.database.atomic():
        row = Correction.get_or_none(Correction.ref == ref) or Correction(ref=ref)
        row.employee, row.at_ms, row.reason, row.direction = employee, at_ms, reason, direction
        row.approved_by, row.status, row.recorded_ms = by, "approved", now_ms
        row.save()
        _touch(employee, now_ms)
    return row


def confirm_service_address(employee: Employee, address: str, *, now_ms: int, evidence_ref: str) -> None:
    """The employee confirmed where notices may be served (送达地址确认书); the proof is required."""
    if not address.strip() or not evidence_ref.strip():
        raise HrError(
            "送达地址确认需要地址和确认凭证 / a service address needs the address and the signed confirmation"
        )
    employee.service_address = address.strip()
    employee.service_confirmed_ms = now_ms
    employee.service_confirmation_ref = evidence_ref.strip()
    employee.updated_ms = now_ms
    employee.save()


def set_verification(contact: EmergencyContact, state: str, *, now_ms: int, ref: str = "") -> None:
    """Record the outcome of verifying an emergency contact (SMS reply "确认", a call...)."""
    if state not in VERIFICATION_STATES:
        raise HrError(f"核验状态 {state!r} 无效 / verification is one of {', '.join(VERIFICATION_STATES)}")
    contact.verification = state
    contact.verification_ref = ref
    if state == "verified":
        contact.verified_ms = now_ms
    contact.updated_ms = now_ms
    contact.save()


@dataclass(frozen=True)
class StaleContact:
    employee_no: str
    contact: str
    phone: str
    reason_zh: str
    reason_en: str


def contacts_to_reconfirm(now_ms: int, freshness: timedelta = FRESHNESS) -> list[StaleContact]:
    """Emergency contacts never verified, whose verification failed, or older than ``freshness``;
    and active employees with none at all. HR's reminder list."""
    limit = now_ms - int(freshness.total_seconds() * 1000)
    out: list[StaleContact] = []
    rows = (
        EmergencyContact.select(EmergencyContact, Employee)
        .join(Employee)
        .where((Employee.active == True) & EmergencyContact.removed_ms.is_null())  # noqa: E712
        .order_by(Employee.employee_no, EmergencyContact.position, EmergencyContact.id)
    )
    for c in rows:
        if c.verification != "verified":
            zh, en = UNVERIFIED_WORDS.get(c.verification, UNVERIFIED_WORDS["unverified"])
            out.append(StaleContact(c.employee.employee_no, c.name, c.phone, zh, en))
        elif c.verified_ms is None or c.verified_ms < limit:
            out.append(
                StaleContact(c.employee.employee_no, c.name, c.phone, "超过半年未确认", "not confirmed for six months")
            )
    without = (
        Employee.select(Employee.employee_no)
        .where(
            (Employee.active == True)  # noqa: E712
            & ~pw.fn.EXISTS(
                EmergencyContact.select(EmergencyContact.id).where(
                    (EmergencyContact.employee == Employee.id) & EmergencyContact.removed_ms.is_null()
                )
            )
        )
        .order_by(Employee.employee_no)
    )
    out += [StaleContact(e.employee_no, "", "", "没有紧急联系人", "no emergency contact") for e in without]
    return out


def employee_for_badge(plant_id: str, user_id: str) -> Employee | None:
    row = (
        PlantBadge.select(PlantBadge, Employee)
        .join(Employee)
        .where((PlantBadge.plant == plant_id) & (PlantBadge.user_id == user_id))
        .first()
    )
    return row.employee if row is not None else None
