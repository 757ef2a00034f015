"""Every rendered notice is kept with its hashes: the PDF that was attached is the PDF that is stored.

The row is written before the notice is sent, so the contact log's content hash can always be traced back to
the bytes, the template version and the document number.
"""

from __future__ import annotations

import peewee as pw

from cloud.clock import Clock, to_ms
from cloud.notices.render import RenderedNotice
from cloud.store import BaseModel, write_transaction


class NoticeDocument(BaseModel):
    case_ref = pw.CharField(index=True)  # plain string, like the contact log
    doc_no = pw.CharField()
    template_id = pw.CharField(max_length=64)
    template_version = pw.CharField(max_length=32)
    title = pw.CharField()
    pdf = pw.BlobField()
    pdf_sha256 = pw.CharField(max_length=64, unique=True)
    text_sha256 = pw.CharField(max_length=64)
    text = pw.TextField(default="")  # the words as sent (the notice link shows them); "" for notices kept before
    sms_text = pw.TextField()
    sms_sha256 = pw.CharField(max_length=64)
    rendered_ms = pw.BigIntegerField()


MODELS = (NoticeDocument,)


def keep(case_ref: str, notice: RenderedNotice, clock: Clock) -> NoticeDocument:
    """Store ``notice`` once (rendering is deterministic, so the same notice has the same PDF hash)."""
    with write_transaction():
        existing = NoticeDocument.get_or_none(NoticeDocument.pdf_sha256 == notice.pdf_sha256)
        if existing is not None:
            return existing
        return NoticeDocument.create(
            case_ref=case_ref,
            doc_no=notice.doc_no,
            template_id=notice.template_id,
            template_version=notice.template_version,
            title=notice.title,
            pdf=notice.pdf,
            pdf_sha256=notice.pdf_sha256,
            text_sha256=notice.text_sha256,
            text=notice.text,
            sms_text=notice.sms_text,
            sms_sha256=notice.sms_sha256,
            rendered_ms=to_ms(clock.now()),
        )
