"""The seam between the engine and the channels: the engine plans and records steps, a sender
delivers them and records each contact attempt (with receipts) in its own log.

``send`` returning means the step went out (at least one attempt was made and recorded). It returns a ``Sent``:
the ``Outcome`` of each recipient×channel (sent, a person's task opened, failed and why, no address on file,
channel not configured, uncertain), which the engine writes into the step's timeline entry — who was reached
and who was not, in Chinese first and as data — and a short ``note`` of what it could not do, kept as the step's
error. A plain string (or None) is accepted too, from senders that know no outcomes (``RecordingSender``).
Raising ``SendFailed`` means it could not be sent at all (recorded as failed, for a person to look at; its
``outcomes`` say what happened to each recipient×channel); ``NoticeUnrenderable``, a ``SendFailed``, means the
notice itself could not be made — facts are missing, no channel was at fault — and names them and what a person
does about it; raising ``SenderUnavailable`` means "not now" (the step stays due and is tried at the next tick).
The engine claims a step before calling ``send`` and never calls it twice for one step.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cloud.channels import names, reasons
from cloud.escalation.policy import NOTICE_NAMES, ROLE_NAMES

log = logging.getLogger(__name__)
RESULTS = {  # an outcome's result: what a Chinese reader is told, the English, whether the recipient was reached
    "sent": ("已发出", "sent", True),
    "delivered": ("已送达", "delivered", True),
    "read": ("已读", "read", True),
    "task_open": ("已交人工办理", "handed to a person", True),  # a call to make, a letter to post: a task
    "done": ("人工已办理", "done by a person", True),
    "failed": ("发送失败", "failed", False),
    "uncertain": ("结果不明", "outcome unknown", False),
    "no_address": ("无联系方式，未发送", "no address on file, not sent", False),
    "not_configured": ("未配置该通道，未发送", "channel not configured, not sent", False),
}


@dataclass(frozen=True)
class PlannedStep:
    step_id: int
    case_id: int
    key: str  # "L1", "L3", "L3:welfare", "L7:termination"...
    level: int
    notice: str  # reminder | warning | cuigao | welfare | kuanggong | union_letter | termination
    recipients: tuple[str, ...]  # employee | manager | hr | emergency_contact | union
    channels: tuple[str, ...]
    employee_id: int
    employee_no: str
    plant_id: str
    user_id: str
    policy: str  # the policy version the case runs under, e.g. "*/v3"
    absent_days: tuple[str, ...]  # the counted dates, for the notice's 事实 section
    deadline_ms: int | None  # the 催告函's return deadline, once known
    planned_ms: int


@dataclass(frozen=True)
class Outcome:
    """What happened to one recipient×channel of a step."""

    role: str  # employee | manager | hr | emergency_contact | union
    channel: str  # the policy's kind: sms, email, wecom...
    result: str  # a key of RESULTS
    reason: str = ""  # the provider's or the channel's words, for failed and uncertain ones

    @property
    def reached(self) -> bool:
        return RESULTS.get(self.result, ("", "", False))[2]

    def zh(self) -> str:
        said = RESULTS.get(self.result, (self.result,))[0]
        if self.result == "not_configured":
            said = f"未配置{names.zh(self.channel)}通道，未发送"
        elif self.reason and not self.reached:  # why, in plain words; the provider's own stay in ``data``
            said += f"（{reasons.zh(self.channel, self.reason)}）"
        return f"{_role(self.role)}·{names.zh(self.channel)} {said}"

    def en(self) -> str:
        said = RESULTS.get(self.result, ("", self.result))[1]
        reason = f" ({self.reason})" if self.reason and not self.reached else ""
        return f"{_role(self.role, 1)} by {names.en(self.channel)}: {said}{reason}"

    def data(self) -> dict[str, str]:
        return {"role": self.role, "channel": self.channel, "result": self.result, "reason": self.reason}


def _role(role: str, lang: int = 0) -> str:
    return ROLE_NAMES.get(role, (role, role))[lang]


@dataclass(frozen=True)
class Sent:
    """A step that went out: each recipient×channel's outcome, and the note kept as the step's error."""

    outcomes: tuple[Outcome, ...] = ()
    note: str = ""


def unreached(outcomes: Iterable[Outcome]) -> list[str]:
    """The recipients (roles, in order) none of whose channels reached them."""
    roles = list(dict.fromkeys(o.role for o in outcomes))
    return [r for r in roles if not any(o.reached for o in outcomes if o.role == r)]


def describe(outcomes: Sequence[Outcome]) -> tuple[str, str]:
    """What a step did, recipient×channel by recipient×channel: "员工·短信 已发出；员工·邮件 已发出；主管：无联系方式，
    未发送" — a recipient with no address for any channel named once — and the English."""
    zh: list[str] = []
    en: list[str] = []
    for role in dict.fromkeys(o.role for o in outcomes):
        mine = [o for o in outcomes if o.role == role]
        if all(o.result == "no_address" for o in mine):
            zh.append(f"{_role(role)}：无联系方式，未发送")
            en.append(f"{_role(role, 1)}: no address on file, not sent")
            continue
        zh += [o.zh() for o in mine]
        en += [o.en() for o in mine]
    return "；".join(zh), "; ".join(en)


