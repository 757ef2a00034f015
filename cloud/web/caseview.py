"""What the case pages show, read in a few set-based queries (the list must stay fast at 5,000 open cases).

``page_of_cases`` filters and pages in SQL, then finds each listed case's next step in three queries
over the page's ids: the open gate, the earliest pending outbound step, the earliest open task with
a due date, else the case's next timer. ``detail`` gathers one case's whole story for its page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from cloud.appliances.trust import Trust
from cloud.channels import names, reasons
from cloud.channels.contact_log import ContactAttempt, DeliveryReceipt
from cloud.escalation import ladder, preview, timeline
from cloud.escalation.casefiles import CaseDocument
from cloud.escalation.cases import policy_of
from cloud.escalation.models import AbsenceCase, AttendanceDay, CaseDay, CaseStep, CaseTask, Gate, GateApproval, Service
from cloud.escalation.policy import NOTICE_NAMES, PolicyVersion
from cloud.hr import contacts as emergency
from cloud.hr.models import Employee
from cloud.notices import templates as notice_templates
from cloud.notices.records import NoticeDocument, PendingPdf
from cloud.notices.settings import NoticeSettings
from cloud.store import Appliance, LogRecord, Plant, Punch
from cloud.web.i18n import MESSAGES
from cloud.web.roles import now_ms

PAGE_SIZE = 50
DAY_MS = ladder.DAY_MS
LINK_KINDS = ("notice_read", "notice_ack", "notice_reply")  # what the employee did on a notice's link page
LINK_STATUS = {
    "read": ("已读", "read"),
    "acknowledged": ("确认收到", "receipt confirmed"),
    "replied": ("回复", "replied"),
}


def case_refs(case_id: int) -> tuple[str, ...]:
    """How the contact log and the notices name a case (``case_ref``, a plain string). The first form is the
    one this dashboard writes; the bare id is accepted too, for rows written before the wiring settled."""
    return (f"case-{case_id}", str(case_id))


@dataclass(frozen=True)
class Filters:
    status: str = "open"  # open | resolved | all
    plant: str = ""
    level: str = ""  # "" or 0..8
    q: str = ""  # employee number, name or badge
    waiting: str = ""  # "" | gate (a person must approve) | acked | welfare
    page: int = 1


@dataclass
class NextStep:
    kind: str  # gate | step | task | timer | none
    label_zh: str
    label_en: str
    due_ms: int | None


@dataclass
class Row:
    case: AbsenceCase
    next: NextStep = field(default_factory=lambda: NextStep("none", "—", "—", None))
    untrusted_days: int = 0  # counted days whose fact the appliance signed after its key may have leaked


def _query(f: Filters, own_plant: str | None) -> pw.ModelSelect:
    query = AbsenceCase.select(AbsenceCase, Employee, Plant).join(Employee).switch(AbsenceCase).join(Plant)
    if f.status == "open":
        query = query.where(AbsenceCase.open_key.is_null(False))
    elif f.status == "resolved":
        query = query.where(AbsenceCase.open_key.is_null(True))
    plant = own_plant if own_plant is not None else f.plant
    if plant:
        query = query.where(AbsenceCase.plant == plant)
    if f.level.isdigit():
        query = query.where(AbsenceCase.level == int(f.level))
    if f.q:
        like = f"%{f.q}%"
        query = query.where((Employee.employee_no**like) | (Employee.name**like) | (AbsenceCase.user_id == f.q))
    if f.waiting == "gate":
        query = query.where(
            pw.fn.EXISTS(Gate.select(Gate.id).where((Gate.case == AbsenceCase.id) & (Gate.status == "open")))
        )
    elif f.waiting == "acked":
        query = query.where(AbsenceCase.acked_until_ms.is_null(False))
    elif f.waiting == "welfare":
        query = query.where(AbsenceCase.welfare == "open")
    return query


def page_of_cases(f: Filters, own_plant: str | None) -> tuple[list[Row], int]:
    """One page of cases (highest level first, then the oldest) and how many match in all."""
    query = _query(f, own_plant)
    total = query.count()
    rows = [
        Row(c)
        for c in query.order_by(AbsenceCase.level.desc(), AbsenceCase.opened_ms, AbsenceCase.id).paginate(
            max(1, f.page), PAGE_SIZE
        )
    ]
    _next_steps(rows)
    _untrusted_days(rows)
    return rows, total


def _untrusted_days(rows: list[Row]) -> None:
    """How many of each listed case's counted days rest on a fact signed past its appliance key's compromise point:
    one query for the page, and none while no key is marked compromised."""
    trust = Trust.load()
    if not trust or not rows:
        return
    by_id = {r.case.id: r for r in rows}
    for cid, appliance, seq in (
        CaseDay.select(CaseDay.case, AttendanceDay.appliance, AttendanceDay.seq)
        .join(AbsenceCase)
        .join(
            AttendanceDay,
            on=((AttendanceDay.plant == AbsenceCase.plant) & (AttendanceDay.fact_key == CaseDay.fact_key)),
        )
        .where(CaseDay.case.in_(list(by_id)) & (CaseDay.status == "counted"))
        .tuples()
    ):
        if not trust.trusted(appliance, seq):
            by_id[cid].untrusted_days += 1


def _next_steps(rows: list[Row]) -> None:
    by_id = {r.case.id: r for r in rows}
    if not by_id:
        return
    ids = list(by_id)
    gates = {
        cid: kind
        for cid, kind in Gate.select(Gate.case, Gate.kind).where(Gate.case.in_(ids) & (Gate.status == "open")).tuples()
    }
    steps: dict[int, tuple[int, str, str]] = {}
    for cid, due, key, notice in (
        CaseStep.select(CaseStep.case, CaseStep.due_ms, CaseStep.key, CaseStep.notice)
        .where(CaseStep.case.in_(ids) & CaseStep.status.in_(ladder.PENDING))
        .order_by(CaseStep.due_ms)
        .tuples()
    ):
        steps.setdefault(cid, (due, key, notice))
    tasks: dict[int, tuple[int, str, str]] = {}
    for cid, due, zh, en in (
        CaseTask.select(CaseTask.case, CaseTask.due_ms, CaseTask.title_zh, CaseTask.title_en)
        .where(CaseTask.case.in_(ids) & (CaseTask.status == "open") & CaseTask.due_ms.is_null(False))
        .order_by(CaseTask.due_ms)
        .tuples()
    ):
        tasks.setdefault(cid, (due, zh, en))
    for cid, row in by_id.items():
        case = row.case
        if case.open_key is None:
            zh, en = RESOLVED_AS.get(case.resolution, (case.resolution, case.resolution))
            row.next = NextStep("none", f"已结案：{zh}", f"closed: {en}", case.resolved_ms)
        elif cid in gates:
            kind = gates[cid]
            zh, en = GATE_NAMES.get(kind, (kind, kind))
            row.next = NextStep("gate", f"待审批：{zh}", f"awaiting approval: {en}", None)
        elif cid in steps:
            due, key, notice = steps[cid]
            zh, en = NOTICE_NAMES.get(notice, (notice, notice))
            row.next = NextStep("step", f"发送{zh}", f"send {key} ({en})", due)
        elif cid in tasks:
            due, zh, en = tasks[cid]
            row.next = NextStep("task", zh, en, due)
        elif case.wake_ms is not None:
            row.next = NextStep("timer", "计时到期后复核", "timer runs out", case.wake_ms)
        else:
            row.next = NextStep("none", "等待下一个确认的工作日", "waits for the next confirmed working day", None)


RESOLVED_AS = {  # how a closed case ended, in words (the page's reasons and the engine's)
    "returned": ("员工返岗", "employee returned"),
    "approved_leave": ("已批准请假", "approved leave"),
    "correction": ("补卡", "attendance correction"),
    "accepted_reason": ("理由已接受", "reason accepted"),
    "excused": ("全部缺勤日已被假期/补卡/更正覆盖", "every absent day excused"),
}
ACTORS = {  # who wrote a timeline line, where it was not a person signed in under their name
    **names.OPERATORS,
    "engine": ("系统（案件流程）", "system (case engine)"),
    "appliance": ("考勤设备", "attendance appliance"),
}
GATE_NAMES = {
    "approve_cuigao": ("批准发送催告函", "approve sending the 催告函"),
    "confirm_termination": ("确认解除劳动合同", "confirm the termination"),
}


def blocked_words(csv: str) -> tuple[str, str]:
    """Why a case is held back (``AbsenceCase.blocked``, "cuigao_sent,deadline_passed") in words."""
    missing = [k for k in csv.split(",") if k]
    zh = "、".join("未" + ladder.CHECKS_ZH.get(k, k) for k in missing)
    en = "not yet: " + ", ".join(MESSAGES.get(f"chk_{k}", (k, k))[1] for k in missing)
    return zh, en


def template_name(template_id: str | None, version: str | None) -> tuple[str, str]:
    """A notice template as people read it: "《关于限期返岗的通知（催告函）》第2版" / "notice to return, version 2"."""
    if not template_id:
        return ("—", "—")
    try:
        found = notice_templates.get(template_id, version or None)
    except notice_templates.UnknownTemplate:
        return (f"{template_id} 第{version}版", f"{template_id} v{version}")
    return (f"《{found.title}》第{found.version}版", f"{found.name_en or found.title}, version {found.version}")


def plants_for(own_plant: str | None) -> list[Plant]:
    query = Plant.select().order_by(Plant.id)
    return list(query.where(Plant.id == own_plant) if own_plant is not None else query)


# -- one case --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One line of the merged timeline."""

    at_ms: int
    kind: str  # entry | punch | day | attempt | notice | document
    actor: str
    text_zh: str
    text_en: str
    data: dict[str, Any]


