"""What every HTTP provider channel (Aliyun and Tencent SMS, WeCom and DingTalk apps and robots) does alike.

Each provider keeps its own module for what is its own: the signature, the wire format, the error codes it retries
and how its answer reads. This class holds what is the same for all of them, so that it is the same: the injected
clock and sleep, the rate limit, the attempt with the provider's secrets removed from its answer, and the one
place where a request that got no answer becomes "uncertain" (it may have gone out, never sent again) while a
request that never arrived, or had no token to go with, becomes "failed".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar, Generic, Protocol, TypedDict, TypeVar

from cloud.channels.base import Attempt, OutboundMessage, Status, attempt_for
from cloud.channels.ratelimit import ChannelLimiter, RateLimit
from cloud.channels.transport import (
    DEFAULT_BACKOFF,
    Backoff,
    NoAnswer,
    Sleep,
    TokenFailed,
    Unreachable,
    redact,
    retry_when,
)
from cloud.clock import Clock, SystemClock

T = TypeVar("T")


class ProviderSettings(Protocol):
    @property
    def per_minute(self) -> int: ...


S = TypeVar("S", bound=ProviderSettings)


class ChannelOptions(TypedDict, total=False):
    """The keyword arguments every provider channel takes (``name`` and ``backoff`` default per class)."""

    name: str
    clock: Clock | None
    sleep: Sleep | None
    backoff: Backoff
    limit: RateLimit | None


class ProviderChannel(Generic[S]):
    kind: ClassVar[str]
    provider: ClassVar[str]
    default_name: ClassVar[str]
    default_backoff: ClassVar[Backoff] = DEFAULT_BACKOFF

    def __init__(
        self,
        settings: S,
        *,
        name: str | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        backoff: Backoff | None = None,
        limit: RateLimit | None = None,
    ) -> None:
        self.settings = settings
        self.name = self.default_name if name is None else name
        self.clock = clock or SystemClock()
        self.sleep = sleep or time.sleep
        self.backoff = self.default_backoff if backoff is None else backoff
        # the configured limit ([channels.*]), else the settings' own ceiling of so many a minute
        self.limiter = ChannelLimiter(limit or RateLimit(per_minute=settings.per_minute), self.clock, self.sleep)

    def secrets(self) -> tuple[str, ...]:
        """What must never be stored: each provider names its own (it differs per settings class)."""
        raise NotImplementedError

    def attempt(
        self,
        message: OutboundMessage,
        status: Status,
        *,
        reason: str = "",
        message_id: str = "",
        response: str = "",
        request: bytes = b"",
        sent_text: str = "",
    ) -> Attempt:
        """The attempt for ``message`` now, with the provider's answer stored verbatim but for the secrets."""
        return attempt_for(
            self,
            message,
            self.clock.now(),
            status,
            reason=reason,
            message_id=message_id,
            response=redact(response, self.secrets()),
            request=request,
            sent_text=sent_text,
        )

    def exchange(
        self,
        message: OutboundMessage,
        call: Callable[[], T],
        limited: Callable[[T], bool],
        *,
        label: str,
        acted: str = "sent",
        request: bytes = b"",
    ) -> T | Attempt:
        """``call()`` within the rate limit, again after backoff while ``limited``: the answer, or the attempt
        that says why there is none (``label`` names the call in that reason, ``acted`` what it may have done)."""
        try:
            with self.limiter.slot():  # the channel's requests in flight at once, and its rate
                self.limiter.acquire()
                return retry_when(call, limited, self.backoff, self.limiter.pause)  # "too many": the channel waits
        except TokenFailed as err:
            return self.attempt(message, Status.FAILED, reason=str(err), request=request)
        except NoAnswer as err:
            reason = f"{label}: {err}; it may have been {acted}, not retried"
            return self.attempt(message, Status.UNCERTAIN, reason=reason, request=request)
        except Unreachable as err:
            return self.attempt(message, Status.FAILED, reason=f"{label}: {err}", request=request)
