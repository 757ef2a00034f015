"""One tick of the escalation engine, and the runner that repeats it.

A tick: take the runner lock (PostgreSQL advisory lock; on SQLite a lease row), read the day facts
and punches stored since the last tick, count again the badges they touch (and employees whose
leave or 补卡 changed), advance every case whose timer is due, then dispatch the steps that are
due. Running a tick twice, or two runners at once, sends nothing twice: cases and steps have
unique keys, each case is changed under its own lock, and a step is claimed by a conditional
update before the sender sees it.

Cases are worked on in groups (``GROUP``): one transaction holds the group's case locks, each
table is read once for the group and written back in a few multi-row statements (``batch``), so a
tick costs a few statements per group rather than some fifty per case. Holding a group's locks for
the group's few tens of milliseconds is what a person's click on one of its cases may wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import NamedTuple
from zoneinfo import ZoneInfo

import peewee as pw

from cloud.channels import names, reasons
from cloud.channels.dispatch import one_writer
from cloud.clock import Clock, to_ms
from cloud.escalation import bulk, cases, facts, intake, machine, served, workdays
from cloud.escalation.batch import CaseBatch, lock
from cloud.escalation.models import AbsenceCase, CaseTask, RunnerLease, Service
from cloud.escalation.policy import NOTICE_NAMES, ROLE_NAMES, PolicyVersion, step_label
from cloud.escalation.send_pool import SendPool
from cloud.escalation.sender import (
    NoticeUnrenderable,
    Outcome,
    PlannedStep,
    Sender,
    SenderUnavailable,
    SendFailed,
    SendRetry,
    SendUncertain,
    Sent,
    describe,
    outcome_data,
    unreached,
)
from cloud.store import database
from opskit.supervisor import ServiceManager, Unsupervised

log = logging.getLogger(__name__)
ADVISORY_KEY = 0x70756E63  # "punc": the escalation runner's PostgreSQL advisory lock
DISPATCH_BATCH = 500
_TASKS = {  # a person looks: asks the provider, or serves the document another way
    "uncertain": (
        "check_send",
        "发送结果不明：向服务商核实后再决定是否重发",
        "may have gone out: check with the provider before resending",
    ),
    "failed": (
        "send_failed",
        "各渠道均发送失败：核对联系方式，改用其他方式送达",
        "failed on every channel: check the contacts, serve it otherwise",
    ),
}


class Finished(NamedTuple):
    """A step's end for this tick: sent, failed or uncertain, what it could not do, each recipient×channel's
    outcome, and, when the notice could not be made at all, why."""

    row: Due
    status: str
    error: str
    outcomes: tuple[Outcome, ...] = ()
    unrenderable: NoticeUnrenderable | None = None


GROUP = 250  # cases per transaction: read in a few queries, written in a few statements, one commit
FINISH_EVERY = GROUP  # sent steps recorded (and their cases advanced) together
# Steps claimed by one statement (one commit: on SQLite an fsync each, which a claim per step paid
# 5,000 times a tick). A runner that dies mid-claim leaves at most these "sending", unsent.
CLAIM_EVERY = 50
FORMAL = frozenset({"cuigao", "kuanggong", "union_letter", "termination"})  # issued on working days only


@dataclass
class TickReport:
    ran: bool = True
    facts: int = 0
    recounted: int = 0
    advanced: int = 0
    sent: int = 0
    failed: int = 0
    held: int = 0  # due but waiting (quiet hours, acknowledged, sender unavailable)
    pdfs: int = 0  # notices' PDFs made after the sends
    notes: list[str] = field(default_factory=list)


class Engine:
    def __init__(
        self,
        clock: Clock,
        sender: Sender,
        *,
        runner_id: str = "escalate-1",
        lease_s: int = 300,
        senders: int | None = None,
    ) -> None:
        self._clock = clock
        self._sender = sender
        self.runner_id = runner_id
        self._lease_ms = lease_s * 1000
        # steps sent at once: as many as the sender takes (``parallel``; a test's recording sender, one)
        self.senders = senders or getattr(sender, "parallel", 1)

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

    def tick(self, *, exclusive: bool = True, pdfs: bool = True) -> TickReport:
        """One pass. ``exclusive=False`` skips the runner lock (tests show the per-row guards alone hold).
        ``pdfs=False`` leaves the PDFs of the notices sent by their words alone for ``make_pdfs`` (the bench
        times the sends and the PDFs apart); a tick makes them after its sends, those of earlier ticks too."""
        if exclusive and not self._acquire():
            return TickReport(ran=False, notes=["another runner holds the lock"])
        try:
            report = TickReport()
            now = self.now_ms()
            fresh = facts.read_new()
            report.facts = fresh.facts
            report.recounted = self._recount(fresh, now)
            report.advanced = served.from_receipts(now) + self._due_cases(now)
            self._stranded(now, report)
            self._dispatch(now, report)
            if pdfs:
                report.pdfs = self.make_pdfs()
            return report
        finally:
            if exclusive:
                self._release()

    def _recount(self, fresh: facts.Fresh, now: int) -> int:
        return intake.recount(fresh, now, group=GROUP)

    def _due_cases(self, now: int) -> int:
        due = [
            cid
            for (cid,) in AbsenceCase.select(AbsenceCase.id)
            .where(AbsenceCase.open_key.is_null(False) & (AbsenceCase.wake_ms <= now))
            .tuples()
        ]
        for part in bulk.chunks(due, GROUP):
            with cases.transaction():
                cases.advance_group(part, now)
        return len(due)

    def make_pdfs(self) -> int:
        """The PDF pass: the notices that went out by their words alone get their PDF (the sender's
        ``make_pdfs``; a sender that keeps no notices has none to make)."""
        make = getattr(self._sender, "make_pdfs", None)
        return make() if make is not None else 0

    # -- sending ------------------------------------------------------------------------------

    def _stranded(self, now: int, report: TickReport) -> None:
        """Steps a runner claimed and never recorded (it was killed mid-send): whether they went out is not
        known here, so none is sent again automatically; each becomes "uncertain" with a task for a person."""
        rows = _with_cases(bulk.execute(STRANDED_SQL, (now - STRANDED_MS,)).fetchall())
        if rows:
            log.error("%d step(s) were left half-sent by a stopped runner; a person must check them", len(rows))
            self._finish(
                [
                    Finished(row, "uncertain", "发送中断（发送程序停止）/ the runner stopped while sending")
                    for row in rows
                ],
                now,
            )
            report.failed += len(rows)

    def _dispatch(self, now: int, report: TickReport) -> None:
        """Send what is due, batch after batch: a held step's due time moves on, so it leaves the query."""
        labels: dict[int, str] = {}
        with SendPool(self.senders) as pool:
            while self._dispatch_batch(now, report, pool, labels):
                pass

    def _dispatch_batch(self, now: int, report: TickReport, pool: SendPool, labels: dict[int, str]) -> bool:
        rows = _with_cases(bulk.execute(DUE_SQL, (now, DISPATCH_BATCH)).fetchall())
        if not rows:
            return False
        _labels({r.policy_id for r in rows}, labels)
        days: dict[int, list[str]] = {}
        for case_id, work_date in bulk.select_in(
            "SELECT case_id, work_date FROM case_day WHERE status = 'counted' AND case_id IN ({}) "
            "ORDER BY case_id, work_date, id",
            sorted({r.case_id for r in rows}),
        ):
            days.setdefault(case_id, []).append(work_date)
        holds: dict[int, list[int]] = {}
        sendable = []
        for row in rows:
            later = self._hold_until(row, now)
            if later is None:
                sendable.append(row)
            else:
                holds.setdefault(later, []).append(row.id)
                report.held += 1
        for later, ids in holds.items():
            bulk.execute(
                f"UPDATE case_step SET due_ms = ? WHERE status = 'due' AND id IN ({bulk.marks(len(ids))})",
                [later, *ids],
            )

        def plan(row: Due) -> PlannedStep:
            return _planned(row, labels[row.policy_id], tuple(days.get(row.case_id, ())))

        return self._send(sendable, plan, now, report, pool) and len(rows) == DISPATCH_BATCH

    def _send(
        self, sendable: list[Due], plan: Callable[[Due], PlannedStep], now: int, report: TickReport, pool: SendPool
    ) -> bool:
        """Claim the steps a few at a time and hand them to the pool's senders, at most one step of a case at once:
        a case's later step goes out after its earlier one is recorded, so that its notice states that one (a 旷工通知书
        rendered beside its 催告函 found no 催告函 sent: "cannot be rendered without: earlier_notices"). Steps claimed
        and not yet sent are few (``_window``): a runner killed now leaves at most those, and those in flight,
        "sending" for a person. False when the sender said "not now" (what was claimed and not sent is due again)."""
        pending = deque(sendable)
        ready: deque[Due] = deque()  # claimed, not handed out yet
        running: dict[Future[Sent | str | None], tuple[int, Due]] = {}
        busy: set[int] = set()  # cases with a step at a sender
        done: list[Finished] = []
        recorded_later: set[int] = set()  # cases with a step in ``done``
        back: list[int] = []  # claimed, not sent: the sender is unavailable
        order = count()
        window = max(CLAIM_EVERY, 2 * pool.size)
        try:
            while True:
                while not back and pending and len(ready) + len(running) < window:
                    chunk = [pending.popleft() for _ in range(min(CLAIM_EVERY, len(pending)))]
                    mine = self._claim([row.id for row in chunk], now)  # the others: another runner has them
                    ready += [self._issued(row, mine[row.id], now) for row in chunk if row.id in mine]
                waiting: deque[Due] = deque()
                while not back and ready and len(running) < pool.size:
                    row = ready.popleft()
                    if row.case_id in busy:
                        waiting.append(row)
                        continue
                    if row.case_id in recorded_later:  # its earlier step went out just now: recorded first
                        self._finish(done, now)
                        done, recorded_later = [], set()
                    busy.add(row.case_id)
                    running[pool.submit(self._sender.send, plan(row))] = (next(order), row)
                ready = waiting + ready
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=lambda f: running[f][0]):
                    _, row = running.pop(future)
                    busy.discard(row.case_id)
                    ended = self._ended(row, future, report)
                    if ended is None:
                        continue
                    if isinstance(ended, SenderUnavailable):
                        back.append(row.id)
                        continue
                    done.append(ended)
                    recorded_later.add(row.case_id)
                    if len(done) >= FINISH_EVERY:  # recorded a group at a time: a crash leaves at most these "sending"
                        self._finish(done, now)
                        done, recorded_later = [], set()
        finally:
            self._finish(done, now)  # what went out is recorded, whatever happened to the rest
        if back:
            back += [row.id for row in ready]  # not issued after all: dated when it does go out
            with one_writer():
                bulk.execute(
                    "UPDATE case_step SET status = 'due', claimed_ms = NULL "
                    f"WHERE claimed_by = ? AND id IN ({bulk.marks(len(back))})",
                    [self.runner_id, *back],
                )
            return False
        return True

    def _ended(
        self, row: Due, future: Future[Sent | str | None], report: TickReport
    ) -> Finished | SenderUnavailable | None:
        """What the sender did with a step: sent, failed or uncertain (recorded), due again later (None), or the
        sender is unavailable."""
        try:
            result = future.result()
        except SenderUnavailable as err:
            report.held += 1
            report.notes.append(str(err))
            log.warning("steps wait: %s", err)
            return err
        except SendRetry as err:  # due again later; what already went out is not sent twice
            with one_writer():
                bulk.execute(
                    "UPDATE case_step SET status = 'due', due_ms = ? WHERE claimed_by = ? AND id = ?",
                    [err.after_ms, self.runner_id, row.id],
                )
            report.held += 1
            report.notes.append(str(err))
            return None
        except NoticeUnrenderable as err:  # no channel is at fault: the notice lacks a fact it states
            report.failed += 1
            return Finished(row, "failed", str(err), err.outcomes, err)
        except SendUncertain as err:  # before SendFailed, its base: never resent automatically
            report.failed += 1
            return Finished(row, "uncertain", str(err), err.outcomes)
        except SendFailed as err:
            report.failed += 1
            return Finished(row, "failed", str(err), err.outcomes)
        report.sent += 1
        if isinstance(result, Sent):  # each recipient×channel's outcome, and what it could not do
            return Finished(row, "sent", result.note, result.outcomes)
        return Finished(row, "sent", result or "")

    def _claim(self, step_ids: list[int], now: int) -> dict[int, int]:
        """Claim due steps for this runner, all in one conditional update; the ids it won, with their issue
        times: a step is dated when it first goes out (its first claim), not when it was planned, and keeps
        that date when tried again, so that it renders the same bytes."""
        with one_writer():
            return dict(
                bulk.execute(
                    "UPDATE case_step SET status = 'sending', claimed_by = ?, claimed_ms = ?, "
                    "planned_ms = CASE WHEN claimed_ms IS NULL THEN ? ELSE planned_ms END "
                    f"WHERE status = 'due' AND id IN ({bulk.marks(len(step_ids))}) RETURNING id, planned_ms",
                    [self.runner_id, now, now, *step_ids],
                ).fetchall()
            )

    @staticmethod
    def _issued(row: Due, issued_ms: int, now: int) -> Due:
        """The claimed step as it goes out: its issue time, and for a 催告函 the deadline it states (set now, from
        the issue, when the case has none yet or the one it has passed before this notice could state it; stored
        on the case before the notice is printed from it); for the union letter, the reply window from its issue."""
        deadline = row.deadline_ms
        if row.notice == "cuigao":
            deadline = cases.issue_deadline(row.case_id, issued_ms, now, row.timezone)
        elif row.notice == "union_letter":
            cases.issue_union_window(row.case_id, issued_ms, now, row.timezone)
        return row._replace(planned_ms=issued_ms, deadline_ms=deadline)

    @staticmethod
    def _hold_until(row: Due, now: int) -> int | None:
        """When a due step must wait: an acknowledgement (automatic steps), quiet hours (people), or a rest day or
        holiday (a formal notice is issued, and so dated, on a working day)."""
        if row.automatic and row.acked_until_ms is not None and row.acked_until_ms > now:
            return row.acked_until_ms
        policy = machine.policy_by_id(row.policy_id)
        if row.notice in FORMAL:
            day = workdays.local_day(now, row.timezone)
            if not workdays.is_workday(day):
                return workdays.at(workdays.first_workday(day), policy.quiet_start, row.timezone)
        if row.to_people:
            return next_window(now, row.timezone, policy.quiet_start, policy.quiet_end)
        return None

    @staticmethod
    def _finish(done: list[Finished], now: int) -> None:
        """Record sent and failed steps in their cases' timelines — who was reached and who was not, recipient by
        channel — and advance the cases, a group at a time."""
        if not done:
            return
        with one_writer(), cases.transaction():
            locked = {c.id: c for c in lock({f.row.case_id for f in done})}
            b = CaseBatch.load(locked.values())
            for row, status, error, outcomes, unrenderable in done:
                case = locked[row.case_id]
                step = next(s for s in b.steps[case.id] if s["id"] == row.id)
                b.change_step(step, "", status=status, sent_ms=now if status == "sent" else None, error=error)
                if status == "sent":
                    zh, en = _said(row, outcomes, error)
                    b.append(
                        case,
                        "sent",
                        zh,
                        en,
                        at_ms=now,
                        step=row.key,
                        notice=row.notice,
                        **(outcome_data(outcomes) if outcomes else {}),
                    )
                    if row.notice in ("cuigao", "termination") and row.notice not in b.services[case.id]:
                        b.add(Service, {"case": case.id, "document": row.notice, "status": "sent", "sent_ms": now})
                elif unrenderable is not None:
                    _unrenderable(b, case, row, unrenderable, now)
                else:
                    uncertain = status == "uncertain"
                    said_zh, said_en = describe(outcomes) if outcomes else ("", "")
                    b.append(
                        case,
                        "send_uncertain" if uncertain else "send_failed",
                        f"{step_label(row.key, row.notice)} {'发送结果不明' if uncertain else '发送失败'}："
                        + (said_zh or reasons.zh("", error, unmapped="原因")),  # the raw error: in the data
                        f"{row.key} {'may or may not have gone out' if uncertain else 'could not be sent'}: {error}",
                        at_ms=now,
                        step=row.key,
                        error=error,
                        **(outcome_data(outcomes) if outcomes else {}),
                    )
                    kind, zh, en = _TASKS[status]
                    if f"{kind}:{row.key}" not in b.tasks[case.id]:
                        b.add(
                            CaseTask,
                            {
                                "case": case.id,
                                "kind": f"{kind}:{row.key}",
                                "title_zh": f"{step_label(row.key, row.notice)}{zh}",
                                "title_en": f"{row.key} ({row.notice}) {en}",
                                "created_ms": now,
                            },
                        )
                if case.open_key is not None:
                    machine.advance(b, case, now, row.timezone)
            b.flush()


