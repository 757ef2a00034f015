"""What the employee does on a notice's link page (``/n/<token>``): opens it, says 我已收到, replies.

Each is evidence twice over: a row in the contact log (``ContactAttempt``, channel ``link``, provider
``notice_link``: status ``read``, ``acknowledged`` or ``replied``; time, the address it came from and the
browser in its reason, the notice's text hash as its content) and an entry in the case's timeline with the
employee as actor. The cloud's signed evidence log takes both in at its next catch-up (a contact record and a
case action), and an attachment's SHA-256 in the reply's entry brings the file into the case's bundle.

An open is recorded each time, but at most once a minute per link (a phone reloading the page is one read).
The acknowledgement is recorded once. A reply pauses the case's automatic steps exactly as an acknowledgement
by HR does (``actions.acknowledge``: until the policy's ack timeout; statutory clocks run on) with the reason
it gives, counts as contact (no welfare check for someone who answered), and opens a task for HR to review it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import date

from cloud.channels.contact_log import ContactAttempt
from cloud.escalation import actions, casefiles, timeline
from cloud.escalation.cases import locked_case
from cloud.escalation.models import AbsenceCase, CaseTask
from cloud.notices.links import NoticeLink
from cloud.notices.records import NoticeDocument
from cloud.store import write_transaction

ACTOR = "员工本人（通知链接）"
READ_EVERY_MS = 60_000
MAX_ATTACHMENT = 10 * 1024 * 1024
REASONS = {  # what the reply form offers, and the acknowledgement reason it pauses the case with
    "sick": ("病假", "sick leave", "sick"),
    "personal": ("事假", "personal leave", "leave_pending"),
    "injury": ("工伤", "work injury", "sick"),
    "other": ("其他", "other", "contacted"),
}
KINDS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "application/pdf": ".pdf",
}


class ReplyError(ValueError):
    """The reply cannot be taken as sent: what is wrong and what to do, zh-CN first."""


@dataclass(frozen=True)
class Visit:
    """Where a request came from: the client's address (as the app's proxy set-up gives it), the forwarding
    header as received, and the browser's user agent."""

    address: str
    forwarded: str
    user_agent: str

    def said(self) -> str:
        via = f"（经代理：{self.forwarded}）" if self.forwarded else ""
        return f"IP {self.address or '未知'}{via}；浏览器 {self.user_agent or '未提供'}"


@dataclass(frozen=True)
class Attachment:
    name: str
    data: bytes

    @property
    def mime(self) -> str:
        """The kind by its first bytes (never by what the browser claims): an image or a PDF, else ""."""
        head = self.data[:16]
        if head.startswith(b"%PDF-"):
            return "application/pdf"
        if head.startswith(b"\xff\xd8\xff"):
            return "image/jpeg"
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return "image/png"
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return "image/webp"
        if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypheif"):
            return "image/heic"
        return ""


def _contact(
    link: NoticeLink, doc: NoticeDocument | None, status: str, said: str, visit: Visit, now_ms: int, **extra: object
) -> None:
    raw = json.dumps(
        {"address": visit.address, "forwarded_for": visit.forwarded, "user_agent": visit.user_agent, **extra},
        ensure_ascii=False,
        sort_keys=True,
    )
    key = hashlib.sha256(f"notice_link|{link.id}|{status}|{now_ms}|{secrets.token_hex(8)}".encode()).hexdigest()
    ContactAttempt.create(
        idem_key=key,
        attempt_no=1,
        case_ref=f"case-{link.case_id}",
        step_id=link.key,
        channel="link",
        provider="notice_link",
        recipient="",
        template_id=doc.template_id if doc else "",
        template_version=doc.template_version if doc else "",
        subject=f"{doc.title}（{doc.doc_no}）" if doc else link.doc_no,
        content_sha256=doc.text_sha256 if doc else "",
        status=status,
        reason=f"{said}；{visit.said()}",
        raw_response=raw,
        operator=ACTOR,
        at_ms=now_ms,
    )


def _title(link: NoticeLink, doc: NoticeDocument | None) -> str:
    return f"《{doc.title}》（文号 {link.doc_no}）" if doc else f"通知（文号 {link.doc_no}）"


def _entry(link: NoticeLink, kind: str, zh: str, en: str, visit: Visit, now_ms: int, **data: object) -> None:
    if AbsenceCase.get_or_none(AbsenceCase.id == link.case_id) is None:
        return  # cases are never deleted; a link of none (made by hand, a test) is still in the contact log
    with locked_case(link.case_id) as case:
        timeline.append(
            case,
            kind,
            zh,
            en,
            at_ms=now_ms,
            actor=ACTOR,
            step=link.key,
            doc_no=link.doc_no,
            address=visit.address,
            forwarded_for=visit.forwarded,
            user_agent=visit.user_agent,
            **data,
        )


def opened(link: NoticeLink, doc: NoticeDocument | None, visit: Visit, now_ms: int) -> bool:
    """Record that the notice was opened; False when this link was recorded opened less than a minute ago."""
    with write_transaction():
        won = (
            NoticeLink.update(read_ms=now_ms)
            .where(
                (NoticeLink.id == link.id)
                & (NoticeLink.read_ms.is_null() | (NoticeLink.read_ms <= now_ms - READ_EVERY_MS))
            )
            .execute()
        )
        if not won:
            return False
        _contact(link, doc, "read", f"打开通知{_title(link, doc)}", visit, now_ms)
        _entry(
            link,
            "notice_read",
            f"员工经通知链接打开{_title(link, doc)}；{visit.said()}",
            f"the employee opened notice {link.doc_no} by its link; IP {visit.address}",
            visit,
            now_ms,
        )
    return True


