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
from datetime import date, timedelta
from typing import Any

import peewee as pw
from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for
from markupsafe import Markup

from cloud.channels import names
from cloud.escalation import policy_preview, workdays
from cloud.escalation.models import AbsenceCase
from cloud.escalation.policy import (
    CHANNELS,
    DEFAULT_BODY,
    NOTICE_NAMES,
    NOTICES,
    RECIPIENTS,
    ROLE_NAMES,
    ChannelsMissing,
    PolicyError,
    PolicyVersion,
    current,
    parse,
    publish,
    step_label,
)
from cloud.store import Plant
from cloud.web import policy_form
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
        can=can,
    )


@bp.route("/policy/new", methods=["GET", "POST"])
@require("policy.publish")
def new() -> Any:
    scopes = ["*", *[p.id for p in Plant.select().order_by(Plant.id)]]
    if request.method == "GET":
        scope = request.args.get("scope", "*")
        from_id = request.args.get("from", type=int)
        base = (
            _visible(PolicyVersion.select().where(PolicyVersion.id == from_id)).first() if from_id is not None else None
        )
        if from_id is not None and base is None:
            abort(404)
        if base is not None:
            scope = base.scope
        elif scope != "*":
            base = current(scope)
        else:
            base = (
                PolicyVersion.select().where(PolicyVersion.scope == "*").order_by(PolicyVersion.number.desc()).first()
            )
        body = json.loads(base.body) if base is not None else DEFAULT_BODY
        if request.args.get("mode") != "json":
            return _filled(scopes, scope, policy_form.values_of(body), "", from_id=from_id)
        text = json.dumps(body, ensure_ascii=False, indent=2)
        return _form(scopes, scope, text, "")
    if request.form.get("editor") == "form":
        return _form_post(scopes)
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


# -- the form (``policy_form``): what HR fills in, the same checks, and the day-by-day preview --------------------


def _channel_choices(lang: str) -> list[tuple[str, str, bool]]:
    """Every channel kind a policy may name: (kind, its name, configured). With none configured at all every kind
    may be chosen (steps wait until one is, as on the JSON page)."""
    configured = _configured()
    name = names.en if lang == "en" else names.zh
    return [(kind, name(kind), configured is None or kind in configured) for kind in CHANNELS]


def _monday(tz: str) -> date:
    today = workdays.local_day(now_ms(), tz)
    return today + timedelta(days=(7 - today.weekday()) % 7)


def _filled(
    scopes: list[str],
    scope: str,
    values: policy_form.Values,
    note_text: str,
    *,
    errors: dict[str, list[str]] | None = None,
    preview: dict[str, Any] | None = None,
    from_id: int | None = None,
    preview_plant: str = "",
    preview_from: str = "",
    **extra: Any,
) -> str:
    lang = _lang()
    plants = list(_visible_plants())
    chosen = preview_plant or (scope if scope != "*" else "")  # a plant's own version: previewed on its calendar
    plant = next((p for p in plants if p.id == chosen), plants[0] if plants else None)
    tz = plant.timezone if plant is not None else _tz()
    choices = _channel_choices(lang)
    doc = Markup('<code translate="no">docs/channels.md</code>')
    toml = Markup('<code translate="no">cloud.toml</code>')
    if _configured() is None:
        hint = Markup(policy_form.raw_word("no_channels", lang)).format(doc=doc, toml=toml)
    elif not all(ok for _kind, _name, ok in choices):
        hint = Markup(policy_form.raw_word("unconfigured_hint", lang)).format(doc=doc, toml=toml)
    else:
        hint = ""
    errors = errors or {}
    return render_template(
        "policy_form.html",
        w=lambda key, **values: policy_form.word(key, lang, **values),
        lang=lang,
        scopes=scopes,
        scope=scope,
        v=values,
        note_text=note_text,
        errors=errors,
        problem_count=sum(len(said) for said in errors.values()),
        channels=choices,
        channel_hint=hint,
        advanced=Markup(policy_form.raw_word("advanced", lang)).format(json=Markup('<span translate="no">JSON</span>')),
        notices=[(code, *NOTICE_NAMES[code]) for code in NOTICES],
        roles=[(code, *ROLE_NAMES[code]) for code in RECIPIENTS],
        plants=plants,
        preview_plant=plant.id if plant is not None else "",
        preview_from=preview_from or _monday(tz).isoformat(),
        preview=preview,
        from_id=from_id,
        **({"missing": None, "missing_head": "", "skip_boxes": []} | extra),
    )


