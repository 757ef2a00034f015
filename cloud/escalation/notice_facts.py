"""What a step's notice states, gathered from the case, the employee, the policy version and the case's past.

Everything is taken as it stood when the step was planned (the issue date is the planned date, earlier
contacts are those before it), so that a step tried again renders the same bytes, and the contact log's
content hash still names one document.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from cloud.channels.contact_log import ContactAttempt, DeliveryReceipt
from cloud.escalation import workdays
from cloud.escalation.cases import policy_of
from cloud.escalation.models import AbsenceCase, CaseStep, CaseTask, Service
from cloud.escalation.policy import Policy, PolicyVersion
from cloud.escalation.sender import PlannedStep
from cloud.hr.models import Employee, Leave
from cloud.notices import facts as nf
from cloud.notices import links as nl
from cloud.notices.links import Links
from cloud.notices.settings import NoticeSettings
from cloud.notices.templates import NoticeTemplate

TEMPLATE_OF = {
    "reminder": "reminder",
    "warning": "warning",
    "cuigao": "cuigao",
    "welfare": "welfare",
    "kuanggong": "kuanggong",
    "union_letter": "union_letter",
    "termination": "jiechu",
}
UNION_KEY = "L6:union"  # the key ``ladder.decide`` plans the union letter under; a later round is "L6:union#2"
FORMAL = frozenset({"cuigao", "kuanggong", "union_letter", "termination"})  # attached as PDF, posted by EMS
METHODS = {
    "ems": "EMS 寄至劳动合同约定的送达地址",
    "sms": "短信",
    "email": "电子邮件",
    "wecom": "企业微信",
    "dingtalk": "钉钉",
    "voice": "电话",
}
CHANNEL_ZH = {**METHODS, "ems": "EMS", "wecom_robot": "企业微信群", "dingtalk_robot": "钉钉群"}
RESULT_ZH = {
    "sent": "已发出",
    "failed": "发送失败",
    "uncertain": "结果不明",
    "task_open": "待办",
    "done": "已完成",
    "delivered": "已送达",
    "read": "已读",
    "unread": "未读",
    "returned": "退回",
    "no_answer": "无人接听",
    "pending": "待回执",
}


def case_ref(case_id: int) -> str:
    return f"case-{case_id}"


def doc_no(settings: NoticeSettings, case_id: int, key: str, issued: date) -> str:
    return f"{settings.doc_prefix}〔{issued.year}〕{case_id:05d}-{key.replace(':', '-').replace('#', '-')}"


MANAGER_NOTICES = frozenset({"warning"})  # to the manager and HR: their link is the case's page (after login)


def link(settings: NoticeSettings, case: AbsenceCase, step: PlannedStep, doc: str, links: Links | None) -> str:
    """The notice's link. The manager's and HR's warning: the case's page, behind the login. Every other notice:
    its read-and-acknowledge link ``/n/<token>`` (``cloud.notices.links``), issued when it is rendered to go out
    (``links``); a draft (no ``links``) says the link is made when it goes out."""
    base = settings.link_base.rstrip("/")
    if step.notice in MANAGER_NOTICES:
        return f"{base}/cases/{case.id}"
    if links is None:
        return f"{base}/n/{nl.PLACEHOLDER}"
    return nl.url(base, links.token(case.id, step.key, doc))


def _local(ms: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz)


_handbooks: dict[int, tuple[object, nf.HandbookRule | None]] = {}  # by policy version: with the parsed policy it is of


def _handbook(case: AbsenceCase) -> nf.HandbookRule | None:
    """The handbook clause as the case's policy version records it; its text and adoption date are in the
    version's body (``handbook.text``, ``handbook.adopted_on``) since notices quote them. A version never changes:
    read once, for as long as its parsed policy is the one ``policy_of`` keeps."""
    policy = policy_of(case)
    known = _handbooks.get(case.policy_id)
    if known is not None and known[0] is policy:
        return known[1]
    rule = _read_handbook(case, policy)
    _handbooks[case.policy_id] = (policy, rule)
    return rule


def _read_handbook(case: AbsenceCase, policy: Policy) -> nf.HandbookRule | None:
    raw = json.loads(PolicyVersion.get_by_id(case.policy_id).body).get("handbook", {})
    hb = policy.handbook
    try:
        adopted = date.fromisoformat(str(raw.get("adopted_on", "")))
        published = date.fromisoformat(hb.published_on)
    except ValueError:
        return None
    if not (hb.article and raw.get("text") and hb.version):
        return None
    return nf.HandbookRule(
        clause=hb.article, text=str(raw["text"]), version=hb.version, adopted_on=adopted, published_on=published
    )


def _employee(emp: Employee) -> nf.Employee:
    hired = None
    try:
        hired = date.fromisoformat(emp.contract_start) if emp.contract_start else None
    except ValueError:
        hired = None
    term = ""
    if emp.contract_start:
        term = f"{emp.contract_start} 至 {emp.contract_end or '无固定期限'}"
    return nf.Employee(
        name=emp.name,
        employee_no=emp.employee_no,
        id_last4=emp.id_last4,
        department=emp.department,
        position=emp.position,
        contract_no=emp.contract_no,
        contract_term=term,
        hired_on=hired,
        service_address=emp.service_address or emp.contract_address,
    )


def _phone(text: str) -> str:
    """A number as the providers and HR write it (+86 138 0013 8000, 13800138000) reduced to its digits."""
    digits = "".join(c for c in text if c.isdigit())
    return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits


def _own(emp: Employee) -> set[str]:
    """The employee's own addresses: phone (its digits), e-mail, WeCom/DingTalk id, service and contract address."""
    found = {
        a.strip()
        for a in (emp.email, emp.wecom_id, emp.dingtalk_id, emp.service_address, emp.contract_address)
        if a and a.strip()
    }
    if emp.phone and _phone(emp.phone):
        found.add(_phone(emp.phone))
    return found