def _said(row: Due, outcomes: tuple[Outcome, ...], error: str) -> tuple[str, str]:
    """A sent step's entry: what each recipient×channel got, and who was not reached ("已发出 催告函：员工·短信 已发出；
    员工·邮件 已发出；主管：无联系方式，未发送"). A sender that reports no outcomes: the step's plan, as before."""
    notice_zh, notice_en = NOTICE_NAMES.get(row.notice, (row.notice, row.notice))
    if not outcomes:
        return (
            f"已发出 {step_label(row.key, row.notice)}：{_zh(row.channels, row.recipients)}"
            + (f"；{error}" if error else ""),
            f"sent {row.key} ({row.notice}) by {row.channels} to {row.recipients}" + (f"; {error}" if error else ""),
        )
    zh, en = describe(outcomes)
    missed = unreached(outcomes)
    if missed:
        zh += "。未联系到：" + "、".join(ROLE_NAMES.get(r, (r, r))[0] for r in missed)
        en += ". Not reached: " + ", ".join(ROLE_NAMES.get(r, (r, r))[1] for r in missed)
    return f"已发出 {notice_zh}：{zh}", f"sent the {notice_en} ({row.key}): {en}"


def _unrenderable(b: CaseBatch, case: AbsenceCase, row: Due, err: NoticeUnrenderable, now: int) -> None:
    """A notice that could not be made: its entry and its task say which facts are missing and what to do —
    nothing was sent, and no contact detail is at fault."""
    zh, en = err.explain()
    b.append(
        case,
        "render_failed",
        f"未发出：{zh}",
        f"not sent: {en}",
        at_ms=now,
        step=row.key,
        notice=row.notice,
        missing=[m.fact for m in err.missing],
    )
    kind = f"render_failed:{row.key}"
    if kind not in b.tasks[case.id]:
        b.add(CaseTask, {"case": case.id, "kind": kind, "title_zh": zh[:255], "title_en": en[:255], "created_ms": now})


