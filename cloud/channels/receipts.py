"""Pulling delivery reports where a provider offers a pull API: the fallback when a push was missed.

Tencent's PullSmsSendStatus is a queue (each report once); Aliyun's QuerySendDetails is asked per sent message
(30 days back); DingTalk's getsendresult per task (within 24 hours, per a practice note). Everything pulled goes
into the contact log at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from cloud.channels import contact_log
from cloud.channels.base import Channel, Status
from cloud.channels.contact_log import ContactAttempt, DeliveryReceipt
from cloud.channels.dingtalk import DingTalkApp
from cloud.channels.sms_aliyun import AliyunSms
from cloud.channels.sms_tencent import TencentSms
from cloud.clock import Clock, to_ms

FINAL_RECEIPTS = ("delivered", "failed", "read", "returned")


def pull_receipts(channels: Iterable[Channel], clock: Clock) -> list[DeliveryReceipt]:
    stored: list[DeliveryReceipt] = []
    now = clock.now()
    for channel in channels:
        if isinstance(channel, TencentSms):
            stored += contact_log.record_receipts(channel.pull_send_status(), clock)
        elif isinstance(channel, AliyunSms):
            for row in _awaiting(channel.provider, now - timedelta(days=30)):
                sent_at = datetime.fromtimestamp(row.at_ms / 1000, UTC)
                receipts = channel.query_send_details(row.recipient, row.provider_message_id, sent_at)
                stored += contact_log.record_receipts(receipts, clock)
        elif isinstance(channel, DingTalkApp):
            for row in _awaiting(channel.provider, now - timedelta(hours=24), final=("read", "failed")):
                stored += contact_log.record_receipts(channel.send_result(row.provider_message_id), clock)
    return stored


def _awaiting(provider: str, since: datetime, final: tuple[str, ...] = FINAL_RECEIPTS) -> list[ContactAttempt]:
    query = ContactAttempt.select().where(
        ContactAttempt.provider == provider,
        ContactAttempt.status == Status.SENT.value,
        ContactAttempt.at_ms >= to_ms(since),
        ContactAttempt.receipt_status.is_null() | ContactAttempt.receipt_status.not_in(final),
    )
    return list(query)
