"""The handbook's escalation rules, versioned: thresholds, ladder, gates, deadlines, evidence of adoption.

A version is never edited: ``publish`` adds version n+1 for its scope (a plant, or ``*`` for every
plant), and ``PolicyVersion.save`` refuses to update a stored row. A case records the version it
opened under and keeps running under it; a new version applies to cases opened after it.

Day counts in the ladder are *scheduled working days* the plant confirmed absent (day facts), never
calendar days. Statutory periods (15 days, 7 days, 30 days of 公告) are calendar days; the union's
wait is in working days of the Chinese calendar (holidays and 调休).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import time
from typing import Any

import peewee as pw

from cloud.channels import names
from cloud.store import BaseModel

RECIPIENTS = ("employee", "manager", "hr", "emergency_contact", "union")
CHANNELS = ("sms", "email", "wecom", "dingtalk", "voice", "ems", "wecom_robot", "dingtalk_robot")
NOTICES = ("reminder", "warning", "cuigao", "welfare", "kuanggong", "union_letter", "termination")
CONDITIONS = ("if_not_acked", "if_not_resolved")
ALERT_CHANNELS = ("wecom", "dingtalk", "sms")  # a missed check-in alert to the line manager and HR (cloud.alerts)
PEOPLE = frozenset({"employee", "emergency_contact"})  # quiet hours protect them (our rule, not law)
NOTICE_NAMES = {
    "reminder": ("提醒", "reminder"),
    "warning": ("预警", "warning"),
    "cuigao": ("催告函", "notice to return"),
    "welfare": ("关怀联系", "welfare message"),
    "kuanggong": ("旷工通知书", "absence notice"),
    "union_letter": ("工会通知", "union letter"),
    "termination": ("解除通知书", "termination notice"),
}
ROLE_NAMES = {
    "employee": ("员工", "employee"),
    "manager": ("主管", "manager"),
    "hr": ("人事", "HR"),
    "emergency_contact": ("紧急联系人", "emergency contact"),
    "union": ("工会", "union"),
}


class PolicyError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("政策有误 / policy has problems: " + "; ".join(problems))


class ChannelsMissing(PolicyError):
    """Steps name channels the cloud does not configure: ``missing`` holds (step key, notice, channel kind)."""

    def __init__(self, missing: list[tuple[str, str, str]]) -> None:
        self.missing = missing
        self.channels = tuple(dict.fromkeys(kind for _key, _notice, kind in missing))
        super().__init__(
            [
                f"{step_label(key, notice)}：未配置{names.zh(kind)}通道 / step {step_label(key, notice, 'en')} "
                f"names {names.en(kind)}, which is not configured ({names.how_to_configure(kind, 'en')})"
                for key, notice, kind in missing
            ]
        )


def step_label(key: str, notice: str, lang: str = "zh") -> str:
    """A step as people name it: "第1级 提醒" / "L1 (reminder)"; a later round "第3级 催告函（第2次）"."""
    zh, en = NOTICE_NAMES.get(notice, (notice, notice))
    if lang == "en":
        return f"{key} ({en})"
    match = re.fullmatch(r"L(\d+)(?::[a-z_]+)?(?:#(\d+))?", key)
    if match is None:
        return f"{key}（{zh}）"
    level, again = match.groups()
    return f"第{level}级 {zh}" + (f"（第{again}次）" if again else "")


class PolicyVersion(BaseModel):
    scope = pw.CharField()  # a plant id, or "*" for every plant without its own
    number = pw.IntegerField()
    body = pw.TextField()  # canonical JSON
    sha256 = pw.CharField(max_length=64)
    created_ms = pw.BigIntegerField()
    created_by = pw.CharField()
    note = pw.TextField(default="")

    class Meta:
        indexes = ((("scope", "number"), True),)

    def save(self, *args: Any, **kwargs: Any) -> int:
        if self._pk is not None and not kwargs.get("force_insert"):
            raise PolicyError([f"policy {self.scope} v{self.number} is stored; publish a new version instead"])
        return super().save(*args, **kwargs)

    @property
    def label(self) -> str:
        return f"{self.scope}/v{self.number}"

    @property
    def label_zh(self) -> str:
        """As a Chinese reader is told it: "全部工厂 · 第1版", a plant's own version by the plant's id."""
        return f"{'全部工厂' if self.scope == '*' else self.scope} · 第{self.number}版"

    def parsed(self) -> Policy:
        return parse(json.loads(self.body))


@dataclass(frozen=True)
class Step:
    key: str  # unique in the ladder: "L1", "L3:welfare"...
    level: int  # 1..4 of the state machine
    after_days: int  # confirmed absent working days of the spell before it is due
    notice: str
    recipients: tuple[str, ...]
    channels: tuple[str, ...]
    condition: str = "if_not_acked"

    @property
    def to_people(self) -> bool:
        return bool(PEOPLE & set(self.recipients))


@dataclass(frozen=True)
class Handbook:
    version: str  # 《员工手册》 version
    article: str  # the article that makes 旷工 serious misconduct
    adoption_ref: str  # 民主程序: the 职代会/全体职工 discussion and 协商 record (document id)
    publication_ref: str  # 公示或告知: signed receipts, posting photos (document id)
    published_on: str = ""


@dataclass(frozen=True)
class Policy:
    ladder: tuple[Step, ...]
    handbook: Handbook
    consecutive_days: int = 3
    month_days: int = 0  # 0: no cumulative rule
    year_days: int = 0
    quiet_start: time = time(8, 0)
    quiet_end: time = time(21, 0)
    ack_timeout_hours: int = 24
    approve_cuigao: bool = True  # a person approves sending the 催告函
    termination_approvers: int = 1  # 1 or 2 different people confirm a termination
    return_days: int = 3  # calendar days to return after the 催告函 is served
    return_by: time = time(18, 0)  # the last day of the return period ends then (民法典 第二百零三条: business stops)
    service_allowance_days: int = 3  # the post's days: a 催告函 is expected served this long after it is issued
    union_exists: bool = True
    union_wait_working_days: int = 3
    union_channels: tuple[str, ...] = ("email",)
    termination_channels: tuple[str, ...] = ("sms", "email", "wecom", "ems")
    public_notice_days: int = 30  # 公告送达: deemed served after
    injury_report_days: int = 30  # 工伤保险条例 第十七条
    archive_transfer_days: int = 15  # 劳动合同法 第五十条
    unemployment_list_days: int = 7  # 失业保险条例 第十六条 (some localities: 15)
    archive_keep_years: int = 2
    welfare_check_day: int = 3  # no contact at all by this absent day opens a welfare check; 0: never
    # missed check-in alerts (``alerts``: cloud.alerts): the channels in order of preference, the quiet hours in
    # which none is sent (held until they end; None: never quiet), and the plant board's address for the link
    alert_channels: tuple[str, ...] = ALERT_CHANNELS
    alert_quiet_start: time | None = None
    alert_quiet_end: time | None = None
    alert_board_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def step(self, key: str) -> Step | None:
        return next((s for s in self.ladder if s.key == key), None)


DEFAULT_BODY: dict[str, Any] = {
    "thresholds": {"consecutive_days": 3, "month_days": 5, "year_days": 10},
    "quiet_hours": {"start": "08:00", "end": "21:00"},
    "ack_timeout_hours": 24,
    "ladder": [
        {
            "key": "L1",
            "level": 1,
            "after_days": 1,
            "notice": "reminder",
            "recipients": ["employee"],
            "channels": ["sms", "wecom"],
        },
        {
            "key": "L2",
            "level": 2,
            "after_days": 2,
            "notice": "warning",
            "recipients": ["manager", "hr"],
            "channels": ["wecom", "email"],
        },
        {
            "key": "L3",
            "level": 3,
            "after_days": 3,
            "notice": "cuigao",
            "recipients": ["employee"],
            "channels": ["sms", "email", "wecom", "ems"],
        },
        {
            "key": "L3:welfare",
            "level": 3,
            "after_days": 3,
            "notice": "welfare",
            "recipients": ["emergency_contact"],
            "channels": ["sms", "voice"],
        },
        {
            "key": "L4",
            "level": 4,
            "after_days": 3,
            "notice": "kuanggong",
            "recipients": ["employee"],
            "channels": ["sms", "email", "ems"],
            "condition": "if_not_resolved",
        },
    ],
    "gates": {"approve_cuigao": True, "termination_approvers": 2},
    "deadlines": {
        "return_days": 3,
        "public_notice_days": 30,
        "injury_report_days": 30,
        "archive_transfer_days": 15,
        "unemployment_list_days": 7,
        "archive_keep_years": 2,
    },
    "union": {"exists": True, "wait_working_days": 3, "channels": ["email"]},
    "termination": {"channels": ["sms", "email", "wecom", "ems"]},
    "welfare_check_day": 3,
    "handbook": {"version": "", "article": "", "adoption_ref": "", "publication_ref": "", "published_on": ""},
}


def _hhmm(text: Any, where: str, problems: list[str]) -> time:
    try:
        hours, minutes = str(text).split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        problems.append(f"{where}: {text!r} 不是 HH:MM / is not HH:MM")
        return time(0, 0)


def _int(value: Any, where: str, low: int, high: int, problems: list[str]) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        problems.append(f"{where}: 应为 {low}–{high} 的整数 / an integer {low} to {high}, got {value!r}")
        return low
    return value


def _names(value: Any, allowed: tuple[str, ...], where: str, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or any(v not in allowed for v in value):
        problems.append(f"{where}: 取值 {', '.join(allowed)} / a non-empty list of {', '.join(allowed)}")
        return ()
    return tuple(value)


def parse(body: dict[str, Any]) -> Policy:
    """Validate a policy body (JSON), listing every problem at once."""
    problems: list[str] = []
    th = body.get("thresholds", {})
    consecutive = _int(th.get("consecutive_days"), "thresholds.consecutive_days", 1, 60, problems)
    month = _int(th.get("month_days", 0), "thresholds.month_days", 0, 31, problems)
    year = _int(th.get("year_days", 0), "thresholds.year_days", 0, 366, problems)
    quiet = body.get("quiet_hours", {})
    ladder: list[Step] = []
    for i, raw in enumerate(body.get("ladder", [])):
        where = f"ladder[{i}]"
        ladder.append(
            Step(
                key=str(raw.get("key", "")),
                level=_int(raw.get("level"), f"{where}.level", 1, 4, problems),
                after_days=_int(raw.get("after_days"), f"{where}.after_days", 1, 60, problems),
                notice=raw.get("notice")
                if raw.get("notice") in NOTICES
                else (problems.append(f"{where}.notice") or ""),
                recipients=_names(raw.get("recipients"), RECIPIENTS, f"{where}.recipients", problems),
                channels=_names(raw.get("channels"), CHANNELS, f"{where}.channels", problems),
                condition=raw.get("condition", "if_not_acked"),
            )
        )
    keys = [s.key for s in ladder]
    if len(set(keys)) != len(keys) or "" in keys:
        problems.append("ladder: 每步需要唯一的 key / every step needs a unique key")
    for level in (1, 2, 3, 4):
        if not any(s.level == level for s in ladder):
            problems.append(f"ladder: 缺少第 {level} 级 / level {level} is missing")
    by_level = sorted(ladder, key=lambda s: s.level)
    if any(a.after_days > b.after_days for a, b in zip(by_level, by_level[1:], strict=False)):
        problems.append("ladder: 天数须随级别递增 / after_days must not decrease with the level")
    if any(s.condition not in CONDITIONS for s in ladder):
        problems.append(f"ladder: condition 取值 {', '.join(CONDITIONS)}")
    if any(s.level == 4 and s.after_days != consecutive for s in ladder):
        problems.append("ladder: 第4级（旷工）天数须等于连续旷工阈值 / level 4 is due at thresholds.consecutive_days")
    gates, dl, union = body.get("gates", {}), body.get("deadlines", {}), body.get("union", {})
    hb = body.get("handbook", {})
    handbook = Handbook(
        **{k: str(hb.get(k, "")) for k in ("version", "article", "adoption_ref", "publication_ref", "published_on")}
    )
    policy = Policy(
        ladder=tuple(ladder),
        handbook=handbook,
        consecutive_days=consecutive,
        month_days=month,
        year_days=year,
        quiet_start=_hhmm(quiet.get("start", "08:00"), "quiet_hours.start", problems),
        quiet_end=_hhmm(quiet.get("end", "21:00"), "quiet_hours.end", problems),
        ack_timeout_hours=_int(body.get("ack_timeout_hours", 24), "ack_timeout_hours", 1, 24 * 14, problems),
        approve_cuigao=bool(gates.get("approve_cuigao", True)),
        termination_approvers=_int(
            gates.get("termination_approvers", 1), "gates.termination_approvers", 1, 2, problems
        ),
        return_days=_int(dl.get("return_days", 3), "deadlines.return_days", 1, 30, problems),
        return_by=_hhmm(dl.get("return_by", "18:00"), "deadlines.return_by", problems),
        service_allowance_days=_int(
            dl.get("service_allowance_days", 3), "deadlines.service_allowance_days", 0, 15, problems
        ),
        union_exists=bool(union.get("exists", True)),
        # at least a day: the union letter asks for the union's opinion within these days (0 could not be stated)
        union_wait_working_days=_int(union.get("wait_working_days", 3), "union.wait_working_days", 1, 30, problems),
        union_channels=_names(union.get("channels", ["email"]), CHANNELS, "union.channels", problems),
        termination_channels=_names(
            body.get("termination", {}).get("channels", ["sms", "email", "ems"]),
            CHANNELS,
            "termination.channels",
            problems,
        ),
        public_notice_days=_int(dl.get("public_notice_days", 30), "deadlines.public_notice_days", 30, 90, problems),
        injury_report_days=_int(dl.get("injury_report_days", 30), "deadlines.injury_report_days", 1, 30, problems),
        archive_transfer_days=_int(
            dl.get("archive_transfer_days", 15), "deadlines.archive_transfer_days", 1, 15, problems
        ),
        unemployment_list_days=_int(
            dl.get("unemployment_list_days", 7), "deadlines.unemployment_list_days", 1, 15, problems
        ),
        archive_keep_years=_int(dl.get("archive_keep_years", 2), "deadlines.archive_keep_years", 2, 30, problems),
        welfare_check_day=_int(body.get("welfare_check_day", 3), "welfare_check_day", 0, 60, problems),
        **_alerts(body.get("alerts", {}), problems),
    )
    if problems:
        raise PolicyError(problems)
    return policy


def _alerts(raw: Any, problems: list[str]) -> dict[str, Any]:
    """The ``alerts`` part: {"channels": [...], "quiet_hours": {"start": "22:00", "end": "07:00"}, "board_url"}."""
    if not isinstance(raw, dict):
        problems.append("alerts: 应为对象 / an object")
        return {}
    quiet = raw.get("quiet_hours") or {}
    start, end = str(quiet.get("start", "") or ""), str(quiet.get("end", "") or "")
    board = str(raw.get("board_url", "") or "")
    if board and not board.startswith(("http://", "https://")):
        problems.append(f"alerts.board_url: {board[:80]!r} 应以 http:// 或 https:// 开头 / must start with http(s)://")
    fields: dict[str, Any] = {
        "alert_channels": _names(
            raw.get("channels", list(ALERT_CHANNELS)), ALERT_CHANNELS, "alerts.channels", problems
        ),
        "alert_board_url": board.rstrip("/"),
    }
    if start or end:
        fields["alert_quiet_start"] = _hhmm(start, "alerts.quiet_hours.start", problems)
        fields["alert_quiet_end"] = _hhmm(end, "alerts.quiet_hours.end", problems)
    return fields


def channel_uses(policy: Policy) -> list[tuple[str, str, str]]:
    """(step key, notice, channel kind) for every channel the policy can send by: each ladder step, the union
    letter (when there is a union) and the termination notice."""
    uses = [(s.key, s.notice, kind) for s in policy.ladder for kind in s.channels]
    if policy.union_exists:
        uses += [("L6:union", "union_letter", kind) for kind in policy.union_channels]
    uses += [("L7:termination", "termination", kind) for kind in policy.termination_channels]
    return uses


def unconfigured(policy: Policy, configured: Collection[str]) -> list[tuple[str, str, str]]:
    """The (step key, notice, channel kind) whose channel is not among the ``configured`` kinds."""
    return [use for use in channel_uses(policy) if use[2] not in configured]


def canonical(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def publish(
    scope: str,
    body: dict[str, Any],
    *,
    by: str,
    now_ms: int,
    note: str = "",
    channels: Collection[str] | None = None,
    skip: Collection[str] = (),
) -> PolicyVersion:
    """Add the next version for ``scope`` (validated first); older versions stay as they are.

    ``channels``: the kinds the cloud configures. A step naming another kind is refused (``ChannelsMissing``)
    unless the publisher chose to ``skip`` that kind: its steps then say 无法发送 for it, with a task for a
    person, and the version's note says it was published so. None: not checked (no channel configured at
    all, so every step waits for one)."""
    policy = parse(body)
    if channels is not None:
        missing = unconfigured(policy, channels)
        refused = [use for use in missing if use[2] not in skip]
        if refused:
            raise ChannelsMissing(refused)
        skipped = list(dict.fromkeys(kind for _key, _notice, kind in missing))
        if skipped:
            said = "、".join(names.zh(kind) for kind in skipped)
            note = f"{note}（发布时未配置{said}通道，确认跳过 / published without {', '.join(map(names.en, skipped))})"
    text = canonical(body)
    db = PolicyVersion._meta.database
    for _attempt in range(3):  # two editors at once: the unique (scope, number) index decides
        last = PolicyVersion.select(pw.fn.MAX(PolicyVersion.number)).where(PolicyVersion.scope == scope).scalar() or 0
        try:
            with db.atomic():
                return PolicyVersion.create(
                    scope=scope,
                    number=last + 1,
                    body=text,
                    sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    created_ms=now_ms,
                    created_by=by,
                    note=note,
                )
        except pw.IntegrityError:
            continue
    raise PolicyError([f"could not publish a new version of {scope}: others are publishing at the same time"])


def current(plant_id: str) -> PolicyVersion | None:
    """The newest version for the plant, else the newest for every plant (``*``)."""
    for scope in (plant_id, "*"):
        row = PolicyVersion.select().where(PolicyVersion.scope == scope).order_by(PolicyVersion.number.desc()).first()
        if row is not None:
            return row
    return None


MODELS = (PolicyVersion,)
