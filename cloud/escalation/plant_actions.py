"""What the plant says about a day, filed on the head-office case: the appliance's signed ``action`` records.

On the plant's pages a manager or line leader records "已在产线看到" (seen on the line), "考勤机故障" (terminal
fault) or "已让其回家" (sent home) for an employee's work date, with a reason; the appliance signs it into its log
as an ``action`` record, which syncs to the cloud like every record (``LogRecord``). The escalation runner reads
them here at each tick, per appliance from a cursor (``ActionCursor``, as day facts are read), into
``PlantAction``, and files each on the open case that counts that employee's day as absent, with the plant's
user as the actor. An action that came before its case (the manager saw the worker on the line in the morning,
the day was confirmed missing at night) is filed when the case opens, if it is within ``MATCH_DAYS``.

Filed once: the filing claims the row (``filed_ms`` set under the case's lock, only where it is still empty), so
a record read twice, or two runners at once, file it one time. What it does, as docs/escalation.md says for HR:

- ``seen_on_line``: the plant says the employee was at work that day, which is no punch. The automatic steps
  pause as HR's acknowledgement pauses them (reason: contacted, until the policy's ack timeout; statutory
  clocks run on) and a task asks HR to check and, if it holds, excuse the day (补卡 or an accepted reason) —
  the case then leaves 旷工 for that day, or closes if it was the only one. Excusing stays HR's decision: a
  line leader's note alone never clears an absence.
- ``terminal_fault``: the terminal may have missed the punch. Paused the same way (reason: terminal fault) and
  a task asks HR to check the terminal's records with the plant.
- ``sent_home``: shown on the case, nothing paused: the day's absence was the plant's call, which HR weighs.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cloud.clock import Clock, to_ms
from cloud.escalation import actions, timeline
from cloud.escalation.cases import locked_case
from cloud.escalation.models import AbsenceCase, ActionCursor, CaseDay, CaseTask, PlantAction
from cloud.ingest.record_cursor import copy_new
from cloud.store import Appliance, Plant

log = logging.getLogger(__name__)
ACTS = {  # what the plant recorded: its words, and the pause it puts on the case (None: shown only)
    "seen_on_line": ("已在产线看到", "seen on the line", "contacted"),
    "terminal_fault": ("考勤机故障", "terminal fault", "device_fault"),
    "sent_home": ("已让其回家", "sent home", None),
    # answers to a missed check-in alert on the plant's board (cloud.alerts): the plant reached the worker
    "contacted": ("已联系", "contacted", "contacted"),
    "on_leave": ("请假", "on leave", "contacted"),
}
ROLES = {
    "admin": ("管理员", "admin"),
    "plant_manager": ("工厂主管", "plant manager"),
    "line_leader": ("线长", "line leader"),
}
TASKS = {
    "seen_on_line": (
        "review_plant_seen",
        "核实工厂“已在产线看到”的记录：属实的，为该日补卡或确认理由（该日不再计旷工）；否则继续处理",
        "check the plant's 'seen on the line': if it holds, excuse the day (补卡 or accepted reason); else go on",
    ),
    "terminal_fault": (
        "review_terminal_fault",
        "核实工厂报告的考勤机故障：与工厂核对该日考勤机记录，属实的补卡；否则继续处理",
        "check the terminal fault the plant reported with its records of that day; 补卡 if it holds, else go on",
    ),
    "on_leave": (
        "review_plant_leave",
        "工厂报告员工请假：核实后在员工页录入请假（该日不再计旷工）；否则继续处理",
        "the plant says the worker is on leave: if it holds, enter the leave on the employee's page; else go on",
    ),
}
MATCH_DAYS = 45  # an action waits this long for a case that counts its day (the plant records up to 31 days back)
READ_LIMIT = 5_000  # records read per appliance and tick


def file_new(clock: Clock) -> list[str]:
    """Read the plants' new action records and file every unfiled one an open case counts; notes for the tick."""
    now = to_ms(clock.now())
    read = read_new()
    filed = [plant_action for plant_action, case_id in matches(now) if file(plant_action, case_id, now_ms=now)]
    notes = [f"{read} plant actions read"] if read else []
    if filed:
        notes.append(f"{len(filed)} plant actions filed on cases")
    return notes


def read_new(limit: int = READ_LIMIT) -> int:
    """Copy the action records stored since each appliance's cursor into ``PlantAction``; how many."""
    return copy_new(ActionCursor, "action", PlantAction, _action, limit)


