"""The escalation policy as HR fills it in: a policy body (the JSON ``policy.parse`` checks) to a form's values
and back, with every problem placed beside its field in the reader's language.

The form owns the fields people decide (the steps, thresholds, quiet hours, gates, deadlines, the union, the
termination notice's channels, the handbook clause); whatever else a body holds is carried through unchanged
from the version the form started from (the hidden ``base``). Values stay as typed, so a page shown again after
an error loses nothing.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cloud.channels import names
from cloud.escalation.policy import (
    ALERT_CHANNELS,
    CHANNELS,
    CONDITIONS,
    NOTICES,
    RECIPIENTS,
    ROLE_NAMES,
    PolicyError,
    parse,
    step_label,
)

Values = dict[str, Any]  # a field's name -> its text, or the list of ticked values

# (form field, JSON path, kind): kind "int", "time", "text", "bool", "list"
SCALARS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("th_consecutive", ("thresholds", "consecutive_days"), "int"),
    ("th_month", ("thresholds", "month_days"), "int"),
    ("th_year", ("thresholds", "year_days"), "int"),
    ("quiet_start", ("quiet_hours", "start"), "time"),
    ("quiet_end", ("quiet_hours", "end"), "time"),
    ("ack_timeout_hours", ("ack_timeout_hours",), "int"),
    ("approve_cuigao", ("gates", "approve_cuigao"), "bool"),
    ("termination_approvers", ("gates", "termination_approvers"), "int"),
    ("return_days", ("deadlines", "return_days"), "int"),
    ("return_by", ("deadlines", "return_by"), "time"),
    ("service_allowance_days", ("deadlines", "service_allowance_days"), "int"),
    ("public_notice_days", ("deadlines", "public_notice_days"), "int"),
    ("injury_report_days", ("deadlines", "injury_report_days"), "int"),
    ("archive_transfer_days", ("deadlines", "archive_transfer_days"), "int"),
    ("unemployment_list_days", ("deadlines", "unemployment_list_days"), "int"),
    ("archive_keep_years", ("deadlines", "archive_keep_years"), "int"),
    ("union_exists", ("union", "exists"), "bool"),
    ("union_wait", ("union", "wait_working_days"), "int"),
    ("union_channels", ("union", "channels"), "list"),
    ("termination_channels", ("termination", "channels"), "list"),
    ("welfare_check_day", ("welfare_check_day",), "int"),
    ("hb_version", ("handbook", "version"), "text"),
    ("hb_article", ("handbook", "article"), "text"),
    ("hb_text", ("handbook", "text"), "text"),
    ("hb_adopted_on", ("handbook", "adopted_on"), "text"),
    ("hb_adoption_ref", ("handbook", "adoption_ref"), "text"),
    ("hb_publication_ref", ("handbook", "publication_ref"), "text"),
    ("hb_published_on", ("handbook", "published_on"), "text"),
)
DEFAULTS = {  # what ``parse`` assumes for a field a body leaves out
    "th_month": 0,
    "th_year": 0,
    "quiet_start": "08:00",
    "quiet_end": "21:00",
    "ack_timeout_hours": 24,
    "approve_cuigao": True,
    "termination_approvers": 1,
    "return_days": 3,
    "return_by": "18:00",
    "service_allowance_days": 3,
    "public_notice_days": 30,
    "injury_report_days": 30,
    "archive_transfer_days": 15,
    "unemployment_list_days": 7,
    "archive_keep_years": 2,
    "union_exists": True,
    "union_wait": 3,
    "union_channels": ["email"],
    "termination_channels": ["sms", "email", "ems"],
    "welfare_check_day": 3,
}
# missed check-in alerts (cloud.alerts): (form field, JSON path); written into a body only when set or already there,
# so that a version without them reads back as it was
ALERTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("alert_channels", ("alerts", "channels")),
    ("alert_quiet_start", ("alerts", "quiet_hours", "start")),
    ("alert_quiet_end", ("alerts", "quiet_hours", "end")),
    ("alert_board_url", ("alerts", "board_url")),
)
STEP_FIELDS = ("level", "notice", "after_days", "recipients", "channels", "condition")
REQUIRED = {  # the handbook's facts every formal notice quotes
    "hb_version": ("请填写员工手册版本（如 2025版）：通知书引用它。", "Give the handbook's version: notices quote it."),
    "hb_article": (
        "请填写员工手册条款（如 第六章第十二条）：催告函、旷工通知书和解除通知书都引用它。",
        "Give the handbook's article: the notices quote it.",
    ),
    "hb_text": (
        "请填写条款原文：催告函、旷工通知书和解除通知书都引用原文，缺少时通知无法生成。",
        "Give the article's text: the notices quote it and cannot be made without it.",
    ),
    "hb_adopted_on": (
        "请填写制度通过日期（职代会或全体职工讨论通过之日）：通知书写明此日期。",
        "Give the date the handbook was adopted: the notices state it.",
    ),
    "hb_published_on": (
        "请填写制度公示日期：通知书写明此日期。",
        "Give the date the handbook was made known to the employees: the notices state it.",
    ),
}
WORDS = {
    "int": ("请填写整数", "Enter a whole number"),
    "range": ("请填写 {low}–{high} 之间的整数", "Enter a whole number from {low} to {high}"),
    "time": ("请按 时:分 填写，如 08:00", "Enter a time as HH:MM, e.g. 08:00"),
    "date": ("请按 年-月-日 填写，如 2025-01-15", "Enter a date as YYYY-MM-DD, e.g. 2025-01-15"),
    "pick": ("请至少勾选一项", "Tick at least one"),
    "notice": ("请选择通知类型", "Choose the notice"),
    "keys": ("步骤重复：同一级别的同一种通知只能有一步", "Two steps send the same notice at the same level"),
    "steps": ("请至少保留一个步骤", "Keep at least one step"),
    "condition": ("请选择发送条件", "Choose when the step is sent"),
}


@dataclass
class Checked:
    """A form read back: the body it builds and the problems, each under its field ("" for the whole form)."""

    body: dict[str, Any]
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        said = self.errors.setdefault(name, [])
        if message not in said:
            said.append(message)


def _say(pair: tuple[str, str], lang: str, **values: Any) -> str:
    return (pair[1] if lang == "en" else pair[0]).format(**values)


def _get(body: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = body
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _put(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        if not isinstance(body.get(part), dict):
            body[part] = {}
        body = body[part]
    body[path[-1]] = value


def values_of(body: Mapping[str, Any]) -> Values:
    """A policy body as the form shows it (numbers and times as text; ticks as lists or booleans)."""
    values: Values = {"base": json.dumps(body, ensure_ascii=False, sort_keys=True)}
    for name, path, kind in SCALARS:
        value = _get(body, path)
        if value is None:
            value = DEFAULTS.get(name, [] if kind == "list" else "")
        if kind == "list":
            values[name] = [str(v) for v in value] if isinstance(value, list) else []
        elif kind == "bool":
            values[name] = bool(value)
        else:
            values[name] = str(value)
    for name, path in ALERTS:
        value = _get(body, path)
        if name == "alert_channels":
            values[name] = [str(v) for v in value] if isinstance(value, list) else list(ALERT_CHANNELS)
        else:
            values[name] = "" if value is None else str(value)
    steps = []
    for raw in body.get("ladder", []) if isinstance(body.get("ladder"), list) else []:
        steps.append(
            {
                "key": str(raw.get("key", "")),
                "level": str(raw.get("level", "")),
                "notice": str(raw.get("notice", "")),
                "after_days": str(raw.get("after_days", "")),
                "recipients": [str(v) for v in raw.get("recipients", [])],
                "channels": [str(v) for v in raw.get("channels", [])],
                "condition": str(raw.get("condition", "if_not_acked")),
            }
        )
    values["steps"] = steps
    return values


def values_from(form: Any) -> Values:
    """The posted form (a werkzeug MultiDict) as values, exactly as typed; steps marked 删除 are left out."""
    values: Values = {"base": form.get("base", "{}")}
    for name, _path, kind in SCALARS:
        if kind == "list":
            values[name] = [v for v in form.getlist(name) if v in CHANNELS]
        elif kind == "bool":
            values[name] = form.get(name) == "on"
        else:
            values[name] = form.get(name, "").strip()
    if form.get("alert_fields") == "1":
        for name, _path in ALERTS:
            if name == "alert_channels":
                values[name] = [v for v in form.getlist(name) if v in ALERT_CHANNELS]
            else:
                values[name] = form.get(name, "").strip()
    else:  # a form without the alert section (an older page): the version's settings as they were
        try:
            base = json.loads(values["base"] or "{}")
        except ValueError:
            base = {}
        kept = values_of(base if isinstance(base, dict) else {})
        values.update({name: kept[name] for name, _path in ALERTS})
    steps = []
    try:
        count = min(int(form.get("step_count", "0")), 30)
    except ValueError:
        count = 0
    for i in range(count):
        if form.get(f"step-{i}-remove") == "on":
            continue
        steps.append(
            {
                "key": form.get(f"step-{i}-key", "").strip(),
                "level": form.get(f"step-{i}-level", "").strip(),
                "notice": form.get(f"step-{i}-notice", "").strip(),
                "after_days": form.get(f"step-{i}-after_days", "").strip(),
                "recipients": [v for v in form.getlist(f"step-{i}-recipients") if v in RECIPIENTS],
                "channels": [v for v in form.getlist(f"step-{i}-channels") if v in CHANNELS],
                "condition": form.get(f"step-{i}-condition", "if_not_acked"),
            }
        )
    values["steps"] = steps
    return values


def new_step(values: Values) -> None:
    """One more step at the end of the ladder (the 添加步骤 button), to be filled in."""
    last = values["steps"][-1] if values["steps"] else {"level": "1", "after_days": "1"}
    values["steps"].append(
        {
            "key": "",
            "level": last.get("level", "1"),
            "notice": "",
            "after_days": last.get("after_days", "1"),
            "recipients": [],
            "channels": [],
            "condition": "if_not_acked",
        }
    )


def _key(step: Mapping[str, Any], taken: set[str]) -> str:
    """A step's key: kept from the version it came from, else made as the ladder names them ("L3", "L3:welfare")."""
    if step["key"] and step["key"] not in taken:
        return str(step["key"])
    level = step["level"] if str(step["level"]).isdigit() else "0"
    for candidate in (f"L{level}", f"L{level}:{step['notice']}"):
        if candidate not in taken:
            return candidate
    n = 2
    while f"L{level}:{step['notice']}{n}" in taken:
        n += 1
    return f"L{level}:{step['notice']}{n}"


