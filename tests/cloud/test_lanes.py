"""The live lane and terminals' availability, against real SQLite and PostgreSQL."""

import json

import pytest

from cloud.appliances import registry
from cloud.ingest import lanes as lanes_module
from cloud.ingest import quarantine
from cloud.ingest.lanes import LaneIngest
from cloud.ingest.quarantine import QuarantineOverflow
from cloud.ingest.verifier import BatchIngest
from cloud.store import DeviceStatus, LogHead, ProvisionalRecord, Quarantine, open_db
from ledger import SigningKey, make_record, topics
from ledger.messages import Batch
from tests.cloud.test_verifier import LOG, NAME, PLANT, TERM, TOPIC, history

LIVE = topics.live(PLANT, NAME)


@pytest.fixture
def key():
    return SigningKey.generate()


@pytest.fixture
def lanes(cloud_db_url, key, clock):
    db = open_db(cloud_db_url)
    registry.register(
        {"plant": PLANT, "appliance": NAME, "log": LOG, "public_key": key.verify_key.pem(), "kid": key.kid}, clock
    )
    yield LaneIngest(clock), BatchIngest(clock)
    db.close()


def test_live_records_are_kept_provisionally_until_the_chain_brings_them(lanes, key):
    live, chain = lanes
    records = history(key, 10)
    assert live.live(LIVE, Batch(LOG, 7, tuple(records[7:10])).encode()) == 3
    assert live.live(LIVE, Batch(LOG, 7, tuple(records[7:10])).encode()) == 0, "a repeat adds nothing"
    assert [(r.seq, r.employee) for r in ProvisionalRecord.select().order_by(ProvisionalRecord.seq)] == [
        (7, "107"),
        (8, "108"),
        (9, "109"),
    ]
    assert chain.handle(TOPIC, Batch(LOG, 0, tuple(records[:8])).encode()).ack.status == "ok"
    assert sorted(r.seq for r in ProvisionalRecord.select()) == [8, 9]
    chain.handle(TOPIC, Batch(LOG, 8, tuple(records[8:])).encode())
    assert ProvisionalRecord.select().count() == 0 and Quarantine.select().count() == 0
    assert live.live(LIVE, Batch(LOG, 9, (records[9],)).encode()) == 0, "already in the chain: not provisional"


def test_a_live_record_with_a_bad_signature_or_wrong_seq_is_quarantined(lanes, key):
    live, _ = lanes
    records = history(key, 3)
    stranger = history(SigningKey.generate(), 3)
    assert live.live(LIVE, Batch(LOG, 2, (stranger[2],)).encode()) == 0
    assert live.live(LIVE, Batch(LOG, 1, (records[2],)).encode()) == 0  # seq 2 presented as seq 1
    assert live.live(topics.live(PLANT, "pi-99"), Batch(LOG, 2, (records[2],)).encode()) == 0
    reasons = [q.reason for q in Quarantine.select().order_by(Quarantine.id)]
    assert "not registered for this appliance" in reasons[0]
    assert "names seq 2" in reasons[1]
    assert "unregistered appliance" in reasons[2]
    assert ProvisionalRecord.select().count() == 0


def test_a_live_record_the_chain_contradicts_is_an_alarm(lanes, key):
    live, chain = lanes
    records = history(key, 3)
    other = make_record(key=key, log=LOG, seq=2, type="punch", prev=records[1].leaf, t_wall_ms=2, emp="999", term=TERM)
    live.live(LIVE, Batch(LOG, 2, (other,)).encode())
    assert chain.handle(TOPIC, Batch(LOG, 0, tuple(records)).encode()).ack.status == "ok"
    (alarm,) = Quarantine.select()
    assert "seq 2: the live lane carried another record" in alarm.reason
    assert LogHead.get().seq == 2 and ProvisionalRecord.select().count() == 0


