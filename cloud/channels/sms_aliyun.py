"""SMS through Aliyun 短信服务 (dysmsapi, API version 2017-05-25): SendSms, QuerySendDetails, SmsReport push.

Requests are signed with Aliyun's RPC signature (SignatureVersion 1.0, HMAC-SHA1), as documented in "签名机制"
(help.aliyun.com/document_detail/28839.html, 315526.html): every parameter but Signature, sorted by name, each
name and value percent-encoded as RFC 3986 unreserved-only (space %20, never "+"), joined with "=" and "&";
StringToSign = METHOD + "&" + enc("/") + "&" + enc(that query); Signature = Base64(HMAC-SHA1(secret + "&",
StringToSign)). Each request has a fresh SignatureNonce and a UTC Timestamp (Aliyun rejects stale ones).

Aliyun sends only pre-approved templates, so the notice itself is behind the link in the template's variables;
``template_codes`` maps our template id to the approved TemplateCode. ``template_texts`` holds, for each, the
approved 模板内容 as the console shows it (``${name}`` for a variable): with it every attempt keeps the words the
phone shows (``Attempt.sent_text``, "【签名】" and the content with the variables filled in), which the evidence log
signs; without it only the code and the variables are kept.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Unpack
from zoneinfo import ZoneInfo

from cloud.channels.base import Attempt, OutboundMessage, Receipt, ReceiptStatus, Status
from cloud.channels.contact_log import idempotency_key
from cloud.channels.provider import ChannelOptions, ProviderChannel
from cloud.channels.transport import HttpReply, http_request, json_object, redact

VERSION = "2017-05-25"
ENDPOINT = "https://dysmsapi.aliyuncs.com/"
RATE_LIMITED = {"isv.BUSINESS_LIMIT_CONTROL", "Throttling", "Throttling.User", "Throttling.Api"}
CHINA = ZoneInfo("Asia/Shanghai")  # SendDate of QuerySendDetails is a Beijing date


@dataclass(frozen=True)
class AliyunSmsSettings:
    access_key_id: str
    access_key_secret: str
    sign_name: str  # the approved 签名, e.g. 某某电子厂
    template_codes: Mapping[str, str] = field(default_factory=dict)  # our template id -> SMS_123456789
    template_texts: Mapping[str, str] = field(default_factory=dict)  # our template id -> the approved 模板内容
    endpoint: str = ENDPOINT
    region: str = "cn-hangzhou"
    timeout_s: float = 10.0
    per_minute: int = 100  # our own ceiling; Aliyun's per-number limits answer isv.BUSINESS_LIMIT_CONTROL


def sent_text(sign_name: str, template_text: str, params: Mapping[str, str]) -> str:
    """What the phone shows for an approved template: 【签名】 then the content, each ``${var}`` filled in (one
    this message does not give stays as written, which is also how Aliyun refuses it)."""
    content = re.sub(r"\$\{(\w+)\}", lambda m: str(params.get(m[1], m[0])), template_text)
    return f"【{sign_name}】{content}"


def percent_encode(value: str) -> str:
    return urllib.parse.quote(value, safe="-_.~")


def rpc_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))
    to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def national(phone: str) -> str:
    return phone.removeprefix("+86").removeprefix("0086")


class AliyunSms(ProviderChannel[AliyunSmsSettings]):
    kind = "sms"
    provider = "aliyun"
    default_name = "sms.aliyun"

    def __init__(
        self,
        settings: AliyunSmsSettings,
        *,
        nonce: Callable[[], str] = lambda: uuid.uuid4().hex,
        **options: Unpack[ChannelOptions],
    ) -> None:
        super().__init__(settings, **options)
        self.nonce = nonce

    def secrets(self) -> tuple[str, ...]:
        return (self.settings.access_key_secret,)

    def signed_query(self, action: str, params: Mapping[str, str], method: str = "GET") -> str:
        s = self.settings
        full = {
            "AccessKeyId": s.access_key_id,
            "Action": action,
            "Format": "JSON",
            "RegionId": s.region,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": self.nonce(),
            "SignatureVersion": "1.0",
            "Timestamp": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": VERSION,
            **params,
        }
        full["Signature"] = rpc_signature(method, full, s.access_key_secret)
        return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in full.items())

    def call(self, action: str, params: Mapping[str, str]) -> tuple[HttpReply, dict[str, Any], str]:
        query = self.signed_query(action, params)
        reply = http_request("GET", f"{self.settings.endpoint}?{query}", timeout=self.settings.timeout_s)
        return reply, json_object(reply.body), query

    def send(self, message: OutboundMessage) -> Attempt:
        s = self.settings
        code = s.template_codes.get(message.template_id)
        if not code:
            return self.attempt(
                message, Status.FAILED, reason=f"no approved Aliyun SMS template for {message.template_id}"
            )
        text = s.template_texts.get(message.template_id)
        words = sent_text(s.sign_name, text, message.params) if text else ""
        params = {
            "PhoneNumbers": national(message.recipient),
            "SignName": s.sign_name,
            "TemplateCode": code,
            "TemplateParam": json.dumps(dict(message.params), ensure_ascii=False, separators=(",", ":")),
            "OutId": idempotency_key(message.case_ref, message.step_id, message.channel, message.recipient)[:32],
        }
        answer = self.exchange(
            message,
            lambda: self.call("SendSms", params),
            lambda r: r[1].get("Code") in RATE_LIMITED,
            label="Aliyun SendSms",
        )
        if isinstance(answer, Attempt):
            return dataclasses.replace(answer, sent_text=words)  # an unanswered send may have shown them
        reply, data, query = answer
        request = redact(query, self.secrets()).encode()
        if data.get("Code") == "OK" and data.get("BizId"):
            biz_id = str(data["BizId"])
            return self.attempt(
                message, Status.SENT, message_id=biz_id, response=reply.text, request=request, sent_text=words
            )
        if data.get("Code"):
            why = f"Aliyun refused SendSms (HTTP {reply.status}): {data['Code']}: {data.get('Message', '')}"
        else:
            why = f"Aliyun SendSms answered HTTP {reply.status} without a result"
        return self.attempt(message, Status.FAILED, reason=why, response=reply.text, request=request, sent_text=words)

    def query_send_details(self, phone: str, biz_id: str, sent_at: datetime) -> list[Receipt]:
        """Pull the delivery status of one sent message (Aliyun keeps 30 days); receipts for the contact log."""
        params = {
            "PhoneNumber": national(phone),
            "BizId": biz_id,
            "SendDate": sent_at.astimezone(CHINA).strftime("%Y%m%d"),
            "PageSize": "10",
            "CurrentPage": "1",
        }
        reply, data, _query = self.call("QuerySendDetails", params)
        if data.get("Code") != "OK":
            raise QueryFailed(
                f"Aliyun QuerySendDetails: HTTP {reply.status} {data.get('Code')}: {data.get('Message', '')}"
            )
        items = (data.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
        return [_pulled_receipt(biz_id, item) for item in items]


class QueryFailed(Exception):
    pass


def _pulled_receipt(biz_id: str, item: dict[str, Any]) -> Receipt:
    status = {3: ReceiptStatus.DELIVERED, 2: ReceiptStatus.FAILED}.get(item.get("SendStatus"), ReceiptStatus.PENDING)
    return Receipt(
        provider="aliyun",
        provider_message_id=biz_id,
        status=status,
        raw=json.dumps(item, ensure_ascii=False),
        recipient=str(item.get("PhoneNum", "")),
        provider_time=str(item.get("ReceiveDate", "")),
        detail=str(item.get("ErrCode", "")),
    )


def parse_sms_report(body: bytes) -> list[Receipt]:
    """Aliyun's SmsReport HTTP push: a JSON array of reports (one request may carry several)."""
    items = json.loads(body)
    if not isinstance(items, list):
        raise ValueError("SmsReport body is not a JSON array")
    return [
        Receipt(
            provider="aliyun",
            provider_message_id=str(item["biz_id"]),
            status=ReceiptStatus.DELIVERED if item.get("success") is True else ReceiptStatus.FAILED,
            raw=json.dumps(item, ensure_ascii=False),
            recipient=str(item.get("phone_number", "")),
            provider_time=str(item.get("report_time", "")),
            detail=str(item.get("err_code", "")),
        )
        for item in items
    ]


SMS_REPORT_ANSWER = {"code": 0, "msg": "接收成功"}  # anything else and Aliyun pushes the report again
