"""SMS through Tencent Cloud 短信 (API 3.0, version 2021-01-11): SendSms, PullSmsSendStatus, status callback.

Requests are signed with TC3-HMAC-SHA256 as documented in "签名方法 v3" (cloud.tencent.com/document/api/382/52072;
tencentcloud.com/document/product/382/40467):
CanonicalRequest = "POST\n/\n\n" + canonical headers (content-type, host, x-tc-action; names and values lower
case, each "name:value\n") + "\n" + "content-type;host;x-tc-action" + "\n" + hex SHA-256 of the body;
StringToSign = "TC3-HMAC-SHA256\n" + timestamp + "\n" + "<UTC date>/sms/tc3_request" + "\n" + hex SHA-256 of the
CanonicalRequest; the key is HMAC chained over "TC3"+SecretKey -> date -> "sms" -> "tc3_request"; the signature is
the hex HMAC-SHA256 of StringToSign. Tencent rejects a timestamp more than five minutes off
(AuthFailure.SignatureExpire).

PullSmsSendStatus hands each report out once (a queue), so pulled receipts must be stored at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cloud.channels.base import Attempt, OutboundMessage, Receipt, ReceiptStatus, Status
from cloud.channels.contact_log import idempotency_key
from cloud.channels.provider import ProviderChannel
from cloud.channels.transport import HttpReply, http_request, json_object

VERSION = "2021-01-11"
ENDPOINT = "https://sms.tencentcloudapi.com/"
SERVICE = "sms"
SIGNED_HEADERS = "content-type;host;x-tc-action"
CONTENT_TYPE = "application/json; charset=utf-8"
RATE_LIMITED = {
    "RequestLimitExceeded",
    "LimitExceeded.PhoneNumberThirtySecondLimit",
    "LimitExceeded.DeliveryFrequencyLimit",
}


_PLACEHOLDER = re.compile(r"\{(\d+)\}")


@dataclass(frozen=True)
class TencentTemplate:
    template_id: str  # the approved 正文模板 ID
    params: tuple[str, ...]  # our parameter names, in the order of the template's {1}, {2}, ...
    text: str = ""  # the approved 模板内容 as the console shows it ({1}, {2}...): the words kept as evidence


def sent_text(sign_name: str, template: TencentTemplate, values: list[str]) -> str:
    """What the phone shows: 【签名】 then the approved content with ``{n}`` replaced by the n-th value sent;
    "" when the content is not configured."""
    if not template.text:
        return ""

    def value(match: re.Match[str]) -> str:
        n = int(match[1])
        return values[n - 1] if 0 < n <= len(values) else match[0]

    return f"【{sign_name}】" + _PLACEHOLDER.sub(value, template.text)


@dataclass(frozen=True)
class TencentSmsSettings:
    secret_id: str
    secret_key: str
    sdk_app_id: str
    sign_name: str
    templates: Mapping[str, TencentTemplate] = field(default_factory=dict)  # our template id -> approved template
    endpoint: str = ENDPOINT
    region: str = "ap-guangzhou"
    timeout_s: float = 10.0
    per_minute: int = 100


def tc3_authorization(*, secret_id: str, secret_key: str, host: str, action: str, body: bytes, timestamp: int) -> str:
    canonical_headers = f"content-type:{CONTENT_TYPE}\nhost:{host.lower()}\nx-tc-action:{action.lower()}\n"
    canonical_request = "\n".join(
        ("POST", "/", "", canonical_headers, SIGNED_HEADERS, hashlib.sha256(body).hexdigest())
    )
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{SERVICE}/tc3_request"
    to_sign = "\n".join(
        ("TC3-HMAC-SHA256", str(timestamp), scope, hashlib.sha256(canonical_request.encode()).hexdigest())
    )
    key = f"TC3{secret_key}".encode()
    for part in (date, SERVICE, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders={SIGNED_HEADERS}, Signature={signature}"


def e164(phone: str) -> str:
    return phone if phone.startswith("+") else f"+86{phone}"


class TencentSms(ProviderChannel[TencentSmsSettings]):
    kind = "sms"
    provider = "tencent"
    default_name = "sms.tencent"

    def secrets(self) -> tuple[str, ...]:
        return (self.settings.secret_key,)

    def call(self, action: str, payload: Mapping[str, Any]) -> tuple[HttpReply, dict[str, Any], bytes]:
        s = self.settings
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        host = urlsplit(s.endpoint).netloc
        timestamp = int(self.clock.now().timestamp())
        headers = {
            "Authorization": tc3_authorization(
                secret_id=s.secret_id,
                secret_key=s.secret_key,
                host=host,
                action=action,
                body=body,
                timestamp=timestamp,
            ),
            "Content-Type": CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": action,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Version": VERSION,
            "X-TC-Region": s.region,
        }
        reply = http_request("POST", s.endpoint, body=body, headers=headers, timeout=s.timeout_s)
        return reply, json_object(reply.body).get("Response") or {}, body

    def send(self, message: OutboundMessage) -> Attempt:
        s = self.settings
        template = s.templates.get(message.template_id)
        if template is None:
            return self.attempt(
                message, Status.FAILED, reason=f"no approved Tencent SMS template for {message.template_id}"
            )
        missing = [p for p in template.params if p not in message.params]
        if missing:
            return self.attempt(
                message, Status.FAILED, reason=f"template {template.template_id} needs {', '.join(missing)}"
            )
        values = [message.params[p] for p in template.params]
        words = sent_text(s.sign_name, template, values)
        payload = {
            "PhoneNumberSet": [e164(message.recipient)],
            "SmsSdkAppId": s.sdk_app_id,
            "SignName": s.sign_name,
            "TemplateId": template.template_id,
            "TemplateParamSet": values,
            "SessionContext": idempotency_key(message.case_ref, message.step_id, message.channel, message.recipient)[
                :32
            ],
        }
        answer = self.exchange(
            message,
            lambda: self.call("SendSms", payload),
            lambda r: _code(r[1]) in RATE_LIMITED,
            label="Tencent SendSms",
        )
        if isinstance(answer, Attempt):
            return dataclasses.replace(answer, sent_text=words)  # an unanswered send may have shown them
        reply, data, body = answer
        error = data.get("Error")
        if error:
            why = f"Tencent refused SendSms (HTTP {reply.status}): {error.get('Code')}: {error.get('Message', '')}"
            return self.attempt(message, Status.FAILED, reason=why, response=reply.text, request=body, sent_text=words)
        statuses = data.get("SendStatusSet") or []
        if reply.status != 200 or not statuses:
            why = f"Tencent SendSms answered HTTP {reply.status} without a result"
            return self.attempt(message, Status.FAILED, reason=why, response=reply.text, request=body, sent_text=words)
        first = statuses[0]
        if first.get("Code") != "Ok":
            why = f"Tencent did not send: {first.get('Code')}: {first.get('Message', '')}"
            return self.attempt(message, Status.FAILED, reason=why, response=reply.text, request=body, sent_text=words)
        serial = str(first.get("SerialNo", ""))
        return self.attempt(message, Status.SENT, message_id=serial, response=reply.text, request=body, sent_text=words)

    def pull_send_status(self, limit: int = 100) -> list[Receipt]:
        """Reports not yet pulled (each comes once); store them at once."""
        reply, data, _body = self.call("PullSmsSendStatus", {"Limit": limit, "SmsSdkAppId": self.settings.sdk_app_id})
        if data.get("Error") or reply.status != 200:
            raise QueryFailed(f"Tencent PullSmsSendStatus: HTTP {reply.status} {data.get('Error')}")
        return [
            Receipt(
                provider="tencent",
                provider_message_id=str(item.get("SerialNo", "")),
                status=ReceiptStatus.DELIVERED if item.get("ReportStatus") == "SUCCESS" else ReceiptStatus.FAILED,
                raw=json.dumps(item, ensure_ascii=False),
                recipient=str(item.get("PhoneNumber", "")),
                provider_time=_unix_time(item.get("UserReceiveTime")),
                detail=str(item.get("Description", "")),
            )
            for item in data.get("PullSmsSendStatusSet") or []
        ]


class QueryFailed(Exception):
    pass


def _code(data: dict[str, Any]) -> str:
    if data.get("Error"):
        return str(data["Error"].get("Code", ""))
    statuses = data.get("SendStatusSet") or [{}]
    return str(statuses[0].get("Code", ""))


def _unix_time(value: Any) -> str:
    return datetime.fromtimestamp(int(value), UTC).isoformat() if isinstance(value, int) and value else str(value or "")


def parse_status_callback(body: bytes) -> list[Receipt]:
    """Tencent's 短信下发状态通知: a JSON array of reports."""
    items = json.loads(body)
    if not isinstance(items, list):
        raise ValueError("the status callback body is not a JSON array")
    return [
        Receipt(
            provider="tencent",
            provider_message_id=str(item["sid"]),
            status=ReceiptStatus.DELIVERED if item.get("report_status") == "SUCCESS" else ReceiptStatus.FAILED,
            raw=json.dumps(item, ensure_ascii=False),
            recipient=f"+{item.get('nationcode', '86')}{item.get('mobile', '')}",
            provider_time=str(item.get("user_receive_time", "")),
            detail=str(item.get("errmsg", "")),
        )
        for item in items
    ]


STATUS_CALLBACK_ANSWER = {"result": 0, "errmsg": "OK"}
