"""An appliance log written before owner tags (version 1) is switched when the new version first opens it: a
``format`` record, a ``tagkey`` record per worker of its records, ``tagindex`` records tagging every earlier record
(ledger/FORMAT.md, "Switching an existing log"); new records are version 2 and a worker's keeps its key."""

from __future__ import annotations

import base64

from appliance.capture.punchlog import Entry, LogWriter
from appliance.store import LogRecord, open_db
from ledger import GENESIS_PREV, SignedRecord, SigningKey, parse
from ledger.messages import Batch
from ledger.record import TAG_SIZE, owner_tag
from ledger.verify import verify_batch
from tests.harness.clock import FrozenClock

LOG = "punchproof/test/pi-01/1"
TERM = {"sn": "ZK1", "t": "2026-03-02T07:58:00", "tz": "Asia/Shanghai", "state": 0, "verify": 1}


def test_a_version_1_log_is_switched_at_the_first_start_and_its_records_tagged(tmp_path):
    db = open_db(tmp_path / "appliance.sqlite3")
    key, clock = SigningKey.generate(), FrozenClock()
    old = LogWriter(db, key, LOG, clock, boot_id="boot-1")
    old.start()  # an empty log: nothing to switch
    old.append(  # what the software before owner tags wrote
        [Entry("seal", {}, version=1), Entry("punch", {"emp": "1001", "term": TERM}, version=1)]
        + [Entry("punch", {"emp": "1002", "term": TERM}, version=1)]
    )
    new = LogWriter(db, key, LOG, clock, boot_id="boot-2")
    new.start()
    new.append([Entry("punch", {"emp": "1001", "term": TERM}), Entry("punch", {"emp": "1003", "term": TERM})])
    rows = list(LogRecord.select().order_by(LogRecord.seq))
    fields = [parse(bytes(r.data)) for r in rows]
    assert [(f["type"], f["v"]) for f in fields] == [
        ("seal", 1),
        ("punch", 1),
        ("punch", 1),
        ("format", 1),
        ("tagkey", 2),
        ("tagkey", 2),
        ("tagindex", 2),
        ("punch", 2),
        ("punch", 2),
    ]
    keys = {f["emp"]: base64.b64decode(f["tagkey"]) for f in fields if "tagkey" in f}
    assert set(keys) == {"1001", "1002", "1003"} and "tagkey" not in fields[7]  # 1001 keeps the switch's key
    index = fields[6]
    tags = base64.b64decode(index["tags"])
    assert (index["from"], index["to"]) == (0, 4)  # up to and including the format record
    assert tags[TAG_SIZE : 2 * TAG_SIZE] == owner_tag(keys["1001"], LOG, 1)
    assert tags[2 * TAG_SIZE : 3 * TAG_SIZE] == owner_tag(keys["1002"], LOG, 2)
    assert base64.b64decode(fields[7]["tag"]) == owner_tag(keys["1001"], LOG, 7)
    assert base64.b64decode(fields[8]["tag"]) == owner_tag(keys["1003"], LOG, 8)
    batch = Batch(LOG, 0, tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows))
    assert len(verify_batch(batch, key=key.verify_key, prev=GENESIS_PREV)) == 9  # one chain across the switch
    again = LogWriter(db, key, LOG, clock, boot_id="boot-3")
    again.start()  # switched once only
    assert LogRecord.select().count() == 9
    db.close()
