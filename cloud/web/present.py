"""Times and names as people read them: stored UTC, shown in the plant's zone; Chinese or English."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import g

from cloud.channels import names
from cloud.clock import zone_words
from cloud.escalation.policy import ROLE_NAMES


def in_zone(ms: int | None, zone: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(zone)).strftime(fmt)


def bi(zh: str, en: str) -> str:
    """Pick the text of a stored pair (timeline entries, task titles) for the page's language."""
    return en if getattr(g, "lang", "zh") == "en" else zh


def word(table: dict[str, tuple[str, str]], code: str) -> str:
    """``code`` named from a code-to-words ``table`` ({code: (zh, en)}) in the page's language."""
    return names.word(table, code, getattr(g, "lang", "zh"))


def roles(csv: str) -> str:
    """ "employee,manager" as people read it: "员工、主管" / "employee, manager"."""
    en = getattr(g, "lang", "zh") == "en"
    return ("、" if not en else ", ").join(ROLE_NAMES.get(r, (r, r))[en] for r in csv.split(",") if r)


def channels(csv: str) -> str:
    """ "sms,email" as people read it: "短信、邮件" / "SMS, e-mail"."""
    en = getattr(g, "lang", "zh") == "en"
    return ("、" if not en else ", ").join(names.en(c) if en else names.zh(c) for c in csv.split(",") if c)


def step_name(key: str) -> str:
    """A step's key as people read it: "L3#2" → "第3级（第2次）" / "L3 (round 2)"; the notice is named beside it."""
    match = re.fullmatch(r"L(\d+)(?::[a-z_]+)?(?:#(\d+))?", key)
    if match is None:
        return key
    en = getattr(g, "lang", "zh") == "en"
    level, again = match.groups()
    if en:
        return f"L{level}" + (f" (round {again})" if again else "")
    return f"第{level}级" + (f"（第{again}次）" if again else "")


def local_ms(text: str, zone: str) -> int:
    """A form's local date or date-time ("2025-03-13" or "2025-03-13T08:00") in ``zone`` → epoch ms UTC."""
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise ValueError(f"时间格式应为 YYYY-MM-DD HH:MM / {text!r} is not a date and time") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    try:
        return int(moment.astimezone(UTC).timestamp() * 1000)
    except OverflowError as err:  # 0001-01-01 east of UTC, 9999-12-31 west of it: no UTC instant
        raise ValueError(f"时间超出范围 / {text!r} is out of range") from err


def zone_name(zone: str) -> str:
    """A plant's zone as people read it beside a time, in the page's language (``cloud.clock.zone_words``)."""
    return zone_words(zone, getattr(g, "lang", "zh"))


def policy_label(scope: str, number: int) -> str:
    """A policy version as people read it: "全部工厂 · 第3版" / "all plants · v3"; a plant's own by its id."""
    en = getattr(g, "lang", "zh") == "en"
    where = ("all plants" if en else "全部工厂") if scope == "*" else scope
    return f"{where} · v{number}" if en else f"{where} · 第{number}版"


def hms_zone(zone: str) -> str:
    """The zone's name and its UTC offset now, for a page's footnote ("Asia/Shanghai, UTC+08:00")."""
    offset = datetime.now(ZoneInfo(zone)).strftime("%z")
    return f"{zone}, UTC{offset[:3]}:{offset[3:]}"
