"""The evaluator thread: the rules run over the whole plant, the board kept current, facts signed.

A pass evaluates today, yesterday (a night shift started yesterday is still running, or was just
confirmed) and every earlier day, back to ``LOOKBACK_DAYS``, whose board still has a result that
is not final (a terminal was offline) or that an importer asked to look at again (leave
approved later). Passes run every ``interval_s`` and, at most every ``MIN_GAP_S``, soon after
new punches are committed. Queued actions from the pages are signed every ``ACTION_TICK_S``.

Everything is read fresh at each pass (master data, punches, watermarks), so a pass depends only
on the database and the clock: the same state gives the same board and the same facts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from appliance import malloc, roster_store
from appliance.attendance import actions, board, facts
from appliance.attendance.watermarks import watermarks
from appliance.clock import Clock, to_ms
from appliance.punchlog import LogWriter
from appliance.rules import (
    BusinessTrip,
    Confirmation,
    Correction,
    Leave,
    Punch,
    by_employee,
    evaluate_plant_day,
    punch_range,
)
from appliance.store import BoardRow, DayFactIndex, EvalRequest, EvaluatorState
from appliance.store import Punch as PunchRow

log = logging.getLogger(__name__)

INTERVAL_S = 15.0
MIN_GAP_S = 2.0
ACTION_TICK_S = 0.5
LOOKBACK_DAYS = 31


@dataclass(frozen=True)
class PassReport:
    days: tuple[str, ...]
    evaluations: int
    facts: tuple[int, ...]  # seqs of the day facts appended
    problems: tuple[str, ...]


class Evaluator:
    def __init__(
        self,
        writer: LogWriter,
        tz: ZoneInfo,
        terminals: Sequence[str],
        clock: Clock,
        *,
        interval_s: float = INTERVAL_S,
    ) -> None:
        self._writer = writer
        self._tz = tz
        self._terminals = tuple(terminals)
        self._clock = clock
        self._interval = interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._dirty = False
        self._thread: threading.Thread | None = None
        self._failing = False
        self._problems: tuple[str, ...] = ()

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
        next_pass = 0.0
        last_pass = -MIN_GAP_S
        while not self._stop.is_set():
            self._wake.wait(ACTION_TICK_S)
            self._wake.clear()
            if self._stop.is_set():
                break
            self._guarded("signing actions", lambda: actions.sign_pending(self._writer))
            mono = self._clock.monotonic()
            if mono >= next_pass or (self._dirty and mono - last_pass >= MIN_GAP_S):
                self._dirty = False
                last_pass = mono
                next_pass = mono + self._interval
                self._guarded("evaluating attendance", self.run_once)
                malloc.trim()  # a pass frees megabytes at once; give them back rather than keep the peak

    def _guarded(self, what: str, step: object) -> None:
        try:
            step()  # type: ignore[operator]
        except Exception as err:  # the top of the loop: log the change, keep the thread alive
            if not self._failing:
                log.exception("attendance: %s failed", what)
            self._failing = True
            EvaluatorState.update(last_error=f"{what}: {err}").where(EvaluatorState.id == 1).execute()
            return
        if self._failing and what == "evaluating attendance":
            log.info("attendance: evaluating again")
            self._failing = False

    # -- one pass ----------------------------------------------------------------------------
    def run_once(self) -> PassReport:
        started = self._clock.monotonic()
        now = self._clock.now()
        master = roster_store.load(self._tz, self._terminals)
        if master.problems != self._problems:
            for problem in master.problems:
                log.warning("master data: %s", problem)
            self._problems = master.problems
        marks = watermarks(self._terminals)
        today = now.astimezone(self._tz).date()
        requested = {r.day: r.requested_ms for r in EvalRequest.select()}
        days = self._days(today, requested)
        corrections = by_employee(master.corrections)
        leaves, trips = by_employee(master.leaves), by_employee(master.trips)
        appended: list[int] = []
        count = changed = 0
        for day in days:
            day_count, day_changed, day_facts = self._pass_day(master, day, marks, now, corrections, leaves, trips)
            count += day_count
            changed += day_changed
            appended += day_facts
        for day, requested_ms in requested.items():  # only what this pass has seen; newer requests stay
            EvalRequest.delete().where((EvalRequest.day == day) & (EvalRequest.requested_ms <= requested_ms)).execute()
        changed += board.prune((today - timedelta(days=board.KEEP_DAYS)).isoformat())
        EvaluatorState.update(
            passes=EvaluatorState.passes + 1,
            board_version=EvaluatorState.board_version + (1 if changed else 0),
            last_pass_ms=to_ms(now),
            pass_ms=int((self._clock.monotonic() - started) * 1000),
            last_error="; ".join(master.problems)[:2000],
        ).where(EvaluatorState.id == 1).execute()
        if appended:
            log.info("attendance: %d day fact(s) appended, up to seq %d", len(appended), appended[-1])
        return PassReport(tuple(d.isoformat() for d in days), count, tuple(appended), master.problems)

    def _pass_day(
        self,
        master: roster_store.MasterData,
        day: date,
        marks: Mapping[str, datetime | None],
        now: datetime,
        corrections: Mapping[str, Sequence[Correction]],
        leaves: Mapping[str, Sequence[Leave]],
        trips: Mapping[str, Sequence[BusinessTrip]],
    ) -> tuple[int, int, list[int]]:
        """One day of the pass: (evaluations, board rows changed, facts appended).

        A method of its own so that a day's evaluations and punches are freed before the next day is
        evaluated: a pass holds one day of a 5,000-worker plant at a time, not two.
        """
        evaluations = evaluate_plant_day(
            master.plant,
            master.rosters,
            day,
            punches=by_employee(self._punches(day)),
            corrections=corrections,
            leaves=leaves,
            trips=trips,
            now=now,
            watermarks=marks,
        )
        iso = day.isoformat()
        due = facts.due(evaluations, master.plant, facts.latest(iso))
        appended = facts.append(self._writer, due)
        changed = board.replace_day(iso, evaluations, master.plant, master.people, _seqs(iso))
        return len(evaluations), changed, appended

    def _days(self, today: date, requested: dict[str, int]) -> list[date]:
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
        days = {today, today - timedelta(days=1)}
        days |= {date.fromisoformat(d) for (d,) in open_days}
        days |= {d for d in map(date.fromisoformat, requested) if oldest <= d <= today}
        return sorted(days)

    def _punches(self, day: date) -> list[Punch]:
        span = punch_range(day, self._tz)
        rows = (
            PunchRow.select(
                PunchRow.user_id, PunchRow.terminal, PunchRow.at_utc_ms, PunchRow.state, PunchRow.verify, PunchRow.seq
            )
            .where((PunchRow.at_utc_ms >= to_ms(span.start)) & (PunchRow.at_utc_ms < to_ms(span.end)))
            .tuples()
        )
        return [Punch(u, t, roster_store.utc_ms(at), s, v, ref=str(seq)) for u, t, at, s, v, seq in rows]


def _seqs(work_date: str) -> dict[str, int]:
    rows = DayFactIndex.select(DayFactIndex.key, DayFactIndex.seq).where(DayFactIndex.work_date == work_date)
    return {key: seq for key, seq in rows.order_by(DayFactIndex.seq).tuples()}