def _action(appliance_id: int, plant_id: str, seq: int, data: bytes, _t_wall_ms: int = 0) -> dict[str, object] | None:
    try:
        body = json.loads(data)
        act, emp, day = str(body["act"]), str(body["emp"]), str(body["date"])
    except (ValueError, KeyError, TypeError) as err:  # signed and verified, but not of a shape this code knows
        log.error("action record %d of appliance %d not read: %s", seq, appliance_id, err)
        return None
    if act not in ACTS:
        log.warning("action record %d of appliance %d: unknown action %r, not filed", seq, appliance_id, act[:40])
        return None
    return {
        "appliance": appliance_id,
        "seq": seq,
        "plant": plant_id,
        "user_id": emp[:64],
        "work_date": day[:10],
        "shift": str(body.get("shift", ""))[:64],
        "act": act,
        "user": str(body.get("user", ""))[:64],
        "role": str(body.get("role", ""))[:32],
        "reason": str(body.get("reason", ""))[:500],
        "at_ms": int(body.get("req_ms") or body.get("t_wall_ms") or 0),
    }


def matches(now_ms: int) -> list[tuple[PlantAction, int]]:
    """Unfiled actions of the last ``MATCH_DAYS`` whose employee's open case counts their day as absent."""
    since = datetime.fromtimestamp((now_ms - MATCH_DAYS * 86_400_000) / 1000, UTC).date().isoformat()
    query = (
        PlantAction.select(PlantAction, AbsenceCase.id.alias("case_id"))
        .join(
            AbsenceCase,
            on=(
                (AbsenceCase.plant == PlantAction.plant)
                & (AbsenceCase.user_id == PlantAction.user_id)
                & AbsenceCase.open_key.is_null(False)
            ),
        )
        .join(CaseDay, on=(CaseDay.case == AbsenceCase.id))
        .where(
            PlantAction.filed_ms.is_null()
            & (PlantAction.work_date >= since)
            & (CaseDay.work_date == PlantAction.work_date)
            & (CaseDay.status == "counted")
        )
        .order_by(PlantAction.id)
    )
    seen: set[int] = set()
    out = []
    for row in query.objects():
        if row.id not in seen:  # a day of two shifts: filed once
            seen.add(row.id)
            out.append((row, row.case_id))
    return out


def file(action: PlantAction, case_id: int, *, now_ms: int) -> bool:
    """File one action on the case (under its lock) and do what the policy says; False when it was filed before
    (another runner, or this one a moment ago) or the case no longer counts its day."""
    zh, en, pause = ACTS[action.act]
    with locked_case(case_id) as case:
        counted = (
            CaseDay.select()
            .where((CaseDay.case == case) & (CaseDay.work_date == action.work_date) & (CaseDay.status == "counted"))
            .exists()
        )
        if case.open_key is None or not counted:
            return False
        claimed = (
            PlantAction.update(case=case, filed_ms=now_ms)
            .where((PlantAction.id == action.id) & PlantAction.filed_ms.is_null())
            .execute()
        )
        if not claimed:
            return False
        plant = Plant.get_by_id(action.plant_id)
        appliance = Appliance.get_by_id(action.appliance_id)
        role_zh, role_en = ROLES.get(action.role, (action.role, action.role))
        actor = f"{action.user}（{role_zh}，{plant.name or plant.id}现场记录）"
        at = datetime.fromtimestamp(action.at_ms / 1000, UTC).astimezone(ZoneInfo(plant.timezone))
        said_zh = f"工厂现场记录：{action.user}（{role_zh}）于 {at:%Y-%m-%d %H:%M} 记录员工 {action.work_date} “{zh}”"
        said_en = f"the plant recorded: {action.user} ({role_en}) at {at:%Y-%m-%d %H:%M}: {en} on {action.work_date}"
        if action.reason:
            said_zh += f"，说明：{action.reason}"
            said_en += f"; reason: {action.reason}"
        then_zh, then_en = (
            ("。自动外发暂停，请人事核实", "; automatic sending paused for HR to check")
            if pause
            else ("。仅供人事参考，不影响自动处理", "; shown for HR, nothing paused")
        )
        timeline.append(
            case,
            "plant_action",
            said_zh + then_zh,
            said_en + then_en,
            at_ms=now_ms,
            actor=actor,
            act=action.act,
            user=action.user,
            role=action.role,
            reason=action.reason,
            work_date=action.work_date,
            shift=action.shift,
            requested_ms=action.at_ms,
            appliance=appliance.name,
            log=appliance.log_origin,
            seq=action.seq,
        )
        if action.act in TASKS:
            kind, title_zh, title_en = TASKS[action.act]
            task = CaseTask.get_or_none((CaseTask.case == case) & (CaseTask.kind == kind))
            title_zh, title_en = f"{title_zh}（{action.work_date}）", f"{title_en} ({action.work_date})"
            if task is None:
                CaseTask.create(case=case, kind=kind, title_zh=title_zh, title_en=title_en, created_ms=now_ms)
            else:  # another day, or the same day again: the review is due again
                CaseTask.update(
                    title_zh=title_zh, title_en=title_en, status="open", done_ms=None, done_by="", proof=""
                ).where(CaseTask.id == task.id).execute()
        if pause is not None:
            actions.acknowledge(case.id, pause, by=actor, now_ms=now_ms, note=said_zh)
    return True
