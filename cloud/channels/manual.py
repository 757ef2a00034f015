"""Voice calls and EMS registered mail: steps a person takes, recorded like any other attempt.

``ManualChannel.send`` opens a task (an attempt with status ``task_open``: "call this number", "post this notice by
EMS to this address, with the document's title on the waybill"); ``record_result`` is what the person enters
afterwards — the call's outcome, the EMS waybill number when posted, then 妥投 or 退回 — and adds an attempt row
under the same idempotency key, with the operator, plus a receipt where the outcome is a delivery fact.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime

from cloud.channels import contact_log
from cloud.channels.base import Attempt, OutboundMessage, Receipt, ReceiptStatus, Status, attempt_for
from cloud.channels.contact_log import ContactAttempt
from cloud.clock import Clock, SystemClock


class Outcome(enum.Enum):
    CALL_CONNECTED = ("voice", "接通", ReceiptStatus.DELIVERED)
    CALL_NO_ANSWER = ("voice", "无人接听", ReceiptStatus.NO_ANSWER)
    CALL_SWITCHED_OFF = ("voice", "关机", ReceiptStatus.NO_ANSWER)
    CALL_EMPTY_NUMBER = ("voice", "空号", ReceiptStatus.FAILED)
    EMS_POSTED = ("ems", "已交寄", None)
    EMS_DELIVERED = ("ems", "妥投", ReceiptStatus.DELIVERED)
    EMS_RETURNED = ("ems", "退回", ReceiptStatus.RETURNED)

    @property
    def kind(self) -> str:
        return self.value[0]

    @property
    def label(self) -> str:
        return self.value[1]

    @property
    def receipt(self) -> ReceiptStatus | None:
        return self.value[2]


class TaskError(Exception):
    pass


class ManualChannel:
    """``kind`` is "voice" or "ems"; sending opens a task for a person (provider "person.voice"/"person.ems")."""

    def __init__(self, kind: str, *, name: str | None = None, clock: Clock | None = None) -> None:
        if kind not in ("voice", "ems"):
            raise ValueError(f"a manual channel is voice or ems, not {kind!r}")
        self.kind, self.name, self.provider = kind, name or kind, f"person.{kind}"
        self.clock = clock or SystemClock()

    def send(self, message: OutboundMessage) -> Attempt:
        if self.kind == "voice":
            todo = (
                f"请致电 {message.recipient}，告知：{message.subject}；"
                "并记录结果（接通/无人接听/关机/空号）及通话要点。"
            )
        else:
            todo = (
                f"请将《{message.subject}》打印盖章，以 EMS 寄往：{message.recipient}；运单物品名称栏写明文件名称；"
                "交寄后录入运单号，妥投或退回后录入结果并上传回执。"
            )
        return attempt_for(self, message, self.clock.now(), Status.TASK_OPEN, reason=todo)


@dataclass(frozen=True)
class TaskResult:
    attempt: Attempt
    receipt: Receipt | None


def record_result(
    task_attempt_id: int,
    outcome: Outcome,
    *,
    operator: str,
    waybill: str = "",
    note: str = "",
    happened_at: datetime | None = None,
    clock: Clock | None = None,
) -> TaskResult:
    """Record what the person did for the task ``task_attempt_id``; EMS outcomes need the waybill number."""
    clock = clock or SystemClock()
    task = ContactAttempt.get_or_none(ContactAttempt.id == task_attempt_id)
    if task is None or not task.provider.startswith("person."):
        raise TaskError(f"no call or EMS task {task_attempt_id}")
    if outcome.kind != task.provider.removeprefix("person."):
        raise TaskError(f"{outcome.label} is not an outcome of a {task.provider.removeprefix('person.')} task")
    if not operator:
        raise TaskError("the operator who did it must be named")
    if outcome.kind == "ems" and not waybill:
        raise TaskError("an EMS result needs the waybill number")
    when = happened_at or clock.now()
    message = OutboundMessage(
        case_ref=task.case_ref,
        step_id=task.step_id,
        recipient=task.recipient,
        channel=task.channel,
        template_id=task.template_id,
        template_version=task.template_version,
        subject=task.subject,
        text="",
        operator=operator,
    )
    raw = json.dumps(
        {
            "outcome": outcome.label,
            "waybill": waybill,
            "note": note,
            "happened_at": when.isoformat(),
            "operator": operator,
            "task": task_attempt_id,
        },
        ensure_ascii=False,
    )
    provider_id = waybill or f"task-{task_attempt_id}"
    done = Attempt(
        at=clock.now(),
        channel=task.channel,
        provider=task.provider,
        recipient=task.recipient,
        template_id=task.template_id,
        template_version=task.template_version,
        content_sha256=task.content_sha256,
        status=Status.DONE,
        reason=outcome.label + (f"：{note}" if note else ""),
        provider_message_id=provider_id,
        raw_response=raw,
        operator=operator,
    )
    stored = contact_log.record_attempt(message, done, key=task.idem_key)
    receipt = None
    if outcome.receipt is not None:
        receipt = Receipt(
            task.provider,
            provider_id,
            outcome.receipt,
            raw,
            recipient=task.recipient,
            provider_time=when.isoformat(),
            detail=outcome.label,
        )
        contact_log.record_receipts([receipt], clock)
    return TaskResult(stored, receipt)
