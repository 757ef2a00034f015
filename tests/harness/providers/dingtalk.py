"""钉钉 on loopback: gettoken, asyncsend_v2 + getsendresult (read lists), custom robot with 加签 checked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
import uuid
from datetime import timedelta
from typing import Any

from tests.harness.clock import FrozenClock
from tests.harness.providers.base import ProviderServer, Request


class DingTalkServer(ProviderServer):
    def __init__(
        self,
        clock: FrozenClock,
        app_key: str,
        app_secret: str,
        agent_id: int,
        members: set[str],
        robot_token: str,
        robot_secret: str,
        *,
        token_ttl_s: int = 7200,
    ) -> None:
        super().__init__(clock)
        self.app_key, self.app_secret, self.agent_id, self.members = app_key, app_secret, agent_id, members
        self.robot_token, self.robot_secret, self.token_ttl_s = robot_token, robot_secret, token_ttl_s
        self.tokens: dict[str, Any] = {}
        self.token_calls = 0
        self.tasks: dict[int, dict[str, Any]] = {}
        self.robot_posts: list[tuple[Any, dict[str, Any]]] = []
        self._task_ids = itertools.count(256_271_667_526)

    def read(self, task_id: int, user: str) -> None:
        """The worker opened the message in the DingTalk app."""
        self.tasks[task_id]["read"].add(user)

    def _token_ok(self, request: Request) -> dict[str, Any] | None:
        token = request.query.get("access_token", "")
        if token not in self.tokens or self.clock.now() >= self.tokens[token]:
            return {"errcode": 40014, "errmsg": "不合法的access_token", "request_id": uuid.uuid4().hex[:12]}
        return None

    def handle(self, request: Request) -> tuple[int, dict[str, Any]]:
        now = self.clock.now()
        if request.path == "/gettoken":
            self.token_calls += 1
            if request.query.get("appkey") != self.app_key or request.query.get("appsecret") != self.app_secret:
                return 200, {"errcode": 40089, "errmsg": "不合法的corpid或corpsecret"}
            token = secrets.token_hex(16)
            self.tokens[token] = now + timedelta(seconds=self.token_ttl_s)
            return 200, {"errcode": 0, "access_token": token, "errmsg": "ok", "expires_in": self.token_ttl_s}
        if request.path == "/topapi/message/corpconversation/asyncsend_v2":
            refused = self._token_ok(request)
            if refused:
                return 200, refused
            body = request.json()
            if body.get("agent_id") != self.agent_id:
                return 200, {"errcode": 400002, "errmsg": "agent_id 不合法"}
            task_id = next(self._task_ids)
            users = [u for u in str(body.get("userid_list", "")).split(",") if u]
            self.tasks[task_id] = {"users": users, "msg": body.get("msg"), "at": now, "read": set()}
            return 200, {"errcode": 0, "task_id": task_id, "request_id": uuid.uuid4().hex[:12]}
        if request.path == "/topapi/message/corpconversation/getsendresult":
            refused = self._token_ok(request)
            if refused:
                return 200, refused
            task = self.tasks.get(request.json().get("task_id"))
            if task is None:
                return 200, {"errcode": 40035, "errmsg": "task_id 不存在"}
            members = [u for u in task["users"] if u in self.members]
            result = {
                "invalid_user_id_list": [u for u in task["users"] if u not in self.members],
                "forbidden_user_id_list": [],
                "failed_user_id_list": [],
                "read_user_id_list": [u for u in members if u in task["read"]],
                "unread_user_id_list": [u for u in members if u not in task["read"]],
                "invalid_dept_id_list": [],
                "forbidden_list": [],
            }
            return 200, {"errcode": 0, "errmsg": "ok", "send_result": result, "request_id": uuid.uuid4().hex[:12]}
        if request.path == "/robot/send":
            if request.query.get("access_token") != self.robot_token:
                return 200, {"errcode": 300001, "errmsg": "token is not exist"}
            try:
                stamp = int(request.query.get("timestamp", ""))
            except ValueError:
                return 200, {"errcode": 310000, "errmsg": "invalid timestamp"}
            if abs(now.timestamp() * 1000 - stamp) > 3600 * 1000:
                return 200, {"errcode": 310000, "errmsg": "invalid timestamp"}
            expected = base64.b64encode(
                hmac.new(self.robot_secret.encode(), f"{stamp}\n{self.robot_secret}".encode(), hashlib.sha256).digest()
            ).decode()
            if not hmac.compare_digest(expected, request.query.get("sign", "")):
                return 200, {"errcode": 310000, "errmsg": "sign not match"}
            recent = [at for at, _ in self.robot_posts if now - at < timedelta(minutes=1)]
            if len(recent) >= 20:
                return 200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
            self.robot_posts.append((now, request.json()))
            return 200, {"errcode": 0, "errmsg": "ok"}
        return 404, {"errcode": 404, "errmsg": "not found"}

    def rate_limited(self, request: Request) -> tuple[int, dict[str, Any]]:
        if request.path == "/robot/send":
            return 200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
        return 200, {"errcode": 143104, "errmsg": "企业每分钟发送人次QPM超限"}
