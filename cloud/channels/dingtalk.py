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
import urllib.parse
from dataclasses import dataclass
from typing import Any, Unpack

from cloud.channels.base import Attempt, OutboundMessage, Receipt, ReceiptStatus, Status
from cloud.channels.provider import ChannelOptions, ProviderChannel
from cloud.channels.transport import (
    Backoff,
    NoAnswer,
    TokenCache,
    TokenFailed,
    Unreachable,
    errcode_refusal,
    fetch_token,
    json_bytes,
    json_call,
    post_with_token,
)

BASE_URL = "https://oapi.dingtalk.com"
TOKEN_ERRORS = {40014, 42001}
BUSY = {143103, 143104, 90018, -1}
ROBOT_BUSY = {130101}
ROBOT_BACKOFF = Backoff(first_s=60.0)  # DingTalk throttles a robot for 10 minutes


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


class DingTalkApp(ProviderChannel[DingTalkAppSettings]):
    kind = "dingtalk"
    provider = "dingtalk"
    default_name = "dingtalk"

    def __init__(self, settings: DingTalkAppSettings, **options: Unpack[ChannelOptions]) -> None:
        super().__init__(settings, **options)
        self.token = TokenCache(self._fetch_token, self.clock)

    def secrets(self) -> tuple[str, ...]:
        return (self.settings.app_secret,)

    def _fetch_token(self) -> tuple[str, int]:
        s = self.settings
        query = urllib.parse.urlencode({"appkey": s.app_key, "appsecret": s.app_secret})
        return fetch_token("DingTalk", f"{s.base_url}/gettoken?{query}", s.app_secret, timeout=s.timeout_s)

    def _post(self, path: str, payload: dict[str, Any]) -> tuple:
        s = self.settings
        return post_with_token(
            self.token,
            lambda token: f"{s.base_url}{path}?access_token={urllib.parse.quote(token)}",
            payload,
            token_errors=TOKEN_ERRORS,
            timeout=s.timeout_s,
        )

    def send(self, message: OutboundMessage) -> Attempt:
        payload = {
            "agent_id": self.settings.agent_id,
            "userid_list": message.recipient,
            "msg": {"msgtype": "text", "text": {"content": message.chat_text}},
        }
        request = json_bytes(payload)
        answer = self.exchange(
            message,
            lambda: self._post("/topapi/message/corpconversation/asyncsend_v2", payload),
            lambda r: r[1].get("errcode") in BUSY,
            label="DingTalk asyncsend_v2",
            request=request,
        )
        if isinstance(answer, Attempt):
            return answer
        reply, data = answer
        if data.get("errcode") != 0 or "task_id" not in data:
            why = errcode_refusal("DingTalk refused asyncsend_v2", reply, data)
            return self.attempt(message, Status.FAILED, reason=why, response=reply.text, request=request)
        task_id = str(data["task_id"])
        return self.attempt(message, Status.SENT, message_id=task_id, response=reply.text, request=request)

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


class DingTalkRobot(ProviderChannel[DingTalkRobotSettings]):
    kind = "dingtalk_robot"
    provider = "dingtalk_robot"
    default_name = "dingtalk.robot"
    default_backoff = ROBOT_BACKOFF

    def secrets(self) -> tuple[str, ...]:
        return (self.settings.access_token, self.settings.secret)

    def send(self, message: OutboundMessage) -> Attempt:
        s = self.settings
        payload = {"msgtype": "text", "text": {"content": message.chat_text}}
        request = json_bytes(payload)

        def post() -> tuple:
            stamp = int(self.clock.now().timestamp() * 1000)
            sign = robot_sign(s.secret, stamp)
            query = f"access_token={urllib.parse.quote(s.access_token)}&timestamp={stamp}&sign={sign}"
            return json_call("POST", f"{s.base_url}/robot/send?{query}", payload, timeout=s.timeout_s)

        answer = self.exchange(
            message,
            post,
            lambda r: r[1].get("errcode") in ROBOT_BUSY,
            label="DingTalk robot",
            acted="posted",
            request=request,
        )
        if isinstance(answer, Attempt):
            return answer
        reply, data = answer
        if data.get("errcode") != 0:
            why = errcode_refusal("DingTalk robot refused", reply, data)
            return self.attempt(message, Status.FAILED, reason=why, response=reply.text, request=request)
        return self.attempt(message, Status.SENT, response=reply.text, request=request)
