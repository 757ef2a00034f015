"""The senders' writes on SQLite (``cloud.channels.writer.together``), on a real database file: each returns once
committed (another connection sees it), one that raises is undone alone and raises in its own thread, the writes
handed in while another thread holds the writer are committed together by one thread, and a write made inside a
caller's transaction stays part of it."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from cloud.channels import writer
from cloud.channels.contact_log import DispatchClaim
from cloud.store import database, open_db
from tests.harness.wait import wait_until


@pytest.fixture
def db(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "cloud.sqlite3"
    open_db(f"sqlite:///{path}")
    yield path
    database.close()


def _keys(path) -> set[str]:  # type: ignore[no-untyped-def]
    with sqlite3.connect(path) as con:  # another connection: sees only what was committed
        return {k for (k,) in con.execute("SELECT key FROM dispatch_claim")}


def _insert(key: str) -> tuple[int, str]:
    DispatchClaim.insert(key=key, in_flight_ms=None).execute()
    if key == "bad":
        raise ValueError("refused")
    return threading.get_ident(), key


def test_each_write_is_committed_when_it_returns_and_a_failing_one_is_undone_alone(db):
    def one(key: str) -> str:
        try:
            writer.together(lambda: _insert(key))
        except ValueError:
            assert key not in _keys(db)
            return "raised"
        finally:
            database.close()
        assert key in _keys(db)  # committed before together returned
        return "ok"

    keys = [f"k{n}" for n in range(12)] + ["bad"]
    with ThreadPoolExecutor(8) as pool:
        results = dict(zip(keys, pool.map(one, keys), strict=True))
    assert results.pop("bad") == "raised" and set(results.values()) == {"ok"}
    assert _keys(db) == set(keys) - {"bad"}


def test_writes_handed_in_while_the_writer_is_busy_share_one_commit(db):
    done: list[tuple[int, str]] = []

    def one(key: str) -> None:
        try:
            done.append(writer.together(lambda: _insert(key)))
        finally:
            database.close()

    with writer.one_writer():  # another write is being committed: the five wait
        threads = [threading.Thread(target=one, args=(f"w{n}",)) for n in range(5)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(writer._waiting) == 5, timeout=10, message="five writes handed in")
        assert _keys(db) == set()
    for thread in threads:
        thread.join(timeout=10)
    assert _keys(db) == {f"w{n}" for n in range(5)}
    assert len({ident for ident, _ in done}) == 1  # one thread ran the five, in its one transaction


def test_a_write_inside_the_callers_transaction_is_part_of_it(db):
    with pytest.raises(RuntimeError), database.atomic():
        writer.together(lambda: _insert("inner"))
        raise RuntimeError("the caller's transaction fails")
    assert _keys(db) == set()  # nothing of it was committed on its own