def acknowledged(link: NoticeLink, doc: NoticeDocument | None, visit: Visit, now_ms: int) -> bool:
    """Record 我已收到 (once per link); False when it was recorded before."""
    with write_transaction():
        won = (
            NoticeLink.update(acked_ms=now_ms)
            .where((NoticeLink.id == link.id) & NoticeLink.acked_ms.is_null())
            .execute()
        )
        if not won:
            return False
        _contact(link, doc, "acknowledged", f"确认收到通知{_title(link, doc)}", visit, now_ms)
        _entry(
            link,
            "notice_ack",
            f"员工经通知链接确认“我已收到”{_title(link, doc)}；{visit.said()}",
            f"the employee confirmed receipt of notice {link.doc_no} by its link; IP {visit.address}",
            visit,
            now_ms,
        )
    return True


def _return_on(text: str, today: date) -> date | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError as err:
        raise ReplyError("预计返岗日期格式不正确，请重新选择 / the expected return date is not a date") from err
    if not (today.toordinal() - 31 <= day.toordinal() <= today.toordinal() + 366):
        raise ReplyError("预计返岗日期应在一年之内，请重新选择 / the expected return date must be within a year")
    return day


def replied(
    link: NoticeLink,
    doc: NoticeDocument | None,
    visit: Visit,
    now_ms: int,
    *,
    reason: str,
    return_on: str,
    text: str,
    attachment: Attachment | None,
    today: date,
) -> None:
    """Record the reply (and its file, kept with its SHA-256), pause the automatic steps, and put it before HR."""
    if reason not in REASONS:
        raise ReplyError("请选择原因（病假、事假、工伤或其他） / choose a reason")
    day = _return_on(return_on, today)
    if attachment is not None:
        if len(attachment.data) > MAX_ATTACHMENT:
            raise ReplyError(
                f"附件超过 {MAX_ATTACHMENT // 2**20} MB，请压缩或拍照后重新上传"
                f" / the file is larger than {MAX_ATTACHMENT // 2**20} MB"
            )
        if not attachment.mime:
            raise ReplyError("附件只能是图片（JPG、PNG、WEBP、HEIC）或 PDF / the file must be an image or a PDF")
    if not text and attachment is None and day is None:
        raise ReplyError("请填写说明、预计返岗日期或上传附件 / write a few words, a date or attach a file")
    zh, en, ack_reason = REASONS[reason]
    kept = None
    if attachment is not None:
        name = attachment.name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1][:120] or "attachment"
        if not name.lower().endswith(KINDS[attachment.mime]):
            name += KINDS[attachment.mime]
        kept = casefiles.keep(
            link.case_id, name, attachment.mime, attachment.data, by=ACTOR, now_ms=now_ms, note=f"员工回复（{zh}）"
        )
    said_zh = f"原因：{zh}" + (f"；预计返岗：{day.isoformat()}" if day else "") + (f"；说明：{text}" if text else "")
    said_en = (
        f"reason: {en}" + (f"; expected back: {day.isoformat()}" if day else "") + (f"; says: {text}" if text else "")
    )
    if kept is not None:
        said_zh += f"；附件《{kept.name}》SHA-256 {kept.sha256}"
        said_en += f"; attached “{kept.name}”, SHA-256 {kept.sha256}"
    detail = {"reason": reason, "return_on": day.isoformat() if day else "", "text": text}
    files = {"document": kept.id, "sha256": kept.sha256, "size": kept.size} if kept else {}
    with write_transaction():
        _contact(link, doc, "replied", f"回复通知{_title(link, doc)}：{said_zh}", visit, now_ms, **detail)
        _entry(
            link,
            "notice_reply",
            f"员工经通知链接回复{_title(link, doc)}：{said_zh}；{visit.said()}",
            f"the employee replied to notice {link.doc_no} by its link: {said_en}; IP {visit.address}",
            visit,
            now_ms,
            **detail,
            **files,
        )
        with locked_case(link.case_id) as case:
            title_zh = f"审核员工经通知链接的回复（{zh}）：核实后确认原因、登记假期或结案，或继续处理"
            title_en = (
                f"review the employee's reply by the notice link ({en}): confirm the reason, record leave or close"
            )
            task = CaseTask.get_or_none((CaseTask.case == case) & (CaseTask.kind == "review_reply"))
            if task is None:
                CaseTask.create(case=case, kind="review_reply", title_zh=title_zh, title_en=title_en, created_ms=now_ms)
            else:  # a later reply: the review is due again
                CaseTask.update(
                    title_zh=title_zh, title_en=title_en, status="open", done_ms=None, done_by="", proof=""
                ).where(CaseTask.id == task.id).execute()
            still_open = case.open_key is not None
    if still_open:
        actions.acknowledge(link.case_id, ack_reason, by=ACTOR, now_ms=now_ms, note=f"员工回复：{said_zh}")