def detail(case: AbsenceCase) -> dict[str, Any]:
    refs = case_refs(case.id)
    since = case.first_start_ms - 7 * DAY_MS
    appliances = [a for (a,) in Appliance.select(Appliance.id).where(Appliance.plant == case.plant_id).tuples()]
    punches = (
        list(
            Punch.select(Punch.at_utc_ms, Punch.terminal, Punch.state, Punch.appliance, Punch.seq)
            .where((Punch.employee == case.user_id) & Punch.appliance.in_(appliances) & (Punch.at_utc_ms >= since))
            .order_by(Punch.at_utc_ms)
            .limit(500)
        )
        if appliances
        else []
    )
    facts = list(
        AttendanceDay.select()
        .where(
            (AttendanceDay.plant == case.plant_id)
            & (AttendanceDay.user_id == case.user_id)
            & (AttendanceDay.start_ms >= since)
        )
        .order_by(AttendanceDay.start_ms)
        .limit(200)
    )
    attempts = list(
        ContactAttempt.select(
            ContactAttempt.id,
            ContactAttempt.at_ms,
            ContactAttempt.channel,
            ContactAttempt.provider,
            ContactAttempt.recipient,
            ContactAttempt.template_id,
            ContactAttempt.template_version,
            ContactAttempt.subject,
            ContactAttempt.content_sha256,
            ContactAttempt.status,
            ContactAttempt.reason,
            ContactAttempt.provider_message_id,
            ContactAttempt.operator,
            ContactAttempt.receipt_status,
            ContactAttempt.step_id,
            ContactAttempt.idem_key,
            ContactAttempt.attempt_no,
            ContactAttempt.sent_text,
        )
        .where(ContactAttempt.case_ref.in_(refs))
        .order_by(ContactAttempt.at_ms, ContactAttempt.id)
    )
    receipts: dict[int, list[DeliveryReceipt]] = {}
    if attempts:
        for r in (
            DeliveryReceipt.select()
            .where(DeliveryReceipt.attempt.in_([a.id for a in attempts]))
            .order_by(DeliveryReceipt.received_ms)
        ):
            receipts.setdefault(r.attempt_id, []).append(r)
    done_keys = {a.idem_key for a in attempts if a.status == "done"}
    open_tasks = [a for a in attempts if a.status == "task_open" and a.idem_key not in done_keys]
    notices = list(
        NoticeDocument.select(
            NoticeDocument.id,
            NoticeDocument.doc_no,
            NoticeDocument.title,
            NoticeDocument.template_id,
            NoticeDocument.template_version,
            NoticeDocument.pdf_sha256,
            NoticeDocument.sms_sha256,
            NoticeDocument.rendered_ms,
        )
        .where(NoticeDocument.case_ref.in_(refs))
        .order_by(NoticeDocument.rendered_ms)
    )
    pending = list(  # sent on their words; the PDF pass makes their PDF after the tick's sends, then drops the row
        PendingPdf.select(
            PendingPdf.doc_no,
            PendingPdf.title,
            PendingPdf.template_version,
            PendingPdf.text_sha256,
            PendingPdf.rendered_ms,
        )
        .where(PendingPdf.case_ref.in_(refs))
        .order_by(PendingPdf.rendered_ms)
    )
    documents = list(
        CaseDocument.select(
            CaseDocument.id,
            CaseDocument.name,
            CaseDocument.size,
            CaseDocument.sha256,
            CaseDocument.note,
            CaseDocument.uploaded_by,
            CaseDocument.uploaded_ms,
        )
        .where(CaseDocument.case_id == case.id)
        .order_by(CaseDocument.uploaded_ms)
    )
    gates = list(Gate.select().where(Gate.case == case).order_by(Gate.opened_ms))
    approvals: dict[int, list[GateApproval]] = {}
    for a in GateApproval.select().where(GateApproval.gate.in_([g.id for g in gates])).order_by(GateApproval.at_ms):
        approvals.setdefault(a.gate_id, []).append(a)
    trust = Trust.load()
    events = _merge(case, punches, facts, attempts, receipts, notices, documents, trust)
    replies = [
        e for e in events if e.kind == "entry" and e.data.get("kind") in LINK_KINDS
    ]  # newest first: the latest reply is what HR answers
    replies.reverse()
    plant_said = [e for e in reversed(events) if e.kind == "entry" and e.data.get("kind") == "plant_action"]
    counted = list(CaseDay.select().where(CaseDay.case == case).order_by(CaseDay.start_ms))
    days = day_list(case, counted, facts, trust)
    now = now_ms()
    return {
        # the emergency contacts the 失联 steps would reach, each flagged unless it confirmed within six months
        "contacts": [(c, emergency.shown(c, now)) for c in emergency.listed(case.employee_id)],
        "events": events,
        "replies": replies,
        "plant_said": plant_said,  # what the plant's people recorded about the case's days, newest first
        "chain_problems": timeline.verify(case),
        "days": days,
        # the counted days whose day fact the appliance signed after its key may have leaked: not evidence
        "untrusted_days": sum(1 for day in days if day.status == "counted" and day.untrusted),
        "provisional": provisional_days(case),
        "steps": list(CaseStep.select().where(CaseStep.case == case).order_by(CaseStep.id)),
        "gates": gates,
        "approvals": approvals,
        "tasks": list(CaseTask.select().where(CaseTask.case == case).order_by(CaseTask.created_ms, CaseTask.id)),
        "services": list(Service.select().where(Service.case == case)),
        "attempts": attempts,
        "receipts": receipts,
        "open_tasks": open_tasks,
        "notices": notices,
        "pending_pdfs": pending,
        "documents": documents,
        "policy": PolicyVersion.get_by_id(case.policy_id),
        "policy_parsed": policy_of(case),
        "badge_facts": len(facts),
    }


