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
from typing import Unpack

from cloud.channels.base import Attempt, OutboundMessage, Status
from cloud.channels.provider import ChannelOptions, ProviderChannel
from cloud.channels.transport import (
    Backoff,
    TokenCache,
    errcode_refusal,
    fetch_token,
    json_bytes,
    json_call,
    post_with_token,
)

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


class WeComApp(ProviderChannel[WeComAppSettings]):
    kind = "wecom"
    provider = "wecom"
    default_name = "wecom"

    def __init__(self, settings: WeComAppSettings, **options: Unpack[ChannelOptions]) -> None:
        super().__init__(settings, **options)
        self.token = TokenCache(self._fetch_token, self.clock)

    def secrets(self) -> tuple[str, ...]:
        return (self.settings.corp_secret,)

    def _fetch_token(self) -> tuple[str, int]:
        s = self.settings
        query = urllib.parse.urlencode({"corpid": s.corp_id, "corpsecret": s.corp_secret})
        return fetch_token("WeCom", f"{s.base_url}/cgi-bin/gettoken?{query}", s.corp_secret, timeout=s.timeout_s)

    def send(self, message: OutboundMessage) -> Attempt:
        s = self.settings
        payload = {
            "touser": message.recipient,
            "msgtype": "text",
            "agentid": s.agent_id,
            "text": {"content": message.chat_text},
            "safe": 0,
            "enable_duplicate_check": 1,  # WeCom drops the same content to the same user within the interval
            "duplicate_check_interval": 1800,
        }
        request = json_bytes(payload)
        answer = self.exchange(
            message,
            lambda: post_with_token(
                self.token,
                lambda token: f"{s.base_url}/cgi-bin/message/send?access_token={urllib.parse.quote(token)}",
                payload,
                token_errors=TOKEN_ERRORS,
                timeout=s.timeout_s,
            ),
            lambda r: r[1].get("errcode") in BUSY,
            label="WeCom message/send",
            request=request,
        )
        if isinstance(answer, Attempt):
            return answer
        reply, data = answer
        if data.get("errcode") != 0:
            why = errcode_refusal("WeCom refused message/send", reply, data)
            return self.attempt(message, Status.FAILED, reason=why, response=reply.text, request=request)
        msgid = str(data.get("msgid", ""))
        unreached = {u for key in ("invaliduser", "unlicenseduser") for u in str(data.get(key) or "").split("|")}
        if message.recipient in unreached:
            why = f"WeCom did not deliver: {message.recipient} is not a (licensed) member of the organisation"
            return self.attempt(
                message, Status.FAILED, reason=why, message_id=msgid, response=reply.text, request=request
            )
        return self.attempt(message, Status.SENT, message_id=msgid, response=reply.text, request=request)


class WeComRobot(ProviderChannel[WeComRobotSettings]):
    kind = "wecom_robot"
    provider = "wecom_robot"
    default_name = "wecom.robot"
    default_backoff = ROBOT_BACKOFF

    def secrets(self) -> tuple[str, ...]:
        return (self.settings.key,)

    def send(self, message: OutboundMessage) -> Attempt:
        s = self.settings
        payload = {"msgtype": "text", "text": {"content": message.chat_text}}
        request = json_bytes(payload)
        url = f"{s.base_url}/cgi-bin/webhook/send?key={urllib.parse.quote(s.key)}"
        answer = self.exchange(
            message,
            lambda: json_call("POST", url, payload, timeout=s.timeout_s),
            lambda r: r[1].get("errcode") in BUSY,
            label="WeCom robot",
            acted="posted",
            request=request,
        )
        if isinstance(answer, Attempt):
            return answer
        reply, data = answer
        if data.get("errcode") != 0:
            why = errcode_refusal("WeCom robot refused", reply, data)
            return self.attempt(message, Status.FAILED, reason=why, response=reply.text, request=request)
        return self.attempt(message, Status.SENT, response=reply.text, request=request)
