"""A reminder's SMS goes out without waiting for its PDF (#25 item 4): the notice's words are kept before the message
goes, and its PDF is made after the tick's sends, or when the employee opens the link first, the same bytes either
way and stored with its SHA-256. A runner killed between the sends and the PDFs loses nothing and sends nothing
again; a send that may have gone out (the provider never answered) is not sent again, and its notice's PDF is made
all the same.

Real parts: the cloud's SQLite database, the real sender, dispatcher and Aliyun channel, the local Aliyun server
(signatures checked) answering in 20 ms, the notices rendered with the system's Chinese font, and for the restart a
real runner process killed with SIGKILL. Four employees with a phone miss a day; the L1 reminder (to the employee,
by SMS) is due at 08:30 the next morning.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pypdf
import pytest

from bench.escalation_sends import KEY_ID, KEY_SECRET, NOTICES, TEMPLATES, chinese_name
from bench.escalation_tick import TZ, seed
from cloud.channels.dispatch import Dispatcher
from cloud.channels.ratelimit import RateLimit
from cloud.channels.sms_aliyun import AliyunSms, AliyunSmsSettings
from cloud.escalation import cases
from cloud.escalation.engine import Engine
from cloud.escalation.models import CaseStep, CaseTask
from cloud.escalation.outbound import OutboundSender
from cloud.escalation.policy import DEFAULT_BODY, publish
from cloud.escalation.sender import HoldingSender
from cloud.notices import links, records
from cloud.notices.records import NoticeDocument, PendingPdf
from cloud.report_font import ReportFontMissing, find_font
from cloud.store import database, open_db
from tests.harness.clock import FrozenClock
from tests.harness.providers.aliyun import AliyunSmsServer
from tests.harness.providers.base import Fault

WORKERS = 4
ROOT = Path(__file__).resolve().parents[3]


def _font_or_skip() -> None:
    try:
        find_font()
    except ReportFontMissing as err:
        pytest.skip(str(err))


def _person(plant: str, user: str) -> dict:
    return {**chinese_name(plant, user), "phone": f"+86138{int(plant[1:]):03d}{int(user):05d}"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The database at 08:30 of day 2, the four L1 reminders due (the cases opened at 22:00 the day before)."""
    _font_or_skip()
    path = tmp_path_factory.mktemp("pdfs") / "cloud.sqlite3"
    open_db(f"sqlite:///{path}")
    cases._policies.clear()
    day1 = date(2025, 3, 3)
    seed(1, WORKERS, WORKERS, day1, employee=_person)
    body = dict(DEFAULT_BODY, handbook={"version": "v1", "article": "12", "adoption_ref": "a", "publication_ref": "b"})
    body["ladder"] = [dict(s, channels=["sms"]) if s["key"] == "L1" else s for s in body["ladder"]]
    publish("*", body, by="test", now_ms=1)
    clock = FrozenClock(datetime(day1.year, day1.month, day1.day, 22, tzinfo=TZ).astimezone(UTC))
    Engine(clock, HoldingSender()).tick()  # opens the cases; the reminders wait for the morning
    clock.advance(hours=10, minutes=30)
    assert CaseStep.select().where((CaseStep.key == "L1") & (CaseStep.status == "due")).count() == WORKERS
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database.close()
    return path, clock.now()


