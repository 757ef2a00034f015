"""One case at a time, under its lock: count its days again, open it, advance it, resolve it.

``locked_case`` is the only way in: PostgreSQL locks the case row (``FOR UPDATE``), SQLite takes
its write lock up front (``BEGIN IMMEDIATE``), so two runners, or a runner and a person clicking
"approve", never interleave on one case. ``advance`` applies ``ladder.decide`` until nothing more
is due and sets ``wake_ms``, the next moment a timer of the case needs looking at.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import peewee as pw

from cloud.escalation import ladder, timeline
from cloud.escalation.facts import ATTENDED, EXCUSED
from cloud.escalation.models import AbsenceCase, AttendanceDay, CaseDay, CaseStep, CaseTask, Gate, Service
from cloud.escalation.policy import Policy, PolicyVersion, current
from cloud.escalation.workdays import add_working_days
from cloud.hr.models import Correction, Employee, Leave, PlantBadge, Trip
from cloud.store import Plant, database

log = logging.getLogger(__name__)
WINDOW_DAYS = 62  # how far back a spell is looked for when no case is open
CORRECTION_BEFORE_MS, CORRECTION_AFTER_MS = 2 * 3_600_000, 4 * 3_600_000
ACK_REASONS = {
    "contacted": ("已联系上员工", "employee reached"),
    "sick": ("员工生病", "employee is ill"),
    "family": ("家庭原因", "family matter"),
    "police": ("被公安机关限制人身自由", "held by the police"),
    "leave_pending": ("请假手续办理中", "leave request pending"),
    "device_fault": ("考勤设备故障，待核实", "terminal fault, being checked"),
    "other": ("其他", "other"),
}
CONTACT_REASONS = frozenset({"contacted", "sick", "family", "police", "leave_pending"})
_policies: dict[int, Policy] = {}


class CaseError(ValueError):
    """An action the case's state does not allow; zh-CN first."""


def policy_of(case: AbsenceCase) -> Policy:
    parsed = _policies.get(case.policy_id)
    if parsed is None:
        parsed = _policies[case.policy_id] = PolicyVersion.get_by_id(case.policy_id).parsed()
    return parsed


@contextmanager
def locked_case(case_id: int) -> Iterator[AbsenceCase]:
    db = database.obj
    sqlite = isinstance(db, pw.SqliteDatabase)
    with db.atomic("IMMEDIATE") if sqlite else db.atomic():
        query = AbsenceCase.select().where(AbsenceCase.id == case_id)
        yield (query if sqlite else query.for_update()).get()


# -- counting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Day:
    row: AttendanceDay
    kind: str  # absent | attended | excused
    why: str = ""  # what excuses it


def classify(rows: list[AttendanceDay], employee: Employee) -> list[Day]:
    """Working days in order; an absence HR excused in the cloud (leave, trip, 补卡) counts as excused
    here at once, before the plant's superseding fact arrives."""
    working = [r for r in rows if r.status in ATTENDED | EXCUSED or r.status == "missing"]
    if not working:
        return []
    lo = min(r.start_ms or 0 for r in working) - CORRECTION_AFTER_MS
    approved = [
        (x.ref, x.start_ms, x.end_ms)
        for model in (Leave, Trip)
        for x in model.select(model.ref, model.start_ms, model.end_ms).where(
            (model.employee == employee) & (model.status == "approved") & (model.end_ms > lo)
        )
    ]
    fixes = [
        (c.ref, c.at_ms)
        for c in Correction.select(Correction.ref, Correction.at_ms).where(
            (Correction.employee == employee) & (Correction.status == "approved") & (Correction.at_ms > lo)
        )
    ]
    out = []
    for r in sorted(working, key=lambda r: (r.start_ms or 0, r.fact_key)):
        if r.status in ATTENDED:
            out.append(Day(r, "attended"))
        elif r.status in EXCUSED:
            out.append(Day(r, "excused", r.excusal))
        else:
            start, end = r.start_ms or 0, r.end_ms or 0
            why = next((ref for ref, a, b in approved if a <= start and b >= end), "")
            why = why or next(
                (ref for ref, at in fixes if start - CORRECTION_BEFORE_MS <= at <= end + CORRECTION_AFTER_MS), ""
            )
            out.append(Day(r, "excused" if why else "absent", why))
    return out


