"""The plant manager's board: today's attendance by shift and line, terminals, sync, punches.

The page reads what the daemon's evaluator wrote (``BoardRow``). ``/board/events`` pushes the
board's version (the evaluator's board version and the last punch) as Server-Sent Events; the page's script
fetches its fresh rows (``?partial=1``) when the version moves, so it stays live without
reloading itself. ``/board/version`` is the fallback it polls when it cannot hold a stream.
"""

from __future__ import annotations

from collections import Counter, defaultdict, namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, redirect, render_template, request, session, url_for
from markupsafe import Markup, escape

from appliance.attendance import actions, alerts
from appliance.store import (
    BoardRow,
    Employee,
    EvaluatorState,
    LogRecord,
    Punch,
    SyncState,
    TerminalHealth,
    TerminalLogCount,
)
from appliance.web import dayrows, i18n, live, present
from appliance.web.auth import check_csrf, login_required
from opskit.urlints import MAX_PAGE, query_int

bp = Blueprint("board", __name__)


@bp.app_context_processor
def _zone() -> dict[str, Any]:
    """Every page says the plant's zone as its people do (北京时间), not its database name; and links to a
    worker's day (``person_url``: the board's 5,000 rows link twice each)."""
    return {"zone_name": present.zone_name, "person_url": present.person_url}


PAGE_ROWS = 500  # rows rendered per page: a 5,000-worker board is ten pages, not 2 MB of HTML
# What the board shows of yesterday's open shifts (board_open_row.html), read as plain tuples
ROW_FIELDS = (
    BoardRow.work_date, BoardRow.employee, BoardRow.shift, BoardRow.name, BoardRow.line, BoardRow.shift_name,
    BoardRow.status, BoardRow.tier, BoardRow.missing_tier, BoardRow.late_min, BoardRow.in_ms, BoardRow.out_ms,
    BoardRow.reason_zh, BoardRow.reason_en, BoardRow.fact_seq,
)  # fmt: skip


def _filtered(rows: tuple[dayrows.Row, ...]) -> tuple[dayrows.Row, ...]:
    """The rows that the filters let through (shift, line, category, a search on badge or name), in their order."""
    shift, line, category = (request.args.get(k, "") for k in ("shift", "line", "cat"))
    needle = request.args.get("q", "").strip().lower()
    if not (shift or line or category or needle):
        return rows
    statuses = {s for s, c in present.CATEGORY_OF.items() if c == category}
    return tuple(
        r
        for r in rows
        if (not shift or r.shift == shift)
        and (not line or r.line == line)
        and (not category or r.status in statuses)
        and (not needle or needle in r.employee.lower() or needle in r.name.lower())  # a % typed is a character
    )


@dataclass(frozen=True)
class _Day:
    """What every page of one board (a day, its filters, its language) shares at one board version: its rows in the
    board's order (``dayrows``: whoever should be here and is not first, overdue then missing, then by the shift's
    start) and the parts above and below them. Worked out once per version for all its pages."""

    rows: tuple[dayrows.Row, ...]
    counts: Counter[str]
    still_open: list[Any]
    shifts: list[tuple[str, str]]
    lines: list[str]
    evaluator: EvaluatorState | None


def _day(iso: str, view: dayrows.View) -> _Day:
    yesterday = (date.fromisoformat(iso) - timedelta(days=1)).isoformat()
    still_open = [_ROW._make(values) for values in BoardRow._meta.database.execute_sql(_STILL_OPEN, (yesterday,))]
    return _Day(
        rows=_filtered(view.rows),
        counts=view.counts,
        still_open=still_open,
        shifts=view.shifts,
        lines=view.lines,
        evaluator=EvaluatorState.get_or_none(EvaluatorState.id == 1),
    )


_ROW = namedtuple("_ROW", [f.name for f in ROW_FIELDS])  # type: ignore[misc]
# Yesterday's first 200 shifts not yet final: which ones, sorted from the day's index alone (store.BoardRow), then
# those rows; sorting the rows themselves read every row of the day whole
_STILL_OPEN = (
    f"SELECT {', '.join(f.column_name for f in ROW_FIELDS)} FROM {BoardRow._meta.table_name} WHERE rowid IN ("
    f"SELECT rowid FROM {BoardRow._meta.table_name} WHERE work_date = ? AND shift != '' AND tier != 'confirmed' "
    "ORDER BY start_ms, employee LIMIT 200) ORDER BY start_ms, employee"
)


