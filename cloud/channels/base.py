"""The one interface every channel speaks, and the data that crosses it.

An ``OutboundMessage`` is what the escalation engine wants said; an ``Attempt`` is what happened when a channel
tried, with everything a court may ask about it: when, to whom, which template version, the hash of the content,
the provider's message id and its raw answer. Channels never raise for a provider's refusal: a failure is an
``Attempt`` with a clear reason, so that it is logged like a success.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class Status(enum.StrEnum):
    SENT = "sent"  # the provider accepted it (delivery is a later receipt)
    FAILED = "failed"  # the provider refused it, or never got it: sending again is no duplicate
    UNCERTAIN = "uncertain"  # no answer (timeout, connection lost after the request): it may have gone out
    TASK_OPEN = "task_open"  # a person must act (call, post a letter)
    DONE = "done"  # a person recorded the outcome of a task


class ReceiptStatus(enum.StrEnum):
    """A provider's delivery report, normalised; the report itself is kept verbatim beside it."""

    DELIVERED = "delivered"  # carrier/handset receipt, EMS 妥投, call answered
    READ = "read"  # DingTalk read list
    UNREAD = "unread"  # delivered to the app, not read yet
    FAILED = "failed"  # carrier said not delivered, empty number, invalid user
    RETURNED = "returned"  # EMS 退回
    NO_ANSWER = "no_answer"  # call not answered / switched off
    PENDING = "pending"  # provider still waiting for the carrier


@dataclass(frozen=True)
class Attachment:
    name: str
    data: bytes
    mime: str = "application/pdf"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class OutboundMessage:
    """What to say, to whom, by which channel, and for which step of which case.

    ``channel`` names a configured channel ("email", "sms.aliyun") or a kind ("sms"): the dispatcher picks the
    first configured channel of that kind. ``params`` are the variables of a provider's pre-approved SMS template
    (Aliyun and Tencent only send approved templates); ``text`` is the full text the recipient should see.
    """

    case_ref: str
    step_id: str
    recipient: str  # e-mail address, +86 phone number, WeCom/DingTalk user id, robot name, postal address
    channel: str
    template_id: str
    template_version: str
    subject: str
    text: str
    attachments: tuple[Attachment, ...] = ()
    operator: str = "system"
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def content_sha256(self) -> str:
        """The hash of what was said: subject, text and each attachment's hash, in a fixed layout."""
        digest = hashlib.sha256()
        digest.update(self.subject.encode() + b"\n\n" + self.text.encode())
        for item in self.attachments:
            digest.update(f"\n--\n{item.name}\n{item.mime}\n{item.sha256}".encode())
        return digest.hexdigest()

    @property
    def chat_text(self) -> str:
        """Subject and text in one piece, for channels with no subject line (WeCom, DingTalk)."""
        return f"{self.subject}\n{self.text}" if self.subject else self.text


@dataclass(frozen=True)
class Attempt:
    at: datetime  # aware UTC, when the attempt was made
    channel: str
    provider: str
    recipient: str
    template_id: str
    template_version: str
    content_sha256: str
    status: Status
    reason: str = ""  # why it failed or is uncertain, in plain words
    provider_message_id: str = ""
    raw_response: str = ""  # the provider's answer, verbatim (secrets never appear in it)
    request: bytes = b""  # what went on the wire, secrets removed (for e-mail: the exact RFC 5322 message)
    operator: str = "system"
    attempt_id: int | None = None  # the contact-log row, once stored
    # an SMS as the recipient's phone shows it: the provider's approved template text (configured beside its code)
    # with this message's variables filled in, after the 【signature】; "" when that text is not configured
    sent_text: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (Status.SENT, Status.TASK_OPEN, Status.DONE)


@dataclass(frozen=True)
class Receipt:
    """A delivery report as the provider sent it (``raw``), matched to an attempt by provider message id."""

    provider: str
    provider_message_id: str
    status: ReceiptStatus
    raw: str
    recipient: str = ""
    provider_time: str = ""  # the provider's own time of the event, as it wrote it
    detail: str = ""  # the provider's code, e.g. DELIVERED, DELIVRD, 妥投


class Channel(Protocol):
    name: str  # as configured, e.g. "sms.aliyun"
    kind: str  # email, sms, wecom, dingtalk, voice, ems
    provider: str

    def send(self, message: OutboundMessage) -> Attempt: ...


def attempt_for(
    channel: Channel,
    message: OutboundMessage,
    at: datetime,
    status: Status,
    *,
    reason: str = "",
    message_id: str = "",
    response: str = "",
    request: bytes = b"",
    sent_text: str = "",
) -> Attempt:
    """The attempt a channel reports for ``message``: every channel fills the same fields the same way."""
    return Attempt(
        at=at,
        channel=channel.name,
        provider=channel.provider,
        recipient=message.recipient,
        template_id=message.template_id,
        template_version=message.template_version,
        content_sha256=message.content_sha256,
        status=status,
        reason=reason,
        provider_message_id=message_id,
        raw_response=response,
        request=request,
        operator=message.operator,
        sent_text=sent_text,
    )
