"""A full pass evaluates a day in slices of employees (#25 item 1: the evaluator's peak at the shift change).

The evaluator used to evaluate all of a day's rosters at once: 5,000 ``Evaluation``s (segments, punches, reasons),
the facts due and the board rows alive together, some 19 MB above its resting size at the first pass of the day.
Now a full pass holds one slice's at a time (``evaluator.DAY_SLICE`` employees), and must give exactly what the
whole day at once gave: the same board rows, the same day facts (new, superseding, withdrawn), the rows of removed
employees deleted. Real SQLite, a real signed log, a frozen clock; Monday 2 and Tuesday 3 March 2026, Shanghai.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from appliance.attendance import evaluator as evaluator_module
from appliance.attendance import handoff
from appliance.attendance.evaluator import Evaluator
from appliance.capture.punchlog import LogWriter
from appliance.clock import to_ms
from appliance.roster import importer as roster_import
from appliance.store import (
    BoardRow,
    DayFactIndex,
    EvalHandoff,
    EvaluatorState,
    LogRecord,
    TerminalHealth,
    open_db,
)
from ledger import SigningKey, parse
from tests.appliance.test_attendance_evaluator import punch_entry
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock

LOG = "punchproof/test/pi-01/1"
TERMINALS = ("gate-1", "gate-2")
WORKERS = 2_300  # odd, not a multiple of any slice used here
SMALL_SLICE = 170


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=PLANT_TZ).astimezone(UTC)


def emp(n: int) -> str:
    return f"{1000 + n}"


SHIFT_DEFAULTS = {"late_grace_min": 5, "early_grace_min": 0, "checkin_before_min": 120, "checkout_after_min": 240}


def master_rows(workers: int, *, moved: frozenset[int] = frozenset(), removed: frozenset[int] = frozenset()) -> dict:
    """``workers`` on the weekday day shift D 08:00-17:00; ``moved`` on shift E 09:00-18:00 instead, ``removed``
    no longer active."""
    return {
        "shifts": [
            {"id": "D", "name": "白班", "spans": "08:00-17:00", "terminals": "", **SHIFT_DEFAULTS},
            {"id": "E", "name": "中班", "spans": "09:00-18:00", "terminals": "", **SHIFT_DEFAULTS},
        ],
        "rosters": [
            {"id": r, "kind": "weekly", "pattern": p, "anchor": "", "holidays": "observe", "makeup_weekday": 0}
            for r, p in (("wk", "D,D,D,D,D,-,-"), ("wke", "E,E,E,E,E,-,-"))
        ],
        "employees": [
            {
                "user_id": emp(n),
                "name": f"工人{n}",
                "line": f"{n % 7 + 1}线",
                "department": "",
                "roster": "wke" if n in moved else "wk",
                "valid_from": "",
                "valid_to": "",
                "active": n not in removed,
            }
            for n in range(workers)
        ],
    }


def workday(writer: LogWriter, day: int, workers: int, skip: int) -> None:
    """Most workers punch in and out on ``day`` (some late, some leaving early); every ``skip``-th does not."""
    entries = []
    for n in range(workers):
        if n % skip == 0:
            continue
        late = 17 if n % 5 == 0 else 0
        entries.append(punch_entry(emp(n), local(day, 7, 50) + timedelta(minutes=late + n % 9), 0))
        entries.append(punch_entry(emp(n), local(day, 17, 3) - timedelta(minutes=40 * (n % 11 == 0)), 1))
    for start in range(0, len(entries), 1000):
        writer.append(entries[start : start + 1000])


def read_all(at: datetime) -> None:
    for name in TERMINALS:
        fields = {"serial": name.upper(), "available": True, "last_contact_ms": to_ms(at), "clock_offset_ms": 0}
        TerminalHealth.insert(name=name, **fields).on_conflict(
            conflict_target=[TerminalHealth.name], update={getattr(TerminalHealth, k): v for k, v in fields.items()}
        ).execute()


MOVED = frozenset(n for n in range(WORKERS) if n % 97 == 41)  # on E from now on: Monday's D fact is withdrawn
REMOVED = frozenset(n for n in range(WORKERS) if n % 89 == 17)  # left the plant: their board rows go


class Plant:
    """A plant on its own SQLite file: Monday decided (whole day at once), then a roster change, a late
    delivered punch, Tuesday's punches; ``second_pass`` is the pass compared."""

    def __init__(self, path: Path, workers: int = WORKERS, at: datetime | None = None, queue: bool = False) -> None:
        self.db = open_db(path)
        self.clock = FrozenClock(at or local(2, 21, 30))
        self.writer = LogWriter(self.db, SigningKey.generate(), LOG, self.clock, "boot-1")
        self.writer.start()
        self.workers = workers
        roster_import.store(master_rows(workers), PLANT_TZ, to_ms(self.clock.now()), source="test")
        for name in TERMINALS:
            TerminalHealth.insert(name=name, first_read_ms=to_ms(self.clock.now() - timedelta(days=30))).execute()
        workday(self.writer, 2, workers, skip=6)
        read_all(self.clock.now())
        # ``queue``: the facts queued for the log writer, as the daemon's evaluator process does, not signed here
        out = handoff.Outbox(self.clock) if queue else self.writer
        self.evaluator = Evaluator(out, PLANT_TZ, TERMINALS, self.clock)

    def first_pass(self) -> None:
        self.evaluator.run_once()  # Monday (and Sunday) confirmed: their facts appended

    def changes(self, moved=MOVED, removed=REMOVED) -> None:
        self.clock.advance_to(local(3, 21, 30))
        roster_import.store(
            master_rows(self.workers, moved=moved, removed=removed), PLANT_TZ, to_ms(self.clock.now()), source="test"
        )
        # a punch of Monday's, delivered late, for a worker who had none: his missed day becomes late
        self.writer.append([punch_entry(emp(6 * 13), local(2, 8, 20), 0, "gate-2")])
        workday(self.writer, 3, self.workers, skip=4)
        read_all(self.clock.now())

    def second_pass(self):
        return self.evaluator.run_once()

    def close(self) -> None:
        self.db.close()


