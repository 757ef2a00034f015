"""How the pages show what the evaluator wrote: local times, categories of the board."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from flask import current_app, g, request, url_for

from appliance.store import BoardRow
from appliance.web import i18n

# the order of the board's counts; ``overdue`` (shift begun, no punch: 未打卡（进行中）) apart from
# ``upcoming`` (shift not begun yet), and first
CATEGORIES = ("overdue", "missing", "late", "present", "leave", "upcoming", "uncovered", "off")
URGENT = ("overdue", "missing")  # the statuses listed first, whatever their shift's start
CATEGORY_OF = {
    "overdue": "overdue",
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


ZONE_NAMES = {  # the zones a plant in China is in, as its people call them (as head office's pages say them)
    "Asia/Shanghai": ("北京时间", "China Standard Time"),
    "Asia/Chongqing": ("北京时间", "China Standard Time"),
    "Asia/Urumqi": ("新疆时间", "Xinjiang time"),
    "Asia/Hong_Kong": ("香港时间", "Hong Kong time"),
}


def zone_name() -> str:
    """The plant's zone as people read it beside a time ("北京时间"), never its database name; another zone
    by its offset now ("当地时间 UTC+07:00")."""
    english = getattr(g, "lang", "zh") == "en"
    names = ZONE_NAMES.get(current_app.config["SETTINGS"].plant.timezone)
    if names:
        return names[1] if english else names[0]
    offset = now().astimezone(tz()).strftime("%z")
    utc = f"UTC{offset[:3]}:{offset[3:]}"
    return f"local time, {utc}" if english else f"当地时间 {utc}"


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


# the days the pages show: a date beyond them (0001-01-01, 9999-12-31) is no attendance day, and its neighbours
# (the previous day's link, an export's month) would be out of Python's date range: an OverflowError, a 500
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)


def parse_day(text: str | None) -> date:
    """The day a page was asked for (``?date=``): today when it is missing, not a date, or outside 2000-2099."""
    try:
        day = date.fromisoformat(text) if text else today()
    except ValueError:
        return today()
    return day if FIRST_DAY <= day <= LAST_DAY else today()


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]+")  # what a URL's path and query keep as it is


def person_url(employee: str, day: str) -> str:
    """``url_for("day.person", employee=..., date=...)``, built directly for a plain badge and date: the board
    links each of its rows twice, and werkzeug's URL builder cost more than the rest of a row's rendering."""
    if _PLAIN.fullmatch(employee) and _PLAIN.fullmatch(day):
        return f"{request.script_root}/person/{employee}?date={day}"
    return url_for("day.person", employee=employee, date=day)


def row_helpers() -> dict[str, Any]:
    """What a template of many rows calls for each (``t``, ``person_url``, ``reason``, ``hhmm``, ``local``), bound
    once to this request's language, script root and zone: each call otherwise looked up the request's context
    again, which cost more than a 5,000-row board's rendering itself. Minutes are formatted once each."""
    english = getattr(g, "lang", "zh") == "en"
    root, zone = request.script_root, tz()
    minutes: dict[int, str] = {}

    def person(employee: str, day: str) -> str:
        if _PLAIN.fullmatch(employee) and _PLAIN.fullmatch(day):
            return f"{root}/person/{employee}?date={day}"
        return url_for("day.person", employee=employee, date=day)

    def hhmm_(ms: int | None) -> str:
        if ms is None:
            return "—"
        minute = ms // 60_000
        if minute not in minutes:
            minutes[minute] = datetime.fromtimestamp(minute * 60, zone).strftime("%H:%M")
        return minutes[minute]

    def reason_(row: Any) -> str:
        return row.reason_en if english else row.reason_zh  # type: ignore[no-any-return]

    def local_(ms: int | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return "—" if ms is None else datetime.fromtimestamp(ms / 1000, zone).strftime(fmt)

    return {
        "t": i18n.translator("en" if english else "zh"),
        "person_url": person,
        "reason": reason_,
        "hhmm": hhmm_,
        "local": local_,
    }


def reason(row: BoardRow) -> str:
    return row.reason_en if getattr(g, "lang", "zh") == "en" else row.reason_zh


def tier_key(row: BoardRow) -> str:
    """The i18n key of how final a row is ("" when the status says it all: not due yet, overdue)."""
    if row.status in ("upcoming", "overdue"):
        return ""
    if row.missing_tier:
        return f"tier_{row.missing_tier}"
    return f"tier_{row.tier}"