def _to(row: ContactAttempt, own: set[str]) -> bool:
    """Whether the attempt went to one of the employee's own addresses (a number however it was written)."""
    number = _phone(row.recipient)
    return row.recipient.strip() in own or (len(number) >= 7 and number in own)


def _when(row: ContactAttempt) -> int:
    """When it happened: a person's record says when the call was made or the letter delivered, else the attempt."""
    if row.status == "done" and row.raw_response:
        try:
            at = datetime.fromisoformat(str(json.loads(row.raw_response).get("happened_at", "")))
        except (ValueError, AttributeError, TypeError):
            return row.at_ms
        return int(at.timestamp() * 1000) if at.tzinfo else row.at_ms
    return row.at_ms


def _contacts(case: AbsenceCase, before_ms: int, tz: ZoneInfo) -> tuple[nf.ContactMade, ...]:
    """The attempts to reach the employee at the employee's own addresses before ``before_ms``, one line per
    message: the tries of one message (one idempotency key: its retry rounds, a person's task and its result) are
    one attempt with its latest result, a delivery receipt received by then is that result; a task still open is
    a person's to-do, not an attempt. Messages to the manager, HR, the union or the emergency contact are none."""
    own = _own(case.employee)
    rows = (
        ContactAttempt.select()
        .where((ContactAttempt.case_ref == case_ref(case.id)) & (ContactAttempt.at_ms < before_ms))
        .order_by(ContactAttempt.at_ms, ContactAttempt.id)
    )
    messages: dict[str, list[ContactAttempt]] = {}
    for row in rows:
        if _to(row, own):
            messages.setdefault(row.idem_key, []).append(row)
    receipts: dict[int, str] = {}
    ids = [r.id for tries in messages.values() for r in tries]
    if ids:
        for receipt in (
            DeliveryReceipt.select()
            .where(DeliveryReceipt.attempt.in_(ids) & (DeliveryReceipt.received_ms < before_ms))
            .order_by(DeliveryReceipt.received_ms, DeliveryReceipt.id)
        ):
            receipts[receipt.attempt_id] = receipt.status  # the latest one received by then
    lines: list[tuple[int, int, nf.ContactMade]] = []
    for tries in messages.values():
        last = max(tries, key=lambda r: (r.attempt_no, r.id))
        if last.status == "task_open":
            continue
        receipt = next((receipts[r.id] for r in reversed(tries) if r.id in receipts), None)
        if receipt is not None:
            result = RESULT_ZH.get(receipt, receipt)
        elif last.status == "done":
            result = last.reason.split("：", 1)[0] or RESULT_ZH["done"]
        else:
            result = RESULT_ZH.get(last.status, last.status)
        at = _when(last)
        made = nf.ContactMade(
            at=f"{_local(at, tz):%Y年%m月%d日 %H:%M}",
            channel=CHANNEL_ZH.get(last.channel.split(".")[0], last.channel),
            result=result,
        )
        lines.append((at, tries[0].id, made))
    return tuple(made for _at, _id, made in sorted(lines, key=lambda line: line[:2]))


def _earlier(case: AbsenceCase, settings: NoticeSettings, tz: ZoneInfo, before_ms: int) -> tuple[str, ...]:
    """The 催告函 issued before this notice, every round (L3, L3#2, a re-issue): those that went out — sent, or
    served however the step's own sending ended (EMS 妥投 recorded by a person) — issued no later than it."""
    service = Service.get_or_none((Service.case == case) & (Service.document == "cuigao"))
    served = service is not None and service.status in ("served", "deemed")
    out = []
    for step in (
        CaseStep.select()
        .where(
            (CaseStep.case == case)
            & (CaseStep.notice == "cuigao")
            & (CaseStep.planned_ms <= before_ms)
            & ((CaseStep.status == "sent") | (CaseStep.status.in_(("failed", "uncertain")) & served))
        )
        .order_by(CaseStep.planned_ms, CaseStep.id)
    ):
        sent = _local(step.sent_ms or step.planned_ms, tz)
        number = doc_no(settings, case.id, step.key, _local(step.planned_ms, tz).date())
        how = "已发出"
        if service is not None and service.served_ms:
            how = f"{service.method or '已'}于{_local(service.served_ms, tz):%Y年%m月%d日}送达"
        out.append(f"{sent:%Y年%m月%d日}《关于限期返岗的通知（催告函）》（{number}），{how}")
    return tuple(out)


