"""Absence cases: the list with filters, a case's page, and what people do about it.

Every action goes through ``cloud.escalation.actions`` (the state machine is not repeated here); the
user is the actor in the case's timeline, and each attempt, done or refused, is audited
(``cloud.audit``). A refusal by the case's rules (``CaseError``) is shown on the page in the user's
language and changes nothing.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, session, url_for

from cloud.channels import names
from cloud.clock import SystemClock
from cloud.escalation import actions, documents, ladder, preview, replies
from cloud.escalation.cases import ACK_REASONS, CaseError
from cloud.escalation.models import AbsenceCase
from cloud.hr.models import Employee
from cloud.notices.records import NoticeDocument
from cloud.web import caseview
from cloud.web.present import bi, channels, in_zone, local_ms, policy_label, roles, step_name, word, zone_name
from cloud.web.roles import can, check_plant, note, now_ms, own_plant, require
from opskit.download import content_disposition
from opskit.urlints import MAX_PAGE, query_int

bp = Blueprint("cases", __name__)

RESOLUTIONS = {
    "returned": ("员工返岗", "employee returned"),
    "approved_leave": ("已批准请假", "approved leave"),
    "correction": ("补卡", "attendance correction"),
    "accepted_reason": ("理由已接受", "reason accepted"),
}
FINDINGS = {
    "none_found": ("未发现意外或疾病", "nothing found"),
    "accident": ("确认发生意外（工伤）", "accident confirmed (work injury)"),
    "illness": ("确认患病", "illness confirmed"),
}
OUTCOMES = {  # manual.Outcome names, as the call / EMS result form offers them
    "voice": {
        "CALL_CONNECTED": ("接通", "answered"),
        "CALL_NO_ANSWER": ("无人接听", "no answer"),
        "CALL_SWITCHED_OFF": ("关机", "switched off"),
        "CALL_EMPTY_NUMBER": ("空号", "number does not exist"),
    },
    "ems": {
        "EMS_POSTED": ("已交寄", "posted"),
        "EMS_DELIVERED": ("妥投", "delivered"),
        "EMS_RETURNED": ("退回", "returned"),
    },
}
DOCUMENTS = {
    "cuigao": ("催告函/返岗通知书", "notice to return"),
    "termination": ("解除劳动合同通知书", "termination notice"),
}


def case_of(case_id: int) -> AbsenceCase:
    case = AbsenceCase.select(AbsenceCase, Employee).join(Employee).where(AbsenceCase.id == case_id).first()
    if case is None:
        abort(404)
    check_plant(case.plant_id)
    return case


@bp.route("/cases")
@require("view")
def index() -> Any:
    args = request.args
    filters = caseview.Filters(
        status=args.get("status", "open") if args.get("status") in ("open", "resolved", "all") else "open",
        plant=args.get("plant", ""),
        level=str(query_int("level", 0, lo=min(ladder.STATES), hi=max(ladder.STATES))) if args.get("level") else "",
        q=args.get("q", "").strip()[:64],
        waiting=args.get("waiting", ""),
        page=query_int("page", 1, lo=1, hi=MAX_PAGE),
    )
    rows, total = caseview.page_of_cases(filters, own_plant())
    pages = max(1, -(-total // caseview.PAGE_SIZE))
    return render_template(
        "cases.html",
        rows=rows,
        total=total,
        pages=pages,
        f=filters,
        plants=caseview.plants_for(own_plant()),
        states=ladder.STATES,
        in_zone=in_zone,
        bi=bi,
    )


def notices_settings() -> tuple[Any, str]:
    """``[notices]`` (None when not configured) and the configured font for notices."""
    settings = current_app.config["SETTINGS"]
    return settings.notices, settings.report_font


def clock() -> Any:
    return current_app.config.get("CLOCK", SystemClock())


@bp.route("/cases/<int:case_id>")
@require("view")
def show(case_id: int) -> Any:
    case = case_of(case_id)
    d = caseview.detail(case)
    notices, font = notices_settings()
    return render_template(
        "case.html",
        case=case,
        d=d,
        previews=caseview.gate_previews(case, d["gates"], notices, font, now_ms()),
        failed=documents.failed_documents(case),
        public_notice_days=d["policy_parsed"].public_notice_days,
        tz=case.plant.timezone,
        tzname=zone_name(case.plant.timezone),
        in_zone=in_zone,
        bi=bi,
        word=word,
        names=names,
        actors=caseview.ACTORS,
        blocked_words=caseview.blocked_words,
        policy_label=policy_label,
        roles=roles,
        channels=channels,
        step_name=step_name,
        can=can,
        ack_reasons=ACK_REASONS,
        resolutions=RESOLUTIONS,
        resolved_as=caseview.RESOLVED_AS,
        findings=FINDINGS,
        documents=DOCUMENTS,
        gate_names=caseview.GATE_NAMES,
        checklist=caseview.checklist,
        outcomes=OUTCOMES,
        reply_reasons=replies.REASONS,
        now_ms=now_ms(),
    )


@bp.route("/cases/<int:case_id>/notices/<int:notice_id>.pdf")
@require("view")
def notice_pdf(case_id: int, notice_id: int) -> Any:
    case_of(case_id)
    notice = NoticeDocument.get_or_none(
        (NoticeDocument.id == notice_id) & NoticeDocument.case_ref.in_(caseview.case_refs(case_id))
    )
    if notice is None:
        abort(404)
    name = f"{notice.doc_no or notice.id}.pdf"
    return Response(
        bytes(notice.pdf),
        mimetype="application/pdf",
        headers={
            "Content-Disposition": content_disposition(name),
            "X-Content-SHA256": notice.pdf_sha256,
        },
    )


@bp.route("/cases/<int:case_id>/gates/<kind>/preview/<notice>.pdf")
@require("view")
def preview_pdf(case_id: int, kind: str, notice: str) -> Any:
    """The notice an open gate would release, as it would go out now, marked 草稿/预览，未发出; nothing is kept."""
    case = case_of(case_id)
    if kind not in caseview.GATE_NAMES or notice not in preview.GATE_RELEASES[kind]:
        abort(404)
    if not caseview.gate_open(case, kind):
        abort(404)
    notices, font = notices_settings()
    try:
        found = [p for p in preview.for_gate(case, kind, notices, font, now_ms()) if p.notice == notice]
    except preview.PreviewUnavailable as err:
        return Response(str(err), status=409, mimetype="text/plain")
    if not found:
        abort(404)
    rendered = found[0].rendered
    return Response(
        rendered.pdf,
        mimetype="application/pdf",
        headers={
            "Content-Disposition": content_disposition(rendered.file_name, inline=True),
            "X-Content-SHA256": rendered.pdf_sha256,
        },
    )


def act(case_id: int, permission: str, action: str, run: Any, /, **detail: Any) -> Any:
    """Check the permission and the plant, run the action, audit it either way, and go back to the case."""
    case = case_of(case_id)
    if not can(permission):
        note("refused", action=action, target=f"case:{case_id}", **detail)
        abort(403)
    try:
        run(case)
    except (CaseError, ValueError) as err:
        note("refused", action=action, target=f"case:{case_id}", error=str(err), **detail)
        flash(str(err), "error")
    else:
        note("done", action=action, target=f"case:{case_id}", **detail)
        flash(action, "done")
    return redirect(url_for("cases.show", case_id=case_id))


def user() -> str:
    return str(session["user"])


def form_text(name: str, limit: int = 2000) -> str:
    return request.form.get(name, "").strip()[:limit]


@bp.route("/cases/<int:case_id>/ack", methods=["POST"])
@require("case.ack")
def ack(case_id: int) -> Any:
    reason, text = form_text("reason", 32), form_text("note")
    return act(
        case_id,
        "case.ack",
        "case.ack",
        lambda c: actions.acknowledge(c.id, reason, by=user(), now_ms=now_ms(), note=text),
        reason=reason,
        note=text,
    )


@bp.route("/cases/<int:case_id>/approve/<kind>", methods=["POST"])
@require("case.act")
def approve(case_id: int, kind: str) -> Any:
    if kind not in caseview.GATE_NAMES:
        abort(404)
    text = form_text("note")
    notices, font = notices_settings()
    return act(
        case_id,
        "case.act",
        f"case.approve.{kind}",
        lambda c: preview.approve(
            c.id, kind, by=user(), now_ms=now_ms(), note=text, settings=notices, font_config=font
        ),
        note=text,
    )


def _produce(case_id: int, action: str, make: Any, **detail: Any) -> Any:
    """Render and keep a document of the case (its font and ``[notices]`` needed), as ``act`` does an action."""
    notices, font = notices_settings()

    def run(case: AbsenceCase) -> None:
        if notices is None:
            raise CaseError("未配置 [notices]，文书无法生成：请在 cloud.toml 中配置 / [notices] is not configured")
        try:
            found = preview.notice_font(font)
        except preview.PreviewUnavailable as err:
            raise CaseError(str(err)) from err
        make(case, notices, found)

    return act(case_id, "case.act", action, run, **detail)


@bp.route("/cases/<int:case_id>/certificate", methods=["POST"])
@require("case.act")
def certificate(case_id: int) -> Any:
    return _produce(
        case_id,
        "case.certificate",
        lambda c, notices, font: documents.certificate(c.id, by=user(), settings=notices, font=font, clock=clock()),
    )


@bp.route("/cases/<int:case_id>/public-notice/<document>", methods=["POST"])
@require("case.act")
def public_notice(case_id: int, document: str) -> Any:
    if document not in documents.SERVED:
        abort(404)
    return _produce(
        case_id,
        "case.public_notice",
        lambda c, notices, font: documents.public_notice(
            c.id, document, by=user(), settings=notices, font=font, clock=clock()
        ),
        document=document,
    )


@bp.route("/cases/<int:case_id>/resolve", methods=["POST"])
@require("case.act")
def resolve(case_id: int) -> Any:
    reason, text = form_text("reason", 32), form_text("note")
    return act(
        case_id,
        "case.act",
        "case.resolve",
        lambda c: actions.resolve(c.id, reason, by=user(), now_ms=now_ms(), note=text),
        reason=reason,
        note=text,
    )


@bp.route("/cases/<int:case_id>/welfare/open", methods=["POST"])
@require("case.act")
def welfare_open(case_id: int) -> Any:
    text = form_text("note")
    return act(
        case_id,
        "case.act",
        "case.welfare.open",
        lambda c: actions.open_welfare(c.id, by=user(), now_ms=now_ms(), note=text),
        note=text,
    )


@bp.route("/cases/<int:case_id>/welfare/close", methods=["POST"])
@require("case.act")
def welfare_close(case_id: int) -> Any:
    finding, text, when = form_text("finding", 32), form_text("note"), form_text("accident_at", 32)

    def run(case: AbsenceCase) -> None:
        accident = local_ms(when, case.plant.timezone) if when else None
        actions.close_welfare(case.id, finding, by=user(), now_ms=now_ms(), note=text, accident_ms=accident)

    return act(case_id, "case.act", "case.welfare.close", run, finding=finding, note=text, accident_at=when)


@bp.route("/cases/<int:case_id>/service", methods=["POST"])
@require("case.act")
def service(case_id: int) -> Any:
    document, outcome = form_text("document", 32), form_text("outcome", 16)
    when, method, proof = form_text("at", 32), form_text("method", 64), form_text("proof")

    def run(case: AbsenceCase) -> None:
        at = local_ms(when, case.plant.timezone) if when else now_ms()
        if outcome == "served":
            actions.record_service(
                case.id, document, by=user(), now_ms=now_ms(), served_ms=at, method=method, proof=proof
            )
        elif outcome == "failed":
            actions.record_service_failed(case.id, document, by=user(), now_ms=now_ms(), proof=proof)
        elif outcome == "published":
            actions.record_publication(case.id, document, by=user(), now_ms=now_ms(), published_ms=at, proof=proof)
        else:
            raise CaseError("送达结果：served、failed 或 published / outcome is served, failed or published")

    return act(
        case_id, "case.act", f"case.service.{outcome}", run, document=document, at=when, method=method, proof=proof
    )


@bp.route("/cases/<int:case_id>/tasks/<kind>/done", methods=["POST"])
@require("case.act")
def task_done(case_id: int, kind: str) -> Any:
    proof = form_text("proof")
    return act(
        case_id,
        "case.act",
        "case.task.done",
        lambda c: actions.complete_task(c.id, kind, by=user(), now_ms=now_ms(), proof=proof),
        task=kind,
        proof=proof,
    )
