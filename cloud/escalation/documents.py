"""Documents a person produces on a case, beside the notices the ladder sends: the 解除劳动合同证明 owed on
termination (劳动合同法 第五十条) and the 公告 text HR publishes when a notice could not be served.

Each is rendered from its template (``cloud.notices.templates``) with the facts ``notice_facts.build`` gathers
for the case, plus what the template needs beyond a ladder step's notice; kept like every notice
(``records.keep``: the PDF with its SHA-256, listed among the case's 文书); and written into the case's
timeline by the person who produced it, with its number and hash (the timeline's entries by people are what
the cloud's evidence log carries). Producing the same document again with the same facts keeps one copy.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from cloud.channels.contact_log import ContactAttempt
from cloud.clock import Clock, to_ms
from cloud.escalation import actions, cases, notice_facts, preview, timeline, workdays
from cloud.escalation.cases import CaseError, locked_case, policy_of
from cloud.escalation.models import AbsenceCase, CaseStep, Service
from cloud.escalation.policy import PolicyVersion
from cloud.escalation.sender import PlannedStep
from cloud.notices import facts as nf
from cloud.notices import records, templates
from cloud.notices.links import Links
from cloud.notices.records import NoticeDocument
from cloud.notices.render import MissingFacts, RenderedNotice, render_notice
from cloud.notices.settings import NoticeSettings
from cloud.report_font import CjkFont

SERVED = {  # a document that can fail to be served: its notice, the template it was rendered from, its name
    "cuigao": ("cuigao", "cuigao", "催告函"),
    "termination": ("termination", "jiechu", "解除通知书"),
}
CERTIFICATE_KEY = "解除证明"  # the document number's last part: 人通〔2026〕00012-解除证明


def years_of_service(hired: date, until: date) -> str:
    """Whole months from ``hired`` to ``until``, in years and months: "2年4个月", "1年", "7个月", "不满1个月"."""
    months = (until.year - hired.year) * 12 + until.month - hired.month - (1 if until.day < hired.day else 0)
    if months < 1:
        return "不满1个月"
    years, rest = divmod(months, 12)
    return (f"{years}年" if years else "") + (f"{rest}个月" if rest else "")


def _step(case: AbsenceCase, key: str, now_ms: int, channels: tuple[str, ...] = ()) -> PlannedStep:
    """A step for ``notice_facts.build``: the case's counted days, issued now, under the document's own key."""
    return PlannedStep(
        step_id=0,
        case_id=case.id,
        key=key,
        level=case.level,
        notice="",
        recipients=("employee",),
        channels=channels,
        employee_id=case.employee_id,
        employee_no=case.employee.employee_no,
        plant_id=case.plant_id,
        user_id=case.user_id,
        policy=PolicyVersion.get_by_id(case.policy_id).label,
        absent_days=preview.absent_days(case.id),
        deadline_ms=case.deadline_ms,
        planned_ms=now_ms,
    )


def _render(template_id: str, facts: nf.NoticeFacts, font: CjkFont, tz: str) -> RenderedNotice:
    template = templates.get(template_id)
    try:
        return render_notice(template, facts, font, tz=ZoneInfo(tz))
    except MissingFacts as err:
        raise CaseError(
            f"《{template.title}》缺少必要事实：{'、'.join(err.missing)}；请先在人事数据或 [notices] 中补全"
            f" / the {template.name_en} lacks {', '.join(err.missing)}: complete the HR data or [notices] first"
        ) from err


def _keep(case: AbsenceCase, rendered: RenderedNotice, clock: Clock) -> tuple[NoticeDocument, bool]:
    """Kept once: the row and whether it is new (the same facts render the same bytes)."""
    known = NoticeDocument.get_or_none(NoticeDocument.pdf_sha256 == rendered.pdf_sha256)
    return records.keep(notice_facts.case_ref(case.id), rendered, clock), known is None


def certificate(case_id: int, *, by: str, settings: NoticeSettings, font: CjkFont, clock: Clock) -> NoticeDocument:
    """The 解除劳动合同证明 of a case whose termination took effect: kept, in the timeline, and the statutory
    ``certificate`` task done with its number as proof."""
    now = to_ms(clock.now())
    case = AbsenceCase.get_by_id(case_id)
    if case.level != 8 or case.effective_ms is None:
        raise CaseError(
            "解除尚未送达生效，不能出具解除劳动合同证明 / the termination has not taken effect: no certificate yet"
        )
    tz = case.plant.timezone
    ended = workdays.local_day(case.effective_ms, tz)
    facts = notice_facts.build(_step(case, CERTIFICATE_KEY, now), case, settings, Links(clock, settings.link_days))
    hired = facts.employee.hired_on
    if hired is None:
        raise CaseError(
            "员工的入职日期（劳动合同起始日）未登记，无法计算工作年限：请在人事数据中补全后再出具"
            " / the employee's hire date (contract start) is missing: complete the HR data first"
        )
    facts = dataclasses.replace(facts, termination_date=ended, years_of_service=years_of_service(hired, ended))
    rendered = _render("jiechu_zhengming", facts, font, tz)
    doc, new = _keep(case, rendered, clock)
    with locked_case(case_id) as locked:
        if new:
            timeline.append(
                locked,
                "certificate",
                f"出具《解除劳动合同证明》（文号 {doc.doc_no}；解除日期 {ended:%Y-%m-%d}；"
                f"PDF SHA-256 {doc.pdf_sha256}）",
                f"termination certificate issued ({doc.doc_no}; terminated {ended:%Y-%m-%d}; "
                f"PDF SHA-256 {doc.pdf_sha256})",
                at_ms=now,
                actor=by,
                doc_no=doc.doc_no,
                notice=doc.id,
                sha256=doc.pdf_sha256,
            )
        actions.complete_task_locked(
            locked, "certificate", by=by, now_ms=now, proof=f"解除劳动合同证明 {doc.doc_no}（SHA-256 {doc.pdf_sha256}）"
        )
        if locked.open_key is not None:
            cases.advance(locked, now)
    return doc


def failed_documents(case: AbsenceCase) -> list[str]:
    """The case's documents whose service failed (every channel; EMS returned), for which a 公告 is the way left."""
    return [
        s.document
        for s in Service.select().where((Service.case == case) & (Service.status == "failed"))
        if s.document in SERVED
    ]


