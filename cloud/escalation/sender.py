"""The seam between the engine and the channels: the engine plans and records steps, a sender
delivers them and records each contact attempt (with receipts) in its own log.

``send`` returning means the step went out (at least one attempt was made and recorded); what it returns is
what the step could not do (a recipient×channel with no address, or whose channel is not configured), kept as
the step's error, or None when it went everywhere; raising
``SendFailed`` means it could not be sent at all (recorded as failed, for a person to look at);
raising ``SenderUnavailable`` means "not now" (the step stays due and is tried at the next tick).
The engine claims a step before calling ``send`` and never calls it twice for one step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


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


class SendFailed(Exception):
    """The step could not be sent by any of its channels."""


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
    def send(self, step: PlannedStep) -> str | None: ...


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
