"""The contact log: every attempt to reach someone, and every delivery report, as evidence.

Rows are only ever added (a receipt updates nothing but the attempt's latest normalised status, for listing).
``case_ref`` is a plain string, not a foreign key: the log belongs to the evidence, not to the case table, and
must survive whatever happens to a case. Receipts are stored verbatim beside their normalised status, and a
report the provider sends twice (Aliyun retries its push) is stored once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime

import peewee as pw

from cloud.channels.base import Attempt, OutboundMessage, Receipt, Status
from cloud.clock import Clock, to_ms
from cloud.store import BaseModel, write_transaction


class ContactAttempt(BaseModel):
    idem_key = pw.CharField(max_length=64, index=True)  # sha256(case_ref, step_id, channel, recipient)
    attempt_no = pw.IntegerField()
    case_ref = pw.CharField(index=True)
    step_id = pw.CharField()
    channel = pw.CharField(max_length=32)
    provider = pw.CharField(max_length=32)
    recipient = pw.CharField()
    template_id = pw.CharField(max_length=64)
    template_version = pw.CharField(max_length=32)
    subject = pw.TextField(default="")
    content_sha256 = pw.CharField(max_length=64)
    attachments = pw.TextField(default="[]")  # JSON: name, mime, size, sha256 of each
    status = pw.CharField(max_length=16)
    reason = pw.TextField(default="")
    provider_message_id = pw.CharField(default="", index=True)
    raw_response = pw.TextField(default="")
    request = pw.BlobField(null=True)  # what went on the wire without secrets; for e-mail the RFC 5322 bytes
    operator = pw.CharField(max_length=64)
    at_ms = pw.BigIntegerField(index=True)
    sent_text = pw.TextField(default="")  # an SMS's words as the phone shows them (Attempt.sent_text); added in place
    receipt_status = pw.CharField(max_length=16, null=True)  # the latest receipt's, for listing
    receipt_ms = pw.BigIntegerField(null=True)

    class Meta:
        indexes = ((("idem_key", "attempt_no"), True),)


class DeliveryReceipt(BaseModel):
    attempt = pw.ForeignKeyField(ContactAttempt, null=True, backref="receipts")  # null: no attempt matched (yet)
    provider = pw.CharField(max_length=32)
    provider_message_id = pw.CharField(index=True)
    recipient = pw.CharField(default="")
    status = pw.CharField(max_length=16)
    detail = pw.CharField(default="")
    provider_time = pw.CharField(default="")
    raw = pw.TextField()
    raw_sha256 = pw.CharField(max_length=64)
    received_ms = pw.BigIntegerField()

    class Meta:
        indexes = ((("provider", "raw_sha256"), True),)


class DispatchClaim(BaseModel):
    """One row per idempotency key; ``in_flight_ms`` is set while one dispatcher sends, so no other does."""

    key = pw.CharField(max_length=64, primary_key=True)
    in_flight_ms = pw.BigIntegerField(null=True)


MODELS = (ContactAttempt, DeliveryReceipt, DispatchClaim)


def idempotency_key(case_ref: str, step_id: str, channel: str, recipient: str) -> str:
    joined = "\x1f".join((case_ref, step_id, channel, recipient))
    return hashlib.sha256(joined.encode()).hexdigest()


def record_attempt(message: OutboundMessage, attempt: Attempt, *, key: str) -> Attempt:
    """Append ``attempt`` to the log under ``key``; returns it with its row id."""
    with write_transaction():
        number = ContactAttempt.select().where(ContactAttempt.idem_key == key).count() + 1
        row = ContactAttempt.create(
            idem_key=key,
            attempt_no=number,
            case_ref=message.case_ref,
            step_id=message.step_id,
            channel=attempt.channel,
            provider=attempt.provider,
            recipient=attempt.recipient,
            template_id=attempt.template_id,
            template_version=attempt.template_version,
            subject=message.subject,
            content_sha256=attempt.content_sha256,
            attachments=json.dumps(
                [
                    {"name": a.name, "mime": a.mime, "size": len(a.data), "sha256": a.sha256}
                    for a in message.attachments
                ],
                ensure_ascii=False,
            ),
            status=attempt.status.value,
            reason=attempt.reason,
            provider_message_id=attempt.provider_message_id,
            raw_response=attempt.raw_response,
            request=attempt.request,
            operator=attempt.operator,
            at_ms=to_ms(attempt.at),
            sent_text=attempt.sent_text,
        )
    return to_attempt(row)


def to_attempt(row: ContactAttempt) -> Attempt:
    return Attempt(
        at=datetime.fromtimestamp(row.at_ms / 1000, UTC),
        channel=row.channel,
        provider=row.provider,
        recipient=row.recipient,
        template_id=row.template_id,
        template_version=row.template_version,
        content_sha256=row.content_sha256,
        status=Status(row.status),
        reason=row.reason,
        provider_message_id=row.provider_message_id,
        raw_response=row.raw_response,
        request=bytes(row.request or b""),
        operator=row.operator,
        attempt_id=row.id,
        sent_text=row.sent_text or "",
    )


def last_attempt(key: str) -> ContactAttempt | None:
    query = ContactAttempt.select().where(ContactAttempt.idem_key == key)
    return query.order_by(ContactAttempt.attempt_no.desc()).first()


def record_receipts(receipts: Iterable[Receipt], clock: Clock) -> list[DeliveryReceipt]:
    """Store each report once, linked to the attempt whose provider message id (and recipient) it names."""
    stored = []
    now = to_ms(clock.now())
    for receipt in receipts:
        raw_sha256 = hashlib.sha256(receipt.raw.encode()).hexdigest()
        with write_transaction():
            if DeliveryReceipt.get_or_none(provider=receipt.provider, raw_sha256=raw_sha256) is not None:
                continue
            attempt = _matching_attempt(receipt)
            row = DeliveryReceipt.create(
                attempt=attempt,
                provider=receipt.provider,
                provider_message_id=receipt.provider_message_id,
                recipient=receipt.recipient,
                status=receipt.status.value,
                detail=receipt.detail,
                provider_time=receipt.provider_time,
                raw=receipt.raw,
                raw_sha256=raw_sha256,
                received_ms=now,
            )
            if attempt is not None:
                attempt.receipt_status, attempt.receipt_ms = receipt.status.value, now
                attempt.save(only=[ContactAttempt.receipt_status, ContactAttempt.receipt_ms])
        stored.append(row)
    return stored


def _matching_attempt(receipt: Receipt) -> ContactAttempt | None:
    query = ContactAttempt.select().where(
        ContactAttempt.provider == receipt.provider, ContactAttempt.provider_message_id == receipt.provider_message_id
    )
    candidates = list(query.order_by(ContactAttempt.id))
    if receipt.recipient:
        # providers write numbers their own way (+8613..., 13..., masked 1381111****)
        same = [c for c in candidates if _same_recipient(c.recipient, receipt.recipient)]
        candidates = same or candidates
    return candidates[-1] if candidates else None


def _same_recipient(ours: str, theirs: str) -> bool:
    if ours == theirs:
        return True
    a, b = ours.removeprefix("+86"), theirs.removeprefix("+86")
    visible = b.rstrip("*")
    return a == b or (len(visible) < len(b) and a.startswith(visible) and len(a) == len(b))


def attempts_for(case_ref: str) -> list[ContactAttempt]:
    query = ContactAttempt.select().where(ContactAttempt.case_ref == case_ref)
    return list(query.order_by(ContactAttempt.at_ms, ContactAttempt.id))