def _served_notice(case: AbsenceCase, document: str) -> NoticeDocument:
    """The latest notice of ``document`` as it was sent (kept by the sender)."""
    template_id = SERVED[document][1]
    doc = (
        NoticeDocument.select()
        .where(
            NoticeDocument.case_ref.in_((notice_facts.case_ref(case.id), str(case.id)))
            & (NoticeDocument.template_id == template_id)
        )
        .order_by(NoticeDocument.rendered_ms.desc(), NoticeDocument.id.desc())
        .first()
    )
    if doc is None:
        raise CaseError(
            f"本案没有已发出的{SERVED[document][2]}，无从公告"
            f" / no {document} of this case was ever sent: nothing to publish"
        )
    return doc


def _attempts(case: AbsenceCase, notice: str, tz: str) -> tuple[nf.ContactMade, ...]:
    """Every attempt to serve ``notice`` on the employee (its steps' messages, EMS included), as the log has them."""
    keys = [
        k
        for (k,) in CaseStep.select(CaseStep.key)
        .where((CaseStep.case == case) & (CaseStep.notice == notice) & (CaseStep.status == "sent"))
        .tuples()
    ]
    if not keys:
        return ()
    zone = ZoneInfo(tz)
    rows = (
        ContactAttempt.select()
        .where(
            ContactAttempt.case_ref.in_((notice_facts.case_ref(case.id), str(case.id)))
            & ContactAttempt.step_id.in_(keys)
        )
        .order_by(ContactAttempt.at_ms, ContactAttempt.id)
    )
    seen: dict[str, nf.ContactMade | None] = {}
    for r in rows:  # an attempt tried again, or a task and its recorded result, is one line: its latest state
        if r.status == "task_open":  # a letter to post, a call to make: nothing happened yet
            seen.setdefault(r.idem_key, None)
            continue
        local = datetime.fromtimestamp(r.at_ms / 1000, UTC).astimezone(zone)
        status = r.receipt_status or r.status
        seen[r.idem_key] = nf.ContactMade(
            at=f"{local:%Y年%m月%d日 %H:%M}",
            channel=notice_facts.CHANNEL_ZH.get(r.channel.split(".")[0], r.channel),
            result=notice_facts.RESULT_ZH.get(status, status),
        )
    return tuple(made for made in seen.values() if made is not None)