class Due(NamedTuple):
    """A due step with what sending it needs from its case, plant and employee (``DUE_SQL``)."""

    id: int
    case_id: int
    key: str
    level: int
    notice: str
    recipients: str
    channels: str
    to_people: bool
    automatic: bool
    planned_ms: int
    acked_until_ms: int | None
    policy_id: int
    employee_id: int
    plant_id: str
    user_id: str
    deadline_ms: int | None
    timezone: str
    employee_no: str


STRANDED_MS = 15 * 60_000  # a step "sending" longer than this: its runner died (a provider call times out sooner)
# A due step's own row, by the (status, due_ms) index alone; its case, plant and employee are read by their ids
# (``_with_cases``). One statement joining the four had PostgreSQL join every due step to its case, plant and
# employee, then sort them all, for each batch of 500 (EXPLAIN ANALYZE: 10,000 rows joined for the first 500): a
# cost growing with the square of the steps due, a third of the 09:00 tick profiled with 20,000 due.
STEP_COLUMNS = (
    "SELECT id, case_id, key, level, notice, recipients, channels, to_people, automatic, planned_ms FROM case_step "
)
DUE_SQL = STEP_COLUMNS + "WHERE status = 'due' AND due_ms <= ? ORDER BY due_ms, id LIMIT ?"
STRANDED_SQL = STEP_COLUMNS + "WHERE status = 'sending' AND claimed_ms <= ? ORDER BY id"
CASES_SQL = (
    "SELECT id, acked_until_ms, policy_id, employee_id, plant_id, user_id, deadline_ms FROM absence_case "
    "WHERE id IN ({})"
)


