"""A work-injury (工伤) claim on a case: ``/cases/<id>/injury``.

The family says the worker was hurt in an accident during the absence (the seed's case, two weeks after the
termination). The page registers the claim (``actions.claim_injury``: the 工伤认定 task, a review of the
termination, 停保 and the other harmful steps held), shows its state, what is held and why, records the
decision (``actions.decide_injury_claim``) and hands over the evidence bundle for the accident's date at the
worker's plant (``evidence.injury_purpose``): what the appliance recorded that day, with or without him. A
bundle of one day is small, so it is made in the request, by the CLI's own export.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, session, url_for

from cloud.clock import SystemClock
from cloud.escalation import actions
from cloud.escalation.cases import CaseError
from cloud.escalation.models import AbsenceCase, CaseStep, CaseTask
from cloud.escalation.policy import NOTICE_NAMES
from cloud.evidence.export import ExportError, export_configured, injury_purpose
from cloud.hr.models import Employee
from cloud.web.present import bi, in_zone, local_ms
from cloud.web.roles import can, check_plant, note, now_ms, require
from opskit.download import content_disposition

bp = Blueprint("injury", __name__)
TASKS = ("injury_report", "review_injury", "injury_recognised")  # the claim's own tasks, in this order
STATUS = {
    "": ("待认定", "awaiting the decision"),
    "recognised": actions.INJURY_OUTCOMES["recognised"],
    "rejected": actions.INJURY_OUTCOMES["rejected"],
}
TASK_STATUS = {"open": ("待办", "open"), "done": ("已完成", "done"), "held": ("暂缓", "held")}


def _case(case_id: int) -> AbsenceCase:
    case = AbsenceCase.select(AbsenceCase, Employee).join(Employee).where(AbsenceCase.id == case_id).first()
    if case is None:
        abort(404)
    check_plant(case.plant_id)
    return case


@bp.route("/cases/<int:case_id>/injury")
@require("view")
def show(case_id: int) -> Any:
    case = _case(case_id)
    claim = actions.injury_claim(case)
    tasks = {t.kind: t for t in CaseTask.select().where((CaseTask.case == case) & CaseTask.kind.in_(TASKS))}
    held_tasks = list(CaseTask.select().where((CaseTask.case == case) & (CaseTask.status == "held")))
    held_steps = list(CaseStep.select().where((CaseStep.case == case) & (CaseStep.status == "held")))
    return render_template(
        "injury.html",
        case=case,
        claim=claim,
        why=actions.review_text(case, claim.accident_day) if claim else None,
        tasks=[tasks[k] for k in TASKS if k in tasks],
        held_tasks=held_tasks,
        held_steps=held_steps,
        notice_names=NOTICE_NAMES,
        status=STATUS,
        task_status=TASK_STATUS,
        outcomes=actions.INJURY_OUTCOMES,
        tz=case.plant.timezone,
        in_zone=in_zone,
        bi=bi,
        can=can,
        now_ms=now_ms(),
    )


def _back(case_id: int) -> Any:
    return redirect(url_for("injury.show", case_id=case_id))


@bp.route("/cases/<int:case_id>/injury", methods=["POST"])
@require("case.act")
def claim(case_id: int) -> Any:
    case = _case(case_id)
    form = request.form
    when, claimant = form.get("accident_date", "").strip()[:32], form.get("claimant", "").strip()[:200]
    text = form.get("note", "").strip()[:2000]
    detail = {"accident_date": when, "claimant": claimant, "note": text}
    try:
        if not when:
            raise CaseError("请填写事故日期 / enter the accident's date")
        accident = local_ms(when, case.plant.timezone)
        actions.claim_injury(
            case.id, by=str(session["user"]), now_ms=now_ms(), accident_ms=accident, claimant=claimant, note=text
        )
    except (CaseError, ValueError) as err:
        note("refused", action="case.injury.claim", target=f"case:{case_id}", error=str(err), **detail)
        flash(str(err), "error")
    else:
        note("done", action="case.injury.claim", target=f"case:{case_id}", **detail)
        flash("工伤申请已登记 / The work-injury claim is registered", "saved")
    return _back(case_id)


@bp.route("/cases/<int:case_id>/injury/decision", methods=["POST"])
@require("case.act")
def decide(case_id: int) -> Any:
    case = _case(case_id)
    outcome, text = request.form.get("outcome", "").strip()[:32], request.form.get("note", "").strip()[:2000]
    try:
        actions.decide_injury_claim(case.id, outcome, by=str(session["user"]), now_ms=now_ms(), note=text)
    except CaseError as err:
        note("refused", action="case.injury.decide", target=f"case:{case_id}", error=str(err), outcome=outcome)
        flash(str(err), "error")
    else:
        note("done", action="case.injury.decide", target=f"case:{case_id}", outcome=outcome, note=text)
        flash("工伤认定结论已登记 / The decision is recorded", "saved")
    return _back(case_id)


@bp.route("/cases/<int:case_id>/injury/bundle.zip")
@require("evidence.export")
def bundle(case_id: int) -> Any:
    case = _case(case_id)
    try:
        scope, day, purpose = injury_purpose(case.id)
        data = export_configured(
            current_app.config["SETTINGS"],
            scope.employee,
            day,
            day,
            clock=current_app.config.get("CLOCK", SystemClock()),
            plant_id=scope.plant,
            purpose=purpose,
            exported_by=str(session["user"]),
        )
    except ExportError as err:
        note("refused", action="evidence.injury_day", target=f"case:{case_id}", error=str(err))
        flash(f"证据包未导出：{err}", "error")
        return _back(case_id)
    note("done", action="evidence.injury_day", target=f"case:{case_id}", day=day.isoformat())
    return Response(
        data,
        mimetype="application/zip",
        headers={"Content-Disposition": content_disposition(f"evidence-case-{case.id}-accident-{day}.zip")},
    )
