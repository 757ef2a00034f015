"""The Chinese half says why a send failed (issue #19 leftovers), over real wires: the Aliyun SMS server failing
(its gateway's error page) and WeCom refusing a user who is no member give a failed step whose timeline entry
reads 服务商出错 / 企业微信账号无效 in Chinese, the providers' own words kept in the data; a provider that never
answers reads 服务商无应答（可能已发出）; a reason no rule knows is shown as the provider said it."""

from __future__ import annotations

from datetime import date

from cloud.channels import reasons
from cloud.channels.dispatch import Dispatcher
from cloud.channels.sms_aliyun import AliyunSms, AliyunSmsSettings
from cloud.escalation import timeline
from cloud.escalation.engine import Engine
from cloud.escalation.models import AbsenceCase, CaseStep
from cloud.escalation.outbound import OutboundSender
from tests.cloud.escalation import wiring
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local
from tests.cloud.escalation.test_outbound import NOTICES, _first_day, _ladder
from tests.harness.providers.aliyun import AliyunSmsServer
from tests.harness.providers.base import Fault

MON = date(2025, 3, 3)


def _entry(case: AbsenceCase, kind: str) -> timeline.Item:
    (entry,) = [e for e in timeline.items(case) if e.kind == kind and e.data.get("step") == "L1"]
    return entry


def test_a_reminder_failing_on_every_channel_says_why_in_chinese(wired, clock):
    feed = PlantFeed(clock).start(handbook=wiring.HANDBOOK)
    feed.hire("2001")
    emp = wiring.staff("2001")
    emp.wecom_id = "zhangsan-left"  # left the company's WeCom: WeCom refuses the message (errcode 81013)
    emp.save()
    channels = wired.settings.channels.build(clock)
    sender = OutboundSender(Dispatcher(channels, clock=clock), wired.settings.notices, clock, max_rounds=1)
    engine = Engine(clock, sender)  # one round: the step fails at its first (tried again, it renders again)
    clock.advance_to(local(MON, "06:00"))
    day_passes(feed, engine, MON)  # D1: the reminder waits for the morning
    case = AbsenceCase.get()
    wired.aliyun.inject(Fault.HTTP_500)  # the SMS gateway fails
    clock.advance_to(local(date(2025, 3, 4), "09:00"))
    engine.tick()
    step = CaseStep.get((CaseStep.case == case) & (CaseStep.key == "L1"))
    assert step.status == "failed"
    entry = _entry(case, "send_failed")
    assert "员工·短信 发送失败（服务商出错，未返回结果（HTTP 500））" in entry.text_zh
    assert "员工·企业微信 发送失败（企业微信账号无效（不是本企业成员或未获许可））" in entry.text_zh
    assert "HTTP 500" not in entry.text_zh.replace("（HTTP 500）", "") and "errcode" not in entry.text_zh
    raw = {o["channel"]: o["reason"] for o in entry.data["outcomes"]}  # the providers' words, as they said them
    assert raw["sms"] == "Aliyun SendSms answered HTTP 500 without a result"
    assert raw["wecom"].startswith("WeCom refused message/send (HTTP 200): errcode 81013")
    assert "errcode 81013" in entry.text_en


def test_a_provider_that_never_answers_is_said_to_have_not_answered(db, clock):
    feed = PlantFeed(clock).start(ladder=_ladder("sms"), handbook=wiring.HANDBOOK)
    with AliyunSmsServer(clock, wiring.KEY_ID, wiring.KEY_SECRET) as aliyun:
        aliyun.inject(Fault.HANG)
        sms = AliyunSms(
            AliyunSmsSettings(
                wiring.KEY_ID,
                wiring.KEY_SECRET,
                "某某电子",
                {"reminder": "SMS_1"},
                endpoint=f"{aliyun.url}/",
                timeout_s=0.5,
            ),
            clock=clock,
        )
        engine = Engine(clock, OutboundSender(Dispatcher([sms], clock=clock), NOTICES, clock))
        case = _first_day(feed, engine, clock)
        engine.tick()
    assert CaseStep.get((CaseStep.case == case) & (CaseStep.key == "L1")).status == "uncertain"
    entry = _entry(case, "send_uncertain")
    assert "员工·短信 结果不明（服务商无应答（可能已发出））" in entry.text_zh
    assert "no answer within 0.5s" in entry.data["outcomes"][0]["reason"]


def test_the_mapped_reasons_and_an_unknown_one():
    assert reasons.zh("sms", "Aliyun refused SendSms (HTTP 200): isv.MOBILE_NUMBER_ILLEGAL: 非法手机号") == "号码无效"
    assert (
        reasons.zh("email", "recipient refused: 550 b'5.1.1 no such user'") == "邮件服务器拒收（收件地址无效或不存在）"
    )
    assert reasons.zh("email", "no answer after the message was sent: timed out") == "邮件服务器无应答（可能已发出）"
    assert reasons.zh("dingtalk", "DingTalk refused asyncsend_v2 (HTTP 200): errcode 40001: bad") == (
        "服务商拒绝了本单位的账号凭据（请核对 cloud.toml 中的密钥配置）"
    )
    assert reasons.zh("voice", "空号") == "空号"  # a person's record of a call, said in Chinese already
    assert reasons.zh("sms", "Tencent did not send: Whatever.New: a code nobody knows") == (
        "服务商返回：Tencent did not send: Whatever.New: a code nobody knows"
    )
    assert reasons.zh("sms", "") == ""
