"""Missed check-in alerts on the appliance (#20.1): the evaluator's pass at start + grace raises one signed ``alert``
record per shift and line listing who has not punched, once, and none when nobody is missing; the board shows it at
once with its state and takes the answers (real SQLite, real signed log, a frozen clock, the real Flask app).

Monday 2 March 2026 in Shanghai, shift D 08:00-17:00 with 5 minutes' grace (tests.appliance.test_attendance_evaluator):
1001 张三 on 一线, 1002 李四 on 二线; 1003 王五 joins 二线 here."""

from __future__ import annotations

import re

from appliance.attendance import alerts
from appliance.store import ActionRequest, Employee, LogRecord, SyncState
from ledger import parse
from tests.appliance import test_attendance_evaluator as plant_day
from tests.appliance.test_attendance_evaluator import local, punch, read_all

# the evaluator's fixtures: a frozen Monday, a real signed log, two workers on shift D (08:00, 5 minutes' grace)
clock, writer, evaluator, master = plant_day.clock, plant_day.writer, plant_day.evaluator, plant_day.master


def alert_records() -> list[dict]:
    return [parse(bytes(r.data)) for r in LogRecord.select().where(LogRecord.type == "alert").order_by(LogRecord.seq)]


def test_one_alert_per_shift_and_line_at_start_plus_grace_listing_only_who_has_not_punched(evaluator, writer, clock):
    Employee.insert(user_id="1003", name="王五", line="二线", roster="wk", active=True).execute()
    punch(writer, "1001", local(2, 7, 58))
    clock.advance(minutes=64)  # 08:04: the shift began, the grace has not passed
    read_all(clock.now())
    evaluator.run_once()
    assert alert_records() == [], "nobody is overdue before start + grace"
    clock.advance(minutes=1, seconds=1)  # 08:05:01
    read_all(clock.now())
    evaluator.run_once()
    records = alert_records()
    assert len(records) == 1, "one alert for 二线; 一线's only worker punched"
    alert = records[0]
    assert (alert["type"], alert["date"], alert["shift"], alert["line"]) == ("alert", "2026-03-02", "D", "二线")
    assert alert["who"] == [["1002", "李四"], ["1003", "王五"]]
    assert alert["due_ms"] == int(local(2, 8, 5).timestamp() * 1000)
    assert "emp" not in alert, "nobody's record: it lists several workers"
    clock.advance(minutes=20)  # 08:25: a tentative miss now; the alert is not raised again
    punch(writer, "1003", local(2, 8, 24))
    read_all(clock.now())
    evaluator.run_once()
    assert len(alert_records()) == 1


def test_nobody_missing_raises_no_alert(evaluator, writer, clock):
    punch(writer, "1001", local(2, 7, 58))
    punch(writer, "1002", local(2, 7, 59))
    clock.advance(hours=1, minutes=10)
    read_all(clock.now())
    evaluator.run_once()
    assert alert_records() == []


def test_the_board_shows_the_alert_its_state_and_takes_an_answer(evaluator, writer, clock, tmp_path, monkeypatch):
    clock.advance(hours=1, minutes=6)  # 08:06: both overdue, each line one alert
    read_all(clock.now())
    evaluator.run_once()
    assert sorted(a.line for a in alerts.raised(0)) == ["一线", "二线"]
    shown = alerts.shown("2026-03-02")
    assert {s.state for s in shown} == {"queued"}, "never connected: 外网中断，恢复后发送"
    SyncState.update(connected=True).execute()
    assert {s.state for s in alerts.shown("2026-03-02")} == {"sending"}
    SyncState.update(acked_seq=max(a.seq for a in alerts.raised(0))).execute()
    assert {s.state for s in alerts.shown("2026-03-02")} == {"sent"}, "head office holds it: 已通知主管和人事"
    ActionRequest.create(
        employee="1002",
        work_date="2026-03-02",
        shift="D",
        kind="contacted",
        reason="未打卡预警答复：已联系",
        user="wang",
        role="line_leader",
        requested_ms=int(clock.now().timestamp() * 1000),
    )
    (line2,) = [s for s in alerts.shown("2026-03-02") if s.alert.line == "二线"]
    assert [r.kind for r in line2.answers["1002"]] == ["contacted"]
    assert line2.still == (("1002", "李四", "overdue"),)


def test_the_boards_page_shows_the_alert_at_once_and_an_answer_is_queued_as_a_plant_action(tmp_path):
    """The real Flask app: 二线 1 人未打卡，外网中断，恢复后发送, and 已联系 pressed on the board is a plant action."""
    from tests.appliance.web.test_attendance_pages import DAY, Plant, csrf_of
    from tests.appliance.web.test_attendance_pages import local as at
    from tests.harness.clock import FrozenClock
    from tests.harness.raw_codes import raw_codes, visible_text

    plant = Plant(tmp_path, FrozenClock(at(2, 8, 6)))
    try:
        plant.punch("1001", at(2, 7, 58))
        plant.read_terminal()
        plant.evaluator.run_once()
        client = plant.client()
        page = client.get(f"/?date={DAY}").get_data(as_text=True)
        assert re.search(r'data-alert-seq="\d+" data-state="queued" data-line="二线"', page)
        text = visible_text(page)
        assert "二线（白班）1 人未打卡，外网中断，恢复后发送" in text
        assert not raw_codes(text, {"boss"})  # the user name
        partial = client.get(f"/?date={DAY}&partial=1").get_data(as_text=True)
        assert 'data-line="二线"' in partial, "the live board's fresh part carries the alert too"
        for shown in (page, partial):  # who has not shown up first: the alert above the board's rows, both ways
            assert shown.index('<section id="alerts"') < shown.index('<section id="attendance"'), (
                "the alerts come first"
            )
        answer = {"csrf": csrf_of(page), "employee": "1002", "date": DAY, "shift": "D", "kind": "contacted"}
        assert client.post("/board/alert/answer", data=answer).status_code == 302
        (req,) = ActionRequest.select()
        assert (req.employee, req.kind, req.user, req.reason) == ("1002", "contacted", "boss", "未打卡预警答复：已联系")
        page = client.get(f"/?date={DAY}").get_data(as_text=True)
        assert 'class="ok answer" data-kind="contacted"' in page
        assert client.post("/board/alert/answer", data=answer | {"csrf": "forged"}).status_code in (400, 403)
    finally:
        plant.db.close()
