"""HTTP for the provider APIs: timeouts always, a clear line between "refused" and "no answer", backoff, and
access tokens reused until they expire (rate limits: ``cloud.channels.ratelimit``).

Why the line matters: a request that got no answer (a read timeout) may have been sent by the provider, so sending
it again could text a worker twice; a request the provider answered with an error, or that never connected, can be
sent again safely. Sleeping is injected so that tests move a frozen clock instead of waiting.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from cloud.clock import Clock

Sleep = Callable[[float], None]
T = TypeVar("T")


class NoAnswer(Exception):
    """The request went out and no answer came back: the provider may have acted on it."""


class Unreachable(Exception):
    """The request never reached the provider (connection refused, DNS): it certainly was not acted on."""


class TokenFailed(Exception):
    """The provider would not hand out an access token (wrong secret, app disabled): nothing was sent."""


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def http_request(
    method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 10.0
) -> HttpReply:
    """One request; HTTP error statuses are replies (their bodies carry the provider's error codes), not raises."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - URLs come from our config
            return HttpReply(response.status, response.read())
    except urllib.error.HTTPError as err:
        return HttpReply(err.code, err.read())
    except urllib.error.URLError as err:
        # urllib wraps only errors while connecting and writing the request: the provider never had it whole
        raise Unreachable(f"cannot reach the provider: {err.reason}") from err
    except TimeoutError as err:
        raise NoAnswer(f"no answer within {timeout:g}s") from err
    except (ConnectionResetError, http.client.HTTPException) as err:
        raise NoAnswer(f"the connection broke before an answer: {err!r}") from err


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced: raw answers and requests are stored, secrets never are."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class Backoff:
    """Retries after a provider's rate-limit answer: ``tries`` in all, waits growing from ``first_s``."""

    tries: int = 4
    first_s: float = 2.0
    factor: float = 2.0
    max_s: float = 120.0

    def waits(self) -> list[float]:
        return [min(self.first_s * self.factor**n, self.max_s) for n in range(self.tries - 1)]


DEFAULT_BACKOFF = Backoff()


class TokenCache:
    """An access token fetched once and reused until shortly before it expires (WeCom, DingTalk: 7200 s).

    Both providers limit gettoken calls and ask clients to cache the token; ``invalidate()`` is for the answer
    "token expired/invalid", after which the next ``get()`` fetches a new one.
    """

    def __init__(self, fetch: Callable[[], tuple[str, int]], clock: Clock, *, margin_s: int = 300) -> None:
        self.fetch, self.clock, self.margin_s = fetch, clock, margin_s
        self._token = ""
        self._expires = 0.0
        self._lock = threading.Lock()

    def get(self) -> str:
        with self._lock:
            now = self.clock.now().timestamp()
            if not self._token or now >= self._expires:
                token, expires_in = self.fetch()
                self._token, self._expires = token, now + max(expires_in - self.margin_s, 1)
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = ""


def retry_when(call: Callable[[], T], limited: Callable[[T], bool], backoff: Backoff, sleep: Sleep) -> T:
    """``call()`` again after each wait of ``backoff`` while the provider answers "too many requests"."""
    result = call()
    for pause in backoff.waits():
        if not limited(result):
            break
        sleep(pause)
        result = call()
    return result


def json_bytes(payload: object) -> bytes:
    """A JSON body as the providers take it: UTF-8, Chinese left as it is."""
    return json.dumps(payload, ensure_ascii=False).encode()


def json_object(body: bytes) -> dict:
    """The JSON object in ``body``, or {} when the body is no JSON object (an HTML error page, say)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def json_call(method: str, url: str, payload: object | None = None, *, timeout: float) -> tuple[HttpReply, dict]:
    """A JSON API call; the parsed answer is {} when the body is no JSON object."""
    body = None if payload is None else json_bytes(payload)
    headers = {"Content-Type": "application/json; charset=utf-8"} if body is not None else {}
    reply = http_request(method, url, body=body, headers=headers, timeout=timeout)
    return reply, json_object(reply.body)
