"""What each channel kind is called for people (Chinese, English) and which ``[channels.*]`` section provides it.

A kind ("sms") is what a policy names; a section ("sms_aliyun") is what the cloud's TOML configures; a person
reads neither: pages, tasks and errors say 短信 / SMS.
"""

from __future__ import annotations

from collections.abc import Iterable

NAMES: dict[str, tuple[str, str]] = {
    "sms": ("短信", "SMS"),
    "email": ("邮件", "e-mail"),
    "wecom": ("企业微信", "WeCom"),
    "dingtalk": ("钉钉", "DingTalk"),
    "voice": ("电话", "phone call"),
    "ems": ("EMS 邮寄", "EMS post"),
    "wecom_robot": ("企业微信群机器人", "WeCom group robot"),
    "dingtalk_robot": ("钉钉群机器人", "DingTalk group robot"),
}
SECTIONS: dict[str, tuple[str, ...]] = {  # the sections that provide each kind, in the dispatcher's order
    "sms": ("sms_aliyun", "sms_tencent"),
    "email": ("email",),
    "wecom": ("wecom",),
    "dingtalk": ("dingtalk",),
    "voice": ("voice",),
    "ems": ("ems",),
    "wecom_robot": ("wecom_robot",),
    "dingtalk_robot": ("dingtalk_robot",),
}


PROVIDERS: dict[str, tuple[str, str]] = {  # who carried a contact attempt (``ContactAttempt.provider``)
    "aliyun": ("阿里云短信", "Aliyun SMS"),
    "tencent": ("腾讯云短信", "Tencent Cloud SMS"),
    "smtp": ("邮件服务器", "mail server"),
    "wecom": ("企业微信", "WeCom"),
    "wecom_robot": ("企业微信群机器人", "WeCom group robot"),
    "dingtalk": ("钉钉", "DingTalk"),
    "dingtalk_robot": ("钉钉群机器人", "DingTalk group robot"),
    "person.voice": ("人工电话", "call by a person"),
    "person.ems": ("人工寄送 EMS", "EMS posted by a person"),
    "notice_link": ("通知链接", "notice link"),
}
STATUSES: dict[str, tuple[str, str]] = {  # a contact attempt's outcome (``cloud.channels.base.Status``)
    "sent": ("已发出", "sent"),
    "failed": ("发送失败", "failed"),
    "uncertain": ("结果不明（可能已发出）", "uncertain (may have gone out)"),
    "task_open": ("待人工办理", "waiting for a person"),
    "done": ("已办理", "done"),
}
RECEIPTS: dict[str, tuple[str, str]] = {  # a delivery report, normalised (``cloud.channels.base.ReceiptStatus``)
    "delivered": ("已送达", "delivered"),
    "read": ("已读", "read"),
    "unread": ("已送达未读", "delivered, not read"),
    "failed": ("未送达", "not delivered"),
    "returned": ("已退回", "returned"),
    "no_answer": ("无人接听", "no answer"),
    "pending": ("等待运营商回执", "waiting for the carrier"),
}
OPERATORS: dict[str, tuple[str, str]] = {  # who acted, where it was not a person signed in under their name
    "system": ("系统自动发送", "sent by the system"),
    "person": ("人工", "a person"),
}


def word(table: dict[str, tuple[str, str]], code: str, lang: str = "zh") -> str:
    """``code`` from one of the tables above in ``lang``; a code no table knows is shown as it is (a user name)."""
    pair = table.get(code, (code, code))
    return pair[1] if lang == "en" else pair[0]


def _pair(kind: str) -> tuple[str, str]:
    """A kind's names; a channel's own name ("sms.aliyun", "wecom.robot") by the kind it provides."""
    if kind in NAMES:
        return NAMES[kind]
    joined = kind.replace(".", "_")
    return NAMES.get(joined) or NAMES.get(kind.split(".", 1)[0], (kind, kind))


def zh(kind: str) -> str:
    return _pair(kind)[0]


def en(kind: str) -> str:
    return _pair(kind)[1]


def kinds_of(sections: Iterable[str]) -> set[str]:
    """The kinds the configured ``sections`` provide."""
    have = set(sections)
    return {kind for kind, providers in SECTIONS.items() if have & set(providers)}


def how_to_configure(kind: str, lang: str = "zh") -> str:
    """The TOML sections that would provide ``kind``, as a person types them: "[channels.sms_aliyun] 或 ..."."""
    return (" or " if lang == "en" else " 或 ").join(f"[channels.{s}]" for s in SECTIONS.get(kind, (kind,)))
