import threading

import peewee as pw
import pytest

from appliance.capture.groupcommit import GroupCommitter
from appliance.capture.punchlog import Entry, LogWriter
from appliance.clock import SystemClock
from appliance.store import LogRecord, open_db
from ledger import SigningKey


@pytest.fixture
def writer(tmp_path):
    db = open_db(tmp_path / "a.sqlite3")
    w = LogWriter(db, SigningKey.generate(), "punchproof/p/pi/1", SystemClock(), "boot")
    w.start()
    yield w
    db.close()


def test_entries_from_many_threads_share_commits_and_each_gets_its_seq(writer):
    committer = GroupCommitter(writer, SystemClock(), window_s=0.05)
    committer.start()
    futures, lock = [], threading.Lock()

    def punch_many():
        for _ in range(50):
            future = committer.submit(Entry("seal", {"why": "test"}))
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=punch_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seqs = sorted(f.result(timeout=10) for f in futures)
    committer.stop()
    assert seqs == list(range(400))
    assert LogRecord.select().count() == 400
    assert committer.commits < 400, "entries arriving together share a transaction"


def test_a_failed_commit_fails_every_waiting_caller(writer, monkeypatch):
    committer = GroupCommitter(writer, SystemClock(), window_s=0.01)

    def disk_full(_entries, **_kwargs):
        raise pw.OperationalError("database or disk is full")

    monkeypatch.setattr(writer, "append", disk_full)
    committer.start()
    future = committer.submit(Entry("seal", {"why": "test"}))
    with pytest.raises(pw.OperationalError, match="disk is full"):
        future.result(timeout=10)
    committer.stop()


def test_stop_commits_what_is_queued(writer):
    committer = GroupCommitter(writer, SystemClock(), window_s=5)
    committer.start()
    futures = [committer.submit(Entry("seal", {"why": "test"})) for _ in range(3)]
    committer.stop()
    assert [f.result(timeout=1) for f in futures] == [0, 1, 2]
