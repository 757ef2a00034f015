"""企业微信 on loopback: gettoken (tokens expire on the server's clock), message/send, group robot webhook."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from tests.harness.clock import FrozenClock
from tests.harness.providers.base import ProviderServer, Request


class WeComServer(ProviderServer):
    def __init__(
        self,
        clock: FrozenClock,
        corp_id: str,
        corp_secret: str,
        agent_id: int,
        members: set[str],
        robot_key: str,
        *,
        token_ttl_s: int = 7200,
    ) -> None:
        super().__init__(clock)
        self.corp_id, self.corp_secret, self.agent_id, self.members = corp_id, corp_secret, agent_id, members
        self.robot_key, self.token_ttl_s = robot_key, token_ttl_s
        self.tokens: dict[str, Any] = {}  # token -> expiry
        self.token_calls = 0
        self.messages: list[dict[str, Any]] = []
        self.robot_posts: list[tuple[Any, dict[str, Any]]] = []

    def handle(self, request: Request) -> tuple[int, dict[str, Any]]:
        now = self.clock.now()
        if request.path == "/cgi-bin/gettoken":
            self.token_calls += 1
            if request.query.get("corpid") != self.corp_id:
                return 200, {"errcode": 40013, "errmsg": "invalid corpid"}
            if request.query.get("corpsecret") != self.corp_secret:
                return 200, {"errcode": 40001, "errmsg": "invalid credential"}
            token = secrets.token_urlsafe(48)
            self.tokens[token] = now + timedelta(seconds=self.token_ttl_s)
            return 200, {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": self.token_ttl_s}
        if request.path == "/cgi-bin/message/send":
            token = request.query.get("access_token", "")
            if token not in self.tokens:
                return 200, {"errcode": 40014, "errmsg": "invalid access_token"}
            if now >= self.tokens[token]:
                return 200, {"errcode": 42001, "errmsg": "access_token expired"}
            body = request.json()
            if body.get("agentid") != self.agent_id:
                return 200, {"errcode": 301002, "errmsg": "not allow operate another agent with this accesstoken."}
            users = str(body.get("touser", "")).split("|")
            reached = [u for u in users if u in self.members]
            invalid = [u for u in users if u not in self.members]
            if not reached:
                return 200, {
                    "errcode": 81013,
                    "errmsg": "user & party & tag all invalid",
                    "invaliduser": "|".join(invalid),
                }
            msgid = secrets.token_urlsafe(24)
            self.messages.append({"msgid": msgid, "to": reached, "body": body, "at": now})
            return 200, {
                "errcode": 0,
                "errmsg": "ok",
                "invaliduser": "|".join(invalid),
                "invalidparty": "",
                "invalidtag": "",
                "unlicenseduser": "",
                "msgid": msgid,
                "response_code": secrets.token_hex(8),
            }
        if request.path == "/cgi-bin/webhook/send":
            if request.query.get("key") != self.robot_key:
                return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
            recent = [at for at, _ in self.robot_posts if now - at < timedelta(minutes=1)]
            if len(recent) >= 20:
                return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
            self.robot_posts.append((now, request.json()))
            return 200, {"errcode": 0, "errmsg": "ok"}
        return 404, {"errcode": 60011, "errmsg": "no such api"}

    def rate_limited(self, request: Request) -> tuple[int, dict[str, Any]]:
        return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
