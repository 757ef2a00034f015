"""Missed check-ins told at once (#20.1, "员工未打卡,系统会自动生成旷工预警,推送至HR及直线主管").

When a shift has begun (plus its grace) and workers rostered on it have not punched, the board shows them as
未打卡（进行中） (``board.OVERDUE``). Right after the evaluator's pass that turned them so, this module appends ONE
signed ``alert`` record per work date, shift and line (产线) listing who is missing; none when nobody is. The record
is the message: it goes up with the log (the live lane within a second, or the backlog lane after an outage, in
order and exactly once), and head office's alert worker (``cloud.alerts``) sends it to the workers' line managers
and the plant's HR. A worker who punches before head office sends it is left out of the message there.

An alert is raised once: the log itself says which were raised (``raised``), so a restart raises none again. A
shift that began more than ``LOOKBACK_H`` hours ago raises none (an appliance started late, an old day imported):
an alert is about now. The board shows each alert at once with its state (``shown``): 已通知主管和人事 once head
office holds it, 外网中断，恢复后发送 while the uplink is down; and the answers given on it (已在产线看到 /
已联系 / 请假: plant actions, ``appliance.attendance.actions``, which reach the head-office case).

The record: ``{"type": "alert", "date", "shift", "shift_name", "line", "start_ms", "due_ms", "who": [[badge,
name], ...]}``; ``who`` is not ``emp``: an alert is nobody's record (its owner tag is random, FORMAT.md).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING

from appliance.store import ActionRequest, BoardRow, LogRecord, SyncState

if TYPE_CHECKING:  # the log writer's side, imported where it runs: the evaluator's process never loads it (handoff)
    from appliance.capture.punchlog import LogWriter

TYPE = "alert"
LOOKBACK_H = 12  # a shift begun longer ago raises no alert
KEEP_MS = 2 * 86_400_000  # alerts this recent are looked at (raised ones, and the board's)
ANSWERS = ("seen_on_line", "contacted", "on_leave")  # the board's answer buttons (plant actions)
MISSING = "missing"


@dataclass(frozen=True)
class Alert:
    seq: int
    raised_ms: int
    work_date: str
    shift: str
    shift_name: str
    line: str
    start_ms: int
    due_ms: int
    who: tuple[tuple[str, str], ...]  # (badge, name)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.work_date, self.shift, self.line)


def raised(since_ms: int) -> list[Alert]:
    """The alerts in the log made since ``since_ms``, oldest first."""
    rows = (
        LogRecord.select(LogRecord.seq, LogRecord.data, LogRecord.t_wall_ms)
        .where((LogRecord.type == TYPE) & (LogRecord.t_wall_ms >= since_ms))
        .order_by(LogRecord.seq)
        .tuples()
    )
    out = []
    for seq, data, at in rows:
        body = json.loads(bytes(data))
        out.append(
            Alert(
                seq=seq,
                raised_ms=at,
                work_date=body["date"],
                shift=body["shift"],
                shift_name=body.get("shift_name", ""),
                line=body.get("line", ""),
                start_ms=body.get("start_ms", 0),
                due_ms=body.get("due_ms", 0),
                who=tuple((str(b), str(n)) for b, n in body.get("who", [])),
            )
        )
    return out


def due(now_ms: int) -> list[dict[str, object]]:
    """The alert bodies to raise now: one per (date, shift, line) with workers overdue (or already a tentative
    miss) whose shift began within ``LOOKBACK_H`` hours, and not raised before."""
    rows = (
        BoardRow.select(
            BoardRow.work_date,
            BoardRow.shift,
            BoardRow.shift_name,
            BoardRow.line,
            BoardRow.employee,
            BoardRow.name,
            BoardRow.start_ms,
            BoardRow.late_grace_s,
        )
        .where(
            (BoardRow.shift != "")
            & ((BoardRow.status == "overdue") | ((BoardRow.status == MISSING) & (BoardRow.missing_tier == "tentative")))
            & (BoardRow.start_ms >= now_ms - LOOKBACK_H * 3_600_000)
            & (BoardRow.start_ms <= now_ms)
        )
        .order_by(BoardRow.work_date, BoardRow.shift, BoardRow.line, BoardRow.employee)
        .tuples()
    )
    groups: dict[tuple[str, str, str], list[tuple[object, ...]]] = defaultdict(list)
    for row in rows:
        groups[(row[0], row[1], row[3])].append(row)
    if not groups:
        return []
    done = {a.key for a in raised(now_ms - KEEP_MS)}
    bodies = []
    for (work_date, shift, line), members in groups.items():
        if (work_date, shift, line) in done:
            continue
        start_ms = min(int(m[6] or 0) for m in members)
        grace_ms = int(members[0][7] or 0) * 1000
        bodies.append(
            {
                "date": work_date,
                "shift": shift,
                "shift_name": str(members[0][2] or ""),
                "line": line,
                "start_ms": start_ms,
                "due_ms": start_ms + grace_ms,
                "who": [[str(m[4]), str(m[5] or "")] for m in members],
            }
        )
    return bodies


def raise_due(writer: LogWriter, now_ms: int) -> list[int]:
    """Append every alert due now (see ``due``); return their seqs. Called by the evaluator after a pass."""
    from appliance.capture.punchlog import Entry

    bodies = due(now_ms)
    return writer.append([Entry(TYPE, body) for body in bodies]) if bodies else []


@dataclass(frozen=True)
class Shown:
    """An alert as the board shows it."""

    alert: Alert
    state: str  # "sent": head office holds it | "queued": the uplink is down | "sending"
    still: tuple[tuple[str, str, str], ...]  # (badge, name, board status now)
    answers: dict[str, list[ActionRequest]]  # badge -> the answers given on the board for that day


def shown(day: str, lines: Sequence[str] = ()) -> list[Shown]:
    """The alerts of ``day`` (of ``lines`` only, when given), newest first, with their state and answers."""
    sync = SyncState.get_by_id(1)
    since = int(datetime.combine(date.fromisoformat(day), time(), UTC).timestamp() * 1000) - KEEP_MS
    alerts = [a for a in raised(since) if a.work_date == day and (not lines or a.line in lines)]
    if not alerts:
        return []
    badges = sorted({b for a in alerts for b, _ in a.who})
    status = {
        (e, s): st
        for e, s, st in BoardRow.select(BoardRow.employee, BoardRow.shift, BoardRow.status)
        .where((BoardRow.work_date == day) & BoardRow.employee.in_(badges))
        .tuples()
    }
    answers: dict[str, list[ActionRequest]] = defaultdict(list)
    for req in (
        ActionRequest.select()
        .where((ActionRequest.work_date == day) & ActionRequest.employee.in_(badges) & ActionRequest.kind.in_(ANSWERS))
        .order_by(ActionRequest.id)
    ):
        answers[req.employee].append(req)
    out = []
    for alert in reversed(alerts):
        state = "sent" if sync.acked_seq >= alert.seq else ("sending" if sync.connected else "queued")
        still = tuple((b, n, status.get((b, alert.shift), "")) for b, n in alert.who)
        out.append(Shown(alert, state, still, {b: answers.get(b, []) for b, _ in alert.who}))
    return out