def recount(plant: Plant, user_id: str, *, now_ms: int, punch_ms: int | None = None) -> AbsenceCase | None:
    """Look at a badge's confirmed days again: open a case for a new spell, or update the open one."""
    badge = PlantBadge.get_or_none((PlantBadge.plant == plant) & (PlantBadge.user_id == user_id))
    if badge is None:
        log.warning("day facts for badge %s at %s, which no employee has: map it in HR", user_id, plant.id)
        return None
    employee = badge.employee
    case = AbsenceCase.get_or_none(AbsenceCase.open_key == employee.id)
    if case is None:
        case = _open(plant, badge, employee, now_ms)
        if case is None:
            return None
    with locked_case(case.id) as case:
        if case.open_key is not None:
            _sync_days(case, employee, now_ms, punch_ms)
            advance(case, now_ms)
        return case


def _rows(plant: Plant, user_id: str, since: date) -> list[AttendanceDay]:
    return list(
        AttendanceDay.select().where(
            (AttendanceDay.plant == plant)
            & (AttendanceDay.user_id == user_id)
            & (AttendanceDay.work_date >= since.isoformat())
        )
    )


def _today(plant: Plant, now_ms: int) -> date:
    return datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(ZoneInfo(plant.timezone)).date()


def _open(plant: Plant, badge: PlantBadge, employee: Employee, now_ms: int) -> AbsenceCase | None:
    days = classify(_rows(plant, badge.user_id, _today(plant, now_ms) - timedelta(days=WINDOW_DAYS)), employee)
    covered = (
        CaseDay.select(pw.fn.MAX(CaseDay.start_ms)).join(AbsenceCase).where(AbsenceCase.employee == employee).scalar()
        or 0
    )
    spell: list[Day] = []
    for day in reversed(days):
        if day.kind != "absent" or (day.row.start_ms or 0) <= covered:
            break
        spell.insert(0, day)
    if not spell:
        return None
    version = current(plant.id)
    if version is None:
        log.error(
            "no escalation policy for plant %s: publish one; absence of %s not escalated", plant.id, badge.user_id
        )
        return None
    first = spell[0].row
    before = days[len(days) - len(spell) - 1] if len(days) > len(spell) else None
    trigger, ref = "missed_shift", ""
    if first.watch:
        trigger, ref = "leave_end", first.watch
    elif before is not None and before.kind == "excused" and before.why:
        trigger, ref = "leave_end", before.why
    try:
        with database.atomic():
            case = AbsenceCase.create(
                employee=employee,
                plant=plant,
                user_id=badge.user_id,
                policy=version,
                trigger=trigger,
                trigger_ref=ref,
                state=ladder.STATES[0],
                opened_ms=now_ms,
                first_day=first.work_date,
                first_start_ms=first.start_ms or 0,
                open_key=employee.id,
                updated_ms=now_ms,
            )
            zh = f"假期 {ref} 结束后未返岗" if trigger == "leave_end" else "确认缺勤（未打卡）"
            en = f"not back after leave {ref} ended" if trigger == "leave_end" else "confirmed missed shift"
            timeline.append(
                case,
                "opened",
                f"立案：{zh}，首日 {first.work_date}（政策 {version.label}）",
                f"case opened: {en}, first day {first.work_date} (policy {version.label})",
                at_ms=now_ms,
                trigger=trigger,
                trigger_ref=ref,
                policy=version.label,
                fact=first.fact_id,
            )
            return case
    except pw.IntegrityError:  # another runner opened it a moment ago
        return AbsenceCase.get_or_none(AbsenceCase.open_key == employee.id)


