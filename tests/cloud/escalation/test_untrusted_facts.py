"""A stolen Pi (issue #22, item 6): the escalation never rests a 旷工 case on records a thief could have signed.

``revoke-key --compromised-since`` stores the point from which the appliance's log is no longer evidence
(``cloud.evidence.revocation``). Day facts past it count no day and open no case; a case already counting them has
them superseded at the next tick and stops where nothing trusted is left, with a task for HR to check those days
by other means; a punch past it does not resolve a case as "employee back". Facts before the point still count.

Real SQLite and PostgreSQL, the appliance's real rules, real signed logs and the cloud's real ingest
(``plantfeed``), the real engine's tick and the real revocation, a frozen clock moved day by day.
"""

from __future__ import annotations

from datetime import date

import pytest

from cloud.escalation import cases
from cloud.escalation.models import AbsenceCase, AttendanceDay, CaseDay, CaseEntry, CaseStep, CaseTask
from cloud.escalation.sender import RecordingSender
from cloud.evidence import revocation
from cloud.store import open_db
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local, ms, new_engine

MON, TUE, WED, THU, FRI = (date(2025, 3, d) for d in (3, 4, 5, 6, 7))
UNTRUSTED = "密钥可能泄露后的记录，不作为证据"


@pytest.fixture
def db(cloud_db_url):
    database = open_db(cloud_db_url)
    cases._policies.clear()
    yield database
    database.close()


def plant(clock, sender: RecordingSender | None = None):  # type: ignore[no-untyped-def]
    clock.advance_to(local(MON, "06:00"))
    feed = PlantFeed(clock).start(welfare_check_day=0)
    feed.hire("2001")
    return feed, new_engine(clock, sender)


def revoke(feed: PlantFeed, since_seq: int) -> None:
    """``punchproof cloud revoke-key KID --compromised-since SEQ``, as the CLI calls it."""
    revocation.revoke(feed.key.kid, ms(feed.clock.now()), str(since_seq), "it-admin")


def recorded_without_tick(feed: PlantFeed, day: date) -> None:
    """The appliance (or the copy of its key) records the day's facts; the cloud stores them; no tick yet."""
    feed.clock.advance_to(local(day, "23:30"))
    feed.evaluate(day)


def days_of(case: AbsenceCase) -> dict[str, tuple[str, str]]:
    return {d.work_date: (d.status, d.superseded_by) for d in CaseDay.select().where(CaseDay.case == case)}


def test_absences_signed_after_the_compromise_point_open_no_case_and_count_no_day(db, clock):
    feed, engine = plant(clock)
    point = feed.seq
    recorded_without_tick(feed, MON)
    recorded_without_tick(feed, TUE)
    revoke(feed, point)
    engine.tick()
    stored = [(d.work_date, d.status) for d in AttendanceDay.select().order_by(AttendanceDay.work_date)]
    assert stored == [("2025-03-03", "missing"), ("2025-03-04", "missing")], "the facts are stored, not evidence"
    assert AbsenceCase.select().count() == 0, "no case opens on records a thief could have made"
    clock.advance_to(local(WED, "09:00"))
    engine.tick()
    assert AbsenceCase.select().count() == 0


