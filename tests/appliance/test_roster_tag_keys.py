"""Every worker on the roster has an owner-tag key in the appliance's log from the day they are on it.

Without a key for a worker in a log, a verifier cannot rule out that the worker's records there were withheld,
so a bundle for someone who never punched at this appliance (absent from the day they were hired, or working at
the plant's other gate) could not carry the absence. The daemon gives the roster's workers their keys at start
and whenever head office's configuration changes the roster (``LogWriter.give_tag_keys``).
"""

from __future__ import annotations

import base64

from appliance.capture.punchlog import Entry, LogWriter
from appliance.store import LogRecord, open_db
from ledger import GENESIS_PREV, SignedRecord, SigningKey, parse
from ledger.messages import Batch
from ledger.record import owner_tag
from ledger.verify import verify_batch
from tests.harness.clock import FrozenClock

LOG = "punchproof/test/pi-01/1"
TERM = {"sn": "ZK1", "t": "2026-03-02T07:58:00", "tz": "Asia/Shanghai", "state": 0, "verify": 1}


def fields() -> list[dict]:
    return [parse(bytes(r.data)) for r in LogRecord.select().order_by(LogRecord.seq)]


def test_roster_workers_get_keys_once_and_their_punches_are_tagged_with_them(tmp_path):
    db = open_db(tmp_path / "appliance.sqlite3")
    key, clock = SigningKey.generate(), FrozenClock()
    writer = LogWriter(db, key, LOG, clock, boot_id="boot-1")
    writer.start()
    writer.append([Entry("punch", {"emp": "1001", "term": TERM})])  # 1001's first record gives its key
    assert writer.give_tag_keys(["1001", "1002", "1003", "1002", ""]) == 2  # 1002 and 1003 had none
    assert writer.give_tag_keys(["1001", "1002", "1003"]) == 0
    writer.append([Entry("punch", {"emp": "1003", "term": TERM})])
    got = fields()
    keys = {f["emp"]: base64.b64decode(f["tagkey"]) for f in got if "tagkey" in f}
    assert [(f["type"], f.get("emp")) for f in got] == [
        ("punch", "1001"),
        ("tagkey", "1002"),
        ("tagkey", "1003"),
        ("punch", "1003"),
    ]
    assert set(keys) == {"1001", "1002", "1003"} and "tagkey" not in got[3]  # 1003's punch uses the roster's key
    assert base64.b64decode(got[3]["tag"]) == owner_tag(keys["1003"], LOG, got[3]["seq"])
    restarted = LogWriter(db, key, LOG, clock, boot_id="boot-2")
    restarted.start()
    assert restarted.give_tag_keys(["1001", "1002", "1003"]) == 0, "the keys are remembered across a restart"
    db.close()


def test_a_key_asked_for_a_worker_who_has_one_by_then_states_the_same_key(tmp_path):
    """``give_tag_keys`` looks before it appends; the worker's first punch may land in between."""
    db = open_db(tmp_path / "appliance.sqlite3")
    key, clock = SigningKey.generate(), FrozenClock()
    writer = LogWriter(db, key, LOG, clock, boot_id="boot-1")
    writer.start()
    writer.append([Entry("punch", {"emp": "1001", "term": TERM})])
    writer.append([Entry("tagkey", {"emp": "1001"})])  # what give_tag_keys appends when it loses that race
    first, again = fields()
    assert again["type"] == "tagkey" and again["tagkey"] == first["tagkey"]
    rows = list(LogRecord.select().order_by(LogRecord.seq))
    batch = Batch(LOG, 0, tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows))
    assert len(verify_batch(batch, key=key.verify_key, prev=GENESIS_PREV)) == 2
    db.close()
