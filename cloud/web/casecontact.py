"""A case's contact by people: calls and EMS letters recorded (``cloud.channels.manual``), documents uploaded.

A call HR made on its own initiative opens a voice task and records its result at once, so that it
stands in the contact log like any attempt the engine made: time, number, outcome, operator. An
uploaded file is kept with its SHA-256 (``cloud.escalation.casefiles``) and the hash goes into the case's
hash-chained timeline with the user as actor.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, Response, abort, current_app, request

from cloud.channels import contact_log, manual
from cloud.channels.base import OutboundMessage
from cloud.channels.contact_log import ContactAttempt
from cloud.clock import SystemClock
from cloud.escalation import casefiles, timeline
from cloud.escalation.casefiles import CaseDocument
from cloud.escalation.cases import CaseError, locked_case
from cloud.escalation.models import AbsenceCase
from cloud.web.cases import act, case_of, form_text, user
from cloud.web.caseview import case_refs
from cloud.web.present import local_ms
from cloud.web.roles import now_ms, require
from opskit.download import content_disposition

bp = Blueprint("casecontact", __name__)


def _clock() -> Any:
    return current_app.config.get("CLOCK", SystemClock())


def _when(case: AbsenceCase) -> Any:
    text = form_text("at", 32)
    if not text:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(local_ms(text, case.plant.timezone) / 1000, UTC)


@bp.route("/cases/<int:case_id>/attempts/<int:attempt_id>/result", methods=["POST"])
@require("case.call")
def task_result(case_id: int, attempt_id: int) -> Any:
    """The result of a call or EMS task the engine opened (or one recorded before: 交寄 then 妥投)."""
    outcome, waybill, text = form_text("outcome", 32), form_text("waybill", 64), form_text("note")

    def run(case: AbsenceCase) -> None:
        task = ContactAttempt.get_or_none(ContactAttempt.id == attempt_id)
        if task is None or task.case_ref not in case_refs(case.id):
            raise CaseError(f"本案没有任务 {attempt_id} / no task {attempt_id} in this case")
        try:
            manual.record_result(
                attempt_id,
                manual.Outcome[outcome],
                operator=user(),
                waybill=waybill,
                note=text,
                happened_at=_when(case),
                clock=_clock(),
            )
        except (KeyError, manual.TaskError) as err:
            raise CaseError(f"无法记录结果 / cannot record the result: {err}") from err

    return act(case_id, "case.call", "case.call.result", run, attempt=attempt_id, outcome=outcome, waybill=waybill)


@bp.route("/cases/<int:case_id>/calls", methods=["POST"])
@require("case.call")
def record_call(case_id: int) -> Any:
    """A call made without a task (the manager rang the employee): opened as a voice task and closed at once."""
    number, outcome, text = form_text("number", 64), form_text("outcome", 32), form_text("note")

    def run(case: AbsenceCase) -> None:
        if not number:
            raise CaseError("请填写拨打的号码 / the number called is required")
        if outcome not in manual.Outcome.__members__ or manual.Outcome[outcome].kind != "voice":
            raise CaseError("请选择通话结果 / choose the call's outcome")
        message = OutboundMessage(
            case_ref=case_refs(case.id)[0],
            step_id=f"call-{secrets.token_hex(6)}",
            recipient=number,
            channel="voice",
            template_id="manual_call",
            template_version="1",
            subject="人工电话联系 / call by a person",
            text=text,
            operator=user(),
        )
        opened = manual.ManualChannel("voice", clock=_clock()).send(message)
        key = contact_log.idempotency_key(message.case_ref, message.step_id, message.channel, message.recipient)
        stored = contact_log.record_attempt(message, opened, key=key)
        assert stored.attempt_id is not None
        manual.record_result(
            stored.attempt_id,
            manual.Outcome[outcome],
            operator=user(),
            note=text,
            happened_at=_when(case),
            clock=_clock(),
        )

    return act(case_id, "case.call", "case.call", run, number=number, outcome=outcome, note=text)


@bp.route("/cases/<int:case_id>/documents", methods=["POST"])
@require("case.act")
def upload_document(case_id: int) -> Any:
    upload = request.files.get("file")
    text = form_text("note")

    def run(case: AbsenceCase) -> None:
        if upload is None or not upload.filename:
            raise CaseError("请选择文件 / choose a file")
        data = upload.read(casefiles.MAX_BYTES + 1)
        try:
            doc = casefiles.keep(
                case.id, upload.filename, upload.mimetype or "", data, by=user(), now_ms=now_ms(), note=text
            )
        except casefiles.DocumentError as err:
            raise CaseError(str(err)) from err
        with locked_case(case.id) as locked:
            timeline.append(
                locked,
                "document",
                f"上传文件《{doc.name}》SHA-256 {doc.sha256}{('：' + text) if text else ''}",
                f"uploaded “{doc.name}”, SHA-256 {doc.sha256}{(': ' + text) if text else ''}",
                at_ms=now_ms(),
                actor=user(),
                document=doc.id,
                sha256=doc.sha256,
                size=doc.size,
            )

    name = upload.filename if upload is not None else ""
    return act(case_id, "case.act", "case.document", run, name=name, note=text)


@bp.route("/cases/<int:case_id>/documents/<int:doc_id>")
@require("view")
def download_document(case_id: int, doc_id: int) -> Any:
    case_of(case_id)
    doc = CaseDocument.get_or_none((CaseDocument.id == doc_id) & (CaseDocument.case_id == case_id))
    if doc is None:
        abort(404)
    return Response(
        bytes(doc.data),
        mimetype="application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(doc.name),
            "X-Content-SHA256": doc.sha256,
        },
    )
