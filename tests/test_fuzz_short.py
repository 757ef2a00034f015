"""The short form of the abuse fuzz campaign (issue #24), in CI: bench/fuzz_ingest.py and bench/fuzz_web.py run in
process for a few thousand cases with fixed seeds, 0 crashes and 0 5xx; and each crash the long campaign found,
as its own test on the real objects."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from cloud.appliances import registry
from cloud.config import CloudSettings
from cloud.ingest.lanes import LaneIngest
from cloud.ingest.prepare import prepare
from cloud.ingest.verifier import BatchIngest
from cloud.plantconfig.config_push import ConfigApplied, record_status
from cloud.store import Appliance, DeviceStatus, Quarantine, open_db
from cloud.workers.ingest import IngestWorker
from ledger import GENESIS_PREV, Malformed, SignedRecord, SigningKey, canonical, make_record, topics
from ledger.config_message import ConfigStatus
from ledger.messages import Batch
from tests.test_web_security import PASSWORD, make_plant

BENCH = Path(__file__).resolve().parents[1] / "bench"
PLANT, NAME = "p1", "pi-01"
LOG = f"punchproof/{PLANT}/{NAME}/1"
TERM = {"sn": "ZK1", "t": "2026-03-02T07:58:00", "tz": "Asia/Shanghai", "state": 0, "verify": 1, "name": "gate-1"}


def bench(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ---- the fuzzers, short ---------------------------------------------------------------------------------


def test_hostile_messages_crash_no_ingest_handler_and_a_good_batch_is_stored_once():
    result = bench("fuzz_ingest").run(1200, seed=5, database_url=None, quiet=True)
    assert not result["crashes"], result["first_crash"]
    assert result["good"] == ("ok", "duplicate") and result["stored_once"], result
    assert result["quarantined"] > 200, "the cases reached the handlers' checks"


def test_hostile_requests_to_the_plant_pages_get_no_5xx():
    tally = bench("fuzz_web").run(450, seed=5, sites="plant", quiet=True)
    assert sum(tally.cases.values()) == 450
    assert not tally.fives and not tally.exceptions, tally.reproducers
    assert tally.statuses[200] > 100 and tally.statuses[400] > 10, "views were reached, and refused what was wrong"


# ---- what the campaign found ------------------------------------------------------------------------------


@pytest.fixture
def ingest(tmp_path, clock):
    db = open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    key = SigningKey.generate()
    registry.register({"plant": PLANT, "appliance": NAME, "log": LOG, "public_key": key.verify_key.pem()}, clock)
    yield BatchIngest(clock, SigningKey.generate()), key
    db.close()


@pytest.mark.parametrize("first", [2**53, 2**63 - 1, True])
def test_a_batch_whose_first_seq_is_past_the_record_format_is_rejected_with_a_signed_answer(ingest, first):
    """The worker signs its answer: a 'gap' for seq 2^63-1 could not be encoded (Malformed escaped the handler, no
    answer, nothing quarantined), and ``true`` passed as seq 1."""
    batch_ingest, key = ingest
    record = make_record(key=key, log=LOG, seq=0, type="punch", prev=GENESIS_PREV, t_wall_ms=0, emp="1", term=TERM)
    payload = Batch(LOG, 0, (record,)).encode().replace(b'"first":0', b'"first":' + str(first).lower().encode())
    with pytest.raises(Malformed):
        Batch.decode(payload)
    outcome = batch_ingest.handle(topics.batch(PLANT, NAME), payload, prepare(payload))
    assert outcome.ack.status == "rejected" and "first" in outcome.ack.reason
    outcome.ack.signed(SigningKey.generate()).encode()  # what the worker publishes
    assert Quarantine.select().count() == 1


def test_a_record_whose_type_is_a_list_is_quarantined_not_a_type_error(ingest):
    """record.parse compared an unhashable type with the known record types: a TypeError in the worker's parsing
    pool (``prepare``), which ended the worker's ingest thread."""
    batch_ingest, key = ingest
    record = make_record(key=key, log=LOG, seq=0, type="punch", prev=GENESIS_PREV, t_wall_ms=0, emp="1", term=TERM)
    payload = Batch(LOG, 0, (record,), "a checkpoint").encode().replace(b'\\"type\\":\\"punch\\"', b'\\"type\\":[1]')
    assert b"[1]" in payload
    assert prepare(payload) is None
    outcome = batch_ingest.handle(topics.batch(PLANT, NAME), payload, None)
    assert outcome.ack.status == "rejected" and Quarantine.select().count() == 1


