"""Call and EMS tasks recorded by a person; the dispatcher's channel choice and its guard against two senders."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from cloud.channels.base import OutboundMessage, Status, attempt_for
from cloud.channels.contact_log import ContactAttempt, DeliveryReceipt, attempts_for
from cloud.channels.dispatch import DispatchBusy, Dispatcher, UnknownChannel
from cloud.channels.manual import ManualChannel, Outcome, TaskError, record_result

EMS = OutboundMessage(
    case_ref="case-2026-0042",
    step_id="L3.cuigao",
    recipient="湖南省邵阳市某某县某某镇某某村 5 组 12 号 张三 收",
    channel="ems",
    template_id="cuigao",
    template_version="1",
    subject="关于限期返岗的通知（催告函）",
    text="",
    operator="escalation",
)


def test_ems_task_then_waybill_then_delivery(clock, db):
    dispatcher = Dispatcher([ManualChannel("ems", clock=clock), ManualChannel("voice", clock=clock)], clock=clock)
    task = dispatcher.dispatch(EMS)
    assert task.status is Status.TASK_OPEN and "运单" in task.reason
    assert dispatcher.dispatch(EMS).attempt_id == task.attempt_id  # one task per step
    with pytest.raises(TaskError):
        record_result(task.attempt_id, Outcome.EMS_POSTED, operator="hr.wangmin", clock=clock)  # no waybill
    with pytest.raises(TaskError):
        record_result(task.attempt_id, Outcome.CALL_CONNECTED, operator="hr.wangmin", clock=clock)
    clock.advance(hours=3)
    posted = record_result(
        task.attempt_id, Outcome.EMS_POSTED, operator="hr.wangmin", waybill="1151234567890", clock=clock
    )
    assert posted.attempt.status is Status.DONE and posted.attempt.operator == "hr.wangmin"
    assert posted.receipt is None and posted.attempt.provider_message_id == "1151234567890"
    clock.advance(days=2)
    delivered = record_result(
        task.attempt_id,
        Outcome.EMS_DELIVERED,
        operator="hr.lihua",
        waybill="1151234567890",
        note="本人签收",
        clock=clock,
    )
    assert delivered.receipt is not None and delivered.receipt.detail == "妥投"
    receipt = DeliveryReceipt.get()
    assert receipt.status == "delivered" and receipt.attempt_id == delivered.attempt.attempt_id
    assert [(a.status, a.operator) for a in attempts_for("case-2026-0042")] == [
        ("task_open", "escalation"),
        ("done", "hr.wangmin"),
        ("done", "hr.lihua"),
    ]


def test_call_task_records_the_outcome(clock, db):
    dispatcher = Dispatcher([ManualChannel("voice", clock=clock)], clock=clock)
    task = dispatcher.dispatch(replace(EMS, channel="voice", recipient="+8613800138000", step_id="L2.call"))
    result = record_result(task.attempt_id, Outcome.CALL_SWITCHED_OFF, operator="line.leader.chen", clock=clock)
    assert result.receipt.status == "no_answer" and result.attempt.reason == "关机"
    assert ContactAttempt.select().count() == 2


def test_kind_picks_the_first_configured_channel_and_unknown_is_an_error(clock, db):
    ems, voice = ManualChannel("ems", name="ems.hq", clock=clock), ManualChannel("voice", clock=clock)
    dispatcher = Dispatcher([voice, ems], clock=clock)
    assert dispatcher.channel_for("ems") is ems and dispatcher.channel_for("ems.hq") is ems
    with pytest.raises(UnknownChannel, match="sms"):
        dispatcher.dispatch(replace(EMS, channel="sms"))


class SlowChannel:
    """A channel at the seam that blocks inside send() until released, to hold the step in flight."""

    name = kind = provider = "slow"

    def __init__(self, clock) -> None:
        self.clock, self.entered, self.release, self.sends = clock, threading.Event(), threading.Event(), 0

    def send(self, message):
        self.sends += 1
        self.entered.set()
        assert self.release.wait(10)
        return attempt_for(self, message, self.clock.now(), Status.SENT, message_id="m1")


def test_two_dispatchers_at_once_send_once(clock, db):
    channel = SlowChannel(clock)
    message = replace(EMS, channel="slow")
    first: list = []
    worker = threading.Thread(target=lambda: first.append(Dispatcher([channel], clock=clock).dispatch(message)))
    worker.start()
    assert channel.entered.wait(10)
    with pytest.raises(DispatchBusy):
        Dispatcher([channel], clock=clock).dispatch(message)
    channel.release.set()
    worker.join(10)
    assert first[0].status is Status.SENT and channel.sends == 1
    assert Dispatcher([channel], clock=clock).dispatch(message).attempt_id == first[0].attempt_id
    assert channel.sends == 1


def test_contact_log_on_both_databases(cloud_db_url, clock):
    from cloud.store import database, open_db

    open_db(cloud_db_url)
    try:
        dispatcher = Dispatcher([ManualChannel("ems", clock=clock)], clock=clock)
        task = dispatcher.dispatch(EMS)
        assert dispatcher.dispatch(EMS).attempt_id == task.attempt_id
        record_result(
            task.attempt_id, Outcome.EMS_RETURNED, operator="hr.wangmin", waybill="1151234567890", clock=clock
        )
        assert [r.status for r in DeliveryReceipt.select()] == ["returned"]
    finally:
        database.close()
