"""``[channels.*]`` of the cloud's TOML: which channels exist, with their secrets read from files.

Secrets never sit in the TOML: each is a ``*_file`` key naming a file (relative to the TOML's folder) that
only its owner may read (mode 0600 or stricter), so the TOML itself can be shown, copied and reviewed.
``parse`` checks everything at once and lists every bad key; ``masked`` is what ``show-config`` prints;
``build`` makes the channel objects (no I/O: channels connect when they first send).

    [channels]
    callback_token_file = "secrets/receipts-token"   # the secret part of the providers' receipt URL
    pull_receipts_every_s = 300

    [channels.email]
    host = "smtp.exmail.qq.com"  port = 587  starttls = true
    username = "hr@factory.cn"   password_file = "secrets/smtp"   from = "hr@factory.cn"

    [channels.sms_aliyun]     access_key_id, access_key_secret_file, sign_name, [templates] ours = "SMS_1"
                              or ours = {code = "SMS_1", text = "${name}您好…"} (the approved content, kept as sent)
    [channels.sms_tencent]    secret_id, secret_key_file, sdk_app_id, sign_name,
                              [templates] ours = {id = "123456", params = ["name", "link"], text = "{1}您好…"}
    [channels.wecom]          corp_id, corp_secret_file, agent_id        [channels.wecom_robot]    key_file
    [channels.dingtalk]       app_key, app_secret_file, agent_id         [channels.dingtalk_robot] access_token_file,
                                                                                                   secret_file
    [channels.voice] / [channels.ems]   enabled = true   (tasks for a person)

Each provider's section may also say how fast its channel sends (``cloud.channels.ratelimit``; by default the
provider's published limit): ``per_second`` and ``burst`` (a token bucket), ``per_minute`` (at most so many in
any minute), ``concurrency`` (requests in flight at once).
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.channels.base import Channel
from cloud.channels.dingtalk import DingTalkApp, DingTalkAppSettings, DingTalkRobot, DingTalkRobotSettings
from cloud.channels.email_smtp import SmtpChannel, SmtpSettings
from cloud.channels.manual import ManualChannel
from cloud.channels.names import kinds_of
from cloud.channels.ratelimit import DEFAULTS, RateLimit
from cloud.channels.sms_aliyun import AliyunSms, AliyunSmsSettings
from cloud.channels.sms_tencent import TencentSms, TencentSmsSettings, TencentTemplate
from cloud.channels.wecom import WeComApp, WeComAppSettings, WeComRobot, WeComRobotSettings
from cloud.clock import Clock

# per section: key -> (type, required); a key ending in _file is a secret's file
_STR, _INT, _BOOL, _TABLE, _NUM = str, int, bool, dict, float  # a _NUM takes an integer too
# How fast a provider channel may send (cloud.channels.ratelimit: the defaults are the providers' published limits):
# requests a second and at once after a quiet spell (a token bucket), at most so many in any minute, in flight at once
LIMIT_KEYS = {
    "per_second": (_NUM, False),
    "burst": (_INT, False),
    "per_minute": (_INT, False),
    "concurrency": (_INT, False),
}
SECTIONS: dict[str, dict[str, tuple[type, bool]]] = {
    "email": {
        "host": (_STR, True),
        "port": (_INT, False),
        "starttls": (_BOOL, False),
        "username": (_STR, False),
        "password_file": (_STR, False),
        "from": (_STR, True),
        "from_name": (_STR, False),
        "timeout_s": (_INT, False),
    },
    "sms_aliyun": {
        "access_key_id": (_STR, True),
        "access_key_secret_file": (_STR, True),
        "sign_name": (_STR, True),
        "templates": (_TABLE, True),
        "endpoint": (_STR, False),
        "region": (_STR, False),
        **LIMIT_KEYS,
    },
    "sms_tencent": {
        "secret_id": (_STR, True),
        "secret_key_file": (_STR, True),
        "sdk_app_id": (_STR, True),
        "sign_name": (_STR, True),
        "templates": (_TABLE, True),
        "endpoint": (_STR, False),
        "region": (_STR, False),
        **LIMIT_KEYS,
    },
    "wecom": {
        "corp_id": (_STR, True),
        "corp_secret_file": (_STR, True),
        "agent_id": (_INT, True),
        "base_url": (_STR, False),
        **LIMIT_KEYS,
    },
    "wecom_robot": {"key_file": (_STR, True), "base_url": (_STR, False), **LIMIT_KEYS},
    "dingtalk": {
        "app_key": (_STR, True),
        "app_secret_file": (_STR, True),
        "agent_id": (_INT, True),
        "base_url": (_STR, False),
        **LIMIT_KEYS,
    },
    "dingtalk_robot": {
        "access_token_file": (_STR, True),
        "secret_file": (_STR, True),
        "base_url": (_STR, False),
        **LIMIT_KEYS,
    },
    "voice": {"enabled": (_BOOL, False)},
    "ems": {"enabled": (_BOOL, False)},
}
TOP = {"callback_token_file": _STR, "pull_receipts_every_s": _INT}
SECRET_WORDS = ("password", "secret", "token", "key")  # an inline key with one of these words is refused


@dataclass(frozen=True)
class ChannelSettings:
    """The configured channels (each None when absent) and the receipts settings; secrets already read."""

    email: SmtpSettings | None = None
    sms_aliyun: AliyunSmsSettings | None = None
    sms_tencent: TencentSmsSettings | None = None
    wecom: WeComAppSettings | None = None
    wecom_robot: WeComRobotSettings | None = None
    dingtalk: DingTalkAppSettings | None = None
    dingtalk_robot: DingTalkRobotSettings | None = None
    voice: bool = False
    ems: bool = False
    callback_token: str = field(default="", repr=False)
    pull_receipts_every_s: int = 300
    limits: dict[str, RateLimit] = field(default_factory=dict)  # per section, as configured (else DEFAULTS)
    shown: dict[str, Any] = field(default_factory=dict, compare=False)  # the TOML as given: file names, no secrets

    @property
    def configured(self) -> bool:
        return bool(self.names())

    def names(self) -> list[str]:
        return [name for name in SECTIONS if getattr(self, name)]

    def kinds(self) -> set[str]:
        """The kinds a policy may name that these settings provide ("sms" from [channels.sms_aliyun]...)."""
        return kinds_of(self.names())

    def masked(self) -> dict[str, Any]:
        """What show-config prints: the TOML's own values (secret files by name), and whether each secret was read."""
        return self.shown

    def limit(self, section: str) -> RateLimit:
        """How fast the section's channel may send: as configured, else the provider's published limit."""
        return self.limits.get(section) or DEFAULTS[section]

    def build(self, clock: Clock, *, sleep: Callable[[float], None] | None = None) -> list[Channel]:
        """The channel objects, in a fixed order (the dispatcher takes the first of a kind: Aliyun before Tencent)."""
        out: list[Channel] = []
        base: dict[str, Any] = {"clock": clock} | ({"sleep": sleep} if sleep else {})

        def extra(name: str) -> dict[str, Any]:
            return base | {"limit": self.limit(name)}

        if self.email:
            out.append(SmtpChannel(self.email, clock=clock))
        if self.sms_aliyun:
            out.append(AliyunSms(self.sms_aliyun, **extra("sms_aliyun")))
        if self.sms_tencent:
            out.append(TencentSms(self.sms_tencent, **extra("sms_tencent")))
        if self.wecom:
            out.append(WeComApp(self.wecom, **extra("wecom")))
        if self.wecom_robot:
            out.append(WeComRobot(self.wecom_robot, **extra("wecom_robot")))
        if self.dingtalk:
            out.append(DingTalkApp(self.dingtalk, **extra("dingtalk")))
        if self.dingtalk_robot:
            out.append(DingTalkRobot(self.dingtalk_robot, **extra("dingtalk_robot")))
        if self.voice:
            out.append(ManualChannel("voice", clock=clock))
        if self.ems:
            out.append(ManualChannel("ems", clock=clock))
        return out


