"""The plant's word reaches the head-office case (issue #20.4): an ``action`` record signed into the appliance's log
("已在产线看到", "考勤机故障", "已让其回家"), stored by the cloud's real ingest, is filed by the escalation runner's
tick on the open case that counts that day — with the plant's user as the actor, once however often it is read —
and does what docs/escalation.md says: "seen on the line" and "terminal fault" pause the automatic steps and put a
task before HR; "sent home" is shown. An action recorded before its day was confirmed absent waits for the case."""

from __future__ import annotations

import re
from datetime import date

import pytest
from werkzeug.security import generate_password_hash

from cloud.config import CloudSettings
from cloud.escalation import cases, plant_actions, timeline
from cloud.escalation.models import AbsenceCase, ActionCursor, CaseTask, PlantAction
from cloud.escalation.sender import RecordingSender
from cloud.store import Account, database, open_db
from cloud.web import create_app
from cloud.workers.escalate import EscalationService
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local, ms, new_engine

PASSWORD = "a long enough password"
MONDAY = date(2025, 3, 3)


@pytest.fixture
def site(tmp_path, clock):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/cloud.sqlite3"
    open_db(url)
    cases._policies.clear()
    Account.create(username="staff", password_hash=generate_password_hash(PASSWORD), role="hr_staff", created_ms=0)
    app = create_app(CloudSettings(database_url=url, state_dir=str(tmp_path)))
    app.config["CLOCK"] = clock
    yield app
    if not database.is_closed():
        database.close()


def _act(feed: PlantFeed, act: str, day: date, reason: str, *, user: str = "wang", role: str = "line_leader") -> None:
    """What the appliance's daemon signs for a request made on the plant's pages (appliance.attendance.actions)."""
    feed._append(
        "action",
        act=act,
        emp="1001",
        date=day.isoformat(),
        shift="D",
        reason=reason,
        user=user,
        role=role,
        req_id=feed.seq,
        req_ms=ms(feed.clock.now()),
    )


def _signed_in(app):  # type: ignore[no-untyped-def]
    browser = app.test_client()
    page = browser.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    browser.post("/login", data={"csrf": token.group(1), "username": "staff", "password": PASSWORD})
    return browser


def test_seen_on_the_line_is_filed_once_pauses_the_case_and_is_on_its_page(site, clock):
    feed = PlantFeed(clock).start()
    feed.hire("1001")
    engine = new_engine(clock, RecordingSender())
    service = EscalationService(engine, clock)
    clock.advance_to(local(MONDAY, "10:30"))
    _act(feed, "seen_on_line", MONDAY, "九点在二号线看到他，忘带工卡")  # before the day is confirmed: no case yet
    service.tick()
    assert PlantAction.get().filed_ms is None
    day_passes(feed, engine, MONDAY)  # no punch: the day is confirmed missing, the case opens
    case = AbsenceCase.get()
    assert case.acked_until_ms is None
    service.tick()
    service.tick()  # the next tick finds nothing new
    ActionCursor.update(seq=-1).execute()  # the records read again: nothing filed twice
    service.tick()
    assert plant_actions.file(PlantAction.get(), case.id, now_ms=ms(clock.now())) is False  # a second runner
    case = AbsenceCase.get_by_id(case.id)
    kinds = timeline.kinds(case)
    assert kinds.count("plant_action") == 1 and kinds.count("ack") == 1
    (entry,) = [i for i in timeline.items(case) if i.kind == "plant_action"]
    assert entry.actor.startswith("wang（线长") and entry.data["act"] == "seen_on_line"
    assert "已在产线看到" in entry.text_zh and "九点在二号线看到他" in entry.text_zh
    assert case.acked_until_ms is not None and case.contacted and case.ack_reason == "contacted"
    assert CaseTask.get((CaseTask.case == case) & (CaseTask.kind == "review_plant_seen")).status == "open"
    assert timeline.verify(case) == []
    page = _signed_in(site).get(f"/cases/{case.id}").get_data(as_text=True)
    assert "核实工厂“已在产线看到”的记录" in page  # HR's task
    section = page[page.index('id="plant-actions"') :]
    row = re.search(r'<tr class="plant-action" data-act="seen_on_line" data-day="2025-03-03">(.*?)</tr>', section, re.S)
    assert row and "2025-03-03 10:30" in row.group(1) and "wang（线长" in row.group(1)
    assert "九点在二号线看到他" in row.group(1) and "自动外发暂停" in row.group(1)


def test_a_terminal_fault_pauses_and_asks_hr_and_sent_home_is_only_shown(site, clock):
    feed = PlantFeed(clock).start()
    feed.hire("1001")
    engine = new_engine(clock, RecordingSender())
    service = EscalationService(engine, clock)
    clock.advance_to(local(MONDAY, "06:00"))
    day_passes(feed, engine, MONDAY)
    case = AbsenceCase.get()
    _act(feed, "sent_home", MONDAY, "身体不适，让其回家", role="plant_manager", user="li")
    _act(feed, "sent_home", date(2025, 2, 28), "not a day of the case")
    service.tick()
    case = AbsenceCase.get_by_id(case.id)
    assert timeline.kinds(case).count("plant_action") == 1 and case.acked_until_ms is None
    assert PlantAction.select().where(PlantAction.filed_ms.is_null()).count() == 1  # the other day: no case counts it
    _act(feed, "terminal_fault", MONDAY, "二号机上午黑屏")
    service.tick()
    case = AbsenceCase.get_by_id(case.id)
    assert case.ack_reason == "device_fault" and not case.contacted
    assert CaseTask.get((CaseTask.case == case) & (CaseTask.kind == "review_terminal_fault")).status == "open"
    page = _signed_in(site).get(f"/cases/{case.id}").get_data(as_text=True)
    assert "已让其回家" in page and "考勤机故障" in page