def board() -> list[tuple]:
    """Every board row, its fact named by key and id rather than by seq (the order facts are appended in may
    differ between a whole day and slices when a withdrawal comes between), without the board version that wrote it
    (a whole day is one write, slices several)."""
    facts = {
        seq: (key, fid)
        for seq, key, fid in DayFactIndex.select(DayFactIndex.seq, DayFactIndex.key, DayFactIndex.fact_id).tuples()
    }
    columns = [c for c in BoardRow._meta.sorted_field_names if c not in ("fact_seq", "changed")]
    rows = BoardRow.select().order_by(BoardRow.work_date, BoardRow.employee, BoardRow.shift)
    return [(*(getattr(r, c) for c in columns), facts.get(r.fact_seq)) for r in rows]


def day_facts() -> list[str]:
    rows = LogRecord.select().where(LogRecord.type == "dayfact")
    return sorted(json.dumps(parse(bytes(r.data))["fact"], sort_keys=True, ensure_ascii=False) for r in rows)


def outcome(tmp_path: Path, name: str, slice_size: int, monkeypatch) -> tuple[list[tuple], list[str], int, int]:
    plant = Plant(tmp_path / f"{name}.sqlite3")
    try:
        plant.first_pass()
        plant.changes()
        monkeypatch.setattr(evaluator_module, "DAY_SLICE", slice_size)
        before = EvaluatorState.get_by_id(1).board_version
        report = plant.second_pass()
        version = EvaluatorState.get_by_id(1).board_version - before
        again = plant.second_pass()  # nothing changed since: no fact, no change of the board
        assert again.facts == () and EvaluatorState.get_by_id(1).board_version - before == version
        return board(), day_facts(), len(report.facts), report.evaluations
    finally:
        plant.close()


def test_a_sliced_full_pass_gives_the_board_and_the_facts_of_the_whole_day(tmp_path, monkeypatch):
    whole = outcome(tmp_path, "whole", 10 * WORKERS, monkeypatch)
    sliced = outcome(tmp_path, "sliced", SMALL_SLICE, monkeypatch)
    rows, facts, appended, evaluated = whole
    assert evaluated == 2 * (WORKERS - len(REMOVED)), "Monday and Tuesday of every active worker"
    gone = {emp(n) for n in REMOVED}
    assert not [r for r in rows if r[1] in gone and r[0] != "2026-03-01"], "removed workers: Monday's rows deleted"
    withdrawn = [f for f in facts if '"status": "not_scheduled"' in f and '"shift": "D"' in f]
    assert len(withdrawn) == len(MOVED), "the whole day withdraws each moved worker's D fact"
    # Tuesday's D shifts (E is confirmed from 22:00); Monday's withdrawn D and new E, and the late punch's change
    assert appended == WORKERS - len(REMOVED) - len(MOVED) + 2 * len(MOVED) + 1
    assert sliced[1] == facts, "the same day facts in the log"
    assert sliced[2] == appended
    assert sliced[0] == rows, "the same board rows"
    assert sliced[3] == evaluated


