"""The handbook's escalation policy, versioned: every version, which cases run under it, and a new version.

A version is never edited: "save" publishes version n+1 of its scope (``policy.publish`` checks the
whole body and lists every problem). Cases keep the version they opened under, so the page shows
how many open and closed cases each version governs.

A step naming a channel the cloud does not configure (``[channels.*]`` of cloud.toml) is refused, each
step and channel named, with one "skip" box per channel: ticked, the version is published and those steps
say 无法发送 for that channel at run time, with a task for HR. With no channel configured at all nothing
is checked: every step waits until one is.
"""

from __future__ import annotations

import json
from typing import Any

import peewee as pw
from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for

from cloud.channels import names
from cloud.escalation.models import AbsenceCase
from cloud.escalation.policy import (
    CHANNELS,
    DEFAULT_BODY,
    ChannelsMissing,
    PolicyError,
    PolicyVersion,
    current,
    publish,
    step_label,
)
from cloud.store import Plant
from cloud.web.present import in_zone, policy_label
from cloud.web.roles import can, note, now_ms, own_plant, require

bp = Blueprint("policy", __name__)
TEXT = {  # this page's own words, Chinese then English
    "missing": (
        "以下步骤使用了尚未配置的发送通道，未发布。请联系 IT 在 cloud.toml 中配置这些通道；或勾选跳过，"
        "到时这些步骤记为“无法发送”，并为人事生成待办。",
        "These steps name channels that are not configured; nothing was published. Ask IT to configure them in "
        "cloud.toml, or tick skip: at run time those steps are recorded as not sent, with a task for HR.",
    ),
    "step": ("{step}：未配置{channel}通道", "{step}: no {channel} channel is configured"),
    "skip": ("跳过{channel}（未配置）", "skip {channel} (not configured)"),
    "none": (
        "尚未配置任何发送通道：升级步骤会等待，直到配置了通道。",
        "No channel is configured yet: escalation steps wait until one is.",
    ),
}


def _say(key: str, **values: str) -> str:
    zh, en = TEXT[key]
    return (en if _lang() == "en" else zh).format(**values)


def _lang() -> str:
    return "en" if getattr(g, "lang", "zh") == "en" else "zh"


def _configured() -> set[str] | None:
    """The channel kinds cloud.toml configures; None when it configures none (then steps wait, nothing to check)."""
    channels = current_app.config["SETTINGS"].channels
    return channels.kinds() if channels.configured else None


def _form(scopes: list[str], scope: str, text: str, note_text: str, **extra: Any) -> str:
    return render_template(
        "policy_new.html",
        scopes=scopes,
        scope=scope,
        text=text,
        note_text=note_text,
        no_channels=_say("none") if _configured() is None else "",
        **({"problems": None, "missing": None, "skip_boxes": []} | extra),
    )


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
        policy_label=policy_label,
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
        return _form(scopes, scope, text, "")
    scope, text, note_text = request.form.get("scope", "*"), request.form.get("body", ""), request.form.get("note", "")
    skip = [kind for kind in request.form.getlist("skip") if kind in CHANNELS]
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
        row = publish(
            scope,
            body,
            by=str(session["user"]),
            now_ms=now_ms(),
            note=note_text.strip()[:500],
            channels=_configured(),
            skip=skip,
        )
    except ChannelsMissing as err:
        note("refused", action="policy.publish", target=f"policy:{scope}", problems=err.problems)
        lang = _lang()
        name = names.en if lang == "en" else names.zh
        missing = [
            _say("step", step=step_label(key, notice, lang), channel=name(kind)) for key, notice, kind in err.missing
        ]
        boxes = [(kind, _say("skip", channel=name(kind)), kind in skip) for kind in err.channels]
        return _form(
            scopes, scope, text, note_text, missing=missing, missing_head=_say("missing"), skip_boxes=boxes
        ), 422
    except PolicyError as err:
        problems = err.problems
        note("refused", action="policy.publish", target=f"policy:{scope}", problems=problems)
        return _form(scopes, scope, text, note_text, problems=problems), 422
    note(
        "done",
        action="policy.publish",
        target=f"policy:{scope}",
        version=row.number,
        sha256=row.sha256,
        skipped=skip,
    )
    return redirect(url_for("policy.version", version_id=row.id))