def _summary(case: AbsenceCase, document: str, settings: NoticeSettings) -> str:
    """What the document says, in a sentence a newspaper prints (the full text is behind the link)."""
    policy = policy_of(case)
    article = f"《员工手册》{policy.handbook.article}" if policy.handbook.article else "本单位规章制度"
    if document == "cuigao":
        return (
            f"请您自本公告视为送达之日起 {policy.return_days} 日内（期限末日遇休息日、法定节假日顺延）到"
            f"{settings.report_to}报到上班；如有正当理由不能返岗，请在此期限内通过{settings.how_to_reply}说明原因"
            f"并提交证明材料。逾期未返岗且无正当理由的，本单位将依据{article}认定旷工，并可能依据《中华人民共和国"
            "劳动合同法》第三十九条第（二）项解除与您的劳动合同。"
        )
    return (
        f"您未到岗、未办理请假手续，经催告后仍未返岗，严重违反{article}。本单位依据《中华人民共和国劳动合同法》"
        "第三十九条第（二）项解除与您的劳动合同，自该通知送达之日起生效。工资结算："
        f"{settings.settlement}。请您办理工作交接，并领取解除劳动合同证明。"
    )


def public_notice(
    case_id: int, document: str, *, by: str, settings: NoticeSettings, font: CjkFont, clock: Clock
) -> NoticeDocument:
    """The 公告 text for ``document`` (催告函 or 解除通知书) whose service failed: kept, and in the timeline. HR
    publishes it, then records the publication date (送达 → 已公告), from which it is deemed served."""
    if document not in SERVED:
        raise CaseError(f"文书 {document!r} 无效 / document is one of {', '.join(SERVED)}")
    now = to_ms(clock.now())
    case = AbsenceCase.get_by_id(case_id)
    if document not in failed_documents(case):
        raise CaseError(
            f"{SERVED[document][2]}未登记送达失败：先在“送达”中登记送达失败，再生成公告"
            f" / the {document}'s service is not recorded as failed: record that first"
        )
    notice, _template, name = SERVED[document]
    served = _served_notice(case, document)
    tz = case.plant.timezone
    facts = notice_facts.build(_step(case, f"公告:{name}", now), case, settings, Links(clock, settings.link_days))
    facts = dataclasses.replace(
        facts,
        contacts=_attempts(case, notice, tz),
        extra={
            **facts.extra,
            "notice_title": served.title,
            "notice_doc_no": served.doc_no,
            "notice_summary": _summary(case, document, settings),
        },
    )
    rendered = _render("gonggao", facts, font, tz)
    doc, new = _keep(case, rendered, clock)
    if new:
        with locked_case(case_id) as locked:
            timeline.append(
                locked,
                "public_notice_text",
                f"生成《{served.title}》的公告文本（文号 {doc.doc_no}；PDF SHA-256 {doc.pdf_sha256}）："
                "刊登后请在“送达”中登记公告刊登日期",
                f"public notice text for {served.doc_no} produced ({doc.doc_no}; PDF SHA-256 {doc.pdf_sha256}): "
                "record the publication date once it is published",
                at_ms=now,
                actor=by,
                document=document,
                doc_no=doc.doc_no,
                notice=doc.id,
                sha256=doc.pdf_sha256,
            )
    return doc
