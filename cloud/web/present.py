"""Times and names as people read them: stored UTC, shown in the plant's zone; Chinese or English."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import g


def in_zone(ms: int | None, zone: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(zone)).strftime(fmt)


def bi(zh: str, en: str) -> str:
    """Pick the text of a stored pair (timeline entries, task titles) for the page's language."""
    return en if getattr(g, "lang", "zh") == "en" else zh


def local_ms(text: str, zone: str) -> int:
    """A form's local date or date-time ("2025-03-13" or "2025-03-13T08:00") in ``zone`` → epoch ms UTC."""
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise ValueError(f"时间格式应为 YYYY-MM-DD HH:MM / {text!r} is not a date and time") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return int(moment.astimezone(UTC).timestamp() * 1000)


def hms_zone(zone: str) -> str:
    """The zone's name and its UTC offset now, for a page's footnote ("Asia/Shanghai, UTC+08:00")."""
    offset = datetime.now(ZoneInfo(zone)).strftime("%z")
    return f"{zone}, UTC{offset[:3]}:{offset[3:]}"
