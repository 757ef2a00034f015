"""The pages' actions ("seen on the line", "terminal fault", "sent home"), signed by the daemon.

The pages queue an ``ActionRequest``; the daemon appends each as an ``action`` record with the
user who asked, and ``ActionRecord`` (unique per request, in the same transaction) makes sure a
request is never signed twice, even if the daemon stops half-way.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from appliance.store import ActionRecord, ActionRequest, BoardRow, Employee, ShiftDef

if TYPE_CHECKING:  # the log writer's side, imported where it runs: the evaluator's process never loads it (handoff)
    from appliance.capture.punchlog import Entry, LogWriter

KINDS = ("seen_on_line", "terminal_fault", "sent_home", "contacted", "on_leave")  # the last two: answers to an alert
# Who may record what. Sending a worker home decides about their day: a manager's call, not a line leader's.
ALLOWED = {
    "admin": KINDS,
    "plant_manager": KINDS,
    "line_leader": ("seen_on_line", "terminal_fault", "contacted", "on_leave"),
}
BACKDATE_DAYS = 31  # an action about a day longer ago than this is a correction for head office, not the floor
BATCH = 50


class ActionRefused(ValueError):
    """Not queued, so never signed. ``key`` names the page's message for it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def allowed(role: str) -> tuple[str, ...]:
    return ALLOWED.get(role, ())


def pending(limit: int = BATCH) -> list[ActionRequest]:
    signed = ActionRecord.select(ActionRecord.request)
    return list(
        ActionRequest.select()
        .where(ActionRequest.id.not_in(signed) & (ActionRequest.error == ""))
        .order_by(ActionRequest.id)
        .limit(limit)
    )


def sign_pending(writer: LogWriter) -> list[int]:
    """Append every queued action; return the seqs."""
    requests = pending()
    if not requests:
        return []
    return writer.append([_entry(r) for r in requests])


def _entry(req: ActionRequest) -> Entry:
    from appliance.capture.punchlog import Entry

    body = {
        "act": req.kind,
        "emp": req.employee,
        "date": req.work_date,
        "shift": req.shift,
        "reason": req.reason,
        "user": req.user,
        "role": req.role,
        "req_id": req.id,
        "req_ms": req.requested_ms,
    }

    def derive(seq: int, _now_ms: int) -> tuple[type[ActionRecord], dict[str, object]]:
        return ActionRecord, {"seq": seq, "request": req.id, "employee": req.employee, "work_date": req.work_date}

    return Entry("action", body, derive)


def check(*, employee: str, work_date: str, shift: str, kind: str, reason: str, role: str, today: date) -> None:
    """Everything an action names is checked before it is queued: a signed record is permanent, so one about a
    badge that is not on the roster, a day that has not come, or by a role that may not record it must never
    be written. Raises ``ActionRefused``."""
    if kind not in KINDS:
        raise ActionRefused("act_refused_kind", f"unknown action {kind!r}")
    if kind not in allowed(role):
        raise ActionRefused("act_refused_role", f"role {role!r} may not record {kind!r}")
    if not reason.strip():
        raise ActionRefused("act_needs_reason", "an action needs a reason")
    try:
        day = date.fromisoformat(work_date)
    except ValueError as err:
        raise ActionRefused("act_refused_date", f"not a date: {work_date[:20]!r}") from err
    if day > today:
        raise ActionRefused("act_refused_future", f"{day} has not come yet (today is {today})")
    if day < today - timedelta(days=BACKDATE_DAYS):
        raise ActionRefused("act_refused_old", f"{day} is more than {BACKDATE_DAYS} days ago")
    who = Employee.get_or_none(Employee.user_id == employee[:64]) if len(employee) <= 64 else None
    if who is None:
        raise ActionRefused("unknown_person", "this badge is not on the roster")
    if (who.valid_from and work_date < who.valid_from) or (who.valid_to and work_date > who.valid_to):
        raise ActionRefused("act_refused_not_employed", f"{employee} was not employed on {work_date}")
    if shift and not (
        BoardRow.select()
        .where((BoardRow.employee == employee) & (BoardRow.work_date == work_date) & (BoardRow.shift == shift))
        .exists()
        or ShiftDef.select().where(ShiftDef.id == shift).exists()
    ):
        raise ActionRefused("act_refused_shift", f"no shift {shift[:64]!r}")


def queue(
    *,
    employee: str,
    work_date: str,
    shift: str,
    kind: str,
    reason: str,
    user: str,
    role: str,
    now_ms: int,
    today: date,
) -> ActionRequest:
    """Called by the pages once ``check`` passes here too: the daemon signs it within a second or so."""
    check(employee=employee, work_date=work_date, shift=shift, kind=kind, reason=reason, role=role, today=today)
    return ActionRequest.create(
        employee=employee,
        work_date=work_date,
        shift=shift,
        kind=kind,
        reason=reason.strip()[:500],
        user=user,
        role=role,
        requested_ms=now_ms,
    )
