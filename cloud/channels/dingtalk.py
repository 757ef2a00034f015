"""钉钉 (DingTalk): the app's work notification with read receipts, and the custom group robot with 加签.

Work notification (open.dingtalk.com, "发送工作通知" / "获取工作通知消息的发送结果"): gettoken with appkey and
appsecret answers an access_token for ``expires_in`` (7200) seconds, cached; topapi/message/corpconversation/
asyncsend_v2 answers a ``task_id``; getsendresult lists read, unread and failed user ids for that task: the read
list is the one read receipt any of our channels has. errcode 143103/143104 (QPM exceeded) and 90018 are retried
with backoff; 40014/42001 mean the token is invalid or expired (fetched again, once).

Custom robot (robot/send): with 加签 the URL carries ``timestamp`` (ms) and ``sign`` = URL-encoded
Base64(HMAC-SHA256(key=secret, msg=timestamp + "\\n" + secret)); DingTalk rejects a timestamp more than an hour
off (errcode 310000) and throttles a robot for 10 minutes after 20 messages in a minute (errcode 130101), so the
channel keeps itself under 20 a minute.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from cloud.channels.base import Attempt, OutboundMessage, Receipt, ReceiptStatus, Status, attempt_for
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

BASE_URL = "https://oapi.dingtalk.com"
TOKEN_ERRORS = {40014, 42001}
BUSY = {143103, 143104, 90018, -1}
ROBOT_BUSY = {130101}
ROBOT_BACKOFF = Backoff(first_s=60.0)  # DingTalk throttles a robot for 10 minutes


class TokenFailed(Exception):
    pass


class QueryFailed(Exception):
    pass


@dataclass(frozen=True)
class DingTalkAppSettings:
    app_key: str
    app_secret: str
    agent_id: int
    base_url: str = BASE_URL
    timeout_s: float = 10.0
    per_minute: int = 600


@dataclass(frozen=True)
class DingTalkRobotSettings:
    access_token: str  # the webhook's access_token=... (a secret)
    secret: str  # the 加签 secret, SEC...
    base_url: str = BASE_URL
    timeout_s: float = 10.0
    per_minute: int = 20


def robot_sign(secret: str, timestamp_ms: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode())


def _text(message: OutboundMessage) -> str:
    return f"{message.subject}\n{message.text}" if message.subject else message.text


class DingTalkApp:
    kind = "dingtalk"
    provider = "dingtalk"

    def __init__(
        self,
        settings: DingTalkAppSettings,
        *,
        name: str = "dingtalk",
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
        query = urllib.parse.urlencode({"appkey": s.app_key, "appsecret": s.app_secret})
        reply, data = json_call("GET", f"{s.base_url}/gettoken?{query}", timeout=s.timeout_s)
        if data.get("errcode") != 0 or not data.get("access_token"):
            answer = redact(reply.text, [s.app_secret])
            raise TokenFailed(f"DingTalk gettoken refused (HTTP {reply.status}): {answer[:300]}")
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    def _post(self, path: str, payload: dict[str, Any]) -> tuple:
        s = self.settings
        reply, data = json_call(
            "POST",
            f"{s.base_url}{path}?access_token={urllib.parse.quote(self.token.get())}",
            payload,
            timeout=s.timeout_s,
        )
        if data.get("errcode") in TOKEN_ERRORS:
            self.token.invalidate()
            reply, data = json_call(
                "POST",
                f"{s.base_url}{path}?access_token={urllib.parse.quote(self.token.get())}",
                payload,
                timeout=s.timeout_s,
            )
        return reply, data

    def send(self, message: OutboundMessage) -> Attempt:
        s = self.settings
        payload = {
            "agent_id": s.agent_id,
            "userid_list": message.recipient,
            "msg": {"msgtype": "text", "text": {"content": _text(message)}},
        }

        def result(status: Status, reason: str = "", message_id: str = "", response: str = "") -> Attempt:
            return attempt_for(
                self,
                message,
                self.clock.now(),
                status,
                reason=reason,
                message_id=message_id,
                response=redact(response, [s.app_secret]),
                request=json.dumps(payload, ensure_ascii=False).encode(),
            )

        self.limiter.acquire()
        try:
            reply, data = retry_when(
                lambda: self._post("/topapi/message/corpconversation/asyncsend_v2", payload),
                lambda r: r[1].get("errcode") in BUSY,
                self.backoff,
                self.sleep,
            )
        except TokenFailed as err:
            return result(Status.FAILED, str(err))
        except NoAnswer as err:
            return result(Status.UNCERTAIN, f"DingTalk asyncsend_v2: {err}; it may have been sent, not retried")
        except Unreachable as err:
            return result(Status.FAILED, f"DingTalk asyncsend_v2: {err}")
        if data.get("errcode") != 0 or "task_id" not in data:
            why = (
                f"DingTalk refused asyncsend_v2 (HTTP {reply.status}): errcode {data.get('errcode')}: "
                f"{data.get('errmsg', '')}"
            )
            return result(Status.FAILED, why, response=reply.text)
        return result(Status.SENT, message_id=str(data["task_id"]), response=reply.text)

    def send_result(self, task_id: str) -> list[Receipt]:
        """Who read, who has not, who could not be sent to: one receipt per user id listed."""
        payload = {"agent_id": self.settings.agent_id, "task_id": int(task_id)}
        try:
            reply, data = self._post("/topapi/message/corpconversation/getsendresult", payload)
        except (TokenFailed, NoAnswer, Unreachable) as err:
            raise QueryFailed(f"DingTalk getsendresult: {err}") from err
        if data.get("errcode") != 0:
            raise QueryFailed(f"DingTalk getsendresult: HTTP {reply.status} errcode {data.get('errcode')}")
        lists = data.get("send_result") or {}
        kinds = (
            ("read_user_id_list", ReceiptStatus.READ),
            ("unread_user_id_list", ReceiptStatus.UNREAD),
            ("failed_user_id_list", ReceiptStatus.FAILED),
            ("invalid_user_id_list", ReceiptStatus.FAILED),
            ("forbidden_user_id_list", ReceiptStatus.FAILED),
        )
        receipts = []
        for key, status in kinds:
            for user in lists.get(key) or []:
                raw = json.dumps(
                    {"task_id": task_id, "list": key, "userid": user, "send_result": lists},
                    ensure_ascii=False,
                    sort_keys=True,
                )
                receipts.append(Receipt("dingtalk", str(task_id), status, raw, recipient=str(user), detail=key))
        return receipts


class DingTalkRobot:
    kind = "dingtalk_robot"
    provider = "dingtalk_robot"

    def __init__(
        self,
        settings: DingTalkRobotSettings,
        *,
        name: str = "dingtalk.robot",
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
                response=redact(response, [s.access_token, s.secret]),
                request=json.dumps(payload, ensure_ascii=False).encode(),
            )

        def post() -> tuple:
            stamp = int(self.clock.now().timestamp() * 1000)
            sign = robot_sign(s.secret, stamp)
            query = f"access_token={urllib.parse.quote(s.access_token)}&timestamp={stamp}&sign={sign}"
            return json_call("POST", f"{s.base_url}/robot/send?{query}", payload, timeout=s.timeout_s)

        self.limiter.acquire()
        try:
            reply, data = retry_when(post, lambda r: r[1].get("errcode") in ROBOT_BUSY, self.backoff, self.sleep)
        except NoAnswer as err:
            return result(Status.UNCERTAIN, f"DingTalk robot: {err}; it may have been posted, not retried")
        except Unreachable as err:
            return result(Status.FAILED, f"DingTalk robot: {err}")
        if data.get("errcode") != 0:
            why = (
                f"DingTalk robot refused (HTTP {reply.status}): errcode {data.get('errcode')}: {data.get('errmsg', '')}"
            )
            return result(Status.FAILED, why, response=reply.text)
        return result(Status.SENT, response=reply.text)
