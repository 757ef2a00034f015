"""Issue #19.2 and #19.3 over real wires: the 催告函's return deadline is the one the engine acts on and the
case page shows, moved off the National Day holidays; EMS 妥投 later than expected moves it on and the 催告函
goes out again with the new date; the 旷工通知书 and the termination draft come after it, never before.

The 催告函 is issued Thursday 2025-09-25 (D3). Expected service by post three days later, three days to return:
2025-10-01, inside the National Day holidays (10-01 to 10-08), so the last day is Thursday 10-09. EMS 妥投 is
recorded for Saturday 10-11 (a 调休 working day): the deadline moves to Tuesday 10-14."""

from __future__ import annotations

import email
import re
from datetime import UTC, date, datetime
from email import policy as email_policy
from zoneinfo import ZoneInfo

import pytest

from cloud.escalation import actions, cases, workdays
from cloud.escalation.models import AbsenceCase, CaseStep, Gate
from cloud.store import open_db
from tests.cloud.escalation import wiring
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local, ms

TZ = ZoneInfo("Asia/Shanghai")
PRINTED = re.compile(r"请于(\d{4})年(\d{1,2})月(\d{1,2})日 (\d{2}):(\d{2})（北京时间）前")


@pytest.fixture
def db(cloud_db_url):
    database = open_db(cloud_db_url)
    cases._policies.clear()
    yield database
    database.close()


def _mails(wired, title: str) -> list[email.message.EmailMessage]:
    found = []
    for envelope in wired.mailbox.envelopes:
        mail = email.message_from_bytes(envelope.content, policy=email_policy.default)
        if mail["To"] == "zhangsan@example.cn" and title in str(mail["Subject"]):
            found.append(mail)
    return found


def _printed(mail) -> datetime:
    (when,) = {m for m in PRINTED.findall(mail.get_body(("plain",)).get_content())}
    year, month, day, hour, minute = map(int, when)
    return datetime(year, month, day, hour, minute, tzinfo=TZ)


def _local(at_ms: int) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(TZ)


def test_the_printed_deadline_is_the_engines_moves_with_service_and_nothing_comes_before_it(wired, clock):
    feed = PlantFeed(clock).start(handbook=wiring.HANDBOOK, union={"exists": False})
    feed.hire("2001")
    wiring.staff("2001")
    service = wired.service(clock)
    clock.advance_to(local(date(2025, 9, 22), "06:00"))
    for day in (date(2025, 9, 22), date(2025, 9, 23), date(2025, 9, 24)):  # D1..D3, no punch
        day_passes(feed, service, day)
    clock.advance_to(local(date(2025, 9, 25), "08:30"))
    service.tick()  # the 催告函 goes out at 08:30 (quiet hours held it overnight)
    case = AbsenceCase.get()
    (first,) = _mails(wired, "催告函")
    printed = _printed(first)
    assert printed == _local(case.deadline_ms), "the 催告函 states the deadline the engine uses"
    assert printed.date() == date(2025, 10, 9) and workdays.is_workday(printed.date())  # off the holidays
    assert "2025年9月25日" in first.get_body(("plain",)).get_content()  # dated the day it went out

    actions.close_welfare(case.id, "none_found", by="hr-wang", now_ms=ms(clock.now()), note="紧急联系人无法接通")
    clock.advance_to(local(date(2025, 9, 29), "10:00"))
    service.tick()  # the old engine's deadline (sent + 3 days) is over; the one printed is not
    assert not _mails(wired, "旷工通知书"), "no 旷工通知书 (催告期限届满) before the deadline"
    assert AbsenceCase.get().level == 3
    assert not Gate.select().where(Gate.kind == "confirm_termination").exists()

    clock.advance_to(local(date(2025, 10, 11), "16:00"))
    served = ms(local(date(2025, 10, 11), "15:00"))
    actions.record_service(
        case.id, "cuigao", by="hr-wang", now_ms=ms(clock.now()), served_ms=served, method="EMS", proof="EMS 妥投"
    )
    case = AbsenceCase.get()
    moved = _local(case.deadline_ms)
    assert moved.date() == date(2025, 10, 14), "service three days later than expected moves the deadline on"
    clock.advance_to(local(date(2025, 10, 13), "09:00"))
    service.tick()  # the 催告函 again, with the new date (Monday: a formal notice goes out on a working day)
    again = _mails(wired, "催告函")[-1]
    assert len(_mails(wired, "催告函")) == 2 and _printed(again) == moved
    assert "不再适用" in again.get_body(("plain",)).get_content()

    clock.advance_to(local(date(2025, 10, 14), "17:00"))
    service.tick()
    assert not _mails(wired, "旷工通知书") and AbsenceCase.get().level == 3  # one hour left
    clock.advance_to(local(date(2025, 10, 15), "08:30"))
    service.tick()
    (kuanggong,) = _mails(wired, "旷工通知书")
    step = CaseStep.get(CaseStep.notice == "kuanggong")
    assert step.sent_ms >= case.deadline_ms and step.planned_ms >= case.deadline_ms
    assert "2025年10月15日" in kuanggong.get_body(("plain",)).get_content()
    gate = Gate.get(Gate.kind == "confirm_termination")
    assert gate.opened_ms >= case.deadline_ms
