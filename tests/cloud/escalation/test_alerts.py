"""Missed check-in alerts at head office (#20.1): the plant's signed ``alert`` record, stored by the real ingest,
is sent by the runner's tick to the workers' line manager and to HR over WeCom (the local WeCom server that speaks
its API), once, leaving out who punched since; nobody left → no message; quiet hours → held, sent when they end."""

from __future__ import annotations

from datetime import date

from cloud.alerts.models import AlertMessage, MissedAlert
from cloud.escalation.sender import RecordingSender
from cloud.hr.models import Employee
from cloud.workers.escalate import EscalationService
from tests.cloud.escalation import wiring
from tests.cloud.escalation.plantfeed import PlantFeed, local, ms, new_engine

MONDAY = date(2026, 3, 2)
BOARD = "http://192.168.1.20:8080"


def plant(clock, **alerts) -> PlantFeed:  # type: ignore[no-untyped-def]
    feed = PlantFeed(clock).start(alerts={"channels": ["wecom", "sms"], "board_url": BOARD, **alerts})
    manager = Employee.create(employee_no="M01", name="赵主管", wecom_id=wiring.PEOPLE["manager"])
    for badge in ("1001", "1002", "1003"):
        worker = feed.hire(badge)
        worker.manager = manager
        worker.save()
    return feed


def raise_alert(feed: PlantFeed, *badges: str, line: str = "二号线") -> None:
    """What the appliance signs at start + grace (appliance.attendance.alerts), synced and stored."""
    start = local(MONDAY, "08:00")
    feed._append(
        "alert",
        date=MONDAY.isoformat(),
        shift="D",
        shift_name="白班",
        line=line,
        start_ms=ms(start),
        due_ms=ms(start) + 5 * 60_000,
        who=[[b, f"员工{b}"] for b in badges],
    )


def runner(wired, clock) -> EscalationService:  # type: ignore[no-untyped-def]
    """As ``punchproof cloud escalate`` makes it: channels from the TOML, [notices] with HR's WeCom id."""
    channels = wired.settings.channels.build(clock)
    return EscalationService(new_engine(clock, RecordingSender()), clock, channels=channels, settings=wired.settings)