def test_an_open_case_whose_days_become_untrusted_stops_and_hr_gets_the_task(db, clock):
    sender = RecordingSender()
    feed, engine = plant(clock, sender)
    point = feed.seq
    day_passes(feed, engine, MON)
    day_passes(feed, engine, TUE)
    case = AbsenceCase.get(AbsenceCase.user_id == "2001")
    assert (case.days, case.level) == (2, 2), case.state
    assert {s for s, _ in days_of(case).values()} == {"counted"}
    sent_before = list(sender.step_keys())

    revoke(feed, point)
    clock.advance_to(local(WED, "09:00"))
    engine.tick()
    case = AbsenceCase.get_by_id(case.id)
    assert days_of(case) == {
        "2025-03-03": ("superseded", UNTRUSTED),
        "2025-03-04": ("superseded", UNTRUSTED),
    }
    assert case.open_key is not None and case.resolution in ("", None), "unproven is not excused: the case waits"
    assert (case.days, case.consecutive) == (0, 0)
    task = CaseTask.get((CaseTask.case == case) & (CaseTask.kind == "untrusted_facts"))
    assert task.status == "open" and task.title_zh.startswith("核实设备密钥可能泄露期间的考勤")
    assert "2025-03-03" in task.title_zh and "2025-03-04" in task.title_zh
    (entry,) = CaseEntry.select().where((CaseEntry.case == case) & (CaseEntry.kind == "untrusted"))
    assert "不作为证据" in entry.text_zh and feed.name in entry.text_zh

    level = case.level
    for day in (THU, FRI, date(2025, 3, 10), date(2025, 3, 11)):  # days go by: nothing trusted moves the case on
        clock.advance_to(local(day, "09:00"))
        engine.tick()
    case = AbsenceCase.get_by_id(case.id)
    assert case.level == level and case.open_key is not None
    assert sender.step_keys() == sent_before, "nothing more goes out on untrusted days"
    assert not CaseStep.select().where((CaseStep.case == case) & CaseStep.status.in_(("due", "awaiting_approval")))
    assert CaseTask.select().where(CaseTask.case == case, CaseTask.kind == "untrusted_facts").count() == 1


def test_a_punch_past_the_compromise_point_does_not_resolve_the_case_as_returned(db, clock):
    feed, engine = plant(clock)
    day_passes(feed, engine, MON)
    day_passes(feed, engine, TUE)
    case = AbsenceCase.get(AbsenceCase.user_id == "2001")
    assert case.open_key is not None
    clock.advance_to(local(WED, "07:56"))
    point = feed.seq
    feed.punch("2001", local(WED, "07:55"))  # made with the copied key: the worker "is back"
    revoke(feed, point)
    engine.tick()
    case = AbsenceCase.get_by_id(case.id)
    assert case.open_key is not None and case.resolution != "returned", case.resolution
    assert {s for s, _ in days_of(case).values()} == {"counted"} and case.days == 2


def test_facts_before_the_point_still_count(db, clock):
    feed, engine = plant(clock)
    day_passes(feed, engine, MON)
    day_passes(feed, engine, TUE)
    point = feed.seq
    day_passes(feed, engine, WED)
    day_passes(feed, engine, THU)
    case = AbsenceCase.get(AbsenceCase.user_id == "2001")
    assert case.days == 4
    revoke(feed, point)
    clock.advance_to(local(FRI, "09:00"))
    engine.tick()
    case = AbsenceCase.get_by_id(case.id)
    assert days_of(case) == {
        "2025-03-03": ("counted", ""),
        "2025-03-04": ("counted", ""),
        "2025-03-05": ("superseded", UNTRUSTED),
        "2025-03-06": ("superseded", UNTRUSTED),
    }
    # the untrusted days end the run: the worker may have been back on them, so no run reaches past them
    assert (case.days, case.consecutive, case.open_key is not None) == (2, 0, True)
    task = CaseTask.get((CaseTask.case == case) & (CaseTask.kind == "untrusted_facts"))
    assert "2025-03-05" in task.title_zh and "2025-03-03" not in task.title_zh


def test_the_replacement_pi_s_records_count_and_the_case_goes_on_with_them(db, clock):
    feed, engine = plant(clock)
    point = feed.seq
    day_passes(feed, engine, MON)
    day_passes(feed, engine, TUE)
    case = AbsenceCase.get(AbsenceCase.user_id == "2001")
    revoke(feed, point)
    clock.advance_to(local(WED, "06:00"))
    engine.tick()
    assert AbsenceCase.get_by_id(case.id).days == 0
    spare = PlantFeed(clock, name="pi-02").start(welfare_check_day=0)  # operations.md: a new name, a new log
    spare.rosters = dict(feed.rosters)
    for day in (WED, THU):  # installed on Wednesday morning: it records from then on
        recorded_without_tick(spare, day)
        engine.tick()
    case = AbsenceCase.get_by_id(case.id)
    assert {d: s for d, (s, _) in days_of(case).items()} == {
        "2025-03-03": "superseded",
        "2025-03-04": "superseded",
        "2025-03-05": "counted",
        "2025-03-06": "counted",
    }
    assert (case.days, case.consecutive, case.open_key is not None) == (2, 2, True)
