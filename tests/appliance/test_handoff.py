"""The evaluator's hand-off to the log writer (``appliance.attendance.handoff``), in one process on a real SQLite
file with a real signed log: what is queued twice, or again after it was signed, is signed once, and a changed
decision supersedes what the log held last, whatever the evaluator saw when it queued it."""

from __future__ import annotations

from appliance.attendance import handoff
from appliance.capture.punchlog import LogWriter
from appliance.clock import to_ms
from appliance.store import DayFactIndex, EvalHandoff, LogRecord
from ledger import parse


def test_a_fact_queued_again_before_or_after_it_was_signed_is_signed_once(db, key, clock):
    writer = LogWriter(db, key, "punchproof/test/pi-01/1", clock, "boot-1")
    writer.start()
    fact = {"key": "1001/2026-03-02/D", "emp": "1001", "date": "2026-03-02", "shift": "D", "status": "missing"}
    alert = {"date": "2026-03-02", "shift": "D", "shift_name": "白班", "line": "一线", "who": [["1001", "张三"]]}
    now = to_ms(clock.now())
    handoff.put(handoff.DAYFACT, [fact], now)
    handoff.put(handoff.DAYFACT, [fact], now)  # the evaluator's next pass, before the writer drained
    handoff.put(handoff.ALERT, [alert], now)
    assert EvalHandoff.select().count() == 2, "one row per key"
    first = handoff.drain(writer, now)
    assert len(first) == 2
    handoff.put(handoff.DAYFACT, [fact], now)  # killed before it learnt the first was signed: queued again
    handoff.put(handoff.ALERT, [alert], now)
    assert handoff.drain(writer, now) == [] and EvalHandoff.select().count() == 0, "the log states them already"
    changed = {**fact, "status": "on_leave", "supersedes": "what the evaluator saw"}
    handoff.put(handoff.DAYFACT, [changed], now)
    (seq,) = handoff.drain(writer, now)
    body = parse(bytes(LogRecord.get(LogRecord.seq == seq).data))["fact"]
    assert body["supersedes"] == DayFactIndex.get(DayFactIndex.seq == first[0]).fact_id, "what the log held last"
    assert [r.type for r in LogRecord.select().order_by(LogRecord.seq)] == ["dayfact", "alert", "dayfact"]
