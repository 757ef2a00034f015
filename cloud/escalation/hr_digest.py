"""Nothing waits unseen: the HR digest, sent from the escalation runner's tick.

HR (the ``hr`` contact of ``[notices]``: ``hr_email``, ``hr_wecom``, ``hr_dingtalk``, ``hr_phone``) gets one
message, by the first configured channel that has an address for them (e-mail, WeCom, DingTalk, SMS; the next
one when it fails), listing what arose since the last digest:

* an approval that starts waiting (催告函, termination);
* a task with a date two working days before its due day, and again on its due day (or once overdue);
* a send that failed on every channel or may have gone out (what to do: resend by hand, or check with the
  provider first);
* an employee's reply to a notice, not reviewed yet.

Each item goes out once (``DigestItem``: one row per person and item, never twice, a restart included); a
person gets at most one digest per window (``every_s``, 10 minutes by default), so a busy tick is one message,
not one per item. Items are claimed in the same transaction that records the message as ``sending``, before it
is sent: a runner stopped mid-send leaves it ``sending`` and sends none of its items again (it may have gone
out). A digest no channel took is ``failed`` and its items are free again for the next window.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import peewee as pw

from cloud.channels.base import Channel, OutboundMessage, Status
from cloud.clock import Clock, to_ms
from cloud.escalation import work_queue, workdays
from cloud.escalation.work_queue import Item
from cloud.notices.settings import NoticeSettings
from cloud.store import BaseModel, write_transaction

log = logging.getLogger(__name__)
PERSON = "hr"  # the [notices] HR contact; per-account contacts would name the account here
ORDER = (("email", "hr_email"), ("wecom", "hr_wecom"), ("dingtalk", "hr_dingtalk"), ("sms", "hr_phone"))
SOON_WORKING_DAYS = 2
LOOK_AHEAD_DAYS = 14  # calendar days that surely hold two working days, holidays included
KINDS = {  # an item's kind as the digest heads it
    "gate": ("待审批", "approval waiting"),
    "soon": ("即将到期（2 个工作日内）", "due within 2 working days"),
    "due": ("今天到期或已逾期", "due today or overdue"),
    "send": ("发送失败或结果不明", "failed or uncertain send"),
    "reply": ("员工回复待审核", "employee's reply to review"),
}


class DigestMessage(BaseModel):
    """One digest: to whom, by which channel, what it said, and what became of it."""

    person = pw.CharField()
    recipient = pw.CharField(default="")  # the address it went to
    channel = pw.CharField(max_length=32, default="")
    at_ms = pw.BigIntegerField(index=True)
    subject = pw.TextField(default="")
    text = pw.TextField(default="")
    items = pw.TextField(default="[]")  # JSON: the item keys it carried
    status = pw.CharField(max_length=16)  # sending | sent | failed | uncertain
    reason = pw.TextField(default="")
    provider_message_id = pw.CharField(default="")


class DigestItem(BaseModel):
    """An item a person was told about (or is being told about right now): never told twice."""

    person = pw.CharField()
    key = pw.CharField()
    message = pw.ForeignKeyField(DigestMessage, backref="carried")
    at_ms = pw.BigIntegerField()

    class Meta:
        indexes = ((("person", "key"), True),)


MODELS = (DigestMessage, DigestItem)


@dataclass(frozen=True)
class Entry:
    kind: str  # a key of KINDS
    key: str
    item: Item


def due_now(now_ms: int) -> list[Entry]:
    """Every item the digest would tell of at ``now_ms``, told or not."""
    entries = [Entry("gate", i.key, i) for i in work_queue.approvals(None, None)]
    for item in work_queue.tasks(None, now_ms, within_days=LOOK_AHEAD_DAYS):
        if item.due_ms is None or item.days_left is None:
            continue
        if item.days_left <= 0:
            entries.append(Entry("due", f"{item.key}:due", item))
        elif work_queue.working_days_left(item.due_ms, now_ms, item.timezone) <= SOON_WORKING_DAYS:
            entries.append(Entry("soon", f"{item.key}:soon", item))
    entries += [Entry("send", i.key, i) for i in work_queue.sends(None)]
    entries += [Entry("reply", i.key, i) for i in work_queue.replies(None)]
    return entries


class HrDigest:
    """Builds and sends the digest; ``run`` is called once per tick. No I/O until ``run``."""

    def __init__(
        self, channels: Sequence[Channel], notices: NoticeSettings, clock: Clock, *, every_s: int = 600
    ) -> None:
        self._channels = list(channels)
        self._notices = notices
        self._clock = clock
        self._every_ms = every_s * 1000

    def routes(self) -> list[tuple[Channel, str]]:
        """(channel, address) to reach HR by, in order of preference."""
        found = []
        for kind, field in ORDER:
            address = str(getattr(self._notices, field, "") or "")
            channel = next((c for c in self._channels if c.kind == kind), None)
            if address and channel is not None:
                found.append((channel, address))
        return found

    def run(self) -> list[str]:
        """Send HR one digest of what is new, if the window allows; notes for the tick's report."""
        routes = self.routes()
        if not routes:
            return []
        now = to_ms(self._clock.now())
        last = (
            DigestMessage.select(pw.fn.MAX(DigestMessage.at_ms))
            .where((DigestMessage.person == PERSON) & (DigestMessage.status != "failed"))
            .scalar()
        )
        if last is not None and now - last < self._every_ms:
            return []
        told = {key for (key,) in DigestItem.select(DigestItem.key).where(DigestItem.person == PERSON).tuples()}
        fresh = [e for e in due_now(now) if e.key not in told]
        if not fresh:
            return []
        subject, text = self.compose(fresh)
        with write_transaction():
            message = DigestMessage.create(
                person=PERSON,
                at_ms=now,
                subject=subject,
                text=text,
                items=json.dumps([e.key for e in fresh]),
                status="sending",
            )
            for entry in fresh:
                DigestItem.insert(
                    person=PERSON, key=entry.key, message=message, at_ms=now
                ).on_conflict_ignore().execute()
        return [self._send(message, routes, len(fresh))]

    def _send(self, message: DigestMessage, routes: list[tuple[Channel, str]], count: int) -> str:
        reasons = []
        for channel, address in routes:
            attempt = channel.send(
                OutboundMessage(
                    case_ref="hr-digest",
                    step_id=f"digest-{message.id}",
                    recipient=address,
                    channel=channel.kind,
                    template_id="hr_digest",
                    template_version="1",
                    subject=message.subject,
                    text=message.text,
                    params={"count": str(count)},
                )
            )
            if attempt.ok or attempt.status is Status.UNCERTAIN:  # uncertain: it may have gone; never sent again
                DigestMessage.update(
                    status="sent" if attempt.ok else "uncertain",
                    recipient=address,
                    channel=channel.name,
                    reason=attempt.reason,
                    provider_message_id=attempt.provider_message_id,
                ).where(DigestMessage.id == message.id).execute()
                return f"HR digest: {count} item(s) to {address} by {channel.name} ({attempt.status.value})"
            reasons.append(f"{channel.name}→{address}: {attempt.reason}")
        why = "; ".join(reasons)
        with write_transaction():
            DigestMessage.update(status="failed", reason=why).where(DigestMessage.id == message.id).execute()
            DigestItem.delete().where(DigestItem.message == message.id).execute()  # told nobody: due again
        log.error(
            "the HR digest (%d items) could not be sent by any channel (%s); check [channels] and the hr_* "
            "addresses of [notices] in cloud.toml; tried again in the next window",
            count,
            why,
        )
        return f"HR digest not sent: {why}"

    def compose(self, entries: list[Entry]) -> tuple[str, str]:
        """The subject and text: Chinese first, then English; each item with its case's link."""
        base = self._notices.link_base.rstrip("/")

        def where(item: Item) -> str:
            return f"{base}/cases/{item.case_id}" if base else f"#{item.case_id}"

        def when(item: Item, en: bool) -> str:
            if item.due_ms is None:
                return ""
            due = workdays.local_day(item.due_ms, item.timezone).isoformat()
            left = item.days_left or 0
            statutory = (" (statutory)" if en else "（法定期限）") if item.statutory else ""
            if en:
                said = "due today" if left == 0 else (f"{-left} days overdue" if left < 0 else f"{left} days left")
                return f", due {due}{statutory}, {said}"
            said = "今天到期" if left == 0 else (f"逾期 {-left} 天" if left < 0 else f"剩 {left} 天")
            return f"，期限 {due}{statutory}，{said}"

        zh_lines, en_lines = [], []
        for kind, (head_zh, head_en) in KINDS.items():
            mine = [e for e in entries if e.kind == kind]
            if not mine:
                continue
            zh_lines.append(f"【{head_zh}】{len(mine)} 项")
            en_lines.append(f"[{head_en}] {len(mine)}")
            for e in mine:
                i = e.item
                todo_zh = f"；{i.todo_zh}" if i.todo_zh else ""
                todo_en = f"; {i.todo_en}" if i.todo_en else ""
                zh_lines.append(f"· {i.what_zh} — {i.employee}，{i.plant}{when(i, False)}{todo_zh}：{where(i)}")
                en_lines.append(f"- {i.what_en} — {i.employee}, {i.plant}{when(i, True)}{todo_en}: {where(i)}")
        count = len(entries)
        subject = f"【人事待办】{count} 项工作等待处理 / {count} item(s) waiting for HR"
        home = f"：{base}/" if base else ""
        text = (
            f"以下 {count} 项工作等待人事处理（每项只提醒一次，完整清单见总部首页{home}）：\n\n"
            + "\n".join(zh_lines)
            + "\n\n—— English ——\n"
            + "\n".join(en_lines)
            + "\n"
        )
        return subject, text
