"""WeCom and DingTalk: work notifications (tokens reused until they expire) and group robots (rate limits)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cloud.channels import receipts
from cloud.channels.base import OutboundMessage, Status
from cloud.channels.contact_log import ContactAttempt, DeliveryReceipt
from cloud.channels.dingtalk import DingTalkApp, DingTalkAppSettings, DingTalkRobot, DingTalkRobotSettings
from cloud.channels.dispatch import Dispatcher
from cloud.channels.wecom import WeComApp, WeComAppSettings, WeComRobot, WeComRobotSettings
from tests.harness.providers.base import Fault
from tests.harness.providers.dingtalk import DingTalkServer
from tests.harness.providers.wecom import WeComServer

CORP, CORP_SECRET, ROBOT_KEY = "ww1f2e3d4c5b6a7980", "wecom-corp-secret-9Jd2kQ", "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
APP_KEY, APP_SECRET = "dingkey0000test", "dingtalk-app-secret-Pq7Vx2"
ROBOT_TOKEN, ROBOT_SECRET = "robot-token-5c1e0b8d", "SEC0f9e8d7c6b5a49382716"
MESSAGE = OutboundMessage(
    case_ref="case-2026-0042",
    step_id="L2.manager",
    recipient="wangmin",
    channel="wecom",
    template_id="l2_warning",
    template_version="1",
    subject="员工失联预警",
    text="张三（1001）连续 2 个工作日未到岗，请今日内电话联系并记录结果。",
    operator="escalation",
)


@pytest.fixture
def wecom(clock):
    with WeComServer(clock, CORP, CORP_SECRET, 1000002, {"wangmin", "zhangsan"}, ROBOT_KEY) as server:
        yield server


@pytest.fixture
def dingtalk(clock):
    with DingTalkServer(clock, APP_KEY, APP_SECRET, 2890001, {"wangmin"}, ROBOT_TOKEN, ROBOT_SECRET) as server:
        yield server


def test_wecom_work_notification_reuses_its_token_until_expiry(wecom, clock, sleeper, db):
    app = WeComApp(WeComAppSettings(CORP, CORP_SECRET, 1000002, base_url=wecom.url), clock=clock, sleep=sleeper)
    dispatcher = Dispatcher([app], clock=clock)
    first = dispatcher.dispatch(MESSAGE)
    assert first.status is Status.SENT and first.provider_message_id == wecom.messages[0]["msgid"]
    dispatcher.dispatch(replace(MESSAGE, step_id="L2.repeat"))
    assert wecom.token_calls == 1  # reused
    clock.advance(hours=2)
    dispatcher.dispatch(replace(MESSAGE, step_id="L2.next-day"))
    assert wecom.token_calls == 2 and len(wecom.messages) == 3  # renewed before it expired, no failed call


def test_wecom_token_revoked_by_the_server_is_fetched_again_once(wecom, clock, sleeper, db):
    app = WeComApp(WeComAppSettings(CORP, CORP_SECRET, 1000002, base_url=wecom.url), clock=clock, sleep=sleeper)
    dispatcher = Dispatcher([app], clock=clock)
    dispatcher.dispatch(MESSAGE)
    wecom.tokens.clear()  # e.g. the secret was reset in the admin console
    attempt = dispatcher.dispatch(replace(MESSAGE, step_id="L2.repeat"))
    assert attempt.status is Status.SENT and wecom.token_calls == 2 and len(wecom.messages) == 2


def test_wecom_wrong_secret_and_non_member_fail_clearly(wecom, clock, sleeper, db):
    bad = WeComApp(WeComAppSettings(CORP, "wrong", 1000002, base_url=wecom.url), clock=clock, sleep=sleeper)
    attempt = Dispatcher([bad], clock=clock).dispatch(MESSAGE)
    assert attempt.status is Status.FAILED and "40001" in attempt.reason and "wrong" not in attempt.reason
    good = WeComApp(WeComAppSettings(CORP, CORP_SECRET, 1000002, base_url=wecom.url), clock=clock, sleep=sleeper)
    gone = Dispatcher([good], clock=clock).dispatch(replace(MESSAGE, recipient="left-the-company"))
    assert gone.status is Status.FAILED and "81013" in gone.reason


def test_wecom_busy_is_retried_with_backoff(wecom, clock, sleeper, db):
    app = WeComApp(WeComAppSettings(CORP, CORP_SECRET, 1000002, base_url=wecom.url), clock=clock, sleep=sleeper)
    app.token.get()
    wecom.inject(Fault.RATE_LIMIT)
    attempt = Dispatcher([app], clock=clock).dispatch(MESSAGE)
    assert attempt.status is Status.SENT and sleeper.waits == [2.0] and len(wecom.messages) == 1


def test_wecom_robot_keeps_under_twenty_a_minute(wecom, clock, sleeper, db):
    robot = WeComRobot(WeComRobotSettings(ROBOT_KEY, base_url=wecom.url), clock=clock, sleep=sleeper)
    dispatcher = Dispatcher([robot], clock=clock)
    attempts = [
        dispatcher.dispatch(replace(MESSAGE, channel="wecom_robot", recipient="plant-3", step_id=f"s{n}"))
        for n in range(25)
    ]
    assert all(a.status is Status.SENT for a in attempts) and len(wecom.robot_posts) == 25
    assert sum(sleeper.waits) >= 60  # the 21st waited for the minute to pass; the server never said 45009
    assert ROBOT_KEY not in " ".join(str(r.__data__) for r in ContactAttempt.select())


def test_dingtalk_work_notification_and_its_read_receipt(dingtalk, clock, sleeper, db):
    app = DingTalkApp(
        DingTalkAppSettings(APP_KEY, APP_SECRET, 2890001, base_url=dingtalk.url), clock=clock, sleep=sleeper
    )
    attempt = Dispatcher([app], clock=clock).dispatch(replace(MESSAGE, channel="dingtalk"))
    assert attempt.status is Status.SENT and int(attempt.provider_message_id) in dingtalk.tasks
    assert [r.status for r in receipts.pull_receipts([app], clock)] == ["unread"]
    dingtalk.read(int(attempt.provider_message_id), "wangmin")
    assert [r.status for r in receipts.pull_receipts([app], clock)] == ["read"]
    assert receipts.pull_receipts([app], clock) == []  # read is final
    assert ContactAttempt.get_by_id(attempt.attempt_id).receipt_status == "read"
    assert DeliveryReceipt.select().count() == 2


def test_dingtalk_qpm_limit_is_retried(dingtalk, clock, sleeper, db):
    app = DingTalkApp(
        DingTalkAppSettings(APP_KEY, APP_SECRET, 2890001, base_url=dingtalk.url), clock=clock, sleep=sleeper
    )
    app.token.get()
    dingtalk.inject(Fault.RATE_LIMIT, Fault.RATE_LIMIT, Fault.RATE_LIMIT, Fault.RATE_LIMIT)
    attempt = Dispatcher([app], clock=clock).dispatch(replace(MESSAGE, channel="dingtalk"))
    assert attempt.status is Status.FAILED and "143104" in attempt.reason and not dingtalk.tasks


def test_dingtalk_robot_signs_its_requests(dingtalk, clock, sleeper, db):
    robot = DingTalkRobot(
        DingTalkRobotSettings(ROBOT_TOKEN, ROBOT_SECRET, base_url=dingtalk.url), clock=clock, sleep=sleeper
    )
    sent = Dispatcher([robot], clock=clock).dispatch(replace(MESSAGE, channel="dingtalk_robot"))
    assert sent.status is Status.SENT and len(dingtalk.robot_posts) == 1
    wrong = DingTalkRobot(
        DingTalkRobotSettings(ROBOT_TOKEN, "SECwrong", base_url=dingtalk.url), clock=clock, sleep=sleeper
    )
    refused = Dispatcher([wrong], clock=clock).dispatch(replace(MESSAGE, channel="dingtalk_robot", step_id="x"))
    assert refused.status is Status.FAILED and "310000" in refused.reason and "sign not match" in refused.reason


def test_dingtalk_robot_rate_limit(dingtalk, clock, sleeper, db):
    robot = DingTalkRobot(
        DingTalkRobotSettings(ROBOT_TOKEN, ROBOT_SECRET, base_url=dingtalk.url), clock=clock, sleep=sleeper
    )
    dispatcher = Dispatcher([robot], clock=clock)
    for n in range(21):
        assert dispatcher.dispatch(replace(MESSAGE, channel="dingtalk_robot", step_id=f"s{n}")).ok
    assert len(dingtalk.robot_posts) == 21 and sleeper.waits and sleeper.waits[0] == pytest.approx(60)