def _ordered(ticked: list[str], before: Any) -> list[str]:
    """The ticked values in the order the version had them (the boxes are in a fixed order), new ones after."""
    kept = [v for v in before if v in ticked] if isinstance(before, list) else []
    return kept + [v for v in ticked if v not in kept]


def _number(text: str) -> int | str:
    return int(text) if re.fullmatch(r"-?\d{1,6}", text) else text


def check(values: Values, lang: str = "zh") -> Checked:
    """Build the body the JSON page would take from ``values`` and check it with ``policy.parse``."""
    try:
        base = json.loads(values.get("base") or "{}")
    except ValueError:
        base = {}
    body = copy.deepcopy(base) if isinstance(base, dict) else {}
    out = Checked(body)
    for name, path, kind in SCALARS:
        value = values.get(name)
        if kind == "int":
            number = _number(str(value))
            if isinstance(number, str):
                out.add(name, _say(WORDS["int"], lang))
            _put(body, path, number)
        elif kind == "time":
            if not re.fullmatch(r"\d{1,2}:\d{2}", str(value)):
                out.add(name, _say(WORDS["time"], lang))
            _put(body, path, value)
        elif kind == "list":
            if not value:
                out.add(name, _say(WORDS["pick"], lang))
            _put(body, path, _ordered(value, _get(base, path) if isinstance(base, dict) else None))
        else:
            _put(body, path, value)
    _check_alerts(values, base if isinstance(base, dict) else {}, body, out, lang)
    for name, pair in REQUIRED.items():
        if not str(values.get(name, "")).strip():
            out.add(name, _say(pair, lang))
    for name in ("hb_adopted_on", "hb_published_on"):
        text = str(values.get(name, "")).strip()
        if text:
            try:
                date.fromisoformat(text)
            except ValueError:
                out.add(name, _say(WORDS["date"], lang))
    ladder, taken = [], set()
    before = {
        str(raw.get("key")): raw
        for raw in (base.get("ladder") if isinstance(base, dict) and isinstance(base.get("ladder"), list) else [])
        if isinstance(raw, dict)
    }
    for i, step in enumerate(values["steps"]):
        was = before.get(step["key"], {})
        key = _key(step, taken)
        taken.add(key)
        step["key"] = key
        if step["notice"] not in NOTICES:
            out.add(f"step-{i}-notice", _say(WORDS["notice"], lang))
        for name in ("level", "after_days"):
            if isinstance(_number(step[name]), str):
                out.add(f"step-{i}-{name}", _say(WORDS["int"], lang))
        for name in ("recipients", "channels"):
            if not step[name]:
                out.add(f"step-{i}-{name}", _say(WORDS["pick"], lang))
        ladder.append(
            {
                "key": key,
                "level": _number(step["level"]),
                "after_days": _number(step["after_days"]),
                "notice": step["notice"],
                "recipients": _ordered(step["recipients"], was.get("recipients")),
                "channels": _ordered(step["channels"], was.get("channels")),
                **({"condition": step["condition"]} if step["condition"] != "if_not_acked" else {}),
            }
        )
        if step["condition"] not in CONDITIONS:
            ladder[-1]["condition"] = step["condition"]
    if not ladder:
        out.add("ladder", _say(WORDS["steps"], lang))
    body["ladder"] = ladder
    try:
        parse(body)
    except PolicyError as err:
        for problem in err.problems:
            place(out, problem, lang)
    return out