def _sync_days(case: AbsenceCase, employee: Employee, now_ms: int, punch_ms: int | None) -> None:
    plant = case.plant
    first = date.fromisoformat(case.first_day)
    since = min(first, date(first.year, 1, 1))
    days = [d for d in classify(_rows(plant, case.user_id, since), employee)]
    spell = [d for d in days if (d.row.start_ms or 0) >= case.first_start_ms]
    counted = {d.row.fact_key: d for d in spell if d.kind == "absent"}
    existing = {r.fact_key: r for r in CaseDay.select().where(CaseDay.case == case)}
    retriggered = False
    for key, day in counted.items():
        row = existing.get(key)
        if row is None:
            CaseDay.create(
                case=case,
                fact_key=key,
                work_date=day.row.work_date,
                shift=day.row.shift,
                start_ms=day.row.start_ms or 0,
                fact_id=day.row.fact_id,
            )
            timeline.append(
                case,
                "day",
                f"确认缺勤：{day.row.work_date} {day.row.shift}",
                f"confirmed absent: {day.row.work_date} {day.row.shift}",
                at_ms=now_ms,
                fact=day.row.fact_id,
                appliance=day.row.appliance_id,
                seq=day.row.seq,
            )
            retriggered = retriggered or (case.acked_until_ms is not None and case.acked_until_ms > now_ms)
        elif row.status == "superseded":
            CaseDay.update(status="counted", superseded_by="", fact_id=day.row.fact_id).where(
                CaseDay.id == row.id
            ).execute()
    by_key = {d.row.fact_key: d for d in days}
    for key, row in existing.items():
        if row.status == "counted" and key not in counted:
            day = by_key.get(key)
            why = (day.why or day.row.status) if day is not None else "fact withdrawn"
            CaseDay.update(status="superseded", superseded_by=why).where(CaseDay.id == row.id).execute()
            timeline.append(
                case,
                "superseded",
                f"{row.work_date} 不再计为缺勤：{why}",
                f"{row.work_date} no longer counted as absent: {why}",
                at_ms=now_ms,
                day=key,
                by=why,
            )
    if retriggered:
        case.acked_until_ms = None
        CaseStep.update(due_ms=now_ms).where((CaseStep.case == case) & (CaseStep.status == "due")).execute()
        timeline.append(
            case,
            "retrigger",
            "又一个班次确认缺勤：确认失效，升级继续",
            "another missed shift: acknowledgement cleared, escalation resumes",
            at_ms=now_ms,
        )
    run = 0
    for d in spell:
        run = run + 1 if d.kind == "absent" else 0
    latest = max(counted.values(), key=lambda d: d.row.work_date, default=None)
    month = year = 0
    if latest is not None:
        absent = [d for d in days if d.kind == "absent"]
        month = sum(1 for d in absent if d.row.work_date[:7] == latest.row.work_date[:7])
        year = sum(1 for d in absent if d.row.work_date[:4] == latest.row.work_date[:4])
    case.days, case.consecutive, case.cumulative_month, case.cumulative_year = len(counted), run, month, year
    back = next((d for d in spell if d.kind == "attended"), None)
    last_end = max(((d.row.end_ms or 0) for d in counted.values()), default=0)
    confirmed = Gate.get_or_none(
        (Gate.case == case) & (Gate.kind == "confirm_termination") & (Gate.status == "approved")
    )
    if back is not None or (punch_ms is not None and counted and punch_ms > last_end):
        how = f"{back.row.work_date} 出勤" if back else f"打卡 {_local(punch_ms or 0, plant)}"
        how_en = f"attended {back.row.work_date}" if back else f"punched at {_local(punch_ms or 0, plant)}"
        if confirmed is None and case.state != ladder.MEDICAL:
            resolve(case, "returned", f"员工返岗：{how}", f"employee back: {how_en}", actor="engine", now_ms=now_ms)
        elif not CaseTask.select().where((CaseTask.case == case) & (CaseTask.kind == "review_return")).exists():
            CaseTask.create(
                case=case,
                kind="review_return",
                title_zh=f"解除已确认后员工出现（{how}），请人事复核",
                title_en=f"employee appeared after the termination was confirmed ({how_en}): HR to review",
                created_ms=now_ms,
            )
            timeline.append(
                case,
                "appeared",
                f"解除确认后员工出现：{how}",
                f"employee appeared after confirmation: {how_en}",
                at_ms=now_ms,
            )
    elif not counted and existing:
        resolve(
            case,
            "excused",
            "全部缺勤日已被假期/补卡/更正覆盖",
            "every absent day is now excused (leave, 补卡 or a correction)",
            actor="engine",
            now_ms=now_ms,
        )
    case.updated_ms = now_ms
    case.save()