def read_secret(folder: Path, name: str, where: str, problems: list[str]) -> str:
    """The secret in ``folder/name``: the file must be the owner's alone (mode 0600 or stricter)."""
    path = folder / name
    try:
        mode = path.stat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            problems.append(
                f"{where}: {path} 权限过宽 / is readable by others (mode {stat.S_IMODE(mode):o}): chmod 600"
            )
            return ""
        value = path.read_text(encoding="utf-8").strip("\r\n")
    except OSError as err:
        problems.append(f"{where}: 无法读取 / cannot read {path}: {err.strerror}")
        return ""
    if not value:
        problems.append(f"{where}: {path} 为空 / is empty")
    return value


def parse(table: Any, folder: Path) -> tuple[ChannelSettings, list[str]]:
    """``[channels]`` with its sub-tables; returns the settings and every problem found (prefixed ``channels.``)."""
    problems: list[str] = []
    if not isinstance(table, dict):
        return ChannelSettings(), ["[channels]: must be a table"]
    values: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in table.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                problems.append(f"channels.{key}: must be a table")
                continue
            values[key] = _section(key, value, folder, problems)
        elif key in TOP:
            if type(value) is not TOP[key]:
                problems.append(f"channels.{key}: expected {TOP[key].__name__}, got {type(value).__name__}")
            else:
                top[key] = value
        else:
            problems.append(f"channels.{key}: unknown key (sections: {', '.join(SECTIONS)})")
    token = ""
    if "callback_token_file" in top:
        token = read_secret(folder, top["callback_token_file"], "channels.callback_token_file", problems)
        if token and len(token) < 16:
            problems.append("channels.callback_token_file: the token needs at least 16 characters")
    every = top.get("pull_receipts_every_s", 300)
    if every < 30:
        problems.append("channels.pull_receipts_every_s: at least 30")
    built: dict[str, Any] = {}
    limits = {name: _limit(name, raw, problems) for name, raw in values.items() if name in DEFAULTS}
    for name, raw in values.items():
        try:
            built[name] = _settings(name, raw, problems)
        except (KeyError, TypeError, ValueError) as err:  # reported below as the section's problem
            problems.append(f"channels.{name}: {err}")
    shown = {
        **{k: v for k, v in table.items() if k in TOP},
        **{k: _shown(v) for k, v in table.items() if k in SECTIONS},
    }
    settings = ChannelSettings(
        **built,  # type: ignore[arg-type]
        callback_token=token,
        pull_receipts_every_s=every,
        limits={k: v for k, v in limits.items() if v is not None},
        shown=shown,
    )
    return settings, problems


