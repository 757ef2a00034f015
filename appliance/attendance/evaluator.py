"""The evaluator thread: the rules run over the whole plant, the board kept current, facts signed.

A full pass evaluates today and every earlier day, back to ``LOOKBACK_DAYS``, whose board still
has a result that is not final (a night shift started yesterday is still running, a terminal was
offline) or that an importer asked to look at again (leave approved later); yesterday too after a
change of the roster. Soon after new punches are committed, at most every ``MIN_GAP_S``, a pass
evaluates the employees who punched. Queued actions from the pages are signed every ``ACTION_TICK_S``.

A full pass runs when something other than a punch may have changed a result (``why_full``):
- time: the earliest ``next_change`` of the last evaluations has come (a check-in falls due, a
  shift ends, a result may be confirmed), or local midnight;
- the master data: SQLite triggers bump ``master_version`` at every write to them (``store``);
- a watermark: a terminal that held a result back has been read again;
- and in any case every ``MAX_IDLE_S``.
Full passes are at least ``min(MAX_INTERVAL_S, max(MIN_FULL_GAP_S, FULL_SHARE x their duration))``
apart, so that a missed check-in is flagged within 60 s even on a slow Pi. On an ordinary day this
is a few dozen full passes instead of one every 15 s: most of an idle Pi's CPU was spent there.

Everything a full pass needs is read fresh (master data, punches, watermarks), so it depends only
on the database and the clock: the same state gives the same board and the same facts.

A full pass takes seconds of a Pi's core, and nothing else runs meanwhile: a punch committed during it
would wait for its end, then for the pass over the new punchers. So before each slice of a day the pass
catches up (``_catch_up``) with the punches committed since it (or its last catch-up) read them: their
employees are evaluated at once on yesterday and today, as the pass over new punchers does, and the board's
version moves; an employee whose slice is still to come has the punch in it too. A punch waits for one
slice, not the whole pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, TypeVar
from zoneinfo import ZoneInfo

import peewee as pw

from appliance import malloc
from appliance.attendance import alerts, board, facts, handoff
from appliance.attendance.watermarks import watermarks
from appliance.clock import Clock, to_ms
from appliance.roster import store as roster_store
from appliance.rules import (
    BusinessTrip,
    Confirmation,
    Correction,
    EmployeeRoster,
    Evaluation,
    Leave,
    Punch,
    by_employee,
    evaluate_plant_day,
    punch_range,
)
from appliance.store import BoardRow, EvalRequest, EvaluatorState
from appliance.store import Punch as PunchRow

if TYPE_CHECKING:  # the log writer's side: the evaluator's own process never imports it (see handoff)
    from appliance.capture.punchlog import LogWriter

log = logging.getLogger(__name__)
T = TypeVar("T")

MIN_FULL_GAP_S = 5.0  # full passes at least this far apart when a pass is quick...
FULL_SHARE = 4.0  # ...else this many times its own duration apart: on a slow Pi, a fifth of a core at most
MAX_INTERVAL_S = 40.0  # but a due pass never waits longer, so that a missed check-in is flagged within 60 s
MAX_IDLE_S = 300.0  # a full pass at least this often, whatever happens (belt and braces)
CHECK_S = 1.0  # how often the cheap checks (master version, watermarks) run
MIN_GAP_S = 2.0
PARTIAL_MAX = 1000  # new punchers beyond this: a full pass costs about as much
ACTION_TICK_S = 0.5
LOOKBACK_DAYS = 31
# A full pass evaluates a day this many employees at a time, deciding each slice's facts and writing its board rows
# before the next: only one slice's evaluations (segments, punches, reasons) are alive at once, not a day's 5,000.
# At 5,000 workers the pass deciding a day's facts peaked (tracemalloc) at 18.7 MB whole, 7.6 MB in slices of 1,000,
# 6.4 MB of 500, 5.8 MB of 250, in the same time: below 500 the day's punches and the master data are most of it,
# and each slice is one more write transaction on the board.
DAY_SLICE = 500


@dataclass(frozen=True)
class PassReport:
    days: tuple[str, ...]
    evaluations: int
    facts: tuple[int, ...]  # seqs of the day facts appended
    problems: tuple[str, ...]
    employees: int | None = None  # a pass over the new punchers only: how many; None for a full pass


@dataclass
class _Progress:
    """Where a full pass is, for the punches committed while it runs (``Evaluator._catch_up``): what it read
    at its start, its days in order, the day under way, and how far that day's slices (in order of ids) got."""

    master: roster_store.MasterData
    marks: Mapping[str, datetime | None]
    now: datetime
    corrections: Mapping[str, Sequence[Correction]]
    leaves: Mapping[str, Sequence[Leave]]
    trips: Mapping[str, Sequence[BusinessTrip]]
    days: Sequence[date]
    day: date | None = None  # the day under way
    punches: dict[str, list[Punch]] | None = None  # its punches not yet handed to a slice
    written: bool = False  # some of its slices written...
    upto: str | None = None  # ...every id up to this one (None: all of them)
    evaluations: int = 0  # what the catch-ups did
    appended: list[int] = field(default_factory=list)

    def begin(self, day: date, punches: dict[str, list[Punch]]) -> None:
        self.day, self.punches, self.written, self.upto = day, punches, False, None

    def wrote(self, upto: str | None) -> None:
        self.written, self.upto = True, upto

    def done(self, day: date, employee: str) -> bool:
        """Whether this employee's row of ``day`` is already written by this pass (or never will be)."""
        if day not in self.days:
            return True
        if self.day is None or day > self.day:
            return False
        return day < self.day or (self.written and (self.upto is None or employee <= self.upto))