def _local(ms: int, plant: Plant) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(ZoneInfo(plant.timezone)).strftime("%Y-%m-%d %H:%M")


# -- advancing ---------------------------------------------------------------------------------


def _base(key: str) -> str:
    return key.split("#", 1)[0]


def snapshot(case: AbsenceCase) -> ladder.Snapshot:
    steps: dict[str, str] = {}
    for key, status in (
        CaseStep.select(CaseStep.key, CaseStep.status).where(CaseStep.case == case).order_by(CaseStep.id).tuples()
    ):
        steps[_base(key)] = status
    gates = dict(Gate.select(Gate.kind, Gate.status).where(Gate.case == case).tuples())
    tasks = dict(CaseTask.select(CaseTask.kind, CaseTask.status).where(CaseTask.case == case).tuples())
    services = {
        s.document: {"status": s.status, "sent_ms": s.sent_ms, "served_ms": s.served_ms, "deemed_ms": s.deemed_ms}
        for s in Service.select().where(Service.case == case)
    }
    return ladder.Snapshot(
        state=case.state,
        level=case.level,
        days=case.days,
        consecutive=case.consecutive,
        cumulative_month=case.cumulative_month,
        cumulative_year=case.cumulative_year,
        acked_until_ms=case.acked_until_ms,
        ack_expired=case.ack_expired,
        contacted=case.contacted,
        welfare=case.welfare,
        deadline_ms=case.deadline_ms,
        union_wait_until_ms=case.union_wait_until_ms,
        effective_ms=case.effective_ms,
        blocked=case.blocked,
        steps=steps,
        gates=gates,
        tasks=tasks,
        services=services,
    )


def advance(case: AbsenceCase, now_ms: int) -> int:
    """Apply the due transitions (inside ``locked_case``); returns how many actions were applied."""
    policy = policy_of(case)
    tz = case.plant.timezone

    def union_deadline(at: int) -> int:
        return add_working_days(at, policy.union_wait_working_days, tz)

    applied = 0
    for _round in range(20):
        actions = ladder.decide(snapshot(case), policy, now_ms, union_deadline)
        if not actions:
            break
        for action in actions:
            _apply(case, action, now_ms)
        applied += len(actions)
    case.wake_ms = _wake(case, now_ms)
    case.updated_ms = now_ms
    case.save()
    return applied


def _wake(case: AbsenceCase, now_ms: int) -> int | None:
    if case.open_key is None or case.state == ladder.MEDICAL:
        return None
    times = [case.acked_until_ms]
    if case.level == 4:
        times.append(case.deadline_ms)
    if case.level == 6:
        times.append(case.union_wait_until_ms)
    times += [
        s.deemed_ms
        for s in Service.select(Service.deemed_ms).where((Service.case == case) & (Service.status == "published"))
    ]
    future = [t for t in times if t is not None]
    return min(future) if future else None


