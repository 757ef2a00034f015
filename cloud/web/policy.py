"""The handbook's escalation policy, versioned: every version, which cases run under it, and a new version.

A version is never edited: "save" publishes version n+1 of its scope (``policy.publish`` checks the
whole body and lists every problem). Cases keep the version they opened under, so the page shows
how many open and closed cases each version governs.
"""

from __future__ import annotations

import json
from typing import Any

import peewee as pw
from flask import Blueprint, abort, redirect, render_template, request, session, url_for

from cloud.escalation.models import AbsenceCase
from cloud.escalation.policy import DEFAULT_BODY, PolicyError, PolicyVersion, current, publish
from cloud.store import Plant
from cloud.web.present import in_zone
from cloud.web.roles import can, note, now_ms, own_plant, require

bp = Blueprint("policy", __name__)


def _visible(query: pw.ModelSelect) -> pw.ModelSelect:
    mine = own_plant()
    return query.where(PolicyVersion.scope.in_(["*", mine])) if mine is not None else query


@bp.route("/policy")
@require("view")
def index() -> Any:
    versions = list(_visible(PolicyVersion.select()).order_by(PolicyVersion.scope, PolicyVersion.number.desc()))
    counts: dict[int, dict[str, int]] = {}
    query = AbsenceCase.select(
        AbsenceCase.policy, AbsenceCase.open_key.is_null(False).alias("open"), pw.fn.COUNT(AbsenceCase.id)
    ).group_by(AbsenceCase.policy, AbsenceCase.open_key.is_null(False))
    if own_plant() is not None:
        query = query.where(AbsenceCase.plant == own_plant())
    for policy_id, is_open, n in query.tuples():
        counts.setdefault(policy_id, {"open": 0, "closed": 0})["open" if is_open else "closed"] += n
    newest = {}
    for v in versions:
        newest.setdefault(v.scope, v.id)
    return render_template(
        "policy.html",
        versions=versions,
        counts=counts,
        newest=newest,
        plants=list(Plant.select().order_by(Plant.id)),
        in_zone=in_zone,
        tz=_tz(),
        can=can,
    )


def _tz() -> str:
    from flask import current_app

    return str(current_app.config["SETTINGS"].timezone)


@bp.route("/policy/<int:version_id>")
@require("view")
def version(version_id: int) -> Any:
    row = _visible(PolicyVersion.select().where(PolicyVersion.id == version_id)).first()
    if row is None:
        abort(404)
    cases = AbsenceCase.select().where(AbsenceCase.policy == row).order_by(AbsenceCase.opened_ms.desc())
    if own_plant() is not None:
        cases = cases.where(AbsenceCase.plant == own_plant())
    return render_template(
        "policy_version.html",
        v=row,
        body=json.dumps(json.loads(row.body), ensure_ascii=False, indent=2),
        cases=list(cases.limit(200)),
        total=cases.count(),
        in_zone=in_zone,
        tz=_tz(),
    )


@bp.route("/policy/new", methods=["GET", "POST"])
@require("policy.publish")
def new() -> Any:
    scopes = ["*", *[p.id for p in Plant.select().order_by(Plant.id)]]
    if request.method == "GET":
        scope = request.args.get("scope", "*")
        base = (
            current(scope)
            if scope != "*"
            else PolicyVersion.select().where(PolicyVersion.scope == "*").order_by(PolicyVersion.number.desc()).first()
        )
        body = json.loads(base.body) if base is not None else DEFAULT_BODY
        text = json.dumps(body, ensure_ascii=False, indent=2)
        return render_template("policy_new.html", scopes=scopes, scope=scope, text=text, note_text="", problems=None)
    scope, text, note_text = request.form.get("scope", "*"), request.form.get("body", ""), request.form.get("note", "")
    problems: list[str]
    try:
        if scope not in scopes:
            raise PolicyError([f"范围 {scope!r} 不存在 / unknown scope"])
        try:
            body = json.loads(text)
        except ValueError as err:
            raise PolicyError([f"JSON 格式错误 / not valid JSON: {err}"]) from err
        if not isinstance(body, dict):
            raise PolicyError(["应为 JSON 对象 / a JSON object is expected"])
        row = publish(scope, body, by=str(session["user"]), now_ms=now_ms(), note=note_text.strip()[:500])
    except PolicyError as err:
        problems = err.problems
        note("refused", action="policy.publish", target=f"policy:{scope}", problems=problems)
        return (
            render_template(
                "policy_new.html", scopes=scopes, scope=scope, text=text, note_text=note_text, problems=problems
            ),
            422,
        )
    note("done", action="policy.publish", target=f"policy:{scope}", version=row.number, sha256=row.sha256)
    return redirect(url_for("policy.version", version_id=row.id))
