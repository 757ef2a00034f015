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


def zh(kind: str) -> str:
    return NAMES.get(kind, (kind, kind))[0]


def en(kind: str) -> str:
    return NAMES.get(kind, (kind, kind))[1]


def kinds_of(sections: Iterable[str]) -> set[str]:
    """The kinds the configured ``sections`` provide."""
    have = set(sections)
    return {kind for kind, providers in SECTIONS.items() if have & set(providers)}


def how_to_configure(kind: str, lang: str = "zh") -> str:
    """The TOML sections that would provide ``kind``, as a person types them: "[channels.sms_aliyun] 或 ..."."""
    return (" or " if lang == "en" else " 或 ").join(f"[channels.{s}]" for s in SECTIONS.get(kind, (kind,)))
