"""The pages' pooled SQLite connections: reused, configured like any other, bounded, and fresh."""

from __future__ import annotations

import threading

import pytest
from playhouse.pool import MaxConnectionsExceeded

from appliance import store
from appliance.store import EvaluatorState, open_db


@pytest.fixture
def path(tmp_path):
    open_db(tmp_path / "a.sqlite3").close()  # the daemon creates and migrates; the pages only open
    return tmp_path / "a.sqlite3"


def test_a_pooled_connection_is_reused_and_keeps_the_pragmas(path):
    db = open_db(path, create=False, cache_kib=512, pool=2)
    db.connect()
    first = db.connection()
    assert db.execute_sql("PRAGMA cache_size").fetchone()[0] == -512
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == store.PRAGMAS["busy_timeout"]
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    db.connect()
    assert db.connection() is first, "handed back and taken again, not opened again"
    db.close()


def test_a_pooled_connection_sees_what_another_connection_committed(path):
    pages = open_db(path, create=False, pool=2)
    daemon = open_db(path)  # binds the models last: they write through the daemon's handle
    with daemon.connection_context():
        EvaluatorState.update(board_version=1).where(EvaluatorState.id == 1).execute()
    pages.connect()
    version = pages.execute_sql("SELECT board_version FROM evaluator_state").fetchone()[0]
    pages.close()
    with daemon.connection_context():
        EvaluatorState.update(board_version=2).execute()
    pages.connect()
    assert pages.execute_sql("SELECT board_version FROM evaluator_state").fetchone()[0] == 2 != version
    pages.close()


def test_the_pool_is_bounded_and_a_request_waits_for_a_connection(path, monkeypatch):
    monkeypatch.setattr(store, "POOL_WAIT_S", 0.5)
    db = open_db(path, create=False, pool=1)
    taken, release, done = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        db.connect()
        taken.set()
        release.wait(10)
        db.close()
        done.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(10)
    with pytest.raises(MaxConnectionsExceeded):
        db.connect()  # the only connection is held for longer than the wait
    release.set()
    assert done.wait(10)
    db.connect()  # handed back: this thread gets it
    db.close()
    holder.join(10)