class Watched(AliyunSmsServer):
    """The Aliyun server, noting for each SMS as it arrives the notices then kept with their PDF (read from the
    database file on a connection of its own)."""

    def __init__(self, *args, db: Path, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.db = db
        self.pdfs_at_send: list[int] = []

    def _send(self, params):  # type: ignore[no-untyped-def]
        with sqlite3.connect(self.db) as con:
            self.pdfs_at_send.append(con.execute("SELECT count(*) FROM notice_document").fetchone()[0])
        return super()._send(params)


@pytest.fixture
def world(built, tmp_path):  # type: ignore[no-untyped-def]
    path, now = built
    copy = tmp_path / "cloud.sqlite3"
    shutil.copy(path, copy)
    open_db(f"sqlite:///{copy}")
    cases._policies.clear()
    clock = FrozenClock(now)
    with Watched(FrozenClock(now), KEY_ID, KEY_SECRET, db=copy) as server:
        server.delay_s = 0.02
        yield clock, server, copy
    database.close()


def sender(server: AliyunSmsServer, clock: FrozenClock, **channel) -> OutboundSender:  # type: ignore[no-untyped-def]
    settings = AliyunSmsSettings(KEY_ID, KEY_SECRET, "某某电子", TEMPLATES, endpoint=f"{server.url}/", **channel)
    sms = AliyunSms(settings, clock=clock, limit=RateLimit(per_s=1000, burst=100))
    return OutboundSender(Dispatcher([sms], clock=clock), NOTICES, clock, parallel=4)


def _token(sent: dict) -> str:
    return sent["params"]["link"].rsplit("/n/", 1)[1]


def _pdf_text(pdf: bytes) -> str:
    return "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)


def test_the_sms_goes_out_before_its_pdf_is_drawn_and_the_pdf_comes_after_with_its_hash(world):
    clock, server, _db = world
    engine = Engine(clock, sender(server, clock))
    report = engine.tick(pdfs=False)
    assert report.sent == WORKERS and len(server.sent) == WORKERS
    assert server.pdfs_at_send == [0] * WORKERS  # no PDF was drawn before any SMS went
    # the words went out kept: each SMS's link is in a kept notice's words, with their hashes; no PDF yet
    pending = {p.doc_no: p for p in PendingPdf.select()}
    assert len(pending) == WORKERS and not NoticeDocument.select().exists()
    for sms in server.sent:
        [kept] = [p for p in pending.values() if sms["params"]["link"] in p.sms_text]
        assert kept.doc_no == sms["params"]["doc_no"] and sms["params"]["name"] in kept.text
        assert kept.sms_sha256 == hashlib.sha256(kept.sms_text.encode()).hexdigest()
        assert kept.text_sha256 == hashlib.sha256(kept.text.encode()).hexdigest()

    assert engine.make_pdfs() == WORKERS  # the PDF pass (a tick's, after its sends)
    assert not PendingPdf.select().exists()
    for doc in NoticeDocument.select():
        words = pending[doc.doc_no]
        assert doc.pdf_sha256 == hashlib.sha256(bytes(doc.pdf)).hexdigest()  # its hash, recorded when made
        assert (doc.text, doc.sms_text, doc.text_sha256, doc.sms_sha256) == (
            words.text,
            words.sms_text,
            words.text_sha256,
            words.sms_sha256,
        )
        assert doc.rendered_ms == words.rendered_ms  # dated when it went out, not when its PDF was made
        drawn = _pdf_text(bytes(doc.pdf))
        assert doc.doc_no in drawn.replace("\n", "") and "东莞市某某电子有限公司" in drawn
    assert len(server.sent) == WORKERS  # the PDFs sent nothing


def test_a_link_opened_before_the_pdf_pass_gets_the_bytes_the_pass_would_have_made(world, tmp_path):
    clock, server, db = world
    engine = Engine(clock, sender(server, clock))
    engine.tick(pdfs=False)
    assert not NoticeDocument.select().exists()
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    twin = tmp_path / "twin.sqlite3"
    shutil.copy(db, twin)  # the same database, whose PDFs the runner's pass makes
    token = _token(server.sent[0])
    found = links.find(token, int(clock.now().timestamp() * 1000))
    assert found.state == "ok" and found.link is not None
    opened = links.notice_of(found.link, token)  # what /n/<token> and /n/<token>/notice.pdf show
    assert opened is not None and token in opened.sms_text
    first = bytes(opened.pdf)
    assert hashlib.sha256(first).hexdigest() == opened.pdf_sha256
    assert PendingPdf.select().count() == WORKERS - 1  # that one is made, and only that one
    assert links.notice_of(found.link, token).id == opened.id  # opened again: the same stored notice
    assert engine.make_pdfs() == WORKERS - 1
    assert NoticeDocument.select().count() == WORKERS
    database.close()

    open_db(f"sqlite:///{twin}")
    cases._policies.clear()
    assert Engine(clock, sender(server, clock)).make_pdfs() == WORKERS
    made = NoticeDocument.get(NoticeDocument.doc_no == opened.doc_no)
    assert bytes(made.pdf) == first and made.pdf_sha256 == opened.pdf_sha256


def test_the_pdfs_drawn_by_several_processes_are_those_drawn_here(world, tmp_path, monkeypatch):
    clock, server, db = world
    Engine(clock, sender(server, clock)).tick(pdfs=False)
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    twin = tmp_path / "twin.sqlite3"
    shutil.copy(db, twin)
    monkeypatch.setattr(records, "POOL_FROM", 1)  # four are enough to go to the processes
    assert records.make_pdfs(workers=2) == WORKERS
    pooled = {d.doc_no: bytes(d.pdf) for d in NoticeDocument.select()}
    database.close()
    open_db(f"sqlite:///{twin}")
    assert records.make_pdfs(workers=1) == WORKERS
    assert {d.doc_no: bytes(d.pdf) for d in NoticeDocument.select()} == pooled and len(pooled) == WORKERS


def test_a_pass_out_of_time_leaves_the_rest_for_the_next_tick(world):
    clock, server, _db = world
    engine = Engine(clock, sender(server, clock))
    engine.tick(pdfs=False)
    assert records.make_pdfs(budget_s=0) == 0 and PendingPdf.select().count() == WORKERS  # none started
    assert engine.tick().pdfs == WORKERS and not PendingPdf.select().exists()  # the next tick's pass
    assert len(server.sent) == WORKERS


RUNNER = textwrap.dedent(
    """
    import sys
    from datetime import datetime

    from cloud.channels.dispatch import Dispatcher
    from cloud.channels.ratelimit import RateLimit
    from cloud.channels.sms_aliyun import AliyunSms, AliyunSmsSettings
    from cloud.escalation.engine import Engine
    from cloud.escalation.outbound import OutboundSender
    from cloud.store import open_db
    from bench.escalation_sends import KEY_ID, KEY_SECRET, NOTICES, TEMPLATES
    from tests.harness.clock import FrozenClock

    db, url, now = sys.argv[1:4]
    open_db(f"sqlite:///{db}")
    clock = FrozenClock(datetime.fromisoformat(now))
    settings = AliyunSmsSettings(KEY_ID, KEY_SECRET, "某某电子", TEMPLATES, endpoint=url + "/")
    sms = AliyunSms(settings, clock=clock, limit=RateLimit(per_s=1000, burst=100))
    report = Engine(clock, OutboundSender(Dispatcher([sms], clock=clock), NOTICES, clock, parallel=4)).tick(pdfs=False)
    print(f"sent {report.sent}", flush=True)
    sys.stdin.read()  # the PDF pass would come next: killed here
    """
)


def test_a_runner_killed_between_the_sends_and_the_pdfs_loses_nothing_and_sends_nothing_again(world):
    clock, server, db = world
    database.close()
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(db), server.url, clock.now().isoformat()],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert runner.stdout is not None
        assert runner.stdout.readline().strip() == f"sent {WORKERS}"
        runner.send_signal(signal.SIGKILL)
        assert runner.wait(timeout=30) == -signal.SIGKILL
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert len(server.sent) == WORKERS

    open_db(f"sqlite:///{db}")  # the runner started again
    cases._policies.clear()
    assert PendingPdf.select().count() == WORKERS and not NoticeDocument.select().exists()
    report = Engine(clock, sender(server, clock)).tick()
    assert report.sent == 0 and report.pdfs == WORKERS
    assert len(server.sent) == WORKERS and set(Counter(s["out_id"] for s in server.sent).values()) == {1}
    assert not PendingPdf.select().exists()
    for sms in server.sent:
        [doc] = [d for d in NoticeDocument.select() if sms["params"]["link"] in d.sms_text]
        assert doc.pdf_sha256 == hashlib.sha256(bytes(doc.pdf)).hexdigest()
    assert CaseStep.select().where((CaseStep.key == "L1") & (CaseStep.status == "sent")).count() == WORKERS


def test_a_send_the_provider_never_answered_is_not_sent_again_and_its_pdf_is_still_made(world):
    clock, server, _db = world
    server.inject(Fault.HANG)  # the first request: read, never answered
    engine = Engine(clock, sender(server, clock, timeout_s=0.5))
    report = engine.tick(pdfs=False)
    assert report.failed == 1 and report.sent == WORKERS - 1
    uncertain = CaseStep.get(CaseStep.status == "uncertain")
    assert CaseTask.select().where(CaseTask.kind == f"check_send:{uncertain.key}").count() == 1
    assert PendingPdf.select().count() == WORKERS  # its words were kept before it went: it may have gone out
    assert engine.make_pdfs() == WORKERS
    again = Engine(clock, sender(server, clock)).tick()
    assert again.sent == 0 and CaseStep.get_by_id(uncertain.id).status == "uncertain"
    assert len(server.requests) == WORKERS  # the hung one was never asked again