@pytest.mark.parametrize(
    "change",
    [
        {"status": {"a": 1}},  # a TypeError (unhashable) escaped the handler
        {"status": ["ok"]},
        {"version": 2**40},  # fits the format, not PostgreSQL's integer column
        {"applied": 2**31},
        {"hash": "h" * 300},  # past a varchar(255)
    ],
)
def test_a_configuration_answer_outside_what_head_office_keeps_is_malformed(change):
    fields = {"v": 1, "kind": "config_status", "version": 1, "hash": "h" * 64, "status": "ok", "applied": 1}
    payload = repr(fields | {"at_ms": 1} | change).replace("'", '"').encode()
    with pytest.raises(Malformed):
        ConfigStatus.decode(payload)


def test_a_csrf_token_of_non_ascii_characters_is_refused_not_a_500(tmp_path):
    """hmac.compare_digest refuses str with non-ASCII characters: a TypeError, HTTP 500 on every form."""
    client = make_plant(tmp_path).test_client()
    page = client.get("/login").get_data(as_text=True)
    assert re.search(r'name="csrf" value="([^"]+)"', page)
    for token in ("🙂", "王" * 43, "é"):
        response = client.post("/login", data={"csrf": token, "username": "boss", "password": "x"})
        assert response.status_code == 400, token


@pytest.mark.parametrize(
    "path",
    [
        "/?date=0001-01-01",
        "/person/1001?date=0001-01-01",
        "/person/1001?date=9999-12-31",
        "/export?period=month&date=9999-12-31&format=csv",
    ],
)
def test_a_day_outside_the_calendar_the_pages_show_is_today_not_a_500(tmp_path, path):
    """The previous day of 0001-01-01 (a link on the board and a person's day), or a week or month past
    9999-12-31, is outside Python's dates: an OverflowError, HTTP 500."""
    client = make_plant(tmp_path).test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"csrf": token, "username": "boss", "password": PASSWORD}).status_code == 302
    assert client.get(path).status_code == 200


def test_a_long_topic_or_a_nul_character_is_quarantined_or_kept_on_postgresql_too(cloud_db_url, clock):
    """PostgreSQL refuses a NUL in text and a topic past varchar(255): the insert failed, and the message (a terminal
    name of 300 characters, a status or an error text holding a NUL) escaped the ingest worker's handling."""
    db = open_db(cloud_db_url)
    try:
        key = SigningKey.generate()
        registry.register({"plant": PLANT, "appliance": NAME, "log": LOG, "public_key": key.verify_key.pem()}, clock)
        lanes = LaneIngest(clock)
        lanes.device(topics.device(PLANT, NAME, "t" * 300), b'{"available": true}')
        lanes.device(topics.device(PLANT, NAME, "gate-1"), b'{"available": false, "error": "a\\u0000b"}')
        BatchIngest(clock).handle(topics.batch(PLANT, "x" * 300), b"junk")
        answer = ConfigStatus(1, "ab12", "rejected", 0, 1, "bad\x00").encode()
        assert record_status(topics.config_applied(PLANT, NAME), answer, clock) is None
        IngestWorker(CloudSettings(database_url=cloud_db_url), clock=clock)._status(topics.status(PLANT, NAME), b"on\0")
        assert [len(q.topic) for q in Quarantine.select().order_by(Quarantine.id)] == [255, 255]
        assert DeviceStatus.get().error == "a\ufffdb" and Appliance.get().status == "on\ufffd"
        assert ConfigApplied.get().error == "bad\ufffd"
    finally:
        db.close()


def test_a_record_whose_key_id_holds_a_nul_is_quarantined_on_postgresql_too(cloud_db_url, clock):
    """The key id was looked up as it came: PostgreSQL refuses a NUL in a query, and the live-lane or batch message
    escaped the ingest worker's handling instead of being quarantined."""
    db = open_db(cloud_db_url)
    try:
        key = SigningKey.generate()
        registry.register({"plant": PLANT, "appliance": NAME, "log": LOG, "public_key": key.verify_key.pem()}, clock)
        record = make_record(key=key, log=LOG, seq=0, type="punch", prev=GENESIS_PREV, t_wall_ms=0, emp="1", term=TERM)
        fields = record.fields() | {"kid": "k\x00"}
        payload = Batch(LOG, 0, (SignedRecord(canonical.encode(fields), record.sig),)).encode()
        assert LaneIngest(clock).live(topics.live(PLANT, NAME), payload) == 0
        assert BatchIngest(clock).handle(topics.batch(PLANT, NAME), payload).ack.status == "rejected"
        assert [q.reason.endswith("is not one") for q in Quarantine.select().order_by(Quarantine.id)] == [True, True]
    finally:
        db.close()
