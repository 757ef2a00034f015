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

from cloud.channels.base import Attempt, OutboundMessage, Receipt, ReceiptStatus, Status
from cloud.channels.im import RobotChannel, TokenAppChannel
from cloud.channels.transport import Backoff, NoAnswer, TokenFailed, Unreachable

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


class DingTalkApp(TokenAppChannel[DingTalkAppSettings]):
    kind = "dingtalk"
    provider = "dingtalk"
    default_name = "dingtalk"
    brand = "DingTalk"
    gettoken_path = "/gettoken"
    token_errors = TOKEN_ERRORS
    busy = BUSY

    def secrets(self) -> tuple[str, ...]:
        return (self.settings.app_secret,)

    def credentials(self) -> dict[str, str]:
        return {"appkey": self.settings.app_key, "appsecret": self.settings.app_secret}

    def send(self, message: OutboundMessage) -> Attempt:
        payload = {
            "agent_id": self.settings.agent_id,
            "userid_list": message.recipient,
            "msg": {"msgtype": "text", "text": {"content": message.chat_text}},
        }
        answer = self.post_message(
            message,
            "/topapi/message/corpconversation/asyncsend_v2",
            payload,
            label="DingTalk asyncsend_v2",
            refused="DingTalk refused asyncsend_v2",
            required=("task_id",),
        )
        if isinstance(answer, Attempt):
            return answer
        return self.answered(message, answer, Status.SENT, message_id=str(answer.data["task_id"]))

    def send_result(self, task_id: str) -> list[Receipt]:
        """Who read, who has not, who could not be sent to: one receipt per user id listed."""
        payload = {"agent_id": self.settings.agent_id, "task_id": int(task_id)}
        try:
            reply, data = self.post("/topapi/message/corpconversation/getsendresult", payload)
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


class DingTalkRobot(RobotChannel[DingTalkRobotSettings]):
    kind = "dingtalk_robot"
    provider = "dingtalk_robot"
    default_name = "dingtalk.robot"
    default_backoff = ROBOT_BACKOFF
    label = "DingTalk robot"
    path = "/robot/send"
    busy = ROBOT_BUSY

    def secrets(self) -> tuple[str, ...]:
        return (self.settings.access_token, self.settings.secret)

    def webhook_query(self) -> str:
        stamp = int(self.clock.now().timestamp() * 1000)
        sign = robot_sign(self.settings.secret, stamp)
        return f"access_token={urllib.parse.quote(self.settings.access_token)}&timestamp={stamp}&sign={sign}"
