"""The rows derived from the log's records (``Entry.derive``), written by one prepared statement per model: each value
as its field stores it, and a row the database refuses fails the whole append with peewee's error, leaving the log
as it was (real SQLite file, real signed log)."""

from __future__ import annotations

import peewee as pw
import pytest

from appliance.capture.punchlog import Entry, LogWriter
from appliance.store import LogRecord, Punch


def _punch(user: str, seq_note: list[int]) -> Entry:
    def derive(seq: int, now_ms: int):
        seq_note.append(seq)
        return Punch, {
            "seq": seq,
            "terminal": "gate-1",
            "terminal_sn": "SN1",
            "user_id": user,
            "device_time": "2026-03-02T08:00:00",
            "at_utc_ms": 1_772_409_600_000,
            "verify": True,  # a BooleanField-like value: stored through the field, as 1
            "state": 0,
            "workcode": 0,
            "received_ms": now_ms,
        }

    return Entry("seal", {"why": f"test {user}"}, derive)  # any record: the row is what is tested


def test_derived_rows_are_stored_as_peewee_would_and_a_refused_row_leaves_the_log_as_it_was(db, key, clock):
    writer = LogWriter(db, key, "punchproof/test/pi-01/1", clock, "boot-1")
    writer.start()
    seqs: list[int] = []
    writer.append([_punch("1001", seqs), _punch("1002", seqs)])
    rows = list(Punch.select().order_by(Punch.seq).tuples())
    assert [(r[0], r[3], r[6]) for r in rows] == [(seqs[0], "1001", 1), (seqs[1], "1002", 1)]
    head = writer.head_seq
    with pytest.raises(pw.IntegrityError):  # the same press again: the unique index refuses it
        writer.append([_punch("1001", seqs)])
    assert writer.head_seq == head and LogRecord.select().count() == head + 1, "nothing appended, no gap"
    assert writer.append([_punch("1003", seqs)]) == [head + 1]
