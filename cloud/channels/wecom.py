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

import urllib.parse
from dataclasses import dataclass

from cloud.channels.base import Attempt, OutboundMessage, Status
from cloud.channels.im import RobotChannel, TokenAppChannel
from cloud.channels.transport import Backoff

BASE_URL = "https://qyapi.weixin.qq.com"
TOKEN_ERRORS = {40014, 42001, 41001}
BUSY = {45009, -1}
ROBOT_BACKOFF = Backoff(first_s=10.0)


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


class WeComApp(TokenAppChannel[WeComAppSettings]):
    kind = "wecom"
    provider = "wecom"
    default_name = "wecom"
    brand = "WeCom"
    gettoken_path = "/cgi-bin/gettoken"
    token_errors = TOKEN_ERRORS
    busy = BUSY

    def secrets(self) -> tuple[str, ...]:
        return (self.settings.corp_secret,)

    def credentials(self) -> dict[str, str]:
        return {"corpid": self.settings.corp_id, "corpsecret": self.settings.corp_secret}

    def send(self, message: OutboundMessage) -> Attempt:
        payload = {
            "touser": message.recipient,
            "msgtype": "text",
            "agentid": self.settings.agent_id,
            "text": {"content": message.chat_text},
            "safe": 0,
            "enable_duplicate_check": 1,  # WeCom drops the same content to the same user within the interval
            "duplicate_check_interval": 1800,
        }
        answer = self.post_message(
            message, "/cgi-bin/message/send", payload, label="WeCom message/send", refused="WeCom refused message/send"
        )
        if isinstance(answer, Attempt):
            return answer
        msgid = str(answer.data.get("msgid", ""))
        unreached = {u for key in ("invaliduser", "unlicenseduser") for u in str(answer.data.get(key) or "").split("|")}
        if message.recipient in unreached:
            why = f"WeCom did not deliver: {message.recipient} is not a (licensed) member of the organisation"
            return self.answered(message, answer, Status.FAILED, reason=why, message_id=msgid)
        return self.answered(message, answer, Status.SENT, message_id=msgid)


class WeComRobot(RobotChannel[WeComRobotSettings]):
    kind = "wecom_robot"
    provider = "wecom_robot"
    default_name = "wecom.robot"
    default_backoff = ROBOT_BACKOFF
    label = "WeCom robot"
    path = "/cgi-bin/webhook/send"
    busy = BUSY

    def secrets(self) -> tuple[str, ...]:
        return (self.settings.key,)

    def webhook_query(self) -> str:
        return f"key={urllib.parse.quote(self.settings.key)}"
