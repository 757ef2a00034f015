"""Replies people send to our SMS (上行短信), as the providers push them, stored in the contact log as evidence.

Aliyun: SmsUp in "HTTP批量推送模式" (help.aliyun.com/zh/sms/developer-reference/smsup-http): a POST whose body is
a JSON array of ``{"phone_number", "content", "send_time", "dest_code", "sequence_id"}`` (older pages add
``sign_name``; the number may come masked, ``138****1111``); the answer must be HTTP 200 with
``{"code": 0, "msg": "接收成功"}``, anything else and Aliyun pushes again (after 1, 5 and 10 minutes).
Tencent: 短信回复回调 (cloud.tencent.com/document/api/382/5809): a POST of one JSON object
``{"extend", "mobile", "nationcode", "sign", "text", "time"}`` (time in Unix seconds); the answer is
``{"result": 0, "errmsg": "OK"}``.

Neither provider signs these pushes (nor its delivery reports), so the URL configured at the provider's console
carries the secret token of ``cloud.channels.callbacks``; a request without it is refused there.

A reply is stored as a row of the contact log's receipts with status ``replied`` (the text in ``detail``, the item
verbatim in ``raw``), linked to the latest SMS we sent that number that expects a reply (a ``contact-<id>``
verification request, ``cloud.hr.contacts``); the evidence log signs it like any receipt. A provider's re-push
is the same item, stored once. What a reply means is for the module that asked: it ``listen``s here and is
told of each new reply (and reads the stored ones again at its own tick, so nothing is lost if it was not
listening).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloud.channels.contact_log import ContactAttempt, DeliveryReceipt
from cloud.clock import Clock, to_ms
from cloud.store import write_transaction

log = logging.getLogger(__name__)
REPLIED = "replied"  # the status of a reply in the contact log's receipts
EXPECTS_REPLY = "contact-"  # case_ref prefix of the messages that ask for a reply (emergency contact verification)
ALIYUN_ANSWER = {"code": 0, "msg": "接收成功"}
TENCENT_ANSWER = {"result": 0, "errmsg": "OK"}
Listener = Callable[[list[DeliveryReceipt]], None]
_listeners: list[Listener] = []


@dataclass(frozen=True)
class InboundSms:
    provider: str
    phone: str  # as the provider wrote it: 13800138000, +8613800138000, or masked 138****0000
    text: str  # as the person wrote it
    provider_time: str
    raw: str  # the item verbatim (JSON, keys sorted): a re-push is the same text


def _raw(item: dict[str, Any]) -> str:
    return json.dumps(item, ensure_ascii=False, sort_keys=True)


def parse_aliyun_smsup(body: bytes) -> list[InboundSms]:
    """Aliyun's SmsUp push: a JSON array; each item needs ``phone_number`` and ``content``."""
    items = json.loads(body)
    if not isinstance(items, list):
        raise ValueError("SmsUp body is not a JSON array")
    out = []
    for item in items:
        if not isinstance(item, dict) or "phone_number" not in item or "content" not in item:
            raise ValueError("an SmsUp item needs phone_number and content")
        out.append(
            InboundSms(
                "aliyun", str(item["phone_number"]), str(item["content"]), str(item.get("send_time", "")), _raw(item)
            )
        )
    return out


def parse_tencent_reply(body: bytes) -> list[InboundSms]:
    """Tencent's 短信回复回调: one JSON object (an array of them is taken too); ``mobile`` and ``text`` needed."""
    data = json.loads(body)
    items = data if isinstance(data, list) else [data]
    out = []
    for item in items:
        if not isinstance(item, dict) or "mobile" not in item or "text" not in item:
            raise ValueError("a reply callback needs mobile and text")
        nation = str(item.get("nationcode") or "86")
        stamp = item.get("time")
        when = datetime.fromtimestamp(stamp, UTC).isoformat() if isinstance(stamp, int) else str(stamp or "")
        out.append(InboundSms("tencent", f"+{nation}{item['mobile']}", str(item["text"]), when, _raw(item)))
    return out


def national(phone: str) -> str:
    return phone.strip().removeprefix("+86").removeprefix("0086")


def same_number(ours: str, theirs: str) -> bool:
    """Whether ``theirs`` (perhaps masked with ``*``, as Aliyun shows numbers) may be ``ours``."""
    a, b = national(ours).replace("-", ""), national(theirs).replace("-", "")
    return len(a) == len(b) and all(y == "*" or x == y for x, y in zip(a, b, strict=True)) and b.strip("*") != ""


def _asked(sms: InboundSms) -> ContactAttempt | None:
    """The latest message sent to this number that asks for a reply: the provider's own first."""
    query = ContactAttempt.select().where(
        ContactAttempt.case_ref.startswith(EXPECTS_REPLY), ContactAttempt.status == "sent"
    )
    if "*" not in sms.phone:  # the number in full: ask the index for it, as we wrote it (+86...) or not
        number = national(sms.phone)
        query = query.where(ContactAttempt.recipient.in_([f"+86{number}", number]))
    found = [
        a
        for a in query.order_by(ContactAttempt.at_ms.desc(), ContactAttempt.id.desc())
        if same_number(a.recipient, sms.phone)
    ]
    mine = [a for a in found if a.provider == sms.provider]
    return (mine or found or [None])[0]


def record_replies(replies: Iterable[InboundSms], clock: Clock) -> list[DeliveryReceipt]:
    """Store each reply once (a re-push is the same item); returns the new ones, which the listeners are told of."""
    stored = []
    now = to_ms(clock.now())
    for sms in replies:
        raw_sha256 = hashlib.sha256(sms.raw.encode()).hexdigest()
        with write_transaction():
            if DeliveryReceipt.get_or_none(provider=sms.provider, raw_sha256=raw_sha256) is not None:
                log.info("%s reply from %s pushed again: stored once", sms.provider, sms.phone)
                continue
            asked = _asked(sms)
            row = DeliveryReceipt.create(
                attempt=asked,
                provider=sms.provider,
                provider_message_id=asked.provider_message_id if asked else "",
                recipient=sms.phone,
                status=REPLIED,
                detail=sms.text[:255],
                provider_time=sms.provider_time,
                raw=sms.raw,
                raw_sha256=raw_sha256,
                received_ms=now,
            )
        stored.append(row)
    if stored:
        for listener in list(_listeners):
            listener(stored)
    return stored


def listen(listener: Listener) -> None:
    """``listener(new replies)`` after each push stored something (once per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)


def replies_since(after_id: int, prefix: str = EXPECTS_REPLY) -> list[DeliveryReceipt]:
    """Stored replies to messages of ``prefix`` (a ``contact-`` verification) after receipt ``after_id``."""
    query = (
        DeliveryReceipt.select(DeliveryReceipt, ContactAttempt)
        .join(ContactAttempt)
        .where(
            (DeliveryReceipt.status == REPLIED)
            & (DeliveryReceipt.id > after_id)
            & ContactAttempt.case_ref.startswith(prefix)
        )
        .order_by(DeliveryReceipt.id)
    )
    return list(query)