def _limit(name: str, raw: dict[str, Any], problems: list[str]) -> RateLimit | None:
    """The section's rate limit when any of its keys is given (the others from the provider's default)."""
    given = {k: raw[k] for k in LIMIT_KEYS if k in raw}
    if not given:
        return None
    default = DEFAULTS[name]
    limit = RateLimit(
        per_s=given.get("per_second", default.per_s),
        burst=given.get("burst", default.burst),
        per_minute=given.get("per_minute", default.per_minute),
        concurrency=given.get("concurrency", default.concurrency),
    )
    found = limit.problems(f"channels.{name}")
    problems += found
    return None if found else limit


def _shown(section: Any) -> Any:
    if not isinstance(section, dict):
        return section
    return {k: (f"{v} (read, ***)" if k.endswith("_file") else v) for k, v in section.items()}


def _section(name: str, raw: dict[str, Any], folder: Path, problems: list[str]) -> dict[str, Any]:
    spec = SECTIONS[name]
    out: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"channels.{name}.{key}"
        if key not in spec:
            hint = f" (put it in a file: {key}_file)" if any(w in key for w in SECRET_WORDS) else ""
            problems.append(f"{where}: unknown key{hint}")
            continue
        kind, _required = spec[key]
        if kind is _NUM and type(value) is int:
            value = float(value)
        if type(value) is not kind:
            problems.append(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
            continue
        out[key] = read_secret(folder, value, where, problems) if key.endswith("_file") else value
    for key, (_kind, required) in spec.items():
        if required and key not in raw:
            problems.append(f"channels.{name}.{key}: missing")
    return out


def _settings(name: str, v: dict[str, Any], problems: list[str]) -> Any:
    if name in ("voice", "ems"):
        return bool(v.get("enabled", True))
    missing = [k for k, (_t, required) in SECTIONS[name].items() if required and k not in v]
    if missing:
        return None  # already reported
    opt = {k: v[k] for k in ("endpoint", "region", "per_minute", "base_url") if k in v}
    if name == "email":
        return SmtpSettings(
            host=v["host"],
            port=v.get("port", 587),
            sender=v["from"],
            sender_name=v.get("from_name", "人力资源部"),
            username=v.get("username", ""),
            password=v.get("password_file", ""),
            starttls=v.get("starttls", True),
            timeout_s=float(v.get("timeout_s", 30)),
        )
    if name == "sms_aliyun":
        codes: dict[str, str] = {}
        texts: dict[str, str] = {}
        for ours, item in v["templates"].items():
            if isinstance(item, str):
                codes[ours] = item
            elif isinstance(item, dict) and isinstance(item.get("code"), str) and isinstance(item.get("text", ""), str):
                codes[ours] = item["code"]
                texts.update({ours: item["text"]} if item.get("text") else {})
            else:
                problems.append(
                    f'channels.sms_aliyun.templates.{ours}: a TemplateCode string, e.g. "SMS_123456789", or '
                    '{code = "SMS_123456789", text = "the approved content, ${name} for a variable"}'
                )
        return AliyunSmsSettings(
            access_key_id=v["access_key_id"],
            access_key_secret=v["access_key_secret_file"],
            sign_name=v["sign_name"],
            template_codes=codes,
            template_texts=texts,
            **opt,
        )
    if name == "sms_tencent":
        templates: dict[str, TencentTemplate] = {}
        for ours, item in v["templates"].items():
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("id"), str)
                or not isinstance(item.get("params", []), list)
                or not isinstance(item.get("text", ""), str)
            ):
                problems.append(
                    f'channels.sms_tencent.templates.{ours}: {{id = "123456", params = ["name", ...], '
                    'text = "the approved content, {1} for the first variable"}'
                )
                continue
            params = tuple(str(p) for p in item.get("params", []))
            templates[ours] = TencentTemplate(item["id"], params, item.get("text", ""))
        return TencentSmsSettings(
            secret_id=v["secret_id"],
            secret_key=v["secret_key_file"],
            sdk_app_id=v["sdk_app_id"],
            sign_name=v["sign_name"],
            templates=templates,
            **opt,
        )
    if name == "wecom":
        return WeComAppSettings(corp_id=v["corp_id"], corp_secret=v["corp_secret_file"], agent_id=v["agent_id"], **opt)
    if name == "wecom_robot":
        return WeComRobotSettings(key=v["key_file"], **opt)
    if name == "dingtalk":
        return DingTalkAppSettings(app_key=v["app_key"], app_secret=v["app_secret_file"], agent_id=v["agent_id"], **opt)
    return DingTalkRobotSettings(access_token=v["access_token_file"], secret=v["secret_file"], **opt)