def _visible_plants() -> pw.ModelSelect:
    plants = Plant.select().order_by(Plant.id)
    return plants.where(Plant.id == own_plant()) if own_plant() is not None else plants


def _form_post(scopes: list[str]) -> Any:
    """The form posted: a step added, a preview computed (nothing published), or a new version published."""
    lang = _lang()
    form = request.form
    values = policy_form.values_from(form)
    scope, note_text = form.get("scope", "*"), form.get("note", "")
    action = form.get("action", "publish")
    skip = [kind for kind in form.getlist("skip") if kind in CHANNELS]
    shown = {"preview_plant": form.get("preview_plant", ""), "preview_from": form.get("preview_from", "")}
    if action == "add_step":
        policy_form.new_step(values)
        return _filled(scopes, scope, values, note_text, **shown)
    checked = policy_form.check(values, lang)
    if scope not in scopes:
        checked.add("scope", policy_form.word("bad_scope", lang))
    if action == "preview":
        return _preview(scopes, scope, values, note_text, checked, shown)
    if not note_text.strip():
        checked.add("note", policy_form.word("need_note", lang))
    if checked.errors:
        note("refused", action="policy.publish", target=f"policy:{scope}", problems=_flat(checked.errors))
        return _filled(scopes, scope, values, note_text, errors=checked.errors, **shown), 422
    try:
        row = publish(
            scope,
            checked.body,
            by=str(session["user"]),
            now_ms=now_ms(),
            note=note_text.strip()[:500],
            channels=_configured(),
            skip=skip,
        )
    except ChannelsMissing as err:
        note("refused", action="policy.publish", target=f"policy:{scope}", problems=err.problems)
        name = names.en if lang == "en" else names.zh
        missing = [
            _say("step", step=step_label(key, notice, lang), channel=name(kind)) for key, notice, kind in err.missing
        ]
        boxes = [(kind, _say("skip", channel=name(kind)), kind in skip) for kind in err.channels]
        return _filled(
            scopes,
            scope,
            values,
            note_text,
            missing=missing,
            missing_head=_say("missing"),
            skip_boxes=boxes,
            **shown,
        ), 422
    except PolicyError as err:
        for problem in err.problems:
            policy_form.place(checked, problem, lang)
        note("refused", action="policy.publish", target=f"policy:{scope}", problems=err.problems)
        return _filled(scopes, scope, values, note_text, errors=checked.errors, **shown), 422
    note("done", action="policy.publish", target=f"policy:{scope}", version=row.number, sha256=row.sha256, skipped=skip)
    return redirect(url_for("policy.version", version_id=row.id))


def _flat(errors: dict[str, list[str]]) -> list[str]:
    return [f"{name}: {said}" for name, lines in errors.items() for said in lines]


def _preview(
    scopes: list[str],
    scope: str,
    values: policy_form.Values,
    note_text: str,
    checked: policy_form.Checked,
    shown: dict[str, str],
) -> Any:
    """The day-by-day preview of the policy as filled in, on the chosen plant's calendar: computed, never published."""
    lang = _lang()
    plant = next((p for p in _visible_plants() if p.id == shown["preview_plant"]), None) or _visible_plants().first()
    tz = plant.timezone if plant is not None else _tz()
    try:
        first = date.fromisoformat(shown["preview_from"]) if shown["preview_from"] else _monday(tz)
    except ValueError:
        checked.add("preview_from", policy_form.word("bad_date", lang))
        first = _monday(tz)
    if checked.errors:
        return _filled(scopes, scope, values, note_text, errors=checked.errors, **shown), 422
    days = policy_preview.simulate(parse(checked.body), first, tz)
    preview = {
        "rows": policy_form.preview_rows(days, tz, lang),
        "hint": policy_form.word(
            "preview_hint",
            lang,
            plant=(plant.name or plant.id) if plant is not None else policy_form.word("all_plants", lang),
            at="18:00",
        ),
    }
    shown = {**shown, "preview_from": first.isoformat()}
    return _filled(scopes, scope, values, note_text, preview=preview, **shown)