def _with_cases(steps: list[tuple]) -> list[Due]:
    """Steps (``STEP_COLUMNS``) with what sending them needs from their case, plant and employee: three reads by
    id for the whole batch."""
    if not steps:
        return []
    of_case = {r[0]: r[1:] for r in bulk.select_in(CASES_SQL, sorted({s[1] for s in steps}))}
    numbers = dict(
        bulk.select_in(
            "SELECT id, employee_no FROM employee WHERE id IN ({})", sorted({c[2] for c in of_case.values()})
        )
    )
    zones = cases.timezones([c[3] for c in of_case.values()])
    out = []
    for step in steps:
        acked, policy_id, employee_id, plant_id, user_id, deadline = of_case[step[1]]
        out.append(
            Due(
                *step,
                acked,
                policy_id,
                employee_id,
                plant_id,
                user_id,
                deadline,
                zones[plant_id],
                numbers[employee_id],
            )
        )
    return out


def _labels(version_ids: set[int], known: dict[int, str]) -> dict[int, str]:
    """The policy versions' labels ("*/v3"), read once a tick (``known``: those read already; a version is never
    edited)."""
    missing = [v for v in version_ids if v not in known]
    if missing:
        for version in PolicyVersion.select().where(PolicyVersion.id.in_(missing)):
            known[version.id] = version.label
    return known


