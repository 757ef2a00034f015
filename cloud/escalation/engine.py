"""One tick of the escalation engine, and the runner that repeats it.

A tick: take the runner lock (PostgreSQL advisory lock; on SQLite a lease row), read the day facts
and punches stored since the last tick, count again the badges they touch (and employees whose
leave or 补卡 changed), advance every case whose timer is due, then dispatch the steps that are
due. Running a tick twice, or two runners at once, sends nothing twice: cases and steps have
unique keys, each case is changed under its own lock, and a step is claimed by a conditional
update before the sender sees it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import peewee as pw

from cloud.clock import Clock, to_ms
from cloud.escalation import cases, facts, timeline
from cloud.escalation.models import AbsenceCase, CaseDay, CaseStep, CaseTask, RunnerLease, Service
from cloud.escalation.sender import (
    PlannedStep,
    Sender,
    SenderUnavailable,
    SendFailed,
    SendRetry,
    SendUncertain,
)
from cloud.hr.models import HrChange, PlantBadge
from cloud.store import Plant, database

log = logging.getLogger(__name__)
ADVISORY_KEY = 0x70756E63  # "punc": the escalation runner's PostgreSQL advisory lock
DISPATCH_BATCH = 500
_TASKS = {
    "check_send": (
        "发送结果不明：向服务商核实后再决定是否重发",
        "may have gone out: check with the provider before resending",
    ),
    "send_failed": (
        "各渠道均发送失败：核对联系方式，改用其他方式送达",
        "failed on every channel: check the contacts, serve it otherwise",
    ),
}
GROUP = 250  # SQLite: badges recounted per write transaction (one fsync each, not one per case)


def _group():  # type: ignore[no-untyped-def]
    """On SQLite, one write transaction around a group of cases (each case's own lock nests in it as a
    savepoint); on PostgreSQL each case keeps its own short transaction and row lock."""
    db = database.obj
    return db.atomic("IMMEDIATE") if isinstance(db, pw.SqliteDatabase) else contextlib.nullcontext()


@dataclass
class TickReport:
    ran: bool = True
    facts: int = 0
    recounted: int = 0
    advanced: int = 0
    sent: int = 0
    failed: int = 0
    held: int = 0  # due but waiting (quiet hours, acknowledged, sender unavailable)
    notes: list[str] = field(default_factory=list)


class Engine:
    def __init__(self, clock: Clock, sender: Sender, *, runner_id: str = "escalate-1", lease_s: int = 300) -> None:
        self._clock = clock
        self._sender = sender
        self.runner_id = runner_id
        self._lease_ms = lease_s * 1000

    def now_ms(self) -> int:
        return to_ms(self._clock.now())

    # -- the runner lock ----------------------------------------------------------------------

    def _acquire(self) -> bool:
        db = database.obj
        if isinstance(db, pw.PostgresqlDatabase):
            return bool(db.execute_sql("SELECT pg_try_advisory_lock(%s)", (ADVISORY_KEY,)).fetchone()[0])
        now = self.now_ms()
        RunnerLease.insert(id=1, holder="", until_ms=0).on_conflict_ignore().execute()
        won = (
            RunnerLease.update(holder=self.runner_id, until_ms=now + self._lease_ms)
            .where((RunnerLease.id == 1) & ((RunnerLease.until_ms < now) | (RunnerLease.holder == self.runner_id)))
            .execute()
        )
        return won == 1

    def _release(self) -> None:
        db = database.obj
        if isinstance(db, pw.PostgresqlDatabase):
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (ADVISORY_KEY,))
        else:
            RunnerLease.update(until_ms=0).where(
                (RunnerLease.id == 1) & (RunnerLease.holder == self.runner_id)
            ).execute()

    # -- the tick -----------------------------------------------------------------------------

    def tick(self, *, exclusive: bool = True) -> TickReport:
        """One pass. ``exclusive=False`` skips the runner lock (tests show the per-row guards alone hold)."""
        if exclusive and not self._acquire():
            return TickReport(ran=False, notes=["another runner holds the lock"])
        try:
            report = TickReport()
            now = self.now_ms()
            fresh = facts.read_new()
            report.facts = fresh.facts
            report.recounted = self._recount(fresh, now)
            report.advanced = self._due_cases(now)
            self._dispatch(now, report)
            return report
        finally:
            if exclusive:
                self._release()

    def _recount(self, fresh: facts.Fresh, now: int) -> int:
        todo: dict[tuple[str, str], int | None] = {badge: None for badge in fresh.touched}
        maybe = fresh.attended | set(fresh.punches)
        if maybe:
            open_badges = set(
                AbsenceCase.select(AbsenceCase.plant, AbsenceCase.user_id)
                .where(AbsenceCase.open_key.is_null(False))
                .tuples()
            )
            todo.update({badge: None for badge in maybe & open_badges})
        for badge, at in fresh.punches.items():
            if badge in todo:
                todo[badge] = at
        changed = list(HrChange.select(HrChange.employee, HrChange.changed_ms).tuples())
        if changed:
            for plant_id, user_id in (
                PlantBadge.select(PlantBadge.plant, PlantBadge.user_id)
                .where(PlantBadge.employee.in_([e for e, _ in changed]))
                .tuples()
            ):
                todo.setdefault((plant_id, user_id), None)
        plants = {p.id: p for p in Plant.select().where(Plant.id.in_({p for p, _ in todo}))} if todo else {}
        ordered = sorted(todo.items())
        for start in range(0, len(ordered), GROUP):
            with _group():
                for (plant_id, user_id), punch_ms in ordered[start : start + GROUP]:
                    cases.recount(plants[plant_id], user_id, now_ms=now, punch_ms=punch_ms)
        for employee_id, changed_ms in changed:  # only what was seen: a change made meanwhile stays marked
            HrChange.delete().where((HrChange.employee == employee_id) & (HrChange.changed_ms == changed_ms)).execute()
        return len(todo)

    def _due_cases(self, now: int) -> int:
        due = [
            cid
            for (cid,) in AbsenceCase.select(AbsenceCase.id)
            .where(AbsenceCase.open_key.is_null(False) & (AbsenceCase.wake_ms <= now))
            .tuples()
        ]
        for start in range(0, len(due), GROUP):
            with _group():
                for case_id in due[start : start + GROUP]:
                    with cases.locked_case(case_id) as case:
                        if case.open_key is not None and case.wake_ms is not None and case.wake_ms <= now:
                            cases.advance(case, now)
        return len(due)

    # -- sending ------------------------------------------------------------------------------

    def _dispatch(self, now: int, report: TickReport) -> None:
        """Send what is due, batch after batch: a held step's due time moves on, so it leaves the query."""
        while self._dispatch_batch(now, report):
            pass

    def _dispatch_batch(self, now: int, report: TickReport) -> bool:
        rows = list(
            CaseStep.select(CaseStep, AbsenceCase, Plant)
            .join(AbsenceCase)
            .join(Plant)
            .where((CaseStep.status == "due") & (CaseStep.due_ms <= now))
            .order_by(CaseStep.due_ms, CaseStep.id)
            .limit(DISPATCH_BATCH)
        )
        for step in rows:
            case = step.case
            later = self._hold_until(step, case, now)
            if later is not None:
                CaseStep.update(due_ms=later).where((CaseStep.id == step.id) & (CaseStep.status == "due")).execute()
                report.held += 1
                continue
            claimed = (
                CaseStep.update(status="sending", claimed_by=self.runner_id, claimed_ms=now)
                .where((CaseStep.id == step.id) & (CaseStep.status == "due"))
                .execute()
            )
            if claimed != 1:
                continue  # another runner has it
            try:
                self._sender.send(self._planned(step, case))
            except SenderUnavailable as err:
                CaseStep.update(status="due").where(
                    (CaseStep.id == step.id) & (CaseStep.claimed_by == self.runner_id)
                ).execute()
                report.held += 1
                report.notes.append(str(err))
                log.warning("steps wait: %s", err)
                return False
            except SendRetry as err:
                CaseStep.update(status="due", due_ms=err.after_ms).where(
                    (CaseStep.id == step.id) & (CaseStep.claimed_by == self.runner_id)
                ).execute()
                report.held += 1
                report.notes.append(str(err))
                continue
            except SendUncertain as err:
                self._finish(step.id, case.id, "uncertain", now, str(err))
                report.failed += 1
                continue
            except SendFailed as err:
                self._finish(step.id, case.id, "failed", now, str(err))
                report.failed += 1
                continue
            self._finish(step.id, case.id, "sent", now, "")
            report.sent += 1
        return len(rows) == DISPATCH_BATCH

    def _hold_until(self, step: CaseStep, case: AbsenceCase, now: int) -> int | None:
        """When a due step must wait: an acknowledgement (automatic steps), or quiet hours (people)."""
        if step.automatic and case.acked_until_ms is not None and case.acked_until_ms > now:
            return case.acked_until_ms
        if step.to_people:
            policy = cases.policy_of(case)
            return next_window(now, case.plant.timezone, policy.quiet_start, policy.quiet_end)
        return None

    @staticmethod
    def _planned(step: CaseStep, case: AbsenceCase) -> PlannedStep:
        days = tuple(
            d
            for (d,) in CaseDay.select(CaseDay.work_date)
            .where((CaseDay.case == case) & (CaseDay.status == "counted"))
            .order_by(CaseDay.work_date)
            .tuples()
        )
        return PlannedStep(
            step_id=step.id,
            case_id=case.id,
            key=step.key,
            level=step.level,
            notice=step.notice,
            recipients=tuple(step.recipients.split(",")),
            channels=tuple(step.channels.split(",")),
            employee_id=case.employee_id,
            employee_no=case.employee.employee_no,
            plant_id=case.plant_id,
            user_id=case.user_id,
            policy=case.policy.label,
            absent_days=days,
            deadline_ms=case.deadline_ms,
            planned_ms=step.planned_ms,
        )

    @staticmethod
    def _finish(step_id: int, case_id: int, status: str, now: int, error: str) -> None:
        with cases.locked_case(case_id) as case:
            step = CaseStep.get_by_id(step_id)
            CaseStep.update(status=status, sent_ms=now if status == "sent" else None, error=error).where(
                CaseStep.id == step_id
            ).execute()
            if status == "sent":
                timeline.append(
                    case,
                    "sent",
                    f"已发出 {step.key}（{step.notice}）：{step.channels} → {step.recipients}",
                    f"sent {step.key} ({step.notice}) by {step.channels} to {step.recipients}",
                    at_ms=now,
                    step=step.key,
                    notice=step.notice,
                )
                if step.notice in ("cuigao", "termination"):
                    Service.insert(
                        case=case, document=step.notice, status="sent", sent_ms=now
                    ).on_conflict_ignore().execute()
            else:
                uncertain = status == "uncertain"
                timeline.append(
                    case,
                    "send_uncertain" if uncertain else "send_failed",
                    f"{step.key} {'发送结果不明' if uncertain else '发送失败'}：{error}",
                    f"{step.key} {'may or may not have gone out' if uncertain else 'could not be sent'}: {error}",
                    at_ms=now,
                    step=step.key,
                )
                zh, en = _TASKS["check_send" if uncertain else "send_failed"]
                CaseTask.insert(  # a person looks: asks the provider, or serves the document another way
                    case=case,
                    kind=f"{'check_send' if uncertain else 'send_failed'}:{step.key}",
                    title_zh=f"{step.key}（{step.notice}）{zh}",
                    title_en=f"{step.key} ({step.notice}) {en}",
                    created_ms=now,
                ).on_conflict_ignore().execute()
            if case.open_key is not None:
                cases.advance(case, now)


def next_window(now_ms: int, tz: str, start, end) -> int | None:  # type: ignore[no-untyped-def]
    """None when ``now`` is inside the window [start, end) local time, else the window's next start."""
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(zone)
    if start <= local.time() < end:
        return None
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    return int(datetime.combine(day, start, tzinfo=zone).timestamp() * 1000)


class Runner:
    """Ticks every ``interval_s`` until stopped (``punchproof cloud escalate --interval``)."""

    def __init__(self, engine: Engine, interval_s: float) -> None:
        self._engine = engine
        self._interval = interval_s
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                report = self._engine.tick()
                if report.ran and (report.sent or report.failed or report.recounted):
                    log.info("tick: %s", report)
            except pw.DatabaseError as err:  # the database went away: log, keep going
                log.error("tick failed: %s", err)
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