def _page(day: _Day) -> tuple[tuple[dayrows.Row, ...], dict[str, int]]:
    """One page of the day's rows (``?page=N``, from 1; past the end is the last page), and where it lies."""
    total = len(day.rows)
    pages = max(1, -(-total // PAGE_ROWS))
    number = min(query_int("page", 1, lo=1, hi=MAX_PAGE), pages)
    first = (number - 1) * PAGE_ROWS
    rows = day.rows[first : first + PAGE_ROWS]
    return rows, {"number": number, "pages": pages, "total": total, "first": first + 1, "last": first + len(rows)}


ROW_MARK = "<!--row-->"  # after each row of board_row.html: what no escaped value can contain


def _rendered(template: str, helpers: dict[str, Any]) -> Callable[[Sequence[Any]], list[bytes]]:
    """What renders rows by ``template`` (board_row.html, board_open_row.html) in the page's language: their HTML,
    each row's apart."""

    def render(rows: Sequence[Any]) -> list[bytes]:
        text = render_template(template, rows=rows, tier_key=present.tier_key, **helpers)
        return [part.strip().encode() for part in text.split(ROW_MARK)[: len(rows)]]

    return render


def _texts(template: str, rows: Sequence[Any], helpers: dict[str, Any]) -> list[bytes]:
    """Each row's HTML by ``template`` in the page's language: rendered once and kept until the row changes
    (``rendercache.RowFragments``: yesterday's open shifts; today's rows are kept with the day's, ``dayrows``)."""
    lang = getattr(g, "lang", "zh")
    return current_app.extensions["punchproof.board_row_texts"].texts(  # type: ignore[no-any-return]
        rows,
        lambda r: (template, lang, request.script_root, r.work_date, r.employee, r.shift),
        _rendered(template, helpers),
    )


# Where a group's rows go in board_rows.html: the template renders a slot, and the rows' kept UTF-8 text is put in
# it afterwards (``splice``), not decoded into the template's text and encoded again with it (a page of 500 rows is
# some 350 kB: two copies of it as text, each of a Chinese page two bytes a character, for every page rendered).
# No escaped value can contain it.
SLOT = b"<!--board-rows-->"
_SLOT = Markup(SLOT.decode())


@dataclass(frozen=True)
class Spliced:
    """A rendered page and the rows' texts for its slots, kept apart: a page kept (``rendercache``) holds its markup
    and references to its rows' texts, which the worker keeps anyway (``dayrows``), not a copy of them (some 350 kB a
    page of 500 rows); ``parts`` joins each slot's rows as the page is sent."""

    pieces: tuple[bytes, ...]
    slots: tuple[Sequence[bytes], ...]

    def parts(self) -> list[bytes]:
        """The page's bytes, in parts (Werkzeug sends a list's parts as they are and counts their length)."""
        out = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            out += (b"\n".join(slot), piece)
        return out


def splice(page: bytes, slots: Sequence[Sequence[bytes]]) -> Spliced:
    """``page`` with its slots to be filled, in order, by ``slots`` (each a sequence of rows' texts)."""
    pieces = page.split(SLOT)
    if len(pieces) != len(slots) + 1:
        raise RuntimeError(f"the board's page has {len(pieces) - 1} slots for {len(slots)} parts")
    return Spliced(tuple(pieces), tuple(slots))


def _grouped(rows: Sequence[dayrows.Row]) -> tuple[list[tuple[str, str, int, Markup]], list[Sequence[bytes]]]:
    """The page's rows by shift and line: (shift, line, how many, a slot for their rows), and the texts of each
    group's rows, for its slot."""
    groups: dict[tuple[str, str], list[bytes]] = defaultdict(list)
    for r in rows:
        groups[(r.shift_name or r.shift, r.line)].append(r.text)
    return (
        [(shift, line, len(members), _SLOT) for (shift, line), members in groups.items()],
        list(groups.values()),
    )


def _board_version() -> int:
    state = EvaluatorState.select(EvaluatorState.board_version).where(EvaluatorState.id == 1).scalar()
    return int(state or 0)


def _rows_context(board_version: int | None = None) -> dict[str, Any]:
    """The board's rows: the day's counts, a page of the rows the filters let through, yesterday's open shifts.
    ``board_version``: the evaluator's, as read before (read now if None)."""
    iso = present.parse_day(request.args.get("date")).isoformat()
    filters = tuple(sorted((k, v) for k, v in request.args.items(multi=True) if k not in ("page", "partial", "lang")))
    where = (getattr(g, "lang", "zh"), request.script_root)  # what a row's text depends on besides the row
    helpers = present.row_helpers()
    view = (
        current_app.extensions["punchproof.board_day_rows"]
        .get(iso, where)
        .view(_rendered("board_row.html", helpers), board_version)
    )
    day = current_app.extensions["punchproof.board_days"].get(
        (iso, where, filters), lambda: _day(iso, view), view.version
    )
    rows, page = _page(day)
    groups, slots = _grouped(rows)
    if day.still_open:
        slots.append(_texts("board_open_row.html", day.still_open, helpers))
    return {
        "day": iso,
        "groups": groups,
        "slots": slots,  # board_rows.html's slots, in order: each group's rows, then yesterday's open shifts
        "page": page,
        "page_url": _page_url,
        "counts": day.counts,
        "still_open": _SLOT if day.still_open else "",
        "shifts": day.shifts,
        "lines": day.lines,
        "evaluator": day.evaluator,
        "args": request.args,
        "categories": present.CATEGORIES,
        "settings": current_app.config["SETTINGS"],
        "local": present.local,
        "tier_key": present.tier_key,
        **helpers,
    }


def _page_url(number: int) -> str:
    """This board with its filters, at page ``number`` (the full page: links reload it)."""
    args = {k: v for k, v in request.args.items() if k not in ("page", "partial")}
    return url_for("board.index", **args, page=number)


def version() -> str:
    """The board's version, as the live stream announces it (``live.Hub.refresh``)."""
    state = EvaluatorState.get_or_none(EvaluatorState.id == 1)
    last = Punch.select(Punch.seq).order_by(Punch.seq.desc()).scalar()
    status = live.hub_of(current_app).status()
    return f"{state.board_version if state else 0}.{last if last is not None else -1}.{status}"


@bp.route("/")
@login_required
def index() -> Any:
    if not request.args.get("partial"):
        context = {**_rows_context(), **_status_context(), **_alerts_context()}
        page = render_template("board.html", version=version(), **context).encode()
        return Response(splice(page, context["slots"]).parts(), mimetype="text/html")
    board_version = _board_version()
    day = present.today().isoformat()
    # The rows (5,000 a day, a page of them rendered) change only when a pass changes the board;
    # the status below them (recent punches, terminals, sync) with every punch. Two caches, so a
    # punch costs a render of the small part, shared by every board whatever its filters; and that
    # part at most once a second for punches alone (``rendercache.Throttled``; a pass, a terminal's
    # or the uplink's change at once): the response says which version it shows
    # (``data-shown-version``), and the page fetches again when it was told of a newer one.
    rows = current_app.extensions["punchproof.board_rows"].get(
        (day, g.lang, tuple(sorted(request.args.items(multi=True)))),
        lambda: _rows_part(board_version),
        board_version,
    )
    now = version()  # "<board version>.<last punch>.<status token>": throttled when only the last punch moved
    passes, _last, token = now.split(".")
    shown, status = current_app.extensions["punchproof.board_status"].get(
        (day, g.lang),
        now,
        f"{passes}.{token}",
        lambda: render_template("board_status.html", **_status_context()).encode(),
    )
    status += f'\n<div hidden data-shown-version="{escape(shown)}"></div>'.encode()
    # the alerts carry answer forms (this user's CSRF token): rendered for each request, never shared
    alert_part = render_template("board_alerts.html", **_alerts_context()).encode()
    # who has not shown up comes first: the alerts above the rows, as on the full page (board_live.html); the parts
    # as they are, not copied into one (Werkzeug counts their length)
    return Response([alert_part, b"\n", *rows.parts(), b"\n", status], mimetype="text/html")


def _rows_part(board_version: int) -> Spliced:
    context = _rows_context(board_version)
    return splice(render_template("board_rows.html", **context).encode(), context["slots"])


def _alerts_context() -> dict[str, Any]:
    """Today's missed check-in alerts (or the chosen day's), their state and the answers given on them."""
    day = present.parse_day(request.args.get("date")).isoformat()
    error = request.args.get("error", "")
    return {
        "alerts": alerts.shown(day),
        "answers": alerts.ANSWERS,
        "alert_error": error if error in i18n.MESSAGES else "",
        "local": present.local,
    }


def _status_context() -> dict[str, Any]:
    """What the board shows below the rows: today's last punches, the terminals, the sync."""
    settings = current_app.config["SETTINGS"]
    day = present.today()
    start_ms = int(datetime(day.year, day.month, day.day, tzinfo=settings.plant.tz).timestamp() * 1000)
    sync = SyncState.get_by_id(1)
    head = LogRecord.select(LogRecord.seq).order_by(LogRecord.seq.desc()).scalar()
    punches = list(Punch.select().where(Punch.at_utc_ms >= start_ms).order_by(Punch.seq.desc()).limit(50))
    users = {p.user_id for p in punches}
    terminals = list(TerminalHealth.select().order_by(TerminalHealth.name))
    oldest = (
        LogRecord.select(LogRecord.t_wall_ms).where(LogRecord.seq > sync.acked_seq).order_by(LogRecord.seq).scalar()
    )
    backlog = (head if head is not None else -1) - sync.acked_seq
    return {
        "settings": settings,
        "today": day.isoformat(),
        "punches": punches,
        "names": dict(Employee.select(Employee.user_id, Employee.name).where(Employee.user_id.in_(users)).tuples())
        if users
        else {},
        "banners": _banners(terminals, sync, backlog, oldest),
        "terminals": terminals,
        "log_counts": _log_counts(),
        "count_gap": count_gap,
        "sync": sync,
        "head": head if head is not None else -1,
        "oldest_unsynced": oldest,
        **present.row_helpers(),
    }


def _banners(
    terminals: list[TerminalHealth], sync: SyncState, backlog: int, oldest_ms: int | None
) -> list[tuple[str, str]]:
    """What stops the board from being the truth, said at its top (Chinese, English): each terminal
    offline (its punches are not read, so a 缺勤 may be none) and a stopped uplink (nothing reaches
    head office). Their technical errors stay in the tables below, for IT."""
    said = []
    for term in terminals:
        if not term.available:
            never_zh, never_en = i18n.both("never")
            contact = present.local(term.last_contact_ms, "%m-%d %H:%M") if term.last_contact_ms else None
            zh = i18n.both("banner_terminal_offline", term.name, contact or never_zh)[0]
            en = i18n.both("banner_terminal_offline", term.name, contact or never_en)[1]
            said.append((zh, en))
    if not sync.connected:
        if sync.acked_at_ms is None and backlog <= 0:
            said.append(i18n.both("banner_uplink_never"))
        else:
            since = present.local(oldest_ms, "%m-%d %H:%M") if oldest_ms else "—"
            said.append(i18n.both("banner_uplink_down", max(backlog, 0), since))
    return said


def _log_counts() -> dict[str, TerminalLogCount]:
    """Each terminal's current log count (its latest log)."""
    return {c.terminal: c for c in TerminalLogCount.select().order_by(TerminalLogCount.log_no)}


def count_gap(count: TerminalLogCount) -> list[tuple[str, int]]:
    """Why the terminal's record count is not the punches stored, as (i18n key, number); empty when equal."""
    if count.terminal_count == count.punches:
        return []
    parts = [
        ("count_dup", count.duplicates),
        ("count_bad", count.bad_records),
        ("count_uncounted", count.uncounted),
        ("count_unread", count.terminal_count - count.records_read),
    ]
    return [(key, n) for key, n in parts if n > 0]


@bp.route("/board/version")
@login_required
def board_version() -> Any:
    return jsonify({"version": version()})


@bp.route("/board/events")
@login_required
def board_events() -> Any:
    hub = live.hub_of(current_app)
    if not hub.open_stream():
        return live.busy()
    return live.response(live.board_stream(hub, request.headers.get("Last-Event-ID")))


@bp.route("/board/alert/answer", methods=["POST"])
@login_required
def answer_alert() -> Any:
    """An answer to a missed check-in alert (已在产线看到 / 已联系 / 请假), for one worker it lists: queued as a plant
    action, which the daemon signs and head office files on the worker's case."""
    check_csrf()
    kind = request.form.get("kind", "")
    day = request.form.get("date", "")[:32]
    if kind not in alerts.ANSWERS:
        return redirect(url_for("board.index", date=day, error="act_refused_kind"))
    label = i18n.both(f"act_{kind}")[0]
    note = request.form.get("note", "").strip()
    try:
        actions.queue(
            employee=request.form.get("employee", "")[:65],
            work_date=day,
            shift=request.form.get("shift", "")[:65],
            kind=kind,
            reason=f"未打卡预警答复：{label}" + (f"；{note}" if note else ""),
            user=session["user"],
            role=session.get("role", ""),
            now_ms=present.now_ms(),
            today=present.today(),
        )
    except actions.ActionRefused as err:
        current_app.logger.warning("alert answer refused by %s: %s", session["user"], err)
        return redirect(url_for("board.index", date=present.parse_day(day).isoformat(), error=err.key))
    return redirect(url_for("board.index", date=day) + "#alerts")
