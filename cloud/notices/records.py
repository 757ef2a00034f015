"""Every notice that goes out is kept with its hashes: the PDF that was attached is the PDF that is stored.

The words are written before the notice is sent, so the contact log's content hash can always be traced back to
the words, the template version and the document number. A notice whose PDF goes with it (a formal notice by
e-mail or EMS) is kept whole then (``keep``). One whose messages carry only its words and its link (an SMS, a
WeCom message) is kept as its words and what its PDF will draw (``keep_words``: a ``PendingPdf``), and its PDF is
made after the sends (``make_pdfs``, the escalation runner's pass after each tick's sends) or when someone opens
its link first (``made``). The PDF is a function of those words and the font alone (``render.render_pdf``), so
either way it has the bytes it would have had at the send; its SHA-256 is recorded when it is made, and the
words then move to the ``NoticeDocument`` row with it, in one transaction.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import peewee as pw

from cloud.clock import Clock, to_ms
from cloud.notices.render import NoticeWords, PdfSource, RenderedNotice, font_json, pdf_of
from cloud.report_font import CjkFont
from cloud.store import BaseModel, database, write_transaction

log = logging.getLogger(__name__)


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


class PendingPdf(BaseModel):
    """A notice that went out (or is going out) by its words alone, whose PDF is not made yet: the words as sent,
    their hashes, and what the PDF draws (``source``, ``render.PdfSource`` as JSON) with which font (``font``)."""

    case_ref = pw.CharField(index=True)
    doc_no = pw.CharField()
    template_id = pw.CharField(max_length=64)
    template_version = pw.CharField(max_length=32)
    title = pw.CharField()
    text = pw.TextField()
    text_sha256 = pw.CharField(max_length=64, unique=True)
    sms_text = pw.TextField()
    sms_sha256 = pw.CharField(max_length=64)
    source = pw.TextField()
    font = pw.TextField()
    rendered_ms = pw.BigIntegerField()


MODELS = (NoticeDocument, PendingPdf)


def keep(case_ref: str, notice: RenderedNotice, clock: Clock) -> NoticeDocument:
    """Store ``notice`` once (rendering is deterministic, so the same notice has the same PDF hash)."""
    return _store(case_ref, notice, to_ms(clock.now()))


def _store(case_ref: str, notice: RenderedNotice, at_ms: int) -> NoticeDocument:
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
            rendered_ms=at_ms,
        )


def keep_words(case_ref: str, words: NoticeWords, font: CjkFont, clock: Clock) -> None:
    """Store the words of a notice whose PDF is made later, once: nothing when the same words wait for their PDF
    already. (Words kept again after their PDF was made, a step tried again, make the same PDF: the pass stores it
    once and drops them.)"""
    values = (
        case_ref,
        words.doc_no,
        words.template_id,
        words.template_version,
        words.title,
        words.text,
        words.text_sha256,
        words.sms_text,
        words.sms_sha256,
        words.source.to_json(),
        font_json(font),
        to_ms(clock.now()),
    )
    db = database.obj  # the statement written out once: peewee built it anew for each of a morning's 5,000 notices
    db.execute_sql(_KEEP_WORDS if isinstance(db, pw.SqliteDatabase) else _KEEP_WORDS.replace("?", "%s"), values)


_KEEP_WORDS = (
    "INSERT INTO pending_pdf (case_ref, doc_no, template_id, template_version, title, text, text_sha256, sms_text, "
    f"sms_sha256, source, font, rendered_ms) VALUES ({', '.join('?' * 12)}) ON CONFLICT DO NOTHING"
)


def made(pending: PendingPdf) -> NoticeDocument:
    """The notice's PDF, made now from its kept words and font, stored with its hash; the pending row goes in the
    same transaction. Making it twice (the runner's pass and a link opened at once) stores it once."""
    return _made(pending, pdf_of(pending.source, pending.font))


def _made(pending: PendingPdf, pdf: bytes) -> NoticeDocument:
    words = NoticeWords(
        template_id=pending.template_id,
        template_version=pending.template_version,
        title=pending.title,
        doc_no=pending.doc_no,
        text=pending.text,
        sms_text=pending.sms_text,
        sms_params={},
        file_name="",
        source=PdfSource.from_json(pending.source),
    )
    with write_transaction():
        doc = _store(pending.case_ref, words.with_pdf(pdf), pending.rendered_ms)  # dated when it went out
        PendingPdf.delete().where(PendingPdf.id == pending.id).execute()
    return doc


POOL_FROM = 40  # fewer PDFs than this are drawn here: starting the drawing processes costs a few seconds
CHUNK = 100  # PDFs handed to the processes at a time (each some 20-40 KB)


def make_pdfs(*, limit: int | None = None, workers: int = 1, budget_s: float | None = None) -> int:
    """Make the PDF of every notice kept without one, oldest first (``limit``: at most that many); how many were
    made. With ``workers`` > 1 and many to make, they are drawn by that many processes (drawing is CPU work, and
    one Python process draws on one core), and stored here. ``budget_s``: no more are started after so many
    seconds (the rest wait for the next pass). A notice whose PDF cannot be made (its font gone) is logged and left
    for the next pass."""
    started = time.monotonic()

    def spent() -> bool:
        return budget_s is not None and time.monotonic() - started >= budget_s

    query = PendingPdf.select().order_by(PendingPdf.id)
    if limit is not None:
        query = query.limit(limit)
    rows = list(query)
    if workers <= 1 or len(rows) < POOL_FROM:
        done = 0
        for pending in rows:
            if spent():
                break
            done += _drawn(pending, lambda p: pdf_of(p.source, p.font))
        return done
    done = 0
    spawn = multiprocessing.get_context("spawn")  # a fresh process: no copy of this one's connections or threads
    with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
        for start in range(0, len(rows), CHUNK):
            if spent():
                break
            part = rows[start : start + CHUNK]
            futures = [pool.submit(pdf_of, p.source, p.font) for p in part]
            done += sum(_drawn(p, lambda _p, f=f: f.result()) for p, f in zip(part, futures, strict=True))
    return done


def _drawn(pending: PendingPdf, draw: Callable[[PendingPdf], bytes]) -> int:
    try:
        _made(pending, draw(pending))
    except (OSError, ValueError, RuntimeError) as err:
        log.error("notice %s (%s): its PDF could not be made: %s", pending.doc_no, pending.case_ref, err)
        return 0
    return 1