@dataclass(frozen=True)
class DayRow:
    """One line of the case's day list: a day it counts (or counted), or one nothing was recording."""

    work_date: str
    shift: str
    status: str  # counted | superseded (CaseDay) | uncovered (the appliance's fact)
    superseded_by: str
    fact_key: str
    fact_id: str
    untrusted: tuple[str, str] | None = None  # the mark, when the appliance signed the fact after its key leaked


def day_list(
    case: AbsenceCase, counted: list[CaseDay], facts: list[AttendanceDay], trust: Trust | None = None
) -> list[DayRow]:
    """The case's days, and beside them the days of its period the appliance was not yet recording (未覆盖: its
    fact says so; never counted): from a week before the first day to the case's end, by date. A day whose
    latest fact lies past its appliance key's compromise point carries the mark saying so."""
    trust = trust if trust is not None else Trust.load()
    end = case.resolved_ms if case.open_key is None and case.resolved_ms else None
    signed = {f.fact_key: (f.appliance_id, f.seq) for f in facts}
    missing = [d.fact_key for d in counted if d.fact_key not in signed]
    if trust and missing:  # a counted day older than the facts read for the timeline: where it was signed
        for key, appliance, seq in (
            AttendanceDay.select(AttendanceDay.fact_key, AttendanceDay.appliance, AttendanceDay.seq)
            .where((AttendanceDay.plant == case.plant_id) & AttendanceDay.fact_key.in_(missing))
            .tuples()
        ):
            signed[key] = (appliance, seq)

    def mark(fact_key: str) -> tuple[str, str] | None:
        point = trust.untrusted(*signed.get(fact_key, (None, None)))
        return point.words() if point is not None else None

    rows = [
        DayRow(d.work_date, d.shift, d.status, d.superseded_by, d.fact_key, d.fact_id, mark(d.fact_key))
        for d in counted
    ]
    rows += [
        DayRow(f.work_date, f.shift, "uncovered", "", f.fact_key, f.fact_id, mark(f.fact_key))
        for f in facts
        if f.status == "uncovered" and (end is None or (f.start_ms or 0) <= end)
    ]
    return sorted(rows, key=lambda r: (r.work_date, r.shift))