def _check_alerts(values: Values, base: Mapping[str, Any], body: dict[str, Any], out: Checked, lang: str) -> None:
    """The alert settings into ``body``: left out while a version without them keeps the defaults."""
    given = {name: values.get(name, [] if name == "alert_channels" else "") for name, _path in ALERTS}
    default = {
        "alert_channels": list(ALERT_CHANNELS),
        "alert_quiet_start": "",
        "alert_quiet_end": "",
        "alert_board_url": "",
    }
    same = {**given, "alert_channels": set(given["alert_channels"])} == {
        **default,
        "alert_channels": set(ALERT_CHANNELS),
    }
    if "alerts" not in base and same:  # the boxes come in the page's order: the same ticks are the defaults
        return
    if not given["alert_channels"]:
        out.add("alert_channels", _say(WORDS["pick"], lang))
    for name in ("alert_quiet_start", "alert_quiet_end"):
        if given[name] and not re.fullmatch(r"\d{1,2}:\d{2}", str(given[name])):
            out.add(name, _say(WORDS["time"], lang))
    alerts = copy.deepcopy(base.get("alerts")) if isinstance(base.get("alerts"), dict) else {}
    alerts["channels"] = _ordered(list(given["alert_channels"]), alerts.get("channels") or list(ALERT_CHANNELS))
    if given["alert_quiet_start"] or given["alert_quiet_end"]:
        alerts["quiet_hours"] = {"start": given["alert_quiet_start"], "end": given["alert_quiet_end"]}
    else:
        alerts.pop("quiet_hours", None)
    alerts["board_url"] = given["alert_board_url"]
    body["alerts"] = alerts


