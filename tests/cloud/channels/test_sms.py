"""SMS through Aliyun and Tencent Cloud, against local servers that check signatures as the providers do."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import timedelta

import pytest

from cloud.channels import receipts
from cloud.channels.base import OutboundMessage, Status
from cloud.channels.contact_log import ContactAttempt, DeliveryReceipt
from cloud.channels.dispatch import Dispatcher
from cloud.channels.sms_aliyun import AliyunSms, AliyunSmsSettings
from cloud.channels.sms_tencent import TencentSms, TencentSmsSettings, TencentTemplate
from tests.harness.clock import FrozenClock
from tests.harness.providers.aliyun import AliyunSmsServer
from tests.harness.providers.base import Fault
from tests.harness.providers.tencent import TencentSmsServer

ALI_ID, ALI_SECRET = "LTAI5tTestKeyId0001", "aliyun-secret-Zq8v3MNx0pLk"
TC_ID, TC_SECRET, TC_APP = "AKIDtestSecretId0001", "tencent-secret-Hf72Kd9aQw", "1400787878"
LINK = "https://hr.example.cn/n/3f9a1c2b7d4e5f60a1b2"
MESSAGE = OutboundMessage(
    case_ref="case-2026-0042",
    step_id="L3.cuigao",
    recipient="+8613800138000",
    channel="sms",
    template_id="cuigao",
    template_version="1",
    subject="关于限期返岗的通知（催告函）",
    text=f"【某某电子】张三：您自2026年3月2日起未到岗，请于2026年3月9日 09:00前返岗或说明原因。通知全文：{LINK}",
    params={"name": "张三", "date": "2026年3月2日", "deadline": "2026年3月9日 09:00", "link": LINK},
    operator="escalation",
)


@pytest.fixture
def aliyun(clock: FrozenClock, callback_url: str):
    with AliyunSmsServer(clock, ALI_ID, ALI_SECRET, callback_url=f"{callback_url}/aliyun") as server:
        yield server


@pytest.fixture
def tencent(clock: FrozenClock, callback_url: str):
    with TencentSmsServer(clock, TC_ID, TC_SECRET, TC_APP, callback_url=f"{callback_url}/tencent") as server:
        yield server


def aliyun_channel(server, clock, sleeper, *, secret=ALI_SECRET, timeout_s=5.0, approved="") -> AliyunSms:
    settings = AliyunSmsSettings(
        ALI_ID,
        secret,
        "某某电子",
        {"cuigao": "SMS_476500001"},
        {"cuigao": approved} if approved else {},
        endpoint=f"{server.url}/",
        timeout_s=timeout_s,
    )
    return AliyunSms(settings, clock=clock, sleep=sleeper)


def tencent_channel(server, clock, sleeper, *, secret=TC_SECRET) -> TencentSms:
    template = TencentTemplate("2134567", ("name", "date", "deadline", "link"))
    settings = TencentSmsSettings(TC_ID, secret, TC_APP, "某某电子", {"cuigao": template}, endpoint=f"{server.url}/")
    return TencentSms(settings, clock=clock, sleep=sleeper)


def test_aliyun_sends_gets_its_biz_id_and_ingests_the_pushed_report(aliyun, clock, sleeper):
    dispatcher = Dispatcher([aliyun_channel(aliyun, clock, sleeper)], clock=clock)
    attempt = dispatcher.dispatch(MESSAGE)
    assert attempt.status is Status.SENT, attempt.reason
    assert attempt.provider_message_id == aliyun.sent[0]["biz_id"]
    assert aliyun.sent[0]["phone"] == "13800138000" and aliyun.sent[0]["params"]["link"] == LINK
    assert LINK in MESSAGE.text  # the SMS text carries the link to the full notice
    status, answer = aliyun.push_reports()
    assert (status, answer) == (200, {"code": 0, "msg": "接收成功"})
    receipt = DeliveryReceipt.get()
    assert receipt.attempt_id == attempt.attempt_id and receipt.status == "delivered" and receipt.detail == "DELIVERED"
    assert json.loads(receipt.raw)["biz_id"] == attempt.provider_message_id  # kept verbatim
    assert ContactAttempt.get_by_id(attempt.attempt_id).receipt_status == "delivered"
    aliyun.push_reports()  # Aliyun pushes again when unsure: stored once
    assert DeliveryReceipt.select().count() == 1


def test_aliyun_pull_query_send_details(aliyun, clock, sleeper, db):
    channel = aliyun_channel(aliyun, clock, sleeper)
    attempt = Dispatcher([channel], clock=clock).dispatch(MESSAGE)
    clock.advance(minutes=1)
    stored = receipts.pull_receipts([channel], clock)
    assert [r.status for r in stored] == ["delivered"] and stored[0].attempt_id == attempt.attempt_id
    assert receipts.pull_receipts([channel], clock) == []  # delivered: not asked again


@pytest.mark.parametrize(
    ("change", "code"),
    [({"secret": "wrong-secret"}, "SignatureDoesNotMatch"), ({"stale": True}, "InvalidTimeStamp.Expired")],
)
def test_aliyun_refusals_are_failed_attempts_with_the_reason(aliyun, clock, sleeper, change, code):
    client_clock = FrozenClock(clock.now() - timedelta(minutes=20)) if change.get("stale") else clock
    channel = aliyun_channel(aliyun, client_clock, sleeper, secret=change.get("secret", ALI_SECRET))
    attempt = Dispatcher([channel], clock=clock).dispatch(MESSAGE)
    assert attempt.status is Status.FAILED and code in attempt.reason
    assert aliyun.sent == []


def test_rate_limit_is_retried_with_backoff_and_sends_once(aliyun, clock, sleeper):
    aliyun.inject(Fault.RATE_LIMIT, Fault.RATE_LIMIT)
    attempt = Dispatcher([aliyun_channel(aliyun, clock, sleeper)], clock=clock).dispatch(MESSAGE)
    assert attempt.status is Status.SENT
    assert sleeper.waits == [2.0, 4.0] and len(aliyun.sent) == 1


def test_rate_limit_that_persists_fails_then_a_later_dispatch_sends(aliyun, clock, sleeper):
    aliyun.inject(*[Fault.RATE_LIMIT] * 4)
    dispatcher = Dispatcher([aliyun_channel(aliyun, clock, sleeper)], clock=clock)
    first = dispatcher.dispatch(MESSAGE)
    assert first.status is Status.FAILED and "isv.BUSINESS_LIMIT_CONTROL" in first.reason
    second = dispatcher.dispatch(MESSAGE)
    assert second.status is Status.SENT and len(aliyun.sent) == 1
    assert [r.attempt_no for r in ContactAttempt.select().order_by(ContactAttempt.id)] == [1, 2]


def test_gateway_500_is_a_failed_attempt(aliyun, clock, sleeper):
    aliyun.inject(Fault.HTTP_500)
    attempt = Dispatcher([aliyun_channel(aliyun, clock, sleeper)], clock=clock).dispatch(MESSAGE)
    assert attempt.status is Status.FAILED and "HTTP 500" in attempt.reason


def test_timeout_is_uncertain_and_never_resent_automatically(aliyun, clock, sleeper):
    aliyun.inject(Fault.HANG)
    dispatcher = Dispatcher([aliyun_channel(aliyun, clock, sleeper, timeout_s=0.3)], clock=clock)
    first = dispatcher.dispatch(MESSAGE)
    assert first.status is Status.UNCERTAIN and "no answer within 0.3s" in first.reason
    requests = len(aliyun.requests)
    again = dispatcher.dispatch(MESSAGE)
    assert again.attempt_id == first.attempt_id and len(aliyun.requests) == requests
    forced = dispatcher.dispatch(MESSAGE, force=True)  # a person checked: it did not go out
    assert forced.status is Status.SENT and len(aliyun.sent) == 1


def test_same_step_dispatched_twice_sends_once(aliyun, clock, sleeper):
    dispatcher = Dispatcher([aliyun_channel(aliyun, clock, sleeper)], clock=clock)
    first, second = dispatcher.dispatch(MESSAGE), dispatcher.dispatch(MESSAGE)
    assert first.attempt_id == second.attempt_id and len(aliyun.sent) == 1
    other_step = dispatcher.dispatch(replace(MESSAGE, step_id="L4.kuanggong"))
    assert other_step.attempt_id != first.attempt_id and len(aliyun.sent) == 2


def test_tencent_sends_gets_its_serial_no_and_ingests_callback_and_pull(tencent, clock, sleeper):
    channel = tencent_channel(tencent, clock, sleeper)
    attempt = Dispatcher([channel], clock=clock).dispatch(replace(MESSAGE, channel="sms.tencent"))
    assert attempt.status is Status.SENT, attempt.reason
    assert attempt.provider_message_id == tencent.sent[0]["serial"]
    assert tencent.sent[0]["params"] == ["张三", "2026年3月2日", "2026年3月9日 09:00", LINK]
    assert tencent.push_reports() == (200, {"result": 0, "errmsg": "OK"})
    pulled = receipts.pull_receipts([channel], clock)  # the same report, from the pull queue
    rows = list(DeliveryReceipt.select().order_by(DeliveryReceipt.id))
    assert len(rows) == 2 and len(pulled) == 1
    assert {r.attempt_id for r in rows} == {attempt.attempt_id} and {r.status for r in rows} == {"delivered"}
    assert "DELIVRD" in rows[0].raw
    assert receipts.pull_receipts([channel], clock) == []  # the queue hands each report out once


@pytest.mark.parametrize(
    ("change", "code"),
    [({"secret": "wrong"}, "AuthFailure.SignatureFailure"), ({"stale": True}, "AuthFailure.SignatureExpire")],
)
def test_tencent_refusals_are_failed_attempts(tencent, clock, sleeper, change, code):
    client_clock = FrozenClock(clock.now() - timedelta(minutes=6)) if change.get("stale") else clock
    channel = tencent_channel(tencent, client_clock, sleeper, secret=change.get("secret", TC_SECRET))
    attempt = Dispatcher([channel], clock=clock).dispatch(MESSAGE)
    assert attempt.status is Status.FAILED and code in attempt.reason and tencent.sent == []


def test_secrets_reach_neither_the_log_nor_the_database(aliyun, tencent, clock, sleeper, caplog):
    caplog.set_level(logging.DEBUG)
    dispatcher = Dispatcher(
        [aliyun_channel(aliyun, clock, sleeper), tencent_channel(tencent, clock, sleeper)], clock=clock
    )
    dispatcher.dispatch(MESSAGE)
    dispatcher.dispatch(replace(MESSAGE, channel="sms.tencent"))
    aliyun.inject(Fault.HTTP_500)
    dispatcher.dispatch(replace(MESSAGE, step_id="L4"))
    stored = " ".join(str(row.__data__) for row in ContactAttempt.select())
    for secret in (ALI_SECRET, TC_SECRET):
        assert secret not in caplog.text and secret not in stored


APPROVED_ALIYUN = "${name}：您自${date}起未到岗，请于${deadline}前返岗或说明原因。通知全文：${link}"
APPROVED_TENCENT = "{1}：您自{2}起未到岗，请于{3}前返岗或说明原因。通知全文：{4}"
WORDS = f"【某某电子】张三：您自2026年3月2日起未到岗，请于2026年3月9日 09:00前返岗或说明原因。通知全文：{LINK}"


def test_the_words_the_phone_showed_are_kept_and_are_what_aliyun_says_it_sent(clock, sleeper, callback_url):
    # the approved content configured beside its code: the attempt keeps the SMS as Aliyun fills it in, which is
    # what QuerySendDetails then reports as sent (the local server fills the approved content as Aliyun does)
    approved = {"SMS_476500001": APPROVED_ALIYUN}
    with AliyunSmsServer(clock, ALI_ID, ALI_SECRET, approved=approved) as server:
        channel = aliyun_channel(server, clock, sleeper, approved=APPROVED_ALIYUN)
        attempt = Dispatcher([channel], clock=clock).dispatch(MESSAGE)
        assert attempt.status is Status.SENT, attempt.reason
        assert attempt.sent_text == WORDS
        assert ContactAttempt.get_by_id(attempt.attempt_id).sent_text == WORDS  # stored, for the evidence log
        clock.advance(minutes=1)
        (receipt,) = receipts.pull_receipts([channel], clock)
        assert json.loads(receipt.raw)["Content"] == WORDS


def test_without_the_approved_content_only_the_code_and_variables_are_kept(aliyun, clock, sleeper):
    attempt = Dispatcher([aliyun_channel(aliyun, clock, sleeper)], clock=clock).dispatch(MESSAGE)
    assert attempt.status is Status.SENT and attempt.sent_text == ""


def test_tencent_fills_the_numbered_variables_in_the_order_they_were_sent(tencent, clock, sleeper):
    template = TencentTemplate("2134567", ("name", "date", "deadline", "link"), APPROVED_TENCENT)
    settings = TencentSmsSettings(
        TC_ID, TC_SECRET, TC_APP, "某某电子", {"cuigao": template}, endpoint=f"{tencent.url}/"
    )
    channel = TencentSms(settings, clock=clock, sleep=sleeper)
    attempt = Dispatcher([channel], clock=clock).dispatch(replace(MESSAGE, channel="sms.tencent"))
    assert attempt.status is Status.SENT and attempt.sent_text == WORDS


def test_an_unanswered_send_keeps_the_words_it_may_have_shown(aliyun, clock, sleeper):
    aliyun.inject(Fault.HANG)
    channel = aliyun_channel(aliyun, clock, sleeper, timeout_s=0.3, approved=APPROVED_ALIYUN)
    attempt = Dispatcher([channel], clock=clock).dispatch(MESSAGE)
    assert attempt.status is Status.UNCERTAIN and attempt.sent_text == WORDS
