"""The pages' actions ("seen on the line", "terminal fault", "sent home"), signed by the daemon.

The pages queue an ``ActionRequest``; the daemon appends each as an ``action`` record with the
user who asked, and ``ActionRecord`` (unique per request, in the same transaction) makes sure a
request is never signed twice, even if the daemon stops half-way.
"""

from __future__ import annotations

from appliance.capture.punchlog import Entry, LogWriter
from appliance.store import ActionRecord, ActionRequest

KINDS = ("seen_on_line", "terminal_fault", "sent_home")
BATCH = 50


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


def queue(
    *, employee: str, work_date: str, shift: str, kind: str, reason: str, user: str, role: str, now_ms: int
) -> ActionRequest:
    """Called by the pages: the daemon signs it within a second or so."""
    if kind not in KINDS:
        raise ValueError(f"unknown action {kind!r}")
    if not reason.strip():
        raise ValueError("an action needs a reason")
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