_RANGE = re.compile(r"应为 (\d+)–(\d+) 的整数")
PATHS = {".".join(path): name for name, path, _kind in SCALARS} | {".".join(path): name for name, path in ALERTS}


def place(out: Checked, problem: str, lang: str = "zh") -> None:
    """One of ``policy.parse``'s problems beside its field, said for people (parse's own line names the JSON)."""
    where, _, said = problem.partition(": ")
    step = re.fullmatch(r"ladder\[(\d+)\]\.(\w+)", where)
    name = f"step-{step.group(1)}-{step.group(2)}" if step else PATHS.get(where, "")
    if name and name in out.errors:
        return  # the form's own word for it is already there
    found = _RANGE.search(said)
    if found:
        out.add(name or "ladder", _say(WORDS["range"], lang, low=found.group(1), high=found.group(2)))
    elif step and step.group(2) == "notice":
        out.add(name, _say(WORDS["notice"], lang))
    elif step and step.group(2) in ("recipients", "channels"):
        out.add(name, _say(WORDS["pick"], lang))
    elif name and "HH:MM" in said:
        out.add(name, _say(WORDS["time"], lang))
    elif step and step.group(2) == "condition" or "condition" in said:
        out.add(name or "ladder", _say(WORDS["condition"], lang))
    elif where == "ladder" and "key" in said:
        out.add("ladder", _say(WORDS["keys"], lang))
    else:
        zh, _, en = said.partition(" / ")
        zh = re.sub(r"\s*(thresholds|ladder)\.[a-z_]+", "", zh)
        out.add(name or "ladder", en if lang == "en" and en else zh)


