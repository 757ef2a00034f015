"""Tencent Cloud SMS (API 3.0, 2021-01-11) on loopback: SendSms, PullSmsSendStatus, the status callback, and a
phone's reply as Tencent calls it back (短信回复回调: one JSON object of extend, mobile, nationcode, sign, text,
time; cloud.tencent.com/document/api/382/5809).

TC3-HMAC-SHA256 is checked as Tencent documents it, from the request as received: the SignedHeaders named in
the Authorization header, their lower-cased values, the body's hash, the credential scope's date, and a
five-minute window on X-TC-Timestamp. Errors come back as HTTP 200 with Response.Error, as Tencent does.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.harness.clock import FrozenClock
from tests.harness.providers.base import ProviderServer, Request, post_json

CHINA = ZoneInfo("Asia/Shanghai")
AUTH = re.compile(
    r"^TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([a-z]+)/tc3_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$"
)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class TencentSmsServer(ProviderServer):
    def __init__(
        self,
        clock: FrozenClock,
        secret_id: str,
        secret_key: str,
        app_id: str,
        *,
        callback_url: str = "",
        reply_url: str = "",
    ) -> None:
        super().__init__(clock)
        self.secret_id, self.secret_key, self.app_id, self.callback_url = secret_id, secret_key, app_id, callback_url
        self.reply_url = reply_url
        self.replied: list[dict[str, Any]] = []  # every reply callback's body, as sent
        self.sent: list[dict[str, Any]] = []
        self.unpulled: list[dict[str, Any]] = []
        self._serials = itertools.count(1045710669157053657849499619)

    def _error(self, code: str, message: str) -> tuple[int, dict[str, Any]]:
        return 200, {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}}

    def _check(self, request: Request) -> tuple[int, dict[str, Any]] | None:
        match = AUTH.match(request.headers.get("authorization", ""))
        if not match:
            return self._error("AuthFailure.InvalidAuthorization", "Authorization in the request header is invalid.")
        secret_id, date, service, signed, signature = match.groups()
        if secret_id != self.secret_id:
            return self._error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        try:
            stamp = int(request.headers.get("x-tc-timestamp", ""))
        except ValueError:
            return self._error("InvalidParameter", "X-TC-Timestamp")
        if abs(self.clock.now().timestamp() - stamp) > 300:
            return self._error(
                "AuthFailure.SignatureExpire",
                "Signature expired. Timestamp and server time cannot differ by more than five minutes.",
            )
        names = signed.split(";")
        if "content-type" not in names or "host" not in names:
            return self._error("AuthFailure.SignatureFailure", "SignedHeaders must include content-type and host.")
        canonical_headers = "".join(f"{n}:{request.headers.get(n, '').strip().lower()}\n" for n in names)
        canonical = "\n".join(("POST", "/", "", canonical_headers, signed, hashlib.sha256(request.body).hexdigest()))
        scope = f"{date}/{service}/tc3_request"
        to_sign = "\n".join(("TC3-HMAC-SHA256", str(stamp), scope, hashlib.sha256(canonical.encode()).hexdigest()))
        key = _hmac(_hmac(_hmac(("TC3" + self.secret_key).encode(), date), service), "tc3_request")
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if date != datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d") or not hmac.compare_digest(
            expected, signature
        ):
            return self._error(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. Please check your signature is correct.",
            )
        return None

    def handle(self, request: Request) -> tuple[int, dict[str, Any]]:
        refused = self._check(request)
        if refused:
            return refused
        if request.headers.get("x-tc-version") != "2021-01-11":
            return self._error("NoSuchVersion", "The API version does not exist.")
        action = request.headers.get("x-tc-action")
        payload = request.json()
        if action == "SendSms":
            return self._send(payload)
        if action == "PullSmsSendStatus":
            pulled, self.unpulled = (
                self.unpulled[: payload.get("Limit", 100)],
                self.unpulled[payload.get("Limit", 100) :],
            )
            return 200, {"Response": {"PullSmsSendStatusSet": pulled, "RequestId": str(uuid.uuid4())}}
        return self._error("InvalidAction", "The action does not exist.")

    def _send(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if payload.get("SmsSdkAppId") != self.app_id:
            return self._error("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId不存在。")
        statuses = []
        for phone in payload.get("PhoneNumberSet", []):
            serial = f"2433:{next(self._serials)}"
            record = {
                "serial": serial,
                "phone": phone,
                "template": payload.get("TemplateId"),
                "params": payload.get("TemplateParamSet", []),
                "sign": payload.get("SignName"),
                "session": payload.get("SessionContext", ""),
                "at": self.clock.now(),
                "reported": False,
            }
            self.sent.append(record)
            received = record["at"] + timedelta(seconds=3)
            self.unpulled.append(
                {
                    "UserReceiveTime": int(received.timestamp()),
                    "CountryCode": "86",
                    "SubscriberNumber": phone.removeprefix("+86"),
                    "PhoneNumber": phone,
                    "SerialNo": serial,
                    "ReportStatus": "SUCCESS",
                    "Description": "用户短信送达成功",
                    "SessionContext": record["session"],
                }
            )
            statuses.append(
                {
                    "SerialNo": serial,
                    "PhoneNumber": phone,
                    "Fee": 1,
                    "SessionContext": record["session"],
                    "Code": "Ok",
                    "Message": "send success",
                    "IsoCode": "CN",
                }
            )
        return 200, {"Response": {"SendStatusSet": statuses, "RequestId": str(uuid.uuid4())}}

    def rate_limited(self, request: Request) -> tuple[int, dict[str, Any]]:
        return self._error("RequestLimitExceeded", "请求的次数超过了频率限制。")

    def push_reports(self, *, success: bool = True) -> tuple[int, Any]:
        items = []
        for s in self.sent:
            if s["reported"]:
                continue
            s["reported"] = True
            items.append(
                {
                    "user_receive_time": (s["at"] + timedelta(seconds=3))
                    .astimezone(CHINA)
                    .strftime("%Y-%m-%d %H:%M:%S"),
                    "nationcode": "86",
                    "mobile": s["phone"].removeprefix("+86"),
                    "report_status": "SUCCESS" if success else "FAIL",
                    "errmsg": "DELIVRD" if success else "MN:0001",
                    "description": "用户短信送达成功" if success else "空号",
                    "sid": s["serial"],
                }
            )
        return post_json(self.callback_url, items)

    def reply(self, phone: str, text: str, *, sign: str = "", url: str = "") -> tuple[int, Any]:
        """The phone ``phone`` answers with ``text``: Tencent's reply callback to ``reply_url`` (or ``url``)."""
        signs = [s["sign"] for s in self.sent if s["phone"] == phone]
        body = {
            "extend": "",
            "mobile": phone.removeprefix("+86"),
            "nationcode": "86",
            "sign": sign or (signs[-1] if signs else ""),
            "text": text,
            "time": int(self.clock.now().timestamp()),
        }
        self.replied.append(body)
        return post_json(url or self.reply_url, body)

    def push_again(self) -> tuple[int, Any]:
        """The last reply callback again, as a retry would send it."""
        return post_json(self.reply_url, self.replied[-1])
