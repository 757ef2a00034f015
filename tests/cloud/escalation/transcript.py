"""The seed case as its people lived it: what the employee, his emergency contact, his line manager, HR and
the union received each day, read from the local providers' inboxes (SMTP, Aliyun SMS, WeCom) and the person
tasks (calls, EMS letters) in the contact log; and what HR and the engine did. Written as a Markdown table to
``test-artifacts/seed-case-replay.md`` for the team to read, and kept as rows for the test to check."""

from __future__ import annotations

import email
import json
from dataclasses import dataclass, field
from email import policy as email_policy
from pathlib import Path
from zoneinfo import ZoneInfo

from cloud.channels.contact_log import ContactAttempt
from cloud.escalation import timeline
from cloud.escalation.models import AbsenceCase, CaseStep
from cloud.escalation.notice_facts import RESULT_ZH
from cloud.escalation.policy import NOTICE_NAMES
from tests.harness.browser import ARTIFACTS

PARTIES = ("employee", "emergency_contact", "manager", "hr", "union")
HEADINGS = ("员工 employee", "紧急联系人 emergency contact", "主管 manager", "人事 HR", "工会 union")
ADDRESSES = {
    "13800138000": "employee",
    "+8613800138000": "employee",
    "zhangsan@example.cn": "employee",
    "zhangsan": "employee",
    "13900139000": "emergency_contact",
    "+8613900139000": "emergency_contact",
    "lisi@factory.example.cn": "manager",
    "lisi": "manager",
    "hr-team@factory.example.cn": "hr",
    "wangmin": "hr",
    "union@factory.example.cn": "union",
}
TITLES = (  # the notices' titles, longest first: what a person sees at the top of the message
    ("关于拟解除劳动合同事先通知工会的函", "工会通知函"),
    ("解除劳动合同通知书", "解除通知书"),
    ("解除劳动合同证明", "解除证明"),
    ("催告函", "催告函"),
    ("限期返岗", "催告函"),
    ("旷工通知书", "旷工通知书"),
    ("紧急联系人联络函", "关怀联系"),
    ("员工缺勤预警", "缺勤预警"),
    ("未到岗提醒", "未到岗提醒"),
)
SMS_TEMPLATES = {
    "SMS_100000001": "未到岗提醒",
    "SMS_100000002": "缺勤预警",
    "SMS_100000003": "催告函",
    "SMS_100000004": "关怀联系",
    "SMS_100000005": "旷工通知书",
    "SMS_100000006": "工会通知函",
    "SMS_100000007": "解除通知书",
}
CHANNEL_ZH = {"sms": "短信", "email": "邮件", "wecom": "企业微信", "voice": "电话（人工）", "ems": "EMS（人工）"}


def _title(text: str) -> str:
    return next((name for needle, name in TITLES if needle in text), "消息")


@dataclass
class Day:
    label: str
    received: dict[str, list[str]] = field(default_factory=lambda: {p: [] for p in PARTIES})
    done: list[str] = field(default_factory=list)


class Transcript:
    """Call ``day(label)`` after each day of the replay: what arrived since the last call becomes that day's row."""

    def __init__(self, wired, clock) -> None:  # type: ignore[no-untyped-def]
        self._wired = wired
        self._clock = clock
        self._seen = {"sms": 0, "wecom": 0, "email": 0, "task": 0, "entry": 0}
        self.days: list[Day] = []

    def day(self, label: str = "") -> Day:
        """What happened since the last call, under ``label`` (default: the plant's local date and weekday now)."""
        local = self._clock.now().astimezone(ZoneInfo("Asia/Shanghai"))
        row = Day(label or f"{local:%m-%d} 周{'一二三四五六日'[local.weekday()]} {local:%H:%M}")
        w = self._wired
        for sms in w.aliyun.sent[self._seen["sms"] :]:
            self._add(row, sms["phone"], "sms", SMS_TEMPLATES.get(sms["template"], sms["template"]))
        self._seen["sms"] = len(w.aliyun.sent)
        for message in w.wecom.messages[self._seen["wecom"] :]:
            for user in message["to"]:
                self._add(row, user, "wecom", _title(json.dumps(message["body"], ensure_ascii=False)))
        self._seen["wecom"] = len(w.wecom.messages)
        for envelope in w.mailbox.envelopes[self._seen["email"] :]:
            subject = str(email.message_from_bytes(envelope.content, policy=email_policy.default)["Subject"])
            attached = " + PDF" if b"application/pdf" in envelope.content else ""
            for rcpt in envelope.rcpt_tos:
                self._add(row, rcpt, "email", _title(subject) + attached)
        self._seen["email"] = len(w.mailbox.envelopes)
        tasks = ContactAttempt.select().where(ContactAttempt.provider.startswith("person.")).order_by(ContactAttempt.id)
        for task in tasks.where(ContactAttempt.id > self._seen["task"]):
            step = CaseStep.get_or_none(CaseStep.key == task.step_id)
            notice = NOTICE_NAMES[step.notice][0] if step is not None else task.step_id
            result = RESULT_ZH.get(task.receipt_status or task.status, task.status)
            self._add(row, task.recipient, task.channel.split(".")[0], f"{notice}（{result}）")
            self._seen["task"] = task.id
        case = AbsenceCase.select().first()
        if case is not None:
            items = timeline.items(case.id)
            for item in items[self._seen["entry"] :]:
                who = "系统" if item.actor == "engine" else item.actor
                row.done.append(f"{who}：{item.text_zh.splitlines()[0][:80]}")
            self._seen["entry"] = len(items)
        self.days.append(row)
        return row

    def _add(self, row: Day, address: str, channel: str, what: str) -> None:
        party = ADDRESSES.get(address)
        if party is None and address.startswith("湖南"):
            party = "employee"  # the service address on his contract: the EMS letter
        row.received[party or "hr"].append(f"{CHANNEL_ZH.get(channel, channel)}：{what}")

    def received(self, party: str) -> list[tuple[str, str]]:
        return [(d.label, item) for d in self.days for item in d.received[party]]

    def markdown(self) -> str:
        lines = [
            "| 日期 date | " + " | ".join(HEADINGS) + " | 人事与系统的操作 what HR and the engine did |",
            "|" + "---|" * (len(HEADINGS) + 2),
        ]
        for d in self.days:
            if not any(d.received.values()) and not d.done:
                continue
            cells = ["<br>".join(d.received[p]) or "—" for p in PARTIES]
            lines.append(f"| {d.label} | " + " | ".join(cells) + " | " + "<br>".join(d.done or ["—"]) + " |")
        return "\n".join(lines) + "\n"

    def write(self, name: str) -> Path:
        path = ARTIFACTS.parent / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown(), encoding="utf-8")
        return path
