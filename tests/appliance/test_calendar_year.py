"""A year nobody has published yet (issue #19, item 10): the evaluator on a real SQLite file, a real
signed log and a frozen clock, on Friday 1 January 2027.

``chinesecalendar`` 1.11.0 ends with 2026. Before this, a missed shift on any day of 2027 was held
for ever: never confirmed, so no fact was signed, the cloud opened no case, and nothing said why.
Now the day is judged by the provisional calendar (the roster's own week, no holidays), confirmed,
and flagged on the board and in the fact; when head office publishes 2027 and its configuration
arrives, the days already judged are evaluated again and their facts superseded.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from appliance.attendance import Evaluator
from appliance.capture.punchlog import LogWriter
from appliance.clock import to_ms
from appliance.roster import store as roster_store
from appliance.rules import DayKind, fact_id
from appliance.store import BoardRow, CalendarFile
from appliance.sync import config_apply
from ledger.config_message import ConfigDocument
from tests.appliance.test_attendance_evaluator import LOG, TERMINALS, day_facts, punch, read_all, recording_since
from tests.appliance.test_attendance_evaluator import store_master as weekday_roster
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock

NEW_YEAR = "2027-01-01"  # a Friday; 元旦 once the State Council says so
GOV_2027 = """
[holidays]
2027-01-01 = "元旦"
2027-02-08 = "春节"

[workdays]
2027-02-20 = "春节调休"
"""


def local(day: int, hour: int, minute: int = 0, month: int = 1) -> datetime:
    return datetime(2027, month, day, hour, minute, tzinfo=PLANT_TZ).astimezone(UTC)


@pytest.fixture
def clock():
    return FrozenClock(local(1, 7, 0))


@pytest.fixture
def evaluator(db, key, clock):
    holder: dict[str, Evaluator] = {}
    writer = LogWriter(db, key, LOG, clock, "boot-1", on_commit=lambda seq: holder["ev"].wake(seq) if holder else None)
    writer.start()
    holder["ev"] = Evaluator(writer, PLANT_TZ, TERMINALS, clock)
    holder["ev"].writer = writer
    weekday_roster(clock)  # 1001 and 1002, shift D 08:00-17:00 Monday to Friday, holidays observed
    recording_since(clock.now() - timedelta(days=30))
    return holder["ev"]


def board(employee: str, day: str = NEW_YEAR) -> tuple[str, str, str]:
    row = BoardRow.get((BoardRow.work_date == day) & (BoardRow.employee == employee))
    return row.status, row.tier, row.reason_zh


def head_office_document(text: str, version: int = 1) -> ConfigDocument:
    sections = {"calendar": {"text": f'version = "head-office-2027v1"\ncomplete_years = [2027]\n{text}'}}
    return ConfigDocument.build("e2e-plant", "pi-01", version, to_ms(local(2, 9)), "hr-wang", sections)


def test_a_missed_shift_in_an_unpublished_year_is_confirmed_on_the_provisional_calendar_and_flagged(evaluator, clock):
    punch(evaluator.writer, "1001", local(1, 7, 58))
    punch(evaluator.writer, "1001", local(1, 17, 2))
    clock.advance(hours=15)  # 22:00, past the confirmation moment (17:00 + 4 h)
    read_all(clock.now())
    evaluator.run_once()

    status, tier, reason = board("1002")
    assert (status, tier) == ("missing", "confirmed"), f"held for ever before: {status} {tier} {reason}"
    assert "临时日历（2027 年节假日安排尚未发布）" in reason
    facts = {f["emp"]: f for f in day_facts(NEW_YEAR)}
    assert set(facts) == {"1001", "1002"}, "a signed fact for each, so the cloud sees the absence"
    absent, present = facts["1002"], facts["1001"]
    assert (absent["status"], absent["tier"], absent["cal_provisional"]) == ("missing", "confirmed", 1)
    assert "Provisional calendar (2027 public holidays not yet published)" in absent["reason_en"]
    assert (present["status"], present["cal_provisional"]) == ("present", 1)


def test_the_year_published_by_head_office_supersedes_the_provisional_facts(evaluator, clock):
    for hours in (15, 72):  # Friday 1 and Monday 4 January, 22:00: judged on the provisional calendar
        clock.advance(hours=hours)
        read_all(clock.now())
        evaluator.run_once()
    monday = {f["emp"]: f for f in day_facts("2027-01-04")}
    assert (monday["1002"]["status"], monday["1002"]["cal_provisional"]) == ("missing", 1)
    assert {f["emp"]: f["status"] for f in day_facts(NEW_YEAR)} == {"1001": "missing", "1002": "missing"}

    # the plant's own file (厂休 on Tuesday 5 January) was imported on the Pi before; it keeps working
    CalendarFile.replace(id=1, text='version = "plant"\n[holidays]\n2027-01-05 = "厂休"\n', source="import").execute()
    clock.advance(hours=1)  # head office's configuration arrives
    report = config_apply.apply(head_office_document(GOV_2027), PLANT_TZ, TERMINALS, to_ms(clock.now()))
    assert {NEW_YEAR, "2027-01-04"} <= set(report.reevaluate), "the days already judged are evaluated again"
    assert CalendarFile.get_by_id(roster_store.CALENDAR_HEAD_OFFICE_ROW).source == "cloud:v1"
    assert CalendarFile.get_by_id(roster_store.CALENDAR_PLANT_ROW).source == "import", "the plant's file is kept"
    read_all(clock.now())
    evaluator.run_once()

    # Monday is a working day: the absence stands, no longer provisional (a fact superseding the first)
    final = [f for f in day_facts("2027-01-04") if f["emp"] == "1002"]
    assert [(f["status"], f["cal_provisional"]) for f in final] == [("missing", 1), ("missing", 0)]
    assert final[1]["supersedes"] == fact_id(final[0])
    assert final[1]["cal_v"] == "chinesecalendar-1.11.0+head-office-2027v1+plant"
    assert "临时日历" not in board("1002", "2027-01-04")[2]
    # 1 January is 元旦: the board says so, and a fact for the day says holiday
    assert board("1002")[:2] == ("holiday", "confirmed")
    assert [f["status"] for f in day_facts(NEW_YEAR) if f["emp"] == "1002" and f["shift"] == ""] == ["holiday"]

    problems: list[str] = []
    calendar = roster_store.plant_calendar(problems)
    assert problems == []
    assert calendar.day(date(2027, 1, 5)).kind is DayKind.HOLIDAY  # the plant's 厂休
    assert calendar.day(date(2027, 2, 20)).kind is DayKind.MAKEUP  # head office's 调休 Saturday
    assert 2027 in calendar.covered_years and 2028 not in calendar.covered_years


def test_the_same_calendar_again_evaluates_nothing_again(evaluator, clock):
    now = to_ms(clock.now())
    config_apply.apply(head_office_document(GOV_2027), PLANT_TZ, TERMINALS, now)
    again = config_apply.apply(head_office_document(GOV_2027, version=2), PLANT_TZ, TERMINALS, now + 1000)
    assert again.reevaluate == ()