def gate_open(case: AbsenceCase, kind: str) -> bool:
    return (
        case.open_key is not None
        and Gate.select().where((Gate.case == case) & (Gate.kind == kind) & (Gate.status == "open")).exists()
    )


def gate_previews(
    case: AbsenceCase, gates: list[Gate], settings: NoticeSettings | None, font: str, now_ms: int
) -> dict[str, list[preview.Preview] | str]:
    """For each open gate of an open case: what it would release now, or why that cannot be shown."""
    out: dict[str, list[preview.Preview] | str] = {}
    if case.open_key is None:
        return out
    for gate in gates:
        if gate.status == "open" and gate.kind in preview.GATE_RELEASES:
            try:
                out[gate.kind] = preview.for_gate(case, gate.kind, settings, font, now_ms)
            except preview.PreviewUnavailable as err:
                out[gate.kind] = str(err)
    return out


def provisional_days(case: AbsenceCase) -> dict[str, int]:
    """The case's days whose latest signed fact rests on a provisional calendar (its year's holidays not
    yet published: the appliance judged it by the roster's own week), by fact key, with the year."""
    rows = (
        AttendanceDay.select(AttendanceDay.fact_key, AttendanceDay.work_date, LogRecord.data)
        .join(CaseDay, on=(CaseDay.fact_key == AttendanceDay.fact_key))
        .switch(AttendanceDay)
        .join(
            LogRecord,
            on=((LogRecord.appliance == AttendanceDay.appliance) & (LogRecord.seq == AttendanceDay.seq)),
        )
        .where((CaseDay.case == case) & (AttendanceDay.plant == case.plant_id))
        .tuples()
    )
    found = {}
    for key, work_date, data in rows:
        if json.loads(bytes(data))["fact"].get("cal_provisional"):
            found[key] = int(work_date[:4])
    return found