def test_terminal_availability_is_kept_per_terminal_and_bad_messages_are_quarantined(lanes):
    live, _ = lanes
    topic = topics.device(PLANT, NAME, "gate-1")
    live.device(topic, json.dumps({"terminal": "gate-1", "available": True}).encode())
    live.device(topic, json.dumps({"terminal": "gate-1", "available": False, "error": "超时 timeout"}).encode())
    (row,) = DeviceStatus.select()
    assert (row.terminal, row.available, row.error) == ("gate-1", False, "超时 timeout")
    live.device(topic, b"[1, 2]")
    live.device(topic, b"{" + b" " * 5000 + b"}")
    live.device(topics.device(PLANT, "pi-99", "gate-1"), b'{"available": true}')
    assert Quarantine.select().count() == 3 and DeviceStatus.select().count() == 1


WRONG_SHAPES = (
    b'{"available": true, "clock_offset_ms": "abc"}',
    b'{"available": true, "last_contact_ms": 99999999999999999999}',
    b'{"available": true, "last_contact_ms": -1}',
    b'{"available": true, "records_left": 1.5}',
    b'{"available": true, "error": {"a": 1}}',
    b'{"available": true, "x": ' + b"[" * 2000 + b"]" * 2000 + b"}",
)


def test_a_device_status_of_the_wrong_shape_is_quarantined_and_never_shown(lanes):
    """#24.2: a retained device/<t> payload with "clock_offset_ms":"abc" or an out-of-range last_contact_ms gave
    HTTP 500 on head office's front page; deep JSON gave a RecursionError that was neither handled nor quarantined."""
    live, _ = lanes
    topic = topics.device(PLANT, NAME, "gate-1")
    live.device(topic, b'{"available": true, "clock_offset_ms": 1200, "last_contact_ms": 1772409600000}')
    for n, body in enumerate(WRONG_SHAPES, start=1):
        live.device(topic, body)
        assert Quarantine.select().count() == n, body[:60]
    (row,) = DeviceStatus.select()
    assert json.loads(row.detail)["clock_offset_ms"] == 1200, "the last good status stands"
    live.device(topics.device(PLANT, NAME, "g" * 65), b'{"available": true}')
    assert Quarantine.select().count() == len(WRONG_SHAPES) + 1 and DeviceStatus.select().count() == 1


def test_one_source_of_junk_keeps_a_sample_and_counts_the_rest(lanes):
    """#24.1: every rejected payload was stored whole, with no cap (the database grew from 1 MB to 318 MB)."""
    live, _ = lanes
    topic = topics.device(PLANT, NAME, "gate-1")
    junk = b"{" + b"x" * 200_000
    for _ in range(quarantine.SAMPLE + 50):
        live.device(topic, junk)
    assert Quarantine.select().count() == quarantine.SAMPLE
    assert max(len(q.payload) for q in Quarantine.select()) <= quarantine.MAX_PAYLOAD
    (overflow,) = QuarantineOverflow.select()
    assert (overflow.source, overflow.count, overflow.bytes) == (topics.base(PLANT, NAME), 50, 50 * len(junk))
    live.device(topics.device(PLANT, "pi-99", "gate-1"), b"[]")  # another source has its own sample
    assert Quarantine.select().count() == quarantine.SAMPLE + 1


def test_an_appliance_has_at_most_so_many_terminals(lanes):
    """#24.1: device/<name> takes any name; head office keeps the status of 64 terminals an appliance."""
    live, _ = lanes
    for n in range(lanes_module.MAX_TERMINALS + 1):
        live.device(topics.device(PLANT, NAME, f"gate-{n}"), b'{"available": true}')
    assert DeviceStatus.select().count() == lanes_module.MAX_TERMINALS and Quarantine.select().count() == 1
    live.device(topics.device(PLANT, NAME, "gate-0"), b'{"available": false}')  # a known one still updates
    assert not DeviceStatus.get(DeviceStatus.terminal == "gate-0").available
