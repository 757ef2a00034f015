"""Why a message failed, as a Chinese reader is told it: "号码无效", "服务商无应答（可能已发出）", "邮件服务器拒收".

The channels record a failure's reason in the provider's own words (``Attempt.reason``: "Aliyun refused SendSms
(HTTP 200): isv.MOBILE_NUMBER_ILLEGAL: ...", "WeCom refused message/send (HTTP 200): errcode 81013: ...", "recipient
refused: 550 ..."); those stay as they are, in the contact log and in a step's data. ``zh`` gives the plain words
for the Chinese half of a timeline entry, a task or a page: the first rule below that matches the raw reason, and
when none does, the provider's words themselves ("服务商返回：<raw>"), never nothing. A reason no rule knows that is in
Chinese already (a person's call outcome "空号", "发送中断（发送程序停止）/ the runner stopped...") is its Chinese part.
"""

from __future__ import annotations

import re

from cloud.channels import names

RAW_MAX = 200  # characters of an unmapped provider answer shown (the whole of it stays in the data)
_CJK = re.compile(r"[\u4e00-\u9fff]")
_HTTP = re.compile(r"HTTP (\d{3})")

# (what the raw reason contains, a regular expression; the Chinese; "{channel}" is the channel's name)
RULES: tuple[tuple[str, str], ...] = (
    # the number or the account: the recipient cannot be reached this way
    (
        r"MOBILE_NUMBER_ILLEGAL|IncorrectPhoneNumber|PhoneNumberParseFail|InvalidParameterValue\.PhoneNumber|"
        r"empty number|invalid number",
        "号码无效",
    ),
    (r"PhoneNumberInBlacklist|BLACK_KEY_CONTROL|isv\.BLACK|UnsubscribedPhone", "号码被服务商拦截（黑名单或已退订）"),
    (
        r"errcode 81013|errcode 60111|errcode 40003|not a \(licensed\) member|invalid_user|forbidden_user",
        "{channel}账号无效（不是本企业成员或未获许可）",
    ),
    # the provider's limits and the account's state
    (
        r"BUSINESS_LIMIT_CONTROL|DAY_LIMIT_CONTROL|MOBILE_COUNT_OVER_LIMIT|LimitExceeded|Throttl|"
        r"errcode 45009|errcode 45033|errcode 90018|freq out of limit",
        "发送过于频繁，超出服务商限制",
    ),
    (r"AMOUNT_NOT_ENOUGH|OUT_OF_SERVICE|InsufficientBalance", "短信账户欠费或停用"),
    (
        r"SMS_TEMPLATE_ILLEGAL|TEMPLATE_MISSING_PARAMETERS|TEMPLATE_PARAMS_ILLEGAL|TemplateIncorrectOrUnapproved|"
        r"INVALID_JSON_PARAM|no approved .* template|template .* needs",
        "短信模板未审核或参数不符（请核对短信模板配置）",
    ),
    (r"SMS_SIGNATURE_ILLEGAL|SignatureIncorrectOrUnapproved|SIGN_NAME", "短信签名未审核（请核对短信签名配置）"),
    (
        r"InvalidAccessKeyId|SignatureDoesNotMatch|AuthFailure|ACCOUNT_NOT_EXISTS|ACCOUNT_ABNORMAL|gettoken refused|"
        r"errcode 4000[1-4]\b|errcode 40013|errcode 40014|errcode 42001|errcode 301002|errcode 60020",
        "服务商拒绝了本单位的账号凭据（请核对 cloud.toml 中的密钥配置）",
    ),
    (r"errcode 93000|invalid webhook", "群机器人地址无效（请核对机器人配置）"),
    # e-mail
    (r"recipient refused", "邮件服务器拒收（收件地址无效或不存在）"),
    (r"sender refused", "邮件服务器拒绝发件地址（请核对发件地址配置）"),
    (r"message refused", "邮件服务器拒收该邮件"),
    (r"cannot reach the SMTP server", "无法连接邮件服务器，未发出"),
    (r"no answer after the message was sent", "邮件服务器无应答（可能已发出）"),
    (r"SMTP session broke", "与邮件服务器的连接中断，未发出"),
    (r"STARTTLS failed", "与邮件服务器建立加密连接失败，未发出"),
    (r"SMTP error", "邮件服务器出错，未发出"),
    # the provider did not answer, or could not be reached
    (r"no answer within|connection broke before an answer|it may have been", "服务商无应答（可能已发出）"),
    (r"cannot reach the provider", "无法连接服务商，未发出"),
)
_RULES = tuple((re.compile(pattern, re.IGNORECASE), text) for pattern, text in RULES)


def zh(channel: str, raw: str, *, unmapped: str = "服务商返回") -> str:
    """The Chinese for a failure's ``raw`` reason on ``channel`` (a policy kind: sms, email, wecom...)."""
    raw = raw.strip()
    if not raw:
        return ""
    for pattern, text in _RULES:
        if pattern.search(raw):
            return text.format(channel=names.zh(channel) if channel else "")
    if "without a result" in raw:  # answered, but not with a result: a gateway error page, an empty answer
        status = _HTTP.search(raw)
        return f"服务商出错，未返回结果（HTTP {status.group(1)}）" if status else "服务商未返回结果"
    if _CJK.search(raw):  # said in Chinese already (a person's call outcome, the engine's own words): its Chinese half
        return raw.split(" / ", 1)[0]
    shown = raw if len(raw) <= RAW_MAX else raw[: RAW_MAX - 1] + "…"
    return f"{unmapped}：{shown}"
