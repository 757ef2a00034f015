"""Aliyun dysmsapi (2017-05-25) on loopback: SendSms, QuerySendDetails, the SmsReport push, and a phone's reply
to an SMS as Aliyun pushes it (SmsUp, "HTTP批量推送模式": a JSON array of phone_number, content, send_time,
dest_code, sequence_id; help.aliyun.com/zh/sms/developer-reference/smsup-http).

The RPC signature is checked as Aliyun describes it (签名机制): parameters but Signature sorted, RFC 3986
encoded, ``GET&%2F&`` + encoded query, HMAC-SHA1 keyed with secret + "&", Base64. Timestamps more than 15
minutes off and reused nonces are refused like Aliyun refuses them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import urllib.parse
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.harness.clock import FrozenClock
from tests.harness.providers.base import ProviderServer, Request, post_json

CHINA = ZoneInfo("Asia/Shanghai")


def _enc(text: str) -> str:
    return urllib.parse.quote(text, safe="~")


class AliyunSmsServer(ProviderServer):
    def __init__(
        self,
        clock: FrozenClock,
        key_id: str,
        key_secret: str,
        *,
        callback_url: str = "",
        reply_url: str = "",
        approved: dict[str, str] | None = None,
    ) -> None:
        super().__init__(clock)
        # TemplateCode -> the approved 模板内容: QuerySendDetails' Content is then the text the phone showed, filled in
        # the way Aliyun fills it; for a code not listed it is the variables as JSON
        self.approved = approved or {}
        self.key_id, self.key_secret, self.callback_url, self.reply_url = key_id, key_secret, callback_url, reply_url
        self.pushed_up: list[list[dict[str, Any]]] = []  # every SmsUp push's items, as sent
        self._sequence = itertools.count(1_234_567_890)
        self.nonces: set[str] = set()
        self.sent: list[dict[str, Any]] = []  # every SMS accepted
        self._ids = itertools.count(900_619_746_936_498_440)

    def _error(self, status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
        return status, {
            "RequestId": str(uuid.uuid4()).upper(),
            "HostId": "dysmsapi.aliyuncs.com",
            "Code": code,
            "Message": message,
        }

    def _check(self, request: Request) -> tuple[int, dict[str, Any]] | None:
        params = dict(request.query)
        if request.method == "POST" and request.body:
            params.update(urllib.parse.parse_qsl(request.body.decode(), keep_blank_values=True))
        signature = params.pop("Signature", "")
        if params.get("AccessKeyId") != self.key_id:
            return self._error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        try:
            stamp = datetime.strptime(params.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=ZoneInfo("UTC"))
        except ValueError:
            return self._error(
                400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
            )
        if abs(self.clock.now() - stamp) > timedelta(minutes=15):
            return self._error(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        nonce = params.get("SignatureNonce", "")
        if not nonce or nonce in self.nonces:
            return self._error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        if params.get("SignatureMethod") != "HMAC-SHA1" or params.get("SignatureVersion") != "1.0":
            return self._error(400, "InvalidParameter", "SignatureMethod/SignatureVersion")
        query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(params.items()))
        to_sign = f"{request.method}&{_enc('/')}&{_enc(query)}"
        expected = base64.b64encode(
            hmac.new((self.key_secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
        ).decode()
        if not hmac.compare_digest(expected, signature):
            return self._error(
                400,
                "SignatureDoesNotMatch",
                f"Specified signature is not matched with our calculation. server string to sign is:{to_sign}",
            )
        self.nonces.add(nonce)
        return None

    def handle(self, request: Request) -> tuple[int, dict[str, Any]]:
        refused = self._check(request)
        if refused:
            return refused
        params = request.query
        if params.get("Version") != "2017-05-25":
            return self._error(400, "InvalidVersion", "Specified parameter Version is not valid.")
        if params.get("Action") == "SendSms":
            return self._send(params)
        if params.get("Action") == "QuerySendDetails":
            return self._query(params)
        return self._error(
            404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."
        )

    def _send(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                return self._error(400, "MissingParameter", f"{name} is mandatory for this action.")
        try:
            variables = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            return 200, {
                "Code": "isv.INVALID_JSON_PARAM",
                "Message": "JSON参数不合法，只接受字符串值",
                "RequestId": str(uuid.uuid4()).upper(),
            }
        biz_id = f"{next(self._ids)}^0"
        self.sent.append(
            {
                "biz_id": biz_id,
                "phone": params["PhoneNumbers"],
                "sign": params["SignName"],
                "template": params["TemplateCode"],
                "params": variables,
                "out_id": params.get("OutId", ""),
                "at": self.clock.now(),
                "reported": False,
            }
        )
        return 200, {"Message": "OK", "RequestId": str(uuid.uuid4()).upper(), "BizId": biz_id, "Code": "OK"}

    def _query(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        found = [s for s in self.sent if s["biz_id"] == params.get("BizId") and s["phone"] == params.get("PhoneNumber")]
        details = [
            {
                "ErrCode": "DELIVERED",
                "TemplateCode": s["template"],
                "OutId": s["out_id"],
                "ReceiveDate": (s["at"] + timedelta(seconds=3)).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
                "SendDate": s["at"].astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
                "PhoneNum": s["phone"],
                "Content": f"【{s['sign']}】" + self._content(s["template"], s["params"]),
                "SendStatus": 3,
            }
            for s in found
        ]
        return 200, {
            "TotalCount": len(details),
            "Message": "OK",
            "RequestId": str(uuid.uuid4()).upper(),
            "SmsSendDetailDTOs": {"SmsSendDetailDTO": details},
            "Code": "OK",
        }

    def _content(self, code: str, variables: dict[str, Any]) -> str:
        if code not in self.approved:
            return json.dumps(variables, ensure_ascii=False)
        content = self.approved[code]
        for name, value in variables.items():
            content = content.replace("${" + name + "}", str(value))
        return content

    def rate_limited(self, request: Request) -> tuple[int, dict[str, Any]]:
        return 200, {
            "Message": "触发号码分钟级流控Permits:1",
            "RequestId": str(uuid.uuid4()).upper(),
            "Code": "isv.BUSINESS_LIMIT_CONTROL",
        }

    def push_reports(self, *, success: bool = True) -> tuple[int, Any]:
        """SmsReport: one POST with every report not yet pushed (a JSON array, as Aliyun batches them)."""
        items = []
        for s in self.sent:
            if s["reported"]:
                continue
            s["reported"] = True
            items.append(
                {
                    "phone_number": s["phone"],
                    "send_time": s["at"].astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
                    "report_time": (s["at"] + timedelta(seconds=4)).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
                    "success": success,
                    "err_code": "DELIVERED" if success else "MK:0001",
                    "err_msg": "用户接收成功" if success else "空号",
                    "sms_size": "1",
                    "biz_id": s["biz_id"],
                    "out_id": s["out_id"],
                }
            )
        return post_json(self.callback_url, items)

    def reply(self, phone: str, content: str, *, masked: bool = False, url: str = "") -> tuple[int, Any]:
        """The phone ``phone`` answers with ``content``: one SmsUp push to ``reply_url`` (or ``url``). Aliyun may
        show the number masked (``138****0000``)."""
        number = phone.removeprefix("+86")
        items = [
            {
                "phone_number": f"{number[:3]}****{number[7:]}" if masked else number,
                "content": content,
                "send_time": self.clock.now().astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
                "dest_code": "8821",
                "sequence_id": next(self._sequence),
            }
        ]
        self.pushed_up.append(items)
        return post_json(url or self.reply_url, items)

    def push_again(self) -> tuple[int, Any]:
        """Aliyun pushes the last SmsUp again (it does when unsure the first arrived)."""
        return post_json(self.reply_url, self.pushed_up[-1])
