"""On PostgreSQL a case the tick opens is written once, at the group's flush, as it stands after counting
(it was inserted when opened and written again whole at the flush: the morning's largest write); and a case
another runner opens meanwhile still leaves one case per spell, the group counted again the way it was before."""

from __future__ import annotations

import threading
from datetime import date

import peewee as pw
import pytest

from cloud.escalation import bulk, cases, counting
from cloud.escalation.models import AbsenceCase, CaseEntry, CaseStep
from cloud.escalation.sender import RecordingSender
from cloud.store import open_db
from tests.cloud.escalation.plantfeed import PlantFeed, local, new_engine

WORKERS = 5
MON = date(2025, 3, 3)


def _absent_morning(clock) -> PlantFeed:
    feed = PlantFeed(clock).start()
    for n in range(WORKERS):
        feed.hire(f"40{n:02d}")
    clock.advance_to(local(MON, "23:30"))
    feed.evaluate(MON)
    return feed


def test_each_opened_case_is_written_once(postgres_url, clock, monkeypatch):
    db = open_db(postgres_url)
    cases._policies.clear()
    writes: list[str] = []
    execute = bulk.execute

    def recording(text, params=()):
        if "absence_case" in text and not text.lstrip().upper().startswith("SELECT"):
            writes.append(text.split("(")[0].strip())
        return execute(text, params)

    try:
        _absent_morning(clock)
        monkeypatch.setattr(bulk, "execute", recording)
        new_engine(clock, RecordingSender()).tick()
        assert AbsenceCase.select().where(AbsenceCase.open_key.is_null(False)).count() == WORKERS
        assert writes == ['INSERT INTO "absence_case"'], writes
    finally:
        db.close()


def test_a_case_opened_meanwhile_by_another_runner_is_the_one_case(postgres_url, clock, monkeypatch):
    db = open_db(postgres_url)
    cases._policies.clear()
    theirs: list[int] = []
    opened = counting._open_all

    calls: list[bool] = []

    def another_runner_opens_the_first(*args, **kwargs):
        calls.append(kwargs.get("deferred", False))
        new, retry = opened(*args, **kwargs)
        if new and not theirs:  # another runner, on its own connection, opens the first case and commits
            row = {k: v for k, v in bulk.row_of(new[0][0]).items() if k != "id"}
            done = threading.Thread(target=lambda: theirs.append(AbsenceCase.insert(**row).execute()))
            done.start()
            done.join(timeout=20)
            assert theirs, "the other runner's insert waited on ours"
        return new, retry

    try:
        _absent_morning(clock)
        monkeypatch.setattr(counting, "_open_all", another_runner_opens_the_first)
        new_engine(clock, RecordingSender()).tick()
        assert calls[:2] == [True, False], calls  # refused at the flush: the group counted again as before
        open_cases = list(AbsenceCase.select().where(AbsenceCase.open_key.is_null(False)))
        assert len(open_cases) == WORKERS and len({c.employee_id for c in open_cases}) == WORKERS
        assert theirs[0] in {c.id for c in open_cases}
        for case in open_cases:  # every case counted, its timeline and first reminder written
            assert case.days >= 1, case.id
            assert CaseStep.select().where(CaseStep.case == case.id).count() >= 1, case.id
        ours = [c.id for c in open_cases if c.id != theirs[0]]
        assert CaseEntry.select().where(CaseEntry.case.in_(ours) & (CaseEntry.kind == "opened")).count() == len(ours)
    finally:
        db.close()


def test_rows_copied_in_are_read_back_and_a_duplicate_is_peewees_integrity_error(postgres_url, clock):
    db = open_db(postgres_url)
    cases._policies.clear()
    try:
        _absent_morning(clock)
        new_engine(clock, RecordingSender()).tick()
        entry = CaseEntry.select().order_by(CaseEntry.id.desc()).dicts().get()
        copy = {**{k: v for k, v in entry.items() if k != "id"}, "seq": entry["seq"] + 100, "text_zh": "制表\t换行\n"}
        with db.atomic():
            assert bulk.insert(CaseEntry, [copy]) == []
        back = CaseEntry.select().where((CaseEntry.case == entry["case"]) & (CaseEntry.seq == copy["seq"])).dicts()
        assert [{k: v for k, v in r.items() if k != "id"} for r in back] == [copy]
        with pytest.raises(pw.IntegrityError), db.atomic():
            bulk.insert(CaseEntry, [copy])
    finally:
        db.close()