def _union_notified(case: AbsenceCase) -> int | None:
    """When the union was first notified: the earliest union letter sent, whichever round it was ("L6:union",
    or "L6:union#2" when an earlier round was superseded or failed)."""
    return (
        CaseStep.select(CaseStep.sent_ms)
        .where(
            (CaseStep.case == case)
            & ((CaseStep.key == UNION_KEY) | CaseStep.key.startswith(UNION_KEY + "#"))
            & (CaseStep.status == "sent")
            & CaseStep.sent_ms.is_null(False)
        )
        .order_by(CaseStep.sent_ms, CaseStep.id)
        .limit(1)
        .scalar()
    )


OPTIONAL = ("contacts", "earlier_notices", "union_notified_on", "union_opinion")  # each a query or two


def named_by(template: NoticeTemplate) -> frozenset[str]:
    """Which of the ``OPTIONAL`` facts the template's text (or its list of required facts) names at all."""
    text = " ".join([template.body, template.sms, *template.required, *template.required_with_union])
    return frozenset(name for name in OPTIONAL if name in text)


def build(
    step: PlannedStep,
    case: AbsenceCase,
    settings: NoticeSettings,
    links: Links | None = None,
    *,
    template: NoticeTemplate | None = None,
) -> nf.NoticeFacts:
    """The facts of ``step``'s notice. ``links``: it is rendered to go out, and its link is issued (or the one
    issued before is taken again); without it a draft, whose link is a placeholder and which writes nothing.
    ``template``: the notice's, whose text cannot state the ``OPTIONAL`` facts it never names: those are left
    empty and not read (a warning names neither the contacts nor the earlier notices: five queries fewer)."""
    named = named_by(template) if template is not None else frozenset(OPTIONAL)
    tz = ZoneInfo(case.plant.timezone)
    policy = policy_of(case)
    issued = _local(step.planned_ms, tz).date()
    emp = case.employee  # read with the case by the sender, else now
    leave_ended = None
    if case.trigger == "leave_end" and case.trigger_ref:
        leave = Leave.get_or_none(Leave.ref == case.trigger_ref)
        if leave is not None:
            leave_ended = _local(leave.end_ms - 1, tz).date()
    deadline = None
    if step.notice == "cuigao" and step.deadline_ms is not None:
        deadline = _local(
            step.deadline_ms, tz
        )  # the case's, stored before the notice went out: the one the engine uses
    union = bool(named & {"union_notified_on", "union_opinion"})
    union_sent = _union_notified(case) if union else None
    reply = CaseTask.get_or_none((CaseTask.case == case) & (CaseTask.kind == "union_reply")) if union else None
    opinion = ""
    if reply is not None and reply.status == "done":
        opinion = reply.proof or "工会已书面答复"
    elif union_sent:
        opinion = "工会在答复期限内未提出意见"
    termination_date = None
    if step.notice == "union_letter" and case.union_wait_until_ms is not None:
        # the day the ladder waits for before the termination notice: the first working day after the reply window
        termination_date = workdays.local_day(workdays.next_workday_start(case.union_wait_until_ms, tz.key), tz.key)
    number = doc_no(settings, case.id, step.key, issued)
    return nf.NoticeFacts(
        doc_no=number,
        issued_on=issued,
        employer=nf.Employer(
            name=settings.employer,
            address=settings.address,
            contact_person=settings.contact_person,
            contact_phone=settings.contact_phone,
            short_name=settings.short_name,
            credit_code=settings.credit_code,
            union_name=settings.union if policy.union_exists else "",
        ),
        employee=_employee(emp),
        absent_days=tuple(date.fromisoformat(d) for d in step.absent_days),
        leave_ended_on=leave_ended,
        handbook=_handbook(case),
        contract_clause=settings.contract_clause,
        contacts=_contacts(case, step.planned_ms, tz) if "contacts" in named else (),
        deadline=deadline,
        report_to=settings.report_to,
        reply_how=settings.how_to_reply,
        reply_link=link(settings, case, step, number, links),
        defence_days=settings.defence_days,
        earlier_notices=_earlier(case, settings, tz, step.planned_ms) if "earlier_notices" in named else (),
        union_notified_on=_local(union_sent, tz).date() if union_sent else None,
        union_opinion=opinion,
        union_reply_days=policy.union_wait_working_days,
        termination_date=termination_date,
        settlement=settings.settlement,
        service_methods=tuple(METHODS[c] for c in step.channels if c in METHODS),
        extra={
            "attendance_source": f"{case.plant.name or case.plant_id} 考勤机经边缘设备签名的打卡记录",
            "handling": settings.kuanggong_handling,
        },
    )
