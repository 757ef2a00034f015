"""The read-and-acknowledge links at the end of every notice: ``<link_base>/n/<token>``.

A token is 128 random bits (``secrets``), made when the notice of a (case, step key) is first rendered for
sending, and only its SHA-256 is stored here: a copy of this table opens nothing. It expires
``[notices] link_days`` after issue (60 by default) and can be revoked.

Rendering the same step again (a retry, another runner) must give the same bytes, so the same link. The
token is then taken back from the notice already kept for the case (``records.NoticeDocument``: its text and
SMS text are what was sent, link included, and kept as evidence anyway), checked against the stored hash.
When no kept notice carries it (the first render failed before it was kept), nobody has seen that token: a
new one replaces it.

Notices rendered before this table existed keep their old links (a hash of the case's facts, never stored):
those open nothing, like any unknown token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

import peewee as pw

from cloud.clock import Clock, to_ms
from cloud.notices.records import NoticeDocument, PendingPdf, made
from cloud.store import BaseModel, write_transaction

DAY_MS = 86_400_000
TOKEN_BYTES = 16  # 128 bits: 22 URL-safe characters, short enough for an SMS template's link variable
TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}$")
_IN_TEXT = re.compile(r"/n/([A-Za-z0-9_-]{22})(?![A-Za-z0-9_-])")
PLACEHOLDER = "（发出时生成专属链接）"  # a draft's link: the token exists only once the notice goes out


class NoticeLink(BaseModel):
    """One link per notice of a case (case, step key): the hash of its token, when it was issued and until when
    it opens. ``read_ms`` is the latest open recorded (opens are recorded at most once a minute per link)."""

    case_id = pw.IntegerField(index=True)  # a plain id, like the contact log's case_ref: evidence outlives tables
    key = pw.CharField()  # the step's key (L1, L3, L3#2, L7:termination, 公告:催告函 ...)
    doc_no = pw.CharField()
    token_sha256 = pw.CharField(max_length=64, unique=True)
    issued_ms = pw.BigIntegerField()
    expires_ms = pw.BigIntegerField()
    revoked_ms = pw.BigIntegerField(null=True)
    read_ms = pw.BigIntegerField(null=True)
    acked_ms = pw.BigIntegerField(null=True)

    class Meta:
        indexes = ((("case_id", "key"), True),)


MODELS = (NoticeLink,)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def url(link_base: str, token: str) -> str:
    return f"{link_base.rstrip('/')}/n/{token}"


def _kept_token(case_ref: str, stored: str) -> str | None:
    """The token whose hash is ``stored``, from the notices kept for the case (what was sent carries it)."""
    kept = [
        *NoticeDocument.select(NoticeDocument.text, NoticeDocument.sms_text)
        .where(NoticeDocument.case_ref == case_ref)
        .tuples(),
        *PendingPdf.select(PendingPdf.text, PendingPdf.sms_text).where(PendingPdf.case_ref == case_ref).tuples(),
    ]
    for text, sms in kept:
        for token in _IN_TEXT.findall(f"{text}\n{sms}"):
            if digest(token) == stored:
                return token
    return None


@dataclass(frozen=True)
class Links:
    """What the sender hands to ``notice_facts.build``: the clock and how long a link opens."""

    clock: Clock
    days: int = 60

    def token(self, case_id: int, key: str, doc_no: str) -> str:
        """The token of the notice (case, key): the one already issued and kept, else a new one."""
        now = to_ms(self.clock.now())
        case_ref = f"case-{case_id}"
        with write_transaction():
            row = NoticeLink.get_or_none((NoticeLink.case_id == case_id) & (NoticeLink.key == key))
            if row is not None:
                kept = _kept_token(case_ref, row.token_sha256)
                if kept is not None:
                    return kept
            token = secrets.token_urlsafe(TOKEN_BYTES)
            expires = now + self.days * DAY_MS
            if row is None:
                NoticeLink.create(
                    case_id=case_id,
                    key=key,
                    doc_no=doc_no,
                    token_sha256=digest(token),
                    issued_ms=now,
                    expires_ms=expires,
                )
            else:  # issued but never kept, so never sent: nobody holds the old token
                row.token_sha256, row.doc_no, row.issued_ms, row.expires_ms = digest(token), doc_no, now, expires
                row.save()
            return token


@dataclass(frozen=True)
class Found:
    """A token looked up: ``state`` is ok, unknown, expired or revoked (``link`` is None when unknown)."""

    state: str
    link: NoticeLink | None = None


def find(token: str, now_ms: int) -> Found:
    if not TOKEN.match(token):
        return Found("unknown")
    row = NoticeLink.get_or_none(NoticeLink.token_sha256 == digest(token))
    if row is None:
        return Found("unknown")
    if row.revoked_ms is not None and row.revoked_ms <= now_ms:
        return Found("revoked", row)
    if now_ms >= row.expires_ms:
        return Found("expired", row)
    return Found("ok", row)


def revoke(case_id: int, key: str, now_ms: int) -> bool:
    """Close the link of a notice (sent to a wrong address, withdrawn); True when one was open."""
    return bool(
        NoticeLink.update(revoked_ms=now_ms)
        .where((NoticeLink.case_id == case_id) & (NoticeLink.key == key) & NoticeLink.revoked_ms.is_null())
        .execute()
    )


def notice_of(link: NoticeLink, token: str) -> NoticeDocument | None:
    """The notice as sent under ``token``: the latest kept notice of the case whose words carry it. One that went
    out by its words alone and whose PDF the runner has not made yet has it made now, from the words and font kept
    at the send (``records.made``: the same bytes the runner's pass would make), and stored."""
    marker = f"/n/{token}"
    case_ref = f"case-{link.case_id}"
    for pending in PendingPdf.select().where(PendingPdf.case_ref == case_ref).order_by(PendingPdf.id.desc()):
        if marker in pending.text or marker in pending.sms_text:
            return made(pending)
    for doc in (
        NoticeDocument.select()
        .where(NoticeDocument.case_ref == case_ref)
        .order_by(NoticeDocument.rendered_ms.desc(), NoticeDocument.id.desc())
    ):
        if marker in doc.text or marker in doc.sms_text:
            return doc
    return None