def _mark(trust: Trust, appliance: int | None, seq: int | None) -> dict[str, Any]:
    point = trust.untrusted(appliance, seq)
    return {"untrusted": point.words()} if point is not None else {}


def _merge(case, punches, facts, attempts, receipts, notices, documents, trust) -> list[Event]:  # type: ignore[no-untyped-def]
    events = []
    for i in timeline.items(case):
        # the engine's "confirmed absent" lines name the fact's appliance record (its log seq in data["seq"])
        signed = _mark(trust, i.data.get("appliance"), i.data.get("seq")) if i.kind == "day" else {}
        events.append(
            Event(i.at_ms, "entry", i.actor, i.text_zh, i.text_en, {"kind": i.kind, **i.data, "seq": i.seq, **signed})
        )
    states = {0: ("上班", "in"), 1: ("下班", "out")}
    for p in punches:
        zh, en = states.get(p.state, ("打卡", "punch"))
        events.append(
            Event(
                p.at_utc_ms,
                "punch",
                p.terminal,
                f"打卡（{zh}）· {p.terminal}",
                f"punch ({en}) · {p.terminal}",
                {"seq": p.seq, **_mark(trust, p.appliance_id, p.seq)},
            )
        )
    for d in facts:
        zh, en = MESSAGES.get(f"fact_{d.status}", (d.status, d.status))
        events.append(
            Event(
                d.start_ms or 0,
                "day",
                "appliance",
                f"日结论 {d.work_date} {d.shift}：{zh}",
                f"day fact {d.work_date} {d.shift}: {en}",
                {"fact_id": d.fact_id, "seq": d.seq, "versions": d.versions, **_mark(trust, d.appliance_id, d.seq)},
            )
        )
    for a in attempts:
        status_zh, status_en = names.STATUSES.get(a.status, (a.status, a.status))
        why_zh = reasons.zh(a.channel, a.reason) if a.status in ("failed", "uncertain") and a.reason else a.reason
        zh, en = (
            f"{names.zh(a.channel)} → {a.recipient}：{status_zh} {why_zh}",
            f"{names.en(a.channel)} → {a.recipient}: {status_en} {a.reason}",
        )
        if a.provider == "notice_link":  # the employee on the notice's link page: no message went anywhere
            done_zh, done_en = LINK_STATUS.get(a.status, (a.status, a.status))
            zh, en = f"通知链接 · {done_zh}：{a.reason}", f"notice link · {done_en}: {a.reason}"
        events.append(
            Event(
                a.at_ms,
                "attempt",
                a.operator,
                zh.strip(),
                en.strip(),
                {
                    "attempt": a.id,
                    "provider": a.provider,
                    "message_id": a.provider_message_id,
                    "template": template_name(a.template_id, a.template_version),
                    "sha256": a.content_sha256,
                    "words": a.sent_text,  # an SMS as the phone showed it ("" when the approved text is not configured)
                    "receipts": [
                        {"status": r.status, "detail": r.detail, "at_ms": r.received_ms, "raw_sha256": r.raw_sha256}
                        for r in receipts.get(a.id, [])
                    ],
                },
            )
        )
    for n in notices:
        events.append(
            Event(
                n.rendered_ms,
                "notice",
                "engine",
                f"文书《{n.title}》{n.doc_no}",
                f"notice “{n.title}” {n.doc_no}",
                {"notice": n.id, "sha256": n.pdf_sha256, "template": f"{n.template_id}@{n.template_version}"},
            )
        )
    for d in documents:
        events.append(
            Event(
                d.uploaded_ms,
                "document",
                d.uploaded_by,
                f"上传文件 {d.name}",
                f"uploaded {d.name}",
                {"document": d.id, "sha256": d.sha256, "size": d.size},
            )
        )
    order = {"day": 0, "punch": 1, "entry": 2, "notice": 3, "attempt": 4, "document": 5}
    events.sort(key=lambda e: (e.at_ms, order[e.kind]))
    return events


def checklist(gate: Gate) -> dict[str, Any]:
    try:
        return dict(json.loads(gate.checklist or "{}"))
    except ValueError:
        return {}