# -- the page's own words, Chinese then English ------------------------------------------------------------------

TEXT: dict[str, tuple[str, str]] = {
    "title": ("编辑升级制度", "Edit the escalation policy"),
    "hint": (
        "以所选版本为底稿填写；“发布”校验通过后作为新版本发布，旧版本及其案件不受影响。“预览”只计算，不发布。",
        "Starts from the chosen version; 'Publish' publishes a new version once valid, older versions and their "
        "cases untouched. 'Preview' only computes; nothing is published.",
    ),
    "advanced": ("高级：直接编辑 {json}", "Advanced: edit the {json}"),
    "to_form": ("返回表单编辑", "Back to the form"),
    "scope": ("适用范围", "Applies to"),
    "note": ("版本说明", "Version note"),
    "steps": ("升级步骤", "Escalation steps"),
    "steps_hint": (
        "天数为员工连续缺勤的工作日数（按工厂排班确认）。第4级（旷工）须等于连续旷工阈值。",
        "Days are the confirmed absent working days. Level 4 (旷工) is due at the consecutive-days threshold.",
    ),
    "step": ("步骤 {n}", "Step {n}"),
    "level": ("级别", "Level"),
    "level_n": ("第{n}级", "Level {n}"),
    "notice": ("通知", "Notice"),
    "choose": ("请选择", "Choose"),
    "after_days": ("缺勤满（工作日）", "After (absent working days)"),
    "recipients": ("发给", "To"),
    "channels": ("发送通道", "Channels"),
    "condition": ("发送条件", "When"),
    "if_not_acked": ("员工未确认时", "not acknowledged"),
    "if_not_resolved": ("案件未解决时", "case not resolved"),
    "remove": ("删除此步骤", "Remove this step"),
    "add_step": ("添加步骤", "Add a step"),
    "unconfigured": ("未配置", "not configured"),
    "unconfigured_hint": (
        "灰色的通道尚未配置，不能选用：请信息部门按 {doc} 在 {toml} 中配置后再选。",
        "Greyed channels are not configured and cannot be chosen: ask IT to configure them in {toml} ({doc}).",
    ),
    "no_channels": (
        "尚未配置任何发送通道：可先选择，升级步骤会等待，直到配置了通道（见 {doc}）。",
        "No channel is configured yet: choose freely; steps wait until one is ({doc}).",
    ),
    "thresholds": ("旷工阈值", "Thresholds"),
    "th_consecutive": ("连续旷工（工作日）", "Consecutive absent working days"),
    "th_month": ("本月累计（0 为不计）", "In a month (0: none)"),
    "th_year": ("本年累计（0 为不计）", "In a year (0: none)"),
    "quiet": ("发送时段", "Sending hours"),
    "quiet_hint": (
        "发给员工和紧急联系人的消息只在此时段内发出；正式通知书只在工作日发出。",
        "Messages to the employee and the emergency contact go out only within these hours; formal notices only "
        "on working days.",
    ),
    "quiet_start": ("开始", "From"),
    "quiet_end": ("结束", "Until"),
    "ack_timeout_hours": ("员工确认后暂停（小时）", "Pause after an acknowledgement (hours)"),
    "gates": ("人工审批", "Approvals"),
    "approve_cuigao": ("催告函须人事批准后发出", "HR approves the 催告函 before it goes out"),
    "termination_approvers": ("解除须几人确认", "People who confirm a termination"),
    "deadlines": ("期限", "Deadlines"),
    "return_days": ("催告函送达后返岗期限（日）", "Days to return after the 催告函 is served"),
    "return_by": ("期限最后一日截止时间", "The last day ends at"),
    "service_allowance_days": ("预计邮寄送达天数", "Days the post is expected to take"),
    "public_notice_days": ("公告送达期（日）", "Public notice period (days)"),
    "injury_report_days": ("工伤认定申请期限（日）", "Injury report window (days)"),
    "archive_transfer_days": ("档案转移期限（日）", "File transfer (days)"),
    "unemployment_list_days": ("失业名单报送期限（日）", "Unemployment list (days)"),
    "archive_keep_years": ("合同保存年限", "Keep the contract (years)"),
    "welfare_check_day": ("无任何联系时第几天开启福利核查（0 为不开启）", "Welfare check on absent day (0: never)"),
    "alerts": ("未打卡预警（发给直线主管和人事）", "Missed check-in alerts (to the line manager and HR)"),
    "alerts_hint": (
        "员工上班时间加宽限后仍未打卡，每条产线一条预警，2 分钟内发给其直线主管和人事。按所选通道的顺序，"
        "用第一个已配置且此人有联系方式的通道；免打扰时段内暂存，结束时发出（不填则随时发送）。",
        "A worker not checked in at the shift's start plus grace: one alert per line, to their line manager and HR "
        "within 2 minutes, by the first ticked channel configured that the person has an address for; held in the "
        "quiet hours and sent when they end (none when left empty).",
    ),
    "alert_channels": ("预警发送通道", "Alert channels"),
    "alert_quiet_start": ("免打扰开始", "Quiet from"),
    "alert_quiet_end": ("免打扰结束", "Quiet until"),
    "alert_board_url": ("工厂看板地址（链接）", "The plant board's address (the link)"),
    "union": ("工会", "Union"),
    "union_exists": ("本单位有工会（解除前事先通知工会）", "There is a union (notified before a termination)"),
    "union_wait": ("等待工会答复（工作日）", "Wait for the union's reply (working days)"),
    "union_channels": ("工会通知发送通道", "Union letter channels"),
    "termination": ("解除通知书", "Termination notice"),
    "termination_channels": ("解除通知书发送通道", "Termination notice channels"),
    "handbook": ("员工手册条款（通知书引用，必填）", "Handbook clause (quoted by the notices; required)"),
    "handbook_hint": (
        "催告函、旷工通知书和解除通知书写明条款、原文及制度的通过和公示日期；缺少时这些通知无法生成。",
        "The notices state the clause, its text and the dates the handbook was adopted and made known; without "
        "them they cannot be made.",
    ),
    "hb_version": ("手册版本", "Handbook version"),
    "hb_article": ("条款", "Article"),
    "hb_text": ("条款原文", "Article text"),
    "hb_adopted_on": ("通过日期", "Adopted on"),
    "hb_adoption_ref": ("民主程序记录编号", "Adoption record"),
    "hb_publication_ref": ("公示记录编号", "Publication record"),
    "hb_published_on": ("公示日期", "Made known on"),
    "publish": ("发布新版本", "Publish a new version"),
    "preview": ("预览", "Preview"),
    "problems": (
        "有 {n} 处需要修改，未发布（见各项旁的说明）。",
        "{n} problem(s); nothing was published (see beside each field).",
    ),
    "preview_plant": ("预览工厂（按其日历）", "Preview for plant (its calendar)"),
    "preview_from": ("缺勤首日", "First absent day"),
    "preview_head": (
        "若员工自某周一起缺勤，将按以下时间推进",
        "If an employee is absent from a Monday, this is how it goes",
    ),
    "preview_hint": (
        "按引擎自身的规则和{plant}的日历计算（法定节假日、调休），未发布、未发送任何内容。假定：员工每个工作日缺勤、"
        "当天 {at} 确认；需要人事处理之处（批准、确认、福利核查）假定在下一时点完成；催告函按预计邮寄天数送达。",
        "Computed by the engine's own rules on {plant}'s calendar (holidays and 调休); nothing is published or "
        "sent. Assumed: absent every working day, confirmed at {at}; what waits for HR is done at the next moment; "
        "the 催告函 is served when the post is expected to deliver it.",
    ),
    "day": ("日期", "Date"),
    "absent": ("缺勤", "Absent"),
    "what": ("发生的事", "What happens"),
    "absent_n": ("第{n}天", "day {n}"),
    "rest": ("休息日", "rest day"),
    "holiday": ("法定节假日", "public holiday"),
    "makeup": ("调休上班", "make-up working day"),
    "sends": ("{step} → {to}：{by}", "{step} → {to}: {by}"),
    "return_deadline": ("催告函写明的返岗期限：{at}", "Return deadline the 催告函 states: {at}"),
    "union_wait_until": ("工会答复期限：至 {at} 止", "The union may reply until {at}"),
    "nothing": ("—", "—"),
    "bad_scope": ("请选择适用范围", "Choose where it applies"),
    "need_note": ("请填写版本说明（如：2026 年修订，依据职代会决议）", "Say what this version changes"),
    "bad_date": ("请按 年-月-日 填写日期", "Enter a date as YYYY-MM-DD"),
    "all_plants": ("全部工厂", "every plant"),
    "weekdays": ("周一 周二 周三 周四 周五 周六 周日", "Mon Tue Wed Thu Fri Sat Sun"),
}


