"""Punches committed during a full pass reach the board before the pass ends (#25 item 1).

A full pass of a 5,000-worker plant takes seconds of a Pi's core and the evaluator runs one thread: a punch
committed at its start used to wait for its end, then for the pass over the new punchers. Now, before each
slice of a day, the pass catches up with the punches committed since it read them: their employees are
evaluated at once (the board's version moves), and one whose slice is to come has the punch in it.

The punches are committed from inside the pass, deterministically: the evaluator's per-slice step is wrapped,
and after the first slice of Monday a late worker of that slice and one of a later slice punch. Real SQLite, a
real signed log (or the daemon's queue to the log writer), a frozen clock; Monday 2 March 2026, Shanghai.
"""

from __future__ import annotations

import pytest

from appliance.attendance import evaluator as evaluator_module
from appliance.attendance import handoff
from appliance.attendance.evaluator import Evaluator
from appliance.clock import to_ms
from appliance.store import BoardRow, DayFactIndex, EvaluatorState
from tests.appliance.test_attendance_evaluator import punch_entry
from tests.appliance.test_evaluator_slices import TERMINALS, Plant, board, day_facts, emp, local, read_all
from tests.conftest import PLANT_TZ

WORKERS = 60  # every 6th does not punch (``workday``): emp(0), emp(6)... come late below
SLICE = 10
MONDAY = local(2, 0).astimezone(PLANT_TZ).date()
FIRST = emp(0)  # in Monday's first slice
LATER = emp(42)  # in its fifth
AFTER = emp(6)  # punches once the pass is over


def version() -> int:
    return EvaluatorState.get_by_id(1).board_version


def checked_in(employee: str) -> bool:
    row = BoardRow.get((BoardRow.work_date == MONDAY.isoformat()) & (BoardRow.employee == employee))
    return row.in_ms is not None


class DuringThePass:
    """Wraps the evaluator's per-slice step: after Monday's first slice, ``FIRST`` and ``LATER`` punch (what
    ``punches`` makes of them); before each later slice of Monday, what the board shows is recorded."""

    def __init__(self, plant: Plant, monkeypatch, punches) -> None:
        self.plant, self.punches = plant, punches
        self.seen: list[tuple[str | None, bool, bool, int]] = []  # (slice after, FIRST in, LATER in, version)
        self.committed = False
        step = Evaluator._pass_slice

        def wrapped(evaluator, master, day, *args, **kwargs):
            after = kwargs.get("span", (None, None))[0]
            full_slice = kwargs.get("employees", args[7] if len(args) > 7 else None) is None
            if full_slice and day == MONDAY and self.committed:
                self.seen.append((after, checked_in(FIRST), checked_in(LATER), version()))
            result = step(evaluator, master, day, *args, **kwargs)
            if full_slice and day == MONDAY and after is None:
                plant.writer.append([punch_entry(e, at, state) for e in (FIRST, LATER) for at, state in punches])
                self.committed = True
            return result

        monkeypatch.setattr(Evaluator, "_pass_slice", wrapped)


def test_a_punch_during_a_full_pass_is_on_the_board_after_one_slice(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluator_module, "DAY_SLICE", SLICE)
    plant = Plant(tmp_path / "appliance.sqlite3", workers=WORKERS, at=local(2, 8, 30))
    try:
        plant.first_pass()
        assert not checked_in(FIRST) and not checked_in(LATER)
        before = version()
        plant.clock.advance(minutes=1)
        hook = DuringThePass(plant, monkeypatch, [(local(2, 8, 28), 0)])
        plant.evaluator.run_once()
        assert hook.committed and len(hook.seen) == WORKERS // SLICE - 1, "every later slice of Monday recorded"
        after, first_in, later_in, moved = hook.seen[0]
        assert after == emp(SLICE - 1)
        assert first_in, "the punch of a worker whose slice was written is on the board before the next slice"
        assert moved > before, "and the board's version moved for the pages to fetch it"
        assert all(first for _a, first, _l, _v in hook.seen), "his row never goes back to not yet"
        # a later slice's worker too: his row is checked in at once, not when the pass reaches his slice, and his
        # slice (which has his punch) leaves it so
        assert all(later for _a, _f, later, _v in hook.seen), "a later slice's worker is on the board at once"
        assert checked_in(LATER)
    finally:
        plant.close()


def decisions() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, decision in (
        DayFactIndex.select(DayFactIndex.key, DayFactIndex.decision).order_by(DayFactIndex.seq).tuples()
    ):
        out.setdefault(key, []).append(decision)
    return out


@pytest.mark.parametrize("queue", [False, True], ids=["signed", "queued"])
def test_a_caught_up_pass_leaves_what_a_fresh_full_pass_gives(tmp_path, monkeypatch, queue):
    """Monday's facts are decided in the pass at 21:30, while Monday's morning punches of two absent workers
    are delivered late: the board and the facts are those of a full pass over every punch, no fact decided
    twice or missing, and the pass over new punchers has nothing left to do, but still finds a later punch."""
    monkeypatch.setattr(evaluator_module, "DAY_SLICE", SLICE)
    plant = Plant(tmp_path / "appliance.sqlite3", workers=WORKERS, at=local(2, 20, 0), queue=queue)
    try:
        plant.first_pass()  # Monday open until 21:00
        handoff.drain(plant.writer, to_ms(plant.clock.now()))
        plant.clock.advance_to(local(2, 21, 30))
        read_all(plant.clock.now())
        hook = DuringThePass(plant, monkeypatch, [(local(2, 8, 2), 0), (local(2, 17, 5), 1)])
        plant.evaluator.run_once()
        handoff.drain(plant.writer, to_ms(plant.clock.now()))
        assert hook.committed and hook.seen[0][1], "caught up after the first slice"
        monkeypatch.undo()  # the plain step from now on
        rows, facts, known = board(), day_facts(), decisions()

        fresh = Evaluator(plant.writer, PLANT_TZ, TERMINALS, plant.clock)
        at = version()
        report = fresh.run_once()
        assert report.facts == (), "a fresh full pass over the same punches decides nothing new"
        assert board() == rows and version() == at, "and changes no board row"
        assert day_facts() == facts
        monday = {k: d for k, d in known.items() if f"/{MONDAY.isoformat()}/" in k}
        assert len(monday) == WORKERS, "every worker's Monday decided"
        assert all(a != b for d in known.values() for a, b in zip(d, d[1:], strict=False)), "no decision twice"
        # his slice decided his absence; the catch-up, his late punch: signed at once, the absence is superseded;
        # queued, the newer decision replaced it before the log writer signed it
        assert len(monday[f"{FIRST}/{MONDAY.isoformat()}/D"]) == (1 if queue else 2)
        assert len(monday[f"{LATER}/{MONDAY.isoformat()}/D"]) == 1, "his slice had his punches"
        for employee in (FIRST, LATER):
            assert '"missing"' not in monday[f"{employee}/{MONDAY.isoformat()}/D"][-1]
            assert checked_in(employee)

        assert plant.evaluator.run_new_punches().employees == 0, "the pass evaluated every punch it caught"
        plant.writer.append([punch_entry(AFTER, local(2, 8, 3), 0), punch_entry(AFTER, local(2, 17, 4), 1)])
        assert plant.evaluator.run_new_punches().employees == 1, "a punch after the pass is the next one's"
        handoff.drain(plant.writer, to_ms(plant.clock.now()))
        assert checked_in(AFTER) and '"missing"' not in decisions()[f"{AFTER}/{MONDAY.isoformat()}/D"][-1]
    finally:
        plant.close()
