"""The demo's parts on their own: the plant's day (``punchproof.demo_story``), HR's workbook through head office's
real importer and policy check, and the channel stand-ins (``punchproof.demo_mail``) reached by head office's
real e-mail and Aliyun SMS channels. The whole demo runs in tests/e2e/test_demo.py."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from zoneinfo import ZoneInfo

import pytest

from cloud.channels.base import OutboundMessage, Status
from cloud.channels.email_smtp import SmtpChannel, SmtpSettings
from cloud.channels.sms_aliyun import AliyunSms, AliyunSmsSettings
from cloud.escalation.policy import parse, unconfigured
from cloud.hr import importer
from cloud.hr.models import Employee, Leave, PlantBadge
from cloud.store import Plant, open_db
from punchproof.demo import CHANNELS_TOML, DEMO_SMS, demo_sms_templates
from punchproof.demo_mail import Outbox
from punchproof.demo_story import ABSENT, FAST, NO_SHOW, NOT_BACK, ON_LEAVE, STORY, escalation_policy, plan

TZ = ZoneInfo("Asia/Shanghai")
FIRST_READ = datetime(2026, 12, 7, 6, 31, 53, 400_000, tzinfo=UTC)  # 14:31:53 at the plant


def test_the_shift_starts_on_a_whole_minute_after_the_first_read_and_the_absent_never_punch():
    story = plan(FIRST_READ + timedelta(seconds=2), FIRST_READ, TZ, STORY)
    # at least 15 s after the plan, on a whole minute: 14:33 (a shift begun before the first read is 未覆盖)
    assert story.start == datetime(2026, 12, 7, 6, 33, tzinfo=UTC) and story.hhmm(story.start) == "14:33"
    assert story.end - story.start == timedelta(minutes=2)
    pressed = {p.badge for p in story.presses}
    assert not pressed & {*ABSENT, ON_LEAVE} and len(pressed) == len(story.workers) - 3
    for badge in pressed:
        ins = [p.at for p in story.presses if p.badge == badge and p.state == 0]
        outs = [p.at for p in story.presses if p.badge == badge and p.state == 1]
        assert len(ins) == len(outs) == 1 and outs[0] - ins[0] > timedelta(seconds=STORY.duplicate_window_s)
    on_time = [p.at for p in story.presses if p.badge == "1003" and p.state == 0][0]
    assert FIRST_READ < on_time < story.start


def test_fast_may_start_the_shift_just_before_the_plan_but_never_before_the_first_read():
    late_plan = plan(FIRST_READ + timedelta(seconds=22), FIRST_READ, TZ, FAST)  # 14:32:15: the 14:32 start is past
    assert late_plan.start == datetime(2026, 12, 7, 6, 32, tzinfo=UTC) and late_plan.confirmed_at == late_plan.end
    early_plan = plan(FIRST_READ + timedelta(seconds=1), datetime(2026, 12, 7, 6, 32, 0, 500_000, tzinfo=UTC), TZ, FAST)
    assert early_plan.start == datetime(2026, 12, 7, 6, 33, tzinfo=UTC)  # 14:32:00.5 read: 14:32 would be 未覆盖
    for press in late_plan.presses:
        assert press.state == 0 or press.at < late_plan.end  # the day is confirmed at the end: out before it


@pytest.fixture
def plant(tmp_path):
    db = open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    yield Plant.create(id="demo-plant", name="演示工厂（东莞）", timezone="Asia/Shanghai")
    db.close()


def test_hr_workbook_imports_through_head_offices_importer_and_the_policy_needs_only_the_demos_channels(
    plant, tmp_path
):
    story = plan(FIRST_READ, FIRST_READ, TZ, STORY)
    path = story.write_hr_workbook(tmp_path / "hr.xlsx")
    report = importer.import_file(path, plant, int(FIRST_READ.timestamp() * 1000))
    assert report.counts["employees"] == 30 and report.counts["leave"] == 2
    absent = Employee.get(Employee.employee_no == f"DG{NO_SHOW}")
    assert absent.name == "赵杰" and absent.manager.name == "李强" and absent.service_address
    assert absent.email == f"{NO_SHOW}@staff.example.cn" and absent.phone
    badge = PlantBadge.get(PlantBadge.user_id == NO_SHOW)
    assert badge.valid_from == story.work_date.isoformat()
    back = Leave.get(Leave.ref == "QJ-DEMO-1")  # 马艳's sick leave ended at today's 00:00
    today = datetime.combine(story.work_date, datetime.min.time(), TZ)
    assert back.employee.employee_no == f"DG{NOT_BACK}" and back.end_ms == int(today.timestamp() * 1000)
    body = escalation_policy()
    parsed = parse(body)
    assert unconfigured(parsed, {"sms", "email", "voice", "ems"}) == []
    assert parsed.handbook.article and body["handbook"]["adopted_on"] and body["handbook"]["text"]


def test_the_channel_stand_ins_keep_what_head_offices_channels_send(tmp_path):
    plant = ZoneInfo("Pacific/Kiritimati")  # UTC+14: no machine's own zone gives the same wall time
    outbox = Outbox(tmp_path / "messages", tz=plant).start()
    try:
        mail = SmtpChannel(SmtpSettings("127.0.0.1", outbox.smtp_port, "hr@demo.example.cn", starttls=False))
        sms = AliyunSms(
            AliyunSmsSettings("DEMO", "secret", "演示电子", {"reminder": "SMS_DEMO_REMINDER"}, endpoint=outbox.sms_url)
        )
        message = OutboundMessage(
            case_ref="case-1",
            step_id="L1",
            recipient="1008@staff.example.cn",
            channel="email",
            template_id="reminder",
            template_version="1",
            subject="未到岗提醒（人通〔2026〕00001-L1）",
            text="赵杰：您今天未到岗。\n.这一行以点开头",
            params={"name": "赵杰"},
        )
        assert mail.send(message).status is Status.SENT
        sent = sms.send(dataclasses.replace(message, recipient="13800071007", channel="sms"))
        assert sent.status is Status.SENT
        kept = message_from_bytes((tmp_path / "messages" / "mail" / "0001.eml").read_bytes(), policy=policy.default)
        assert kept["To"] == "1008@staff.example.cn" and ".这一行以点开头" in kept.get_content()
        text = json.loads((tmp_path / "messages" / "sms" / "0002.json").read_text(encoding="utf-8"))
        assert text["phone"] == "13800071007" and text["variables"] == {"name": "赵杰"}
        receipts = sms.query_send_details("13800071007", sent.provider_message_id, datetime.now(UTC))
        assert [r.status.value for r in receipts] == ["delivered"]
        index = (tmp_path / "messages" / "index.txt").read_text(encoding="utf-8")
        assert (
            "邮件 e-mail  发给 to 1008@staff.example.cn：未到岗提醒" in index
            and "短信 SMS  发给 to 13800071007" in index
        )
        when = datetime.strptime(index.split("  ")[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=plant)
        assert abs((datetime.now(UTC) - when).total_seconds()) < 60, "index.txt says the plant's time"
    finally:
        outbox.stop()


def test_the_demos_sms_is_kept_as_the_phone_shows_it_and_the_channel_kept_the_same_words(tmp_path):
    outbox = Outbox(tmp_path / "messages", approved=dict(DEMO_SMS.values())).start()
    try:
        code, text = DEMO_SMS["cuigao"]
        settings = AliyunSmsSettings("DEMO", "secret", "演示电子", {"cuigao": code}, {"cuigao": text})
        sms = AliyunSms(dataclasses.replace(settings, endpoint=outbox.sms_url))
        params = {"name": "赵杰", "date": "2026年12月7日", "deadline": "2026年12月10日 09:00", "link": "http://x/n/t"}
        message = OutboundMessage("case-1", "L3", "13800071007", "sms", "cuigao", "1", "催告函", "", params=params)
        sent = sms.send(message)
        words = "【演示电子】赵杰：您自2026年12月7日起未到岗，请于2026年12月10日 09:00前返岗或说明原因。通知全文：http://x/n/t"
        assert sent.status is Status.SENT and sent.sent_text == words
        (detail,) = sms.query_send_details("13800071007", sent.provider_message_id, datetime.now(UTC))
        assert json.loads(detail.raw)["Content"] == words
        assert f"13800071007：{words}（模板 template {code}）" in (tmp_path / "messages" / "index.txt").read_text()
        config = tomllib.loads(
            CHANNELS_TOML.format(smtp_port=1, sms_url="x", cloud_port=2, sms_templates=demo_sms_templates())
        )
        assert config["channels"]["sms_aliyun"]["templates"]["cuigao"] == {"code": code, "text": text}
    finally:
        outbox.stop()


def test_a_demo_started_just_before_midnight_plays_tomorrows_day():
    read = datetime(2026, 12, 7, 15, 59, 50, tzinfo=UTC)  # 23:59:50 at the plant
    story = plan(read, read, TZ, STORY)
    assert story.hhmm(story.start) == "00:01" and story.work_date.isoformat() == "2026-12-08"
    sheets = story.hr_sheets()
    assert sheets["班次"][1][2] == "00:01-00:03"
    assert sheets["请假"][1][4] == "2026-12-07"  # 马艳's last day of leave: the day before the shift's
    assert {row[-1] for row in sheets["员工"][1:]} == {"2026-12-08"}