def wecom_texts(wired, who: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [m["body"]["text"]["content"] for m in wired.wecom.messages if who in m["to"]]


def test_the_line_manager_and_hr_get_one_message_listing_who_has_not_punched(wired, clock):
    clock.advance_to(local(MONDAY, "08:05"))
    feed = plant(clock)
    raise_alert(feed, "1001", "1002", "1003")
    feed.punch("1001", local(MONDAY, "08:05"))  # punched before head office sent it: left out
    clock.advance(seconds=20)
    runner(wired, clock).tick()
    manager, hr = wecom_texts(wired, wiring.PEOPLE["manager"]), wecom_texts(wired, wiring.PEOPLE["hr"])
    assert len(manager) == 1 and len(hr) == 1, wired.wecom.messages
    text = manager[0]
    assert "【未打卡预警】" in text and "二号线 2 人未打卡" in text
    assert "员工1002（工号 1002）" in text and "员工1003（工号 1003）" in text and "1001" not in text
    assert f"{BOARD}/?date=2026-03-02&line=%E4%BA%8C%E5%8F%B7%E7%BA%BF#alerts" in text, "a link to the board"
    assert "已在产线看到 / 已联系 / 请假" in text and "白班（08:00 上班，宽限至 08:05）" in text
    alert = MissedAlert.get()
    assert alert.status == "sent" and [m.status for m in alert.messages] == ["sent", "sent"]

    runner(wired, clock).tick()  # the next tick, and a restarted runner: nothing again
    clock.advance(minutes=5)
    runner(wired, clock).tick()
    assert len(wired.wecom.messages) == 2


def test_nobody_missing_any_more_sends_nothing(wired, clock):
    clock.advance_to(local(MONDAY, "08:05"))
    feed = plant(clock)
    raise_alert(feed, "1001")
    clock.advance(minutes=1)
    feed.punch("1001", local(MONDAY, "08:06"))
    runner(wired, clock).tick()
    assert wired.wecom.messages == []
    assert MissedAlert.get().status == "nobody" and AlertMessage.select().count() == 0


def test_in_the_quiet_hours_an_alert_is_held_and_sent_when_they_end(wired, clock):
    clock.advance_to(local(MONDAY, "08:05"))
    feed = plant(clock, quiet_hours={"start": "08:00", "end": "08:30"})
    raise_alert(feed, "1002")
    service = runner(wired, clock)
    service.tick()
    assert wired.wecom.messages == [] and MissedAlert.get().status == "held"
    clock.advance_to(local(MONDAY, "08:29"))
    service.tick()
    assert wired.wecom.messages == []
    clock.advance_to(local(MONDAY, "08:30"))
    service.tick()
    assert len(wecom_texts(wired, wiring.PEOPLE["manager"])) == 1
    assert MissedAlert.get().status == "sent"


def test_after_an_outage_the_alert_waits_for_the_plants_log_and_leaves_out_who_punched_meanwhile(wired, clock):
    """The alert raised while the plant was cut off arrives with the backlog: head office waits until the plant's
    log is caught up (a record of the last 90 s: the appliance seals every minute), so a punch made during the
    outage, later in the log, is there and its worker left out."""
    clock.advance_to(local(MONDAY, "08:05"))
    feed = plant(clock)
    raise_alert(feed, "1002", "1003")  # signed at 08:05 ...
    clock.advance_to(local(MONDAY, "08:20"))  # ... stored with the first batch after the outage, read at 08:20
    service = runner(wired, clock)
    service.tick()
    assert wired.wecom.messages == [] and MissedAlert.get().status == "new", "the rest of the backlog is not here"
    feed.punch("1002", local(MONDAY, "08:12"))  # the next batch, up to the plant's latest seal: 李四 punched at 08:12
    service.tick()
    (text,) = wecom_texts(wired, wiring.PEOPLE["manager"])
    assert "二号线 1 人未打卡" in text and "员工1003（工号 1003）" in text and "1002" not in text


def test_the_boards_answers_contacted_and_on_leave_are_filed_on_the_case_and_pause_it(wired, clock):
    """已联系 / 请假 pressed on the board are plant actions (appliance.attendance.actions) filed on the worker's case
    like 已在产线看到: the automatic steps pause, and 请假 asks HR to enter the leave."""
    from cloud.escalation import timeline
    from cloud.escalation.models import AbsenceCase, CaseTask
    from tests.cloud.escalation.plantfeed import day_passes

    feed = PlantFeed(clock).start()
    feed.hire("1001")
    engine = new_engine(clock, RecordingSender())
    service = EscalationService(engine, clock)
    monday = date(2025, 3, 3)
    clock.advance_to(local(monday, "06:00"))
    day_passes(feed, engine, monday)
    case = AbsenceCase.get()
    for act, label in (("contacted", "已联系"), ("on_leave", "请假")):
        feed._append(
            "action",
            act=act,
            emp="1001",
            date=monday.isoformat(),
            shift="D",
            reason=f"未打卡预警答复：{label}",
            user="wang",
            role="line_leader",
            req_id=feed.seq,
            req_ms=ms(clock.now()),
        )
    service.tick()
    case = AbsenceCase.get_by_id(case.id)
    said = [i.text_zh for i in timeline.items(case) if i.kind == "plant_action"]
    assert len(said) == 2 and "“已联系”" in said[0] and "“请假”" in said[1] and "未打卡预警答复" in said[0]
    assert case.acked_until_ms is not None and case.ack_reason == "contacted"
    assert CaseTask.get((CaseTask.case == case) & (CaseTask.kind == "review_plant_leave")).status == "open"
