"""A person's day: the punches (terminal, terminal's own time, clock offset), the reasoning, the
signed day fact, and the actions a manager records ("seen on the line", "terminal fault",
"sent home"), which the daemon signs with the user's name."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for

from appliance.attendance import actions
from appliance.rules import punch_range
from appliance.store import ActionRecord, ActionRequest, BoardRow, Employee, LogRecord, Punch
from appliance.web import present
from appliance.web.auth import check_csrf, login_required

bp = Blueprint("day", __name__)


def _punches(employee: str, day: Any) -> list[dict[str, Any]]:
    span = punch_range(day, present.tz())
    # the day itself and the edges a night shift reaches into: the previous evening and next morning
    lo = int(span.start.timestamp() * 1000) + 18 * 3600 * 1000
    hi = int(span.end.timestamp() * 1000) - 18 * 3600 * 1000
    rows = list(
        Punch.select()
        .where((Punch.user_id == employee) & (Punch.at_utc_ms >= lo) & (Punch.at_utc_ms < hi))
        .order_by(Punch.at_utc_ms)
    )
    from ledger import parse  # the ledger package loads the cryptography package (5 MB): only this page needs it

    records = {r.seq: r for r in LogRecord.select().where(LogRecord.seq.in_([p.seq for p in rows]))}
    out = []
    for p in rows:
        term = parse(bytes(records[p.seq].data)).get("term", {}) if p.seq in records else {}
        out.append({"punch": p, "offset_ms": term.get("off_ms"), "device_time": p.device_time.replace("T", " ")})
    return out


@bp.route("/person/<employee>")
@login_required
def person(employee: str) -> Any:
    day = present.parse_day(request.args.get("date"))
    iso = day.isoformat()
    who = Employee.get_or_none(Employee.user_id == employee)
    rows = list(BoardRow.select().where((BoardRow.work_date == iso) & (BoardRow.employee == employee)))
    requests = list(
        ActionRequest.select()
        .where((ActionRequest.employee == employee) & (ActionRequest.work_date == iso))
        .order_by(ActionRequest.id)
    )
    signed = {a.request: a.seq for a in ActionRecord.select().where(ActionRecord.request.in_([r.id for r in requests]))}
    return render_template(
        "person.html",
        settings=current_app.config["SETTINGS"],
        employee=employee,
        who=who,
        day=iso,
        prev_day=(day - timedelta(days=1)).isoformat(),
        next_day=(day + timedelta(days=1)).isoformat(),
        rows=rows,
        punches=_punches(employee, day),
        requests=requests,
        signed=signed,
        kinds=actions.allowed(session.get("role", "")),
        local=present.local,
        hhmm=present.hhmm,
        reason=present.reason,
        tier_key=present.tier_key,
        error=request.args.get("error"),
    )


@bp.route("/person/<employee>/action", methods=["POST"])
@login_required
def act(employee: str) -> Any:
    check_csrf()
    day = request.form.get("date", "")[:32]
    kind = request.form.get("kind", "")
    if kind not in actions.KINDS:
        abort(400)
    try:
        actions.queue(
            employee=employee,
            work_date=day,
            shift=request.form.get("shift", "")[:65],
            kind=kind,
            reason=request.form.get("reason", ""),
            user=session["user"],
            role=session.get("role", ""),
            now_ms=present.now_ms(),
            today=present.today(),
        )
    except actions.ActionRefused as err:
        current_app.logger.warning("action refused for %s by %s: %s", employee[:64], session["user"], err)
        shown = present.parse_day(day).isoformat()
        return redirect(url_for("day.person", employee=employee[:64], date=shown, error=err.key))
    return redirect(url_for("day.person", employee=employee, date=day))
