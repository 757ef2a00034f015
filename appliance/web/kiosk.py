"""The kiosk beside the time clocks: no login, read-only, only what the floor already sees.

``/kiosk`` is a full-screen page; ``/kiosk/events`` pushes each punch to it as a Server-Sent
Event (``appliance.web.live``: one watcher per worker, the event id is the punch's seq so a
reconnecting kiosk resumes where it was); ``/kiosk/feed?after=SEQ`` is the same as JSON, the
fallback the page polls when it cannot hold a stream. For each punch of the last few minutes:
the worker's name, the local time, in or out, a late warning and a warning when the terminal's
clock is off. No badge numbers, no absences, nothing about anyone who has not just punched. The
page changes nothing.

A badge the roster does not know is said as such (未登记，请联系人事), never confirmed with a ✓; the same
badge again within ``DOUBLE_MS`` is marked ``repeat`` and the page keeps it on one line. When a
terminal is offline the page says so at its top (``offline``; ``/kiosk?terminal=NAME`` for a screen
beside one terminal only): a worker whose punch does not show knows it is kept on the clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, jsonify, render_template, request

from appliance.store import BoardRow, Employee, Punch, TerminalHealth
from appliance.web import live, present
from opskit.urlints import MAX_ID, query_int

bp = Blueprint("kiosk", __name__)

DOUBLE_MS = 60_000  # the same badge again within this: a double press, one line on the kiosk (the rules' window)
RECENT = timedelta(minutes=10)  # older punches (a terminal's backlog read late) are not news to the floor
CLOCK_WARN_MS = 60_000  # a terminal's clock more than a minute off gets a warning
LIMIT = 20
IN_STATES, OUT_STATES = {0, 3, 4}, {1, 2, 5}


@bp.route("/kiosk")
def page() -> Any:
    terminal = request.args.get("terminal", "")[:100]
    return render_template("kiosk.html", settings=current_app.config["SETTINGS"], terminal=terminal)


@bp.route("/kiosk/feed")
def feed() -> Any:
    after = query_int("after", -1, lo=-1, hi=MAX_ID)  # a seq; -1: a kiosk just opened
    now_ms = present.now_ms()
    query = Punch.select().where(Punch.at_utc_ms >= now_ms - int(RECENT.total_seconds() * 1000))
    if after >= 0:
        rows = list(query.where(Punch.seq > after).order_by(Punch.seq).limit(LIMIT))
    else:  # a kiosk just opened: the last few, oldest first
        rows = list(reversed(query.order_by(Punch.seq.desc()).limit(5)))
    last = Punch.select(Punch.seq).order_by(Punch.seq.desc()).scalar()
    body = {
        "now_ms": now_ms,
        "last": max(after, last if last is not None else -1),
        "punches": _shown(rows),
        "offline": live.offline_terminals(),
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/kiosk/events")
def events() -> Any:
    hub = live.hub_of(current_app)
    after = live.parse_seq(request.headers.get("Last-Event-ID"), request.args.get("after"))
    if not hub.open_stream():
        return live.busy()
    return live.response(live.kiosk_stream(hub, after))


def _shown(rows: list[Punch]) -> list[dict[str, Any]]:
    return shown(rows, current_app.config["SETTINGS"].plant.tz)


def shown(rows: list[Punch], tz: ZoneInfo) -> list[dict[str, Any]]:
    """What the floor sees of each punch (the live watcher calls this once per new punch)."""
    if not rows:
        return []
    users = {r.user_id for r in rows}
    names = dict(Employee.select(Employee.user_id, Employee.name).where(Employee.user_id.in_(users)).tuples())
    offsets = dict(TerminalHealth.select(TerminalHealth.name, TerminalHealth.clock_offset_ms).tuples())
    days = {datetime.fromtimestamp(r.at_utc_ms / 1000, tz).date() for r in rows}
    days |= {d - timedelta(days=1) for d in days}
    shifts: dict[str, list[tuple[int, int, int]]] = {}
    for emp, start, end, grace in (
        BoardRow.select(BoardRow.employee, BoardRow.start_ms, BoardRow.end_ms, BoardRow.late_grace_s)
        .where(
            BoardRow.employee.in_(users)
            & BoardRow.work_date.in_([d.isoformat() for d in days])
            & BoardRow.start_ms.is_null(False)
        )
        .tuples()
    ):
        shifts.setdefault(emp, []).append((start, end, grace))
    earlier: dict[str, list[tuple[int, int]]] = {}
    for user, at, seq in (
        Punch.select(Punch.user_id, Punch.at_utc_ms, Punch.seq)
        .where(
            Punch.user_id.in_(users)
            & (Punch.at_utc_ms >= min(r.at_utc_ms for r in rows) - DOUBLE_MS)
            & (Punch.at_utc_ms <= max(r.at_utc_ms for r in rows))
        )
        .tuples()
    ):
        earlier.setdefault(user, []).append((at, seq))
    out = []
    for r in rows:
        direction, late = _direction(r, shifts.get(r.user_id, []))
        repeat = any(
            seq < r.seq and r.at_utc_ms - DOUBLE_MS <= at <= r.at_utc_ms for at, seq in earlier.get(r.user_id, [])
        )
        offset = offsets.get(r.terminal) or 0
        out.append(
            {
                "seq": r.seq,
                "name": names.get(r.user_id, ""),
                "known": r.user_id in names,
                "repeat": repeat,
                "time": datetime.fromtimestamp(r.at_utc_ms / 1000, tz).strftime("%H:%M"),
                "dir": direction,
                "late_min": late,
                "clock_off_s": offset // 1000 if abs(offset) > CLOCK_WARN_MS else 0,
            }
        )
    return out


def _direction(punch: Punch, shifts: list[tuple[int, int, int]]) -> tuple[str, int]:
    """In or out (the terminal's key if it has one, else the nearer end of the nearest shift), and
    minutes late for a check-in after the shift's start plus grace, as the rules count them."""
    at = punch.at_utc_ms
    nearest = min(shifts, key=lambda s: min(abs(at - s[0]), abs(at - s[1])), default=None)
    if punch.state in IN_STATES:
        direction = "in"
    elif punch.state in OUT_STATES:
        direction = "out"
    elif nearest is not None:
        direction = "in" if abs(at - nearest[0]) <= abs(at - nearest[1]) else "out"
    else:
        direction = ""
    late = 0
    if direction == "in" and nearest is not None and abs(at - nearest[0]) < abs(at - nearest[1]):
        late = max(0, (at - nearest[0] - nearest[2] * 1000) // 60_000)
    return direction, late