def test_a_fact_for_a_shift_the_day_no_longer_has_is_withdrawn_in_a_later_slice(tmp_path, monkeypatch):
    late = 5 * SMALL_SLICE + 3  # far from the first slice
    plant = Plant(tmp_path / "appliance.sqlite3", workers=8 * SMALL_SLICE + 1)
    try:
        plant.first_pass()
        day_d = f"{emp(late)}/2026-03-02/D"
        old = DayFactIndex.get(DayFactIndex.key == day_d)
        plant.changes(moved=frozenset({late}), removed=frozenset())
        monkeypatch.setattr(evaluator_module, "DAY_SLICE", SMALL_SLICE)
        plant.second_pass()
        last = DayFactIndex.select().where(DayFactIndex.key == day_d).order_by(DayFactIndex.seq.desc()).get()
        fact = parse(bytes(LogRecord.get_by_id(last.seq).data))["fact"]
        assert last.seq > old.seq and fact["status"] == "not_scheduled" and fact["supersedes"] == old.fact_id
        assert "已不在当日排班中" in fact["reason_zh"]
        assert DayFactIndex.select().where(DayFactIndex.key == f"{emp(late)}/2026-03-02/E").exists()
        assert not BoardRow.select().where((BoardRow.employee == emp(late)) & (BoardRow.shift == "D")).exists()
    finally:
        plant.close()


def test_a_removed_workers_rows_are_deleted_by_a_sliced_full_pass(tmp_path, monkeypatch):
    plant = Plant(tmp_path / "appliance.sqlite3", workers=3 * SMALL_SLICE + 7)
    gone = {emp(1), emp(SMALL_SLICE + 5), emp(3 * SMALL_SLICE + 6)}  # in the first, a middle and the last slice
    try:
        plant.first_pass()
        assert BoardRow.select().where(BoardRow.employee.in_(list(gone))).count() == 3 * 2  # Sunday and Monday
        plant.changes(moved=frozenset(), removed=frozenset({1, SMALL_SLICE + 5, 3 * SMALL_SLICE + 6}))
        monkeypatch.setattr(evaluator_module, "DAY_SLICE", SMALL_SLICE)
        plant.second_pass()
        left = BoardRow.select(BoardRow.employee, BoardRow.work_date).where(BoardRow.employee.in_(list(gone)))
        assert sorted(left.tuples()) == sorted((e, "2026-03-01") for e in gone), (
            "Monday's rows are gone, Sunday not evaluated"
        )
    finally:
        plant.close()


MEMORY_WORKERS = 2_000


def test_a_full_pass_holds_a_slice_of_the_day_not_the_whole_day(tmp_path):
    """The first pass of the day over ``MEMORY_WORKERS`` workers, Monday's facts all due: its peak above what it
    starts with, its facts queued for the log writer as in the daemon's evaluator process. The whole day at once
    peaked at 7.5 MB here (18.7 MB at 5,000 workers); slices of 500, at 3.3 MB (6.4 MB at 5,000: the day's
    punches and the master data are most of it)."""
    plant = Plant(tmp_path / "appliance.sqlite3", workers=MEMORY_WORKERS, at=local(2, 20, 0), queue=True)
    try:
        plant.evaluator.run_once()  # 20:00: Monday still open (confirmed from 21:00); the statements and caches once
        handoff.drain(plant.writer, to_ms(plant.clock.now()))  # the log writer signs Sunday's rest days
        plant.clock.advance_to(local(2, 21, 30))
        read_all(plant.clock.now())
        tracemalloc.start()
        try:
            started = time.perf_counter()
            report = plant.evaluator.run_once()
            took = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert report.evaluations == MEMORY_WORKERS
        assert EvalHandoff.select().count() == MEMORY_WORKERS, "Monday's facts decided in this pass, queued"
        print(f"\nfull pass of {MEMORY_WORKERS} workers: peak {peak / 2**20:.2f} MB, {took:.2f} s under tracemalloc")
        assert peak < 4.5 * 2**20, f"{peak / 2**20:.1f} MB at the peak of a full pass over {MEMORY_WORKERS} workers"
    finally:
        plant.close()