def word(key: str, lang: str = "zh", **values: Any) -> str:
    return _say(TEXT[key], lang, **values)


def raw_word(key: str, lang: str = "zh") -> str:
    """A line with its {placeholders} left in, for a caller that fills them with markup."""
    return TEXT[key][1 if lang == "en" else 0]


def _weekday(day: date, lang: str) -> str:
    return word("weekdays", lang).split()[day.weekday()]


def _moment(ms: int, tz: str, lang: str, *, end_of_day: bool = False) -> str:
    """A moment in the plant's zone: 2025-04-08（周二）18:00; 00:00 as the end of the day before when asked."""
    at = datetime.fromtimestamp(ms / 1000, UTC).astimezone(ZoneInfo(tz))
    day, clock = at.date(), at.strftime("%H:%M")
    if end_of_day and clock == "00:00":
        day, clock = day - timedelta(days=1), "24:00"
    if lang == "en":
        return f"{day.isoformat()} ({_weekday(day, lang)}) {clock}"
    return f"{day.isoformat()}（{_weekday(day, lang)}）{clock}"


def preview_rows(days: list[Any], tz: str, lang: str = "zh") -> list[dict[str, Any]]:
    """``policy_preview.simulate``'s days as the table shows them: a day, whether it counts, and what happens."""
    zone = ZoneInfo(tz)
    sep = ", " if lang == "en" else "、"
    rows = []
    for d in days:
        if d.absent_day is not None:
            absent, css = word("absent_n", lang, n=d.absent_day), "work"
        elif d.workday:
            absent, css = word("makeup", lang), "work"
        else:
            absent, css = word("rest" if d.day.weekday() >= 5 else "holiday", lang), "rest"
        lines = []
        for e in d.events:
            at = datetime.fromtimestamp(e.at_ms / 1000, UTC).astimezone(zone).strftime("%H:%M")
            if e.kind == "send":
                to = sep.join(ROLE_NAMES[r][1 if lang == "en" else 0] for r in e.recipients)
                by = sep.join((names.en if lang == "en" else names.zh)(c) for c in e.channels)
                text = word("sends", lang, step=step_label(e.key, e.notice, lang), to=to, by=by)
            elif e.kind == "deadline" and e.key == "return_deadline":
                text = word("return_deadline", lang, at=_moment(e.due_ms or 0, tz, lang))
            elif e.kind == "deadline":
                text = word("union_wait_until", lang, at=_moment(e.due_ms or 0, tz, lang, end_of_day=True))
            else:
                text = e.en if lang == "en" else e.zh
            lines.append({"at": at, "text": text, "kind": e.kind, "key": e.key})
        rows.append(
            {
                "day": d.day.isoformat(),
                "weekday": _weekday(d.day, lang),
                "absent": absent,
                "css": css,
                "lines": lines,
            }
        )
    return rows
