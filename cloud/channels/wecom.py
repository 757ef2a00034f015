"""企业微信 (WeCom): the app's work notification (gettoken + message/send) and the group robot webhook.

API as documented at developer.work.weixin.qq.com: gettoken (document/path/91039) answers an access_token valid
for ``expires_in`` seconds (7200) that must be cached, not fetched per call; message/send (path/90236) answers
``msgid`` and lists recipients it could not reach in ``invaliduser``/``unlicenseduser``; the group robot
(path/91770) takes at most 20 messages a minute. errcode 42001/40014 mean the token expired or is invalid (fetch
a new one, once); 45009 means too many calls and -1 "system busy" (both retried with backoff).

WeCom gives no read receipt: the evidence is the msgid and the answer. Only members of the WeCom organisation
can be reached, so this never replaces SMS or EMS for an absent worker.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import dataclass

from cloud.channels.base import Attempt, OutboundMessage, Status, attempt_for
from cloud.channels.transport import (
    DEFAULT_BACKOFF,
    Backoff,
    NoAnswer,
    RateLimiter,
    Sleep,
    TokenCache,
    Unreachable,
    json_call,
    redact,
    retry_when,
)
from cloud.clock import Clock, SystemClock

BASE_URL = "https://qyapi.weixin.qq.com"
TOKEN_ERRORS = {40014, 42001, 41001}
BUSY = {45009, -1}
ROBOT_BACKOFF = Backoff(first_s=10.0)


class TokenFailed(Exception):
    pass


@dataclass(frozen=True)
class WeComAppSettings:
    corp_id: str
    corp_secret: str
    agent_id: int
    base_url: str = BASE_URL
    timeout_s: float = 10.0
    per_minute: int = 600


@dataclass(frozen=True)
class WeComRobotSettings:
    key: str  # the webhook's key=... (a secret: whoever has it can post to the group)
    base_url: str = BASE_URL
    timeout_s: float = 10.0
    per_minute: int = 20  # WeCom's limit per robot


def _text(message: OutboundMessage) -> str:
    return f"{message.subject}\n{message.text}" if message.subject else message.text


class WeComApp:
    kind = "wecom"
    provider = "wecom"

    def __init__(
        self,
        settings: WeComAppSettings,
        *,
        name: str = "wecom",
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self.settings, self.name = settings, name
        self.clock = clock or SystemClock()
        self.sleep = sleep or time.sleep
        self.backoff = backoff
        self.limiter = RateLimiter(settings.per_minute, 60, self.clock, self.sleep)
        self.token = TokenCache(self._fetch_token, self.clock)

    def _fetch_token(self) -> tuple[str, int]:
        s = self.settings
        query = urllib.parse.urlencode({"corpid": s.corp_id, "corpsecret": s.corp_secret})
        reply, data = json_call("GET", f"{s.base_url}/cgi-bin/gettoken?{query}", timeout=s.timeout_s)
        if data.get("errcode") != 0 or not data.get("access_token"):
            answer = redact(reply.text, [s.corp_secret])
            raise TokenFailed(f"WeCom gettoken refused (HTTP {reply.status}): {answer[:300]}")
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    def send(self, message: OutboundMessage) -> Attempt:
        s = self.settings
        payload = {
            "touser": message.recipient,
            "msgtype": "text",
            "agentid": s.agent_id,
            "text": {"content": _text(message)},
            "safe": 0,
            "enable_duplicate_check": 1,  # WeCom drops the same content to the same user within the interval
            "duplicate_check_interval": 1800,
        }

        def result(status: Status, reason: str = "", message_id: str = "", response: str = "") -> Attempt:
            return attempt_for(
                self,
                message,
                self.clock.now(),
                status,
                reason=reason,
                message_id=message_id,
                response=redact(response, [s.corp_secret]),
                request=_json(payload),
            )

        def post() -> tuple:
            token = self.token.get()
            url = f"{s.base_url}/cgi-bin/message/send?access_token={urllib.parse.quote(token)}"
            reply, data = json_call("POST", url, payload, timeout=s.timeout_s)
            if data.get("errcode") in TOKEN_ERRORS:
                self.token.invalidate()
                reply, data = json_call(
                    "POST",
                    f"{s.base_url}/cgi-bin/message/send?access_token={urllib.parse.quote(self.token.get())}",
                    payload,
                    timeout=s.timeout_s,
                )
            return reply, data

        self.limiter.acquire()
        try:
            reply, data = retry_when(post, lambda r: r[1].get("errcode") in BUSY, self.backoff, self.sleep)
        except TokenFailed as err:
            return result(Status.FAILED, str(err))
        except NoAnswer as err:
            return result(Status.UNCERTAIN, f"WeCom message/send: {err}; it may have been sent, not retried")
        except Unreachable as err:
            return result(Status.FAILED, f"WeCom message/send: {err}")
        code = data.get("errcode")
        if code != 0:
            why = f"WeCom refused message/send (HTTP {reply.status}): errcode {code}: {data.get('errmsg', '')}"
            return result(Status.FAILED, why, response=reply.text)
        unreached = {u for key in ("invaliduser", "unlicenseduser") for u in str(data.get(key) or "").split("|")}
        if message.recipient in unreached:
            why = f"WeCom did not deliver: {message.recipient} is not a (licensed) member of the organisation"
            return result(Status.FAILED, why, message_id=str(data.get("msgid", "")), response=reply.text)
        return result(Status.SENT, message_id=str(data.get("msgid", "")), response=reply.text)


class WeComRobot:
    kind = "wecom_robot"
    provider = "wecom_robot"

    def __init__(
        self,
        settings: WeComRobotSettings,
        *,
        name: str = "wecom.robot",
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        backoff: Backoff = ROBOT_BACKOFF,
    ) -> None:
        self.settings, self.name = settings, name
        self.clock = clock or SystemClock()
        self.sleep = sleep or time.sleep
        self.backoff = backoff
        self.limiter = RateLimiter(settings.per_minute, 60, self.clock, self.sleep)

    def send(self, message: OutboundMessage) -> Attempt:
        s = self.settings
        payload = {"msgtype": "text", "text": {"content": _text(message)}}

        def result(status: Status, reason: str = "", response: str = "") -> Attempt:
            return attempt_for(
                self,
                message,
                self.clock.now(),
                status,
                reason=reason,
                response=redact(response, [s.key]),
                request=_json(payload),
            )

        url = f"{s.base_url}/cgi-bin/webhook/send?key={urllib.parse.quote(s.key)}"
        self.limiter.acquire()
        try:
            reply, data = retry_when(
                lambda: json_call("POST", url, payload, timeout=s.timeout_s),
                lambda r: r[1].get("errcode") in BUSY,
                self.backoff,
                self.sleep,
            )
        except NoAnswer as err:
            return result(Status.UNCERTAIN, f"WeCom robot: {err}; it may have been posted, not retried")
        except Unreachable as err:
            return result(Status.FAILED, f"WeCom robot: {err}")
        if data.get("errcode") != 0:
            why = f"WeCom robot refused (HTTP {reply.status}): errcode {data.get('errcode')}: {data.get('errmsg', '')}"
            return result(Status.FAILED, why, response=reply.text)
        return result(Status.SENT, response=reply.text)


def _json(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()