def outcome_data(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The outcomes as a timeline entry's data, for pages: each one, and who was not reached."""
    return {"outcomes": [o.data() for o in outcomes], "unreached": unreached(outcomes)}


class SendFailed(Exception):
    """The step could not be sent by any of its channels; ``outcomes`` say what happened to each."""

    def __init__(self, message: str, outcomes: Sequence[Outcome] = ()) -> None:
        super().__init__(message)
        self.outcomes = tuple(outcomes)


@dataclass(frozen=True)
class MissingFact:
    """A fact a notice cannot go out without, as a person is told: what it is and what to do."""

    fact: str  # the template's dotted path, e.g. "earlier_notices"
    zh: str
    en: str
    todo_zh: str
    todo_en: str


class NoticeUnrenderable(SendFailed):
    """The notice could not be made (facts missing, no font): not a channel's failure, nothing was sent. Says
    which facts are missing and what a person must do."""

    def __init__(self, notice: str, missing: Sequence[MissingFact]) -> None:
        self.notice = notice
        self.missing = tuple(missing)
        zh, en = self.explain()
        super().__init__(f"{zh} / {en}")

    def explain(self) -> tuple[str, str]:
        notice_zh, notice_en = NOTICE_NAMES.get(self.notice, (self.notice, self.notice))
        zh = f"{notice_zh}无法生成：缺少" + "、".join(m.zh for m in self.missing)
        zh += " — " + "；".join(dict.fromkeys(m.todo_zh for m in self.missing))
        en = f"the {notice_en} cannot be made without " + ", ".join(m.en for m in self.missing)
        en += " — " + "; ".join(dict.fromkeys(m.todo_en for m in self.missing))
        return zh, en


class SendUncertain(SendFailed):
    """No channel surely reached anyone, and at least one may have (no answer from a provider): a person
    checks with the provider before anything is sent again, so nobody gets a notice twice."""


class SenderUnavailable(Exception):
    """The channels cannot be used now (no dispatcher configured, provider down): try again later."""


class SendRetry(Exception):
    """This step cannot go out now (quiet hours, a channel failed and has tries left): due again at ``after_ms``.
    What already went out under the step's idempotency keys is not sent again."""

    def __init__(self, message: str, after_ms: int) -> None:
        super().__init__(message)
        self.after_ms = after_ms


class Sender(Protocol):
    """``send`` may be called from several threads at once when the sender says so (a ``parallel`` attribute: how
    many steps it sends at once; one when it has none), never twice for one step, and never for two steps of one
    case at once."""

    def send(self, step: PlannedStep) -> Sent | str | None: ...


class HoldingSender:
    """Used until a dispatcher is configured: sends nothing and says so, so steps stay due rather
    than being recorded as sent."""

    def send(self, step: PlannedStep) -> str | None:
        raise SenderUnavailable("no channel dispatcher configured; steps wait")


class RecordingSender:
    """Keeps every step it is given (tests, dry runs); ``fail`` makes chosen notices fail."""

    def __init__(self, fail: frozenset[str] = frozenset()) -> None:
        self.sent: list[PlannedStep] = []
        self.fail = fail

    def send(self, step: PlannedStep) -> str | None:
        if step.notice in self.fail:
            raise SendFailed(f"{step.notice}: every channel failed")
        self.sent.append(step)
        return None

    def step_keys(self) -> list[str]:
        return [s.key for s in self.sent]
