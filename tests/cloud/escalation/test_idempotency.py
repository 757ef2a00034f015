"""A tick run twice, or two runners at once (threads with their own connections, on PostgreSQL and
SQLite), sends nothing twice and opens one case per spell."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date, timedelta

import pytest

from cloud.escalation.models import AbsenceCase, CaseStep
from cloud.escalation.sender import PlannedStep, RecordingSender
from cloud.store import open_db
from tests.cloud.escalation.plantfeed import PlantFeed, local, new_engine

WORKERS = 12


class LockedSender(RecordingSender):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def send(self, step: PlannedStep) -> None:
        with self._lock:
            self.sent.append(step)


def _both_tick(engines, exclusive: bool) -> None:
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def run(engine) -> None:
        try:
            barrier.wait()
            engine.tick(exclusive=exclusive)
        except BaseException as err:  # noqa: BLE001 - surfaced below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.parametrize("exclusive", [True, False], ids=["runner-lock", "row-guards-only"])
def test_two_runners_at_once_send_each_step_once(cloud_db_url, clock, exclusive):
    db = open_db(cloud_db_url)
    from cloud.escalation import cases

    cases._policies.clear()
    try:
        sender = LockedSender()
        feed = PlantFeed(clock).start()
        for n in range(WORKERS):
            feed.hire(f"30{n:02d}")
        engines = [new_engine(clock, sender, runner_id=f"r{i}") for i in range(2)]
        mon = date(2025, 3, 3)
        clock.advance_to(local(mon, "06:00"))
        for offset in range(4):
            day = mon + timedelta(days=offset)
            clock.advance_to(local(day, "23:30"))
            feed.evaluate(day)
            _both_tick(engines, exclusive)
            clock.advance(hours=9)
            _both_tick(engines, exclusive)
            _both_tick(engines, exclusive)  # and once more: a tick run twice
        assert AbsenceCase.select().count() == WORKERS
        sent = Counter(s.step_id for s in sender.sent)
        assert sent and max(sent.values()) == 1
        per_case = Counter((s.case_id, s.key) for s in sender.sent)
        assert max(per_case.values()) == 1
        assert CaseStep.select().where(CaseStep.status == "sent").count() == len(sender.sent)
        assert {s.key for s in sender.sent} >= {"L1", "L2", "L3", "L3:welfare"}
    finally:
        db.close()
