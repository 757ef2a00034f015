"""The notices' links (issue #20, item 2): a token is 128 random bits, only its SHA-256 is stored, the same
notice rendered again keeps its link, and a link expires or is revoked. On a real SQLite database; the kept
notices are ``records.keep``'s rows, as the sender writes them."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from cloud.notices import links, records
from cloud.notices.links import Links, NoticeLink
from cloud.notices.render import RenderedNotice
from cloud.store import database, open_db
from tests.harness.clock import FrozenClock

BASE = "https://hr.example.cn"


@pytest.fixture
def db(tmp_path):
    handle = open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    yield tmp_path / "cloud.sqlite3"
    handle.close()


def kept(case_id: int, doc_no: str, token: str, clock: FrozenClock) -> None:
    """The notice as the sender keeps it once rendered: its text and SMS carry the link."""
    url = links.url(BASE, token)
    text = f"关于限期返岗的通知（催告函）\n文号：{doc_no}\n\n请通过以下链接阅读本通知全文并确认收到：{url}\n"
    records.keep(
        f"case-{case_id}",
        RenderedNotice(
            "cuigao",
            "2",
            "关于限期返岗的通知（催告函）",
            doc_no,
            text,
            b"%PDF-" + url.encode(),
            f"【某某电子】张三：请查看通知全文：{url}",
            {"link": url},
            f"{doc_no}.pdf",
        ),
        clock,
    )


def test_tokens_are_random_128_bit_and_stored_only_as_their_hash(db):
    clock = FrozenClock(datetime(2025, 3, 6, 1, 0, tzinfo=UTC))
    made = {Links(clock).token(7, key, f"人通〔2025〕00007-{key}") for key in ("L1", "L3", "L3#2", "L4")}
    assert len(made) == 4 and all(links.TOKEN.match(t) for t in made)  # 22 URL-safe characters: 128 bits
    # nothing of the case's facts makes it: the same case and step in a second database get another token
    database.close()
    open_db(f"sqlite:///{db.parent}/other.sqlite3")
    assert Links(clock).token(7, "L1", "人通〔2025〕00007-L1") not in made
    database.close()
    open_db(f"sqlite:///{db}")
    stored = {row.token_sha256 for row in NoticeLink.select()}
    assert stored == {hashlib.sha256(t.encode()).hexdigest() for t in made}
    database.close()
    raw = b"".join(path.read_bytes() for path in db.parent.glob("cloud.sqlite3*"))
    assert raw and not any(t.encode() in raw for t in made)  # a copy of the database opens nothing
    open_db(f"sqlite:///{db}")


def test_a_notice_rendered_again_keeps_its_link_and_one_never_kept_gets_a_new_one(db):
    clock = FrozenClock(datetime(2025, 3, 6, 1, 0, tzinfo=UTC))
    issue = Links(clock, days=60)
    first = issue.token(7, "L3", "人通〔2025〕00007-L3")
    kept(7, "人通〔2025〕00007-L3", first, clock)
    clock.advance(hours=2)  # a retry round, or a second runner, renders the step again
    assert issue.token(7, "L3", "人通〔2025〕00007-L3") == first
    assert links.find(first, 0).state == "ok"

    lost = issue.token(7, "L4", "人通〔2025〕00007-L4")  # rendered, never kept (so never sent)
    again = issue.token(7, "L4", "人通〔2025〕00007-L4")
    assert again != lost
    assert links.find(lost, 0).state == "unknown" and links.find(again, 0).state == "ok"
    assert NoticeLink.select().where(NoticeLink.key == "L4").count() == 1


def test_a_link_expires_after_its_days_and_can_be_revoked(db):
    clock = FrozenClock(datetime(2025, 3, 6, 1, 0, tzinfo=UTC))
    token = Links(clock, days=60).token(7, "L3", "人通〔2025〕00007-L3")
    row = NoticeLink.get()
    assert row.expires_ms - row.issued_ms == 60 * links.DAY_MS
    assert links.find(token, row.expires_ms - 1).state == "ok"
    assert links.find(token, row.expires_ms).state == "expired"
    assert links.find("x" * 22, row.issued_ms).state == "unknown"
    assert links.find("../../etc/passwd", row.issued_ms).state == "unknown"
    assert links.revoke(7, "L3", row.issued_ms + 5) is True
    assert links.find(token, row.issued_ms + 6).state == "revoked"
    assert links.revoke(7, "L3", row.issued_ms + 7) is False
