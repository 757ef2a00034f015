"""The contact log: every attempt to reach someone, and every delivery report, as evidence.

Rows are only ever added (a receipt updates nothing but the attempt's latest normalised status, for listing).
``case_ref`` is a plain string, not a foreign key: the log belongs to the evidence, not to the case table, and
must survive whatever happens to a case. Receipts are stored verbatim beside their normalised status, and a
report the provider sends twice (Aliyun retries its push) is stored once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import peewee as pw

from cloud.channels.base import Attempt, OutboundMessage, Receipt, Status
from cloud.clock import Clock, to_ms
from cloud.store import BaseModel, database, write_transaction


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


def execute(text: str, params: Sequence[Any] = ()) -> Any:
    """``text`` written with ``?`` placeholders, run on the database in use (psycopg2 wants ``%s``). The sends'
    few statements are written out once: peewee builds each query from an expression tree, which cost more than
    the database took to run it, several times for every message."""
    db = database.obj
    return db.execute_sql(text if isinstance(db, pw.SqliteDatabase) else text.replace("?", "%s"), tuple(params))


_COLUMNS = tuple(f.column_name for f in ContactAttempt._meta.sorted_fields)
_WRITTEN = (  # a new attempt's columns, in the order ``record_attempt`` gives them
    "idem_key, attempt_no, case_ref, step_id, channel, provider, recipient, template_id, template_version, "
    "subject, content_sha256, attachments, status, reason, provider_message_id, raw_response, request, operator, "
    "at_ms, sent_text"
)
_INSERT = f"INSERT INTO contact_attempt ({_WRITTEN}) VALUES ({', '.join('?' * 20)}) RETURNING id"
_LAST = f"SELECT {', '.join(_COLUMNS)} FROM contact_attempt WHERE idem_key = ? ORDER BY attempt_no DESC LIMIT 1"


def record_attempt(message: OutboundMessage, attempt: Attempt, *, key: str) -> Attempt:
    """Append ``attempt`` to the log under ``key``; returns it with its row id (as it reads back from the log)."""
    at_ms = to_ms(attempt.at)
    attachments = json.dumps(
        [{"name": a.name, "mime": a.mime, "size": len(a.data), "sha256": a.sha256} for a in message.attachments],
        ensure_ascii=False,
    )
    with write_transaction():
        (before,) = execute("SELECT COUNT(*) FROM contact_attempt WHERE idem_key = ?", [key]).fetchone()
        values = [
            key,
            before + 1,
            message.case_ref,
            message.step_id,
            attempt.channel,
            attempt.provider,
            attempt.recipient,
            attempt.template_id,
            attempt.template_version,
            message.subject,
            attempt.content_sha256,
            attachments,
            attempt.status.value,
            attempt.reason,
            attempt.provider_message_id,
            attempt.raw_response,
            attempt.request,
            attempt.operator,
            at_ms,
            attempt.sent_text,
        ]
        (row_id,) = execute(_INSERT, values).fetchone()
    return dataclasses.replace(
        attempt,
        at=datetime.fromtimestamp(at_ms / 1000, UTC),
        request=bytes(attempt.request or b""),
        sent_text=attempt.sent_text or "",
        attempt_id=row_id,
    )


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
    """The latest attempt under ``key`` (a row as peewee would read it), or None."""
    found = execute(_LAST, [key]).fetchone()
    if found is None:
        return None
    row = ContactAttempt.__new__(ContactAttempt)
    names = [f.name for f in ContactAttempt._meta.sorted_fields]
    row.__data__, row._dirty, row.__rel__ = dict(zip(names, found, strict=True)), set(), {}
    return row


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