def _zh(channels: str, recipients: str) -> str:
    """ "短信、邮件 → 员工": a step's channels and recipients as a Chinese reader names them."""
    to = "、".join(ROLE_NAMES.get(r, (r,))[0] for r in recipients.split(","))
    return f"{'、'.join(names.zh(c) for c in channels.split(','))} → {to}"


def _planned(row: Due, policy: str, absent_days: tuple[str, ...]) -> PlannedStep:
    return PlannedStep(
        step_id=row.id,
        case_id=row.case_id,
        key=row.key,
        level=row.level,
        notice=row.notice,
        recipients=tuple(row.recipients.split(",")),
        channels=tuple(row.channels.split(",")),
        employee_id=row.employee_id,
        employee_no=row.employee_no,
        plant_id=row.plant_id,
        user_id=row.user_id,
        policy=policy,
        absent_days=absent_days,
        deadline_ms=row.deadline_ms,
        planned_ms=row.planned_ms,
    )


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

    def __init__(self, engine: Engine, interval_s: float, service: ServiceManager | None = None) -> None:
        self._engine = engine
        self._interval = interval_s
        self._service = service or Unsupervised()
        self._stop = threading.Event()

    def run(self) -> None:
        """Tick, then wait; systemd hears READY after the first tick and WATCHDOG after each one that
        completed, so a runner stuck in a tick (a hung provider, a lost database) is restarted."""
        ready = False
        while not self._stop.is_set():
            try:
                report = self._engine.tick()
                if report.ran and (report.sent or report.failed or report.recounted):
                    log.info("tick: %s", report)
                if not ready:
                    ready = self._service.ready("escalation runner ticking")
                self._service.watchdog()
            except pw.DatabaseError as err:  # the database went away: log, keep going (no watchdog ping)
                log.error("tick failed: %s", err)
            self._wait()
        self._service.stopping("escalation runner stopping")

    def _wait(self) -> None:
        """The interval, woken at least twice per watchdog period to say the runner is alive between ticks."""
        period = self._service.watchdog_interval_s
        step = self._interval if not period else min(self._interval, period / 2)
        deadline = time.monotonic() + self._interval
        while not self._stop.wait(max(0.0, min(step, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return
            self._service.watchdog()

    def stop(self) -> None:
        self._stop.set()