def _apply(case: AbsenceCase, action: ladder.Action, now_ms: int) -> None:
    if isinstance(action, ladder.Set):
        for name, value in action.fields.items():
            setattr(case, name, value)
        case.save()
    elif isinstance(action, ladder.Note):
        timeline.append(case, action.kind, action.zh, action.en, at_ms=now_ms, **dict(action.data))
    elif isinstance(action, ladder.Plan):
        rounds = CaseStep.select().where(
            (CaseStep.case == case) & ((CaseStep.key == action.key) | CaseStep.key.startswith(action.key + "#"))
        )
        if any(r.status != "superseded" for r in rounds):
            return
        n = rounds.count()
        CaseStep.create(
            case=case,
            key=action.key if n == 0 else f"{action.key}#{n + 1}",
            level=action.level,
            notice=action.notice,
            recipients=",".join(action.recipients),
            channels=",".join(action.channels),
            to_people=action.to_people,
            automatic=action.automatic,
            status="awaiting_approval" if action.needs_approval else "due",
            planned_ms=now_ms,
            due_ms=now_ms,
        )
    elif isinstance(action, ladder.OpenGate):
        gate = Gate.get_or_none((Gate.case == case) & (Gate.kind == action.kind))
        if gate is None:
            Gate.create(
                case=case,
                kind=action.kind,
                required=action.required,
                opened_ms=now_ms,
                checklist=json.dumps(dict(action.checklist), ensure_ascii=False),
            )
        elif gate.status == "superseded":
            Gate.update(status="open", opened_ms=now_ms, closed_ms=None).where(Gate.id == gate.id).execute()
    elif isinstance(action, ladder.Task):
        if not CaseTask.select().where((CaseTask.case == case) & (CaseTask.kind == action.kind)).exists():
            CaseTask.create(
                case=case,
                kind=action.kind,
                title_zh=action.zh,
                title_en=action.en,
                due_ms=action.due_ms,
                statutory=action.statutory,
                created_ms=now_ms,
            )
    elif isinstance(action, ladder.Supersede):
        _supersede_step(case, action.key, action.zh, action.en, now_ms)
    elif isinstance(action, ladder.Deemed):
        Service.update(status="deemed").where((Service.case == case) & (Service.document == action.document)).execute()
        timeline.append(
            case,
            "deemed_served",
            f"公告期满，视为送达（{action.document}）",
            f"public notice period over: deemed served ({action.document})",
            at_ms=now_ms,
            document=action.document,
        )


def _supersede_step(case: AbsenceCase, key: str, zh: str, en: str, now_ms: int) -> None:
    for step in CaseStep.select().where(
        (CaseStep.case == case)
        & ((CaseStep.key == key) | CaseStep.key.startswith(key + "#"))
        & CaseStep.status.in_(ladder.PENDING)
    ):
        CaseStep.update(status="superseded").where(
            (CaseStep.id == step.id) & CaseStep.status.in_(ladder.PENDING)
        ).execute()
        timeline.append(
            case,
            "superseded",
            f"未执行的步骤 {step.key} 作废：{zh}",
            f"pending step {step.key} superseded: {en}",
            at_ms=now_ms,
            step=step.key,
        )
        if step.notice == "cuigao":
            Gate.update(status="superseded", closed_ms=now_ms).where(
                (Gate.case == case) & (Gate.kind == "approve_cuigao") & (Gate.status == "open")
            ).execute()


def resolve(case: AbsenceCase, reason: str, zh: str, en: str, *, actor: str, now_ms: int) -> None:
    """Close the case (inside ``locked_case``); what is pending is superseded, what was done stays."""
    for step in CaseStep.select().where((CaseStep.case == case) & CaseStep.status.in_(ladder.PENDING)):
        _supersede_step(case, step.key, "案件已结案", "case resolved", now_ms)
    Gate.update(status="superseded", closed_ms=now_ms).where((Gate.case == case) & (Gate.status == "open")).execute()
    CaseTask.update(status="superseded").where(
        (CaseTask.case == case) & (CaseTask.status == "open") & ~CaseTask.statutory
    ).execute()
    case.state, case.resolved_ms, case.resolution = ladder.RESOLVED, now_ms, reason
    case.open_key, case.wake_ms, case.updated_ms = None, None, now_ms
    case.save()
    timeline.append(case, "resolved", f"结案：{zh}", f"resolved: {en}", at_ms=now_ms, actor=actor, reason=reason)
