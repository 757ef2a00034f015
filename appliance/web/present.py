"""How the pages show what the evaluator wrote: local times, categories of the board."""

from __future__ import annotations

from datetime import date, datetime

from flask import current_app, g

from appliance.store import BoardRow

CATEGORIES = ("missing", "late", "present", "leave", "upcoming", "uncovered", "off")
CATEGORY_OF = {
    "present": "present",
    "left_early": "present",
    "incomplete": "present",
    "late": "late",
    "missing": "missing",
    "uncovered": "uncovered",  # no punch, but the appliance was not recording yet: never 缺勤
    "on_leave": "leave",
    "business_trip": "leave",
    "upcoming": "upcoming",
    "rest_day": "off",
    "holiday": "off",
    "not_scheduled": "off",
}


def tz():  # type: ignore[no-untyped-def]
    return current_app.config["SETTINGS"].plant.tz


def now() -> datetime:
    """The app's clock (``create_app(clock=...)``): aware, UTC."""
    return current_app.config["CLOCK"].now()


def now_ms() -> int:
    return int(now().timestamp() * 1000)


def local(ms: int | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz()).strftime(fmt)


def hhmm(ms: int | None) -> str:
    return local(ms, "%H:%M") if ms is not None else "—"


def today() -> date:
    return now().astimezone(tz()).date()


def parse_day(text: str | None) -> date:
    try:
        return date.fromisoformat(text) if text else today()
    except ValueError:
        return today()


def reason(row: BoardRow) -> str:
    return row.reason_en if getattr(g, "lang", "zh") == "en" else row.reason_zh


def tier_key(row: BoardRow) -> str:
    """The i18n key of how final a row is."""
    if row.missing_tier:
        return f"tier_{row.missing_tier}"
    return f"tier_{row.tier}"