class Evaluator:
    """``out``: where its day facts and alerts go. In the daemon's setup it runs in a process of its
    own and queues them for the log writer (``handoff.Outbox``); given a ``LogWriter`` (a test, a tool
    that evaluates once) it hands them over and has them signed at once (``handoff.Direct``)."""

    def __init__(
        self,
        out: LogWriter | handoff.Outbox | handoff.Direct,
        tz: ZoneInfo,
        terminals: Sequence[str],
        clock: Clock,
        *,
        min_full_gap_s: float = MIN_FULL_GAP_S,
    ) -> None:
        self._out = out if isinstance(out, handoff.Outbox | handoff.Direct) else handoff.Direct(out, clock)
        self._tz = tz
        self._terminals = tuple(terminals)
        self._clock = clock
        self._min_full_gap = min_full_gap_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._dirty = False
        self._thread: threading.Thread | None = None
        self._failing = False
        self._problems: tuple[str, ...] = ()
        self._master: roster_store.MasterData | None = None  # as the last full pass read it
        self._master_version: int | None = None  # ``EvaluatorState.master_version`` before that read
        self._seen_seq = -1  # punches up to this seq have been evaluated
        self._last_full = 0.0  # monotonic: when the last full pass started
        self._due: datetime | None = None  # the earliest next_change of the current results
        self._waits: dict[str, datetime | None] = {}  # terminal -> watermark that held a result back
        self._pass_moments: list[datetime] = []  # next_change of the pass under way
        self._pass_waits: dict[str, datetime | None] = {}
        self._queued = 0  # day facts handed over since the last full pass
        self._progress: _Progress | None = None  # the full pass under way
        self._caught = -1  # the full pass under way has read the punches up to this seq

    # -- the thread ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="attendance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def wake(self, _seq: int | None = None) -> None:
        """New records were committed (``LogWriter`` on_commit). Our own facts do not count."""
        if threading.current_thread() is self._thread:
            return
        self._dirty = True
        self._wake.set()

    def _run(self) -> None:
        full_gap = 0.0
        last_pass = -MIN_GAP_S
        last_check = -CHECK_S
        why: str | None = "start"
        while not self._stop.is_set():
            self._wake.wait(ACTION_TICK_S)
            self._wake.clear()
            if self._stop.is_set():
                break
            self._guarded("signing actions", self._out.tick)
            mono = self._clock.monotonic()
            if why is None and mono - last_check >= CHECK_S:
                last_check = mono
                why = self._guarded("checking for changes", self.why_full)
            if why is not None and mono - self._last_full >= full_gap:
                log.debug("attendance: full pass (%s)", why)
                why, self._dirty, last_pass = None, False, mono
                self._guarded("evaluating attendance", self.run_once)
                took = self._clock.monotonic() - mono
                full_gap = min(MAX_INTERVAL_S, max(self._min_full_gap, FULL_SHARE * took))
                malloc.trim()  # a pass frees megabytes at once; give them back rather than keep the peak
            elif self._dirty and mono - last_pass >= MIN_GAP_S:
                self._dirty = False
                last_pass = mono
                self._guarded("evaluating attendance", self.run_new_punches)

    def why_full(self) -> str | None:
        """Why a full pass is due now, or None: a pass over the new punchers is not enough when time
        has changed a result, the master data changed, or a terminal holding a result back was read."""
        if self._master is None:
            return "no pass yet"
        if self._clock.monotonic() - self._last_full >= MAX_IDLE_S:
            return "idle"
        if self._due is not None and self._clock.now() >= self._due:
            return "time"
        if _master_version() != self._master_version:
            return "master data"
        if self._waits:
            marks = watermarks(self._waits)
            if any(marks.get(terminal) != mark for terminal, mark in self._waits.items()):
                return "watermark"
        return None

    def _guarded(self, what: str, step: Callable[[], T]) -> T | None:
        try:
            result = step()
        except Exception as err:  # the top of the loop: log the change, keep the thread alive
            if not self._failing:
                log.exception("attendance: %s failed", what)
            self._failing = True
            EvaluatorState.update(last_error=f"{what}: {err}").where(EvaluatorState.id == 1).execute()
            return None
        if self._failing and what == "evaluating attendance":
            log.info("attendance: evaluating again")
            self._failing = False
        return result

    # -- one pass ----------------------------------------------------------------------------
    def run_once(self) -> PassReport:
        """A full pass: every employee, on every day still open. Time alone changes a board (a shift
        starts and nobody punched), so these run every ``interval_s`` whatever happens."""
        started = self._clock.monotonic()
        now = self._clock.now()
        newest = _newest_punch()
        version = _master_version()  # before the read: a write during it is seen at the next check
        master = roster_store.load(self._tz, self._terminals)
        if master.problems != self._problems:
            for problem in master.problems:
                log.warning("master data: %s", problem)
            self._problems = master.problems
        marks = watermarks(self._terminals)
        today = now.astimezone(self._tz).date()
        requested = {r.day: r.requested_ms for r in EvalRequest.select()}
        days = self._days(today, requested, master_changed=master != self._master)
        corrections = by_employee(master.corrections)
        leaves, trips = by_employee(master.leaves), by_employee(master.trips)
        appended: list[int] = []
        count = changed = 0
        self._pass_moments, self._pass_waits = [_next_midnight(now, self._tz)], {}
        self._caught = newest
        progress = self._progress = _Progress(master, marks, now, corrections, leaves, trips, days)
        try:
            for day in days:
                day_count, day_changed, day_facts = self._pass_day(master, day, marks, now, corrections, leaves, trips)
                count += day_count
                changed += day_changed
                appended += day_facts
        finally:
            self._progress = None
        count += progress.evaluations
        appended = sorted(appended + progress.appended)
        for day, requested_ms in requested.items():  # only what this pass has seen; newer requests stay
            EvalRequest.delete().where((EvalRequest.day == day) & (EvalRequest.requested_ms <= requested_ms)).execute()
        changed += board.prune((today - timedelta(days=board.KEEP_DAYS)).isoformat())
        # the board just turned this shift's workers who have not punched overdue: tell head office at once
        due_alerts = alerts.due(to_ms(now))
        if due_alerts:
            raised = self._out.alerts(due_alerts)
            log.info(
                "attendance: %d missed check-in alert(s) %s",
                len(due_alerts),
                f"raised, seq {raised}" if raised else "handed to the log writer",
            )
        EvaluatorState.update(
            passes=EvaluatorState.passes + 1,
            board_version=EvaluatorState.board_version + (1 if changed else 0),
            last_pass_ms=to_ms(now),
            pass_ms=int((self._clock.monotonic() - started) * 1000),
            last_error="; ".join(master.problems)[:2000],
        ).where(EvaluatorState.id == 1).execute()
        # the newest punch evaluated: what came after the last catch-up is the next pass over new punchers'
        self._master, self._master_version, self._seen_seq = master, version, max(self._seen_seq, self._caught)
        self._last_full = started
        self._due, self._waits = min(self._pass_moments), self._pass_waits
        if appended:
            log.info("attendance: %d day fact(s) appended, up to seq %d", len(appended), appended[-1])
        elif self._queued:
            log.info("attendance: %d day fact(s) handed to the log writer", self._queued)
        self._queued = 0
        return PassReport(tuple(d.isoformat() for d in days), count, tuple(appended), master.problems)

    def run_new_punches(self) -> PassReport:
        """A pass over the employees who punched since the last pass, today and yesterday only.

        What a punch changes shows on the board within seconds, at the cost of those employees: a
        full pass of a 5,000-worker plant takes seconds of a Pi's core, and this thread shares the
        interpreter with the ones that read the terminals. The master data is the last full pass's
        (an import shows at the next full pass, as do older days and the passing of time).
        """
        newest = _newest_punch()
        if newest <= self._seen_seq:
            return PassReport((), 0, (), (), employees=0)
        employees = {
            user
            for (user,) in PunchRow.select(PunchRow.user_id)
            .where((PunchRow.seq > self._seen_seq) & (PunchRow.seq <= newest))
            .distinct()
            .tuples()
        }
        if self._master is None or len(employees) > PARTIAL_MAX:
            return self.run_once()
        master, now = self._master, self._clock.now()
        marks = watermarks(self._terminals)
        today = now.astimezone(self._tz).date()
        days = (today - timedelta(days=1), today)
        corrections = by_employee(c for c in master.corrections if c.employee in employees)
        leaves = by_employee(x for x in master.leaves if x.employee in employees)
        trips = by_employee(x for x in master.trips if x.employee in employees)
        appended: list[int] = []
        count = changed = 0
        self._pass_moments, self._pass_waits = [], {}
        for day in days:
            day_count, day_changed, day_facts = self._pass_day(
                master, day, marks, now, corrections, leaves, trips, employees
            )
            count += day_count
            changed += day_changed
            appended += day_facts
        # their new results may fall due earlier, or wait on a terminal; the others' still stand
        self._due = min([*self._pass_moments, *([self._due] if self._due is not None else [])], default=None)
        self._waits = {**self._pass_waits, **self._waits}
        if changed:
            EvaluatorState.update(board_version=EvaluatorState.board_version + 1).where(
                EvaluatorState.id == 1
            ).execute()
        self._seen_seq = newest
        return PassReport(tuple(d.isoformat() for d in days), count, tuple(appended), (), employees=len(employees))

    def _pass_day(
        self,
        master: roster_store.MasterData,
        day: date,
        marks: Mapping[str, datetime | None],
        now: datetime,
        corrections: Mapping[str, Sequence[Correction]],
        leaves: Mapping[str, Sequence[Leave]],
        trips: Mapping[str, Sequence[BusinessTrip]],
        employees: Collection[str] | None = None,
    ) -> tuple[int, int, list[int]]:
        """One day of the pass, of every employee or of ``employees``: (evaluations, board rows
        changed, facts appended).

        A method of its own so that a day's evaluations and punches are freed before the next day is
        evaluated. A full pass goes through the day's employees in slices of ``DAY_SLICE``, in order of
        their ids: each slice is evaluated, its facts decided and handed over, its board rows written
        (those of removed employees whose ids fall in its range deleted) and freed before the next. The
        day's punches are read once, in one query, and handed out to the slices; before each slice the pass
        catches up with the punches committed since (``_catch_up``), which hands the new ones of the slices to
        come to them.
        """
        if employees is not None:
            rosters = [r for r in master.rosters if r.employee in employees]
            punches = by_employee(self._punches(day, employees))
            return self._pass_slice(master, day, rosters, punches, marks, now, corrections, leaves, trips, employees)
        # the punches the pass has caught up with: a newer one is the next catch-up's, never read twice
        day_punches = by_employee(self._punches(day, upto_seq=self._caught))
        progress = self._progress
        if progress is not None:
            progress.begin(day, day_punches)
        count = changed = 0
        appended: list[int] = []
        for after, upto, rosters in _slices(master.rosters, DAY_SLICE):
            if progress is not None:
                self._catch_up(progress)
            punches = {r.employee: day_punches.pop(r.employee, []) for r in rosters}
            part = self._pass_slice(
                master, day, rosters, punches, marks, now, corrections, leaves, trips, span=(after, upto)
            )
            if progress is not None:
                progress.wrote(upto)
            count += part[0]
            changed += part[1]
            appended += part[2]
        return count, changed, appended

    def _catch_up(self, progress: _Progress) -> None:
        """The punches committed since the full pass (or its last catch-up) read them, before its next slice.

        One query on a range of seqs, nothing found in the usual case. On yesterday and today (what a pass over
        the new punchers looks at), each new punch's employee is evaluated at once, with this pass's master data,
        watermarks and time, and the board's version moves if a row changed, so that the pages fetch it now
        rather than when the pass reaches the employee (the day under way's later slices, or today while the
        pass is on yesterday: seconds of a Pi's core). The punch also goes to the employee's slice still to come
        on the day under way, which must not write a row older than the punches (a day of the pass not begun
        reads it itself); that slice then finds the row as the catch-up wrote it, and writes nothing."""
        new = [
            (seq, Punch(u, t, roster_store.utc_ms(at), s, v, ref=str(seq)))
            for u, t, at, s, v, seq in PunchRow.select(*_PUNCH_COLUMNS)
            .where(PunchRow.seq > self._caught)
            .order_by(PunchRow.seq)
            .tuples()
        ]
        if not new:
            return
        self._caught = new[-1][0]
        current, today = progress.day, progress.now.astimezone(self._tz).date()
        if current is not None and progress.punches is not None:
            span = punch_range(current, self._tz)
            for _seq, punch in new:
                if span.start <= punch.at < span.end and not progress.done(current, punch.employee):
                    progress.punches.setdefault(punch.employee, []).append(punch)
        changed = 0
        for day in (today - timedelta(days=1), today):
            span = punch_range(day, self._tz)
            employees = {p.employee for _seq, p in new if span.start <= p.at < span.end}
            if not employees:
                continue
            count, day_changed, appended = self._pass_day(
                progress.master,
                day,
                progress.marks,
                progress.now,
                progress.corrections,
                progress.leaves,
                progress.trips,
                employees,
            )
            progress.evaluations += count
            progress.appended += appended
            changed += day_changed
        if changed:
            EvaluatorState.update(board_version=EvaluatorState.board_version + 1).where(
                EvaluatorState.id == 1
            ).execute()

    def _pass_slice(
        self,
        master: roster_store.MasterData,
        day: date,
        rosters: Sequence[EmployeeRoster],
        punches: Mapping[str, Sequence[Punch]],
        marks: Mapping[str, datetime | None],
        now: datetime,
        corrections: Mapping[str, Sequence[Correction]],
        leaves: Mapping[str, Sequence[Leave]],
        trips: Mapping[str, Sequence[BusinessTrip]],
        employees: Collection[str] | None = None,
        span: tuple[str | None, str | None] = (None, None),
    ) -> tuple[int, int, list[int]]:
        """Evaluate ``rosters`` on ``day``, decide their facts and write their board rows. Either the new
        punchers of a partial pass (``employees``: their current keys' facts only, their rows only), or a
        slice of a full pass: every employee whose id is in ``span`` (after < id <= upto; None, no bound),
        whose earlier facts are all known (a fact for a shift the day no longer has is withdrawn) and whose
        stored rows not evaluated again are deleted."""
        evaluations = evaluate_plant_day(
            master.plant,
            rosters,
            day,
            punches=punches,
            corrections=corrections,
            leaves=leaves,
            trips=trips,
            now=now,
            watermarks=marks,
        )
        self._note_changes(evaluations, marks)
        # the board's own change of time: a shift with no punch turns overdue at its start plus grace
        self._pass_moments.extend(
            at for at in (board.overdue_from(ev, master.plant) for ev in evaluations) if at is not None and at > now
        )
        iso = day.isoformat()
        if employees is not None:
            subset = [_key(ev) for ev in evaluations]
            known, read_seqs = facts.latest(iso, subset), lambda: facts.seqs(iso, subset)
        else:
            names = [r.employee for r in rosters]
            known, read_seqs = facts.latest_of(iso, names), lambda: facts.seqs_of(iso, names)
        due = facts.due(evaluations, master.plant, known)
        appended = self._out.facts(due) if due else []
        self._queued += len(due)
        # nothing handed over: the facts just read are the latest (the usual pass, which need not read them twice)
        seqs = read_seqs() if due else {key: latest.seq for key, latest in known.items()}
        del known, due
        after, upto = span
        changed = board.replace_day(
            iso, evaluations, master.plant, master.people, seqs, employees, after=after, upto=upto
        )
        return len(evaluations), changed, appended

    def _note_changes(self, evaluations: Sequence[Evaluation], marks: Mapping[str, datetime | None]) -> None:
        """What can change these results without a punch: the moment time changes one, and the
        watermarks of the terminals holding one back (as read for this pass)."""
        for ev in evaluations:
            if ev.next_change is not None:
                self._pass_moments.append(ev.next_change)
            for terminal in ev.held_by:
                self._pass_waits[terminal] = marks.get(terminal)

    def _days(self, today: date, requested: dict[str, int], master_changed: bool) -> list[date]:
        """Today; every earlier day whose board is not final, or that an importer asked for; and
        yesterday after a change of the roster (a fix to it may change yesterday's facts)."""
        oldest = today - timedelta(days=LOOKBACK_DAYS)
        open_days = (
            BoardRow.select(BoardRow.work_date)
            .where(
                (BoardRow.tier != Confirmation.CONFIRMED.value)
                & (BoardRow.work_date >= oldest.isoformat())
                & (BoardRow.work_date < today.isoformat())
            )
            .distinct()
            .tuples()
        )
        days = {today}
        days |= {date.fromisoformat(d) for (d,) in open_days}
        yesterday = today - timedelta(days=1)
        if master_changed or not BoardRow.select().where(BoardRow.work_date == yesterday.isoformat()).exists():
            # Else yesterday is final (or open, and above) and is left alone like any final day.
            days.add(yesterday)
        days |= {d for d in map(date.fromisoformat, requested) if oldest <= d <= today}
        return sorted(days)

    def _punches(self, day: date, employees: Collection[str] | None = None, upto_seq: int | None = None) -> list[Punch]:
        span = punch_range(day, self._tz)
        rows = (
            PunchRow.select(*_PUNCH_COLUMNS)
            .where((PunchRow.at_utc_ms >= to_ms(span.start)) & (PunchRow.at_utc_ms < to_ms(span.end)))
            .tuples()
        )
        if employees is not None:
            rows = rows.where(PunchRow.user_id.in_(list(employees)))
        if upto_seq is not None:
            rows = rows.where(PunchRow.seq <= upto_seq)
        return [Punch(u, t, roster_store.utc_ms(at), s, v, ref=str(seq)) for u, t, at, s, v, seq in rows]


