"""What the WeCom and DingTalk channels do alike: JSON posted to an errcode-style API, as an app or as a group robot.

Both providers answer every call with ``errcode`` (0 is success) and ``errmsg``; both retry some errcodes as
"busy" and treat any other non-zero errcode as a refusal, reported in the provider's words. An app
(``TokenAppChannel``) gets an access token from gettoken, keeps it until shortly before it expires and, when a call
is answered "token invalid or expired", fetches a new one and calls once more. A group robot (``RobotChannel``)
posts to its webhook, whose query carries the robot's secret; its only answer is the errcode.

Each provider's module keeps what is its own: URLs, parameter names, errcodes, payloads and how an answer is read.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar, Unpack

from cloud.channels.base import Attempt, OutboundMessage, Status
from cloud.channels.provider import ChannelOptions, ProviderChannel
from cloud.channels.transport import HttpReply, TokenCache, TokenFailed, json_bytes, json_call, redact


class ImSettings(Protocol):
    @property
    def base_url(self) -> str: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def per_minute(self) -> int: ...


S = TypeVar("S", bound=ImSettings)


@dataclass(frozen=True)
class Answered:
    """The provider's errcode-0 answer to a message, with what went on the wire for it."""

    reply: HttpReply
    data: dict
    request: bytes


def errcode_refusal(what: str, reply: HttpReply, data: dict) -> str:
    """Why an errcode-style API refused, in the words it used: ``what`` names who refused what."""
    return f"{what} (HTTP {reply.status}): errcode {data.get('errcode')}: {data.get('errmsg', '')}"


def fetch_token(who: str, url: str, secrets: Iterable[str], *, timeout: float) -> tuple[str, int]:
    """An errcode-style gettoken: the token and its lifetime, or ``TokenFailed`` (its answer without the secrets)."""
    reply, data = json_call("GET", url, timeout=timeout)
    if data.get("errcode") != 0 or not data.get("access_token"):
        answer = redact(reply.text, secrets)
        raise TokenFailed(f"{who} gettoken refused (HTTP {reply.status}): {answer[:300]}")
    return str(data["access_token"]), int(data.get("expires_in", 7200))


class ErrcodeChannel(ProviderChannel[S]):
    """A message posted as JSON within the rate limit, retried while the errcode is one of ``busy``."""

    busy: ClassVar[Collection[int]]

    def post(self, path: str, payload: dict) -> tuple[HttpReply, dict]:
        raise NotImplementedError

    def post_message(
        self,
        message: OutboundMessage,
        path: str,
        payload: dict,
        *,
        label: str,
        refused: str,
        acted: str = "sent",
        required: tuple[str, ...] = (),
    ) -> Answered | Attempt:
        """The errcode-0 answer that carries every key ``required``, or the failed or uncertain attempt: ``label``
        names the call when it got no answer, ``refused`` when it was refused."""
        request = json_bytes(payload)
        answer = self.exchange(
            message,
            lambda: self.post(path, payload),
            lambda r: r[1].get("errcode") in self.busy,
            label=label,
            acted=acted,
            request=request,
        )
        if isinstance(answer, Attempt):
            return answer
        reply, data = answer
        if data.get("errcode") != 0 or any(key not in data for key in required):
            why = errcode_refusal(refused, reply, data)
            return self.attempt(message, Status.FAILED, reason=why, response=reply.text, request=request)
        return Answered(reply, data, request)

    def answered(
        self, message: OutboundMessage, answer: Answered, status: Status, *, reason: str = "", message_id: str = ""
    ) -> Attempt:
        return self.attempt(
            message, status, reason=reason, message_id=message_id, response=answer.reply.text, request=answer.request
        )


class TokenAppChannel(ErrcodeChannel[S]):
    """An app's calls, each with the cached access token (``self.token``); the constructor fetches nothing."""

    brand: ClassVar[str]  # who refused the token, in its reason
    gettoken_path: ClassVar[str]
    token_errors: ClassVar[Collection[int]]  # "token invalid or expired": fetched again, once

    def __init__(self, settings: S, **options: Unpack[ChannelOptions]) -> None:
        super().__init__(settings, **options)
        self.token = TokenCache(self._fetch_token, self.clock)

    def credentials(self) -> dict[str, str]:
        """gettoken's query parameters (the app's id and its secret, under the provider's names)."""
        raise NotImplementedError

    def _fetch_token(self) -> tuple[str, int]:
        s = self.settings
        url = f"{s.base_url}{self.gettoken_path}?{urllib.parse.urlencode(self.credentials())}"
        return fetch_token(self.brand, url, self.secrets(), timeout=s.timeout_s)

    def post(self, path: str, payload: dict) -> tuple[HttpReply, dict]:
        """POST with the cached token; when the provider calls the token stale, once more with a fresh one."""
        s = self.settings

        def call() -> tuple[HttpReply, dict]:
            url = f"{s.base_url}{path}?access_token={urllib.parse.quote(self.token.get())}"
            return json_call("POST", url, payload, timeout=s.timeout_s)

        reply, data = call()
        if data.get("errcode") in self.token_errors:
            self.token.invalidate()
            reply, data = call()
        return reply, data


class RobotChannel(ErrcodeChannel[S]):
    """A group robot: the message's text posted to the webhook at ``path``; errcode 0 is all it answers."""

    label: ClassVar[str]  # "WeCom robot": the reasons say "WeCom robot refused", "WeCom robot: no answer"
    path: ClassVar[str]

    def webhook_query(self) -> str:
        """The query that names (and, for DingTalk, signs) the robot: built again for every request."""
        raise NotImplementedError

    def post(self, path: str, payload: dict) -> tuple[HttpReply, dict]:
        s = self.settings
        return json_call("POST", f"{s.base_url}{path}?{self.webhook_query()}", payload, timeout=s.timeout_s)

    def send(self, message: OutboundMessage) -> Attempt:
        payload = {"msgtype": "text", "text": {"content": message.chat_text}}
        answer = self.post_message(
            message, self.path, payload, label=self.label, refused=f"{self.label} refused", acted="posted"
        )
        return answer if isinstance(answer, Attempt) else self.answered(message, answer, Status.SENT)