_PUNCH_COLUMNS = (
    PunchRow.user_id,
    PunchRow.terminal,
    PunchRow.at_utc_ms,
    PunchRow.state,
    PunchRow.verify,
    PunchRow.seq,
)


def _slices(
    rosters: Sequence[EmployeeRoster], size: int
) -> Iterator[tuple[str | None, str | None, list[EmployeeRoster]]]:
    """The rosters in slices of about ``size`` employees, in order of their ids, each with the range of ids it
    stands for (after, upto]: the ranges follow each other from no bound to no bound, so that every stored
    row of the day is in one (a removed employee's row is deleted by the slice whose range holds its id). An
    employee's rosters stay in one slice. No roster at all: one empty slice, which deletes the day's rows."""
    ordered = sorted(rosters, key=lambda r: r.employee)
    after: str | None = None
    start = 0
    while True:
        end = min(start + max(size, 1), len(ordered))
        while 0 < end < len(ordered) and ordered[end].employee == ordered[end - 1].employee:
            end += 1
        last = end >= len(ordered)
        upto = None if last else ordered[end - 1].employee
        yield after, upto, ordered[start:end]
        if last:
            return
        after, start = upto, end


def _newest_punch() -> int:
    newest = PunchRow.select(pw.fn.MAX(PunchRow.seq)).scalar()
    return -1 if newest is None else int(newest)


def _master_version() -> int:
    return int(EvaluatorState.select(EvaluatorState.master_version).where(EvaluatorState.id == 1).scalar() or 0)


def _key(ev: Evaluation) -> str:
    return f"{ev.employee}/{ev.work_date.isoformat()}/{ev.shift_id}"


def _next_midnight(now: datetime, tz: ZoneInfo) -> datetime:
    """The next local midnight, in UTC: today changes, and with it the days a pass looks at."""
    local = now.astimezone(tz)
    return datetime.combine(local.date() + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
