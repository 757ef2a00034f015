"""Cloud ingest logic against real SQLite and PostgreSQL: verify, store once, quarantine the rest."""

import base64

import psycopg2
import pytest

from cloud.appliances import registry
from cloud.ingest.verifier import BatchIngest
from cloud.store import (
    ApplianceKey,
    CloudCheckpoint,
    LogHead,
    LogRecord,
    Punch,
    Quarantine,
    open_db,
    reconnecting,
)
from ledger import GENESIS_PREV, SignedRecord, SigningKey, make_record, merkle, note, topics
from ledger.messages import Ack, Batch

PLANT, NAME = "test-plant", "pi-01"
LOG = f"punchproof/{PLANT}/{NAME}/1"
TOPIC = topics.batch(PLANT, NAME)
TERM = {"sn": "ZK1", "t": "2026-03-02T07:58:00", "tz": "Asia/Shanghai", "state": 0, "verify": 1, "name": "gate-1"}


def history(key, count, emp_prefix="10"):
    records, prev = [], GENESIS_PREV
    for seq in range(count):
        record = make_record(
            key=key, log=LOG, seq=seq, type="punch", prev=prev, t_wall_ms=seq, emp=f"{emp_prefix}{seq}", term=TERM
        )
        records.append(record)
        prev = record.leaf
    return records


@pytest.fixture
def key():
    return SigningKey.generate()


@pytest.fixture
def ingest(cloud_db_url, key, clock):
    db = open_db(cloud_db_url)
    registry.register(
        {"plant": PLANT, "appliance": NAME, "log": LOG, "public_key": key.verify_key.pem(), "kid": key.kid}, clock
    )
    yield BatchIngest(clock)
    db.close()


def send_range(ingest, records, first, last) -> Ack:
    return ingest.handle(TOPIC, Batch(LOG, first, tuple(records[first : last + 1])).encode()).ack


def test_a_range_is_stored_and_acknowledged_with_the_head(ingest, key):
    records = history(key, 5)
    ack = send_range(ingest, records, 0, 4)
    assert (ack.status, ack.head_seq) == ("ok", 4)
    assert ack.head_hash == base64.b64encode(records[4].leaf).decode()
    assert [p.employee for p in Punch.select().order_by(Punch.seq)] == ["100", "101", "102", "103", "104"]
    stored = LogRecord.get(LogRecord.seq == 2)
    assert bytes(stored.data) == records[2].data and bytes(stored.sig) == records[2].sig


def test_duplicates_and_overlaps_are_stored_once(ingest, key):
    records = history(key, 6)
    send_range(ingest, records, 0, 3)
    assert send_range(ingest, records, 0, 3).status == "duplicate"
    assert send_range(ingest, records, 2, 5).status == "ok"  # overlapping resend after a lost ack
    assert LogRecord.select().count() == 6 and Punch.select().count() == 6
    assert LogHead.get().seq == 5


def test_a_gap_is_answered_with_where_to_resume(ingest, key):
    records = history(key, 6)
    send_range(ingest, records, 0, 1)
    ack = send_range(ingest, records, 4, 5)
    assert (ack.status, ack.head_seq) == ("gap", 1)
    assert LogRecord.select().count() == 2


def test_a_forged_range_is_quarantined_and_nothing_is_stored(ingest, key):
    records = history(key, 3)
    forged = SignedRecord(records[1].data.replace(b'"emp":"101"', b'"emp":"999"'), records[1].sig)
    ack = ingest.handle(TOPIC, Batch(LOG, 0, (records[0], forged, records[2])).encode()).ack
    assert ack.status == "rejected" and "seq 1" in ack.reason
    assert LogRecord.select().count() == 0 and LogHead.get().seq == -1
    assert Quarantine.select().count() == 1


def test_a_range_signed_by_another_key_is_rejected(ingest):
    ack = send_range(ingest, history(SigningKey.generate(), 2), 0, 1)
    assert ack.status == "rejected" and "not registered" in ack.reason


def test_a_revoked_key_is_rejected(ingest, key):
    ApplianceKey.update(revoked_ms=1).execute()
    ack = send_range(ingest, history(key, 2), 0, 1)
    assert ack.status == "rejected" and "revoked" in ack.reason


def rotated_history(old, new, *, rotate_at=3, count=6, sign_after=None):
    """Records 0..rotate_at-1 by ``old``, a keyrot to ``new`` at ``rotate_at``, then records by ``sign_after``."""
    records, prev = [], GENESIS_PREV
    for seq in range(count):
        extra = {"emp": f"10{seq}", "term": TERM}
        signer = old if seq <= rotate_at else (sign_after or new)
        if seq == rotate_at:
            extra = {"reason": "scheduled", "rotate_to": new}
        kind = "keyrot" if seq == rotate_at else "punch"
        record = make_record(key=signer, log=LOG, seq=seq, type=kind, prev=prev, t_wall_ms=seq, **extra)
        records.append(record)
        prev = record.leaf
    return records


@pytest.mark.parametrize("with_checkpoints", [False, True], ids=["per-record", "checkpointed"])
def test_a_key_rotation_hands_the_log_over_to_the_new_key(ingest, key, with_checkpoints):
    new = SigningKey.generate()
    records = rotated_history(key, new)
    if with_checkpoints:
        first = ingest.handle(TOPIC, checkpointed(key, records, 0, 3).encode()).ack
        second = ingest.handle(TOPIC, checkpointed(new, records, 4, 5).encode()).ack
    else:
        first, second = send_range(ingest, records, 0, 3), send_range(ingest, records, 4, 5)
    assert (first.status, second.status) == ("ok", "ok"), (first.reason, second.reason)
    keys = {k.kid: (k.valid_from_seq, k.valid_to_seq) for k in ApplianceKey.select()}
    assert keys == {key.kid: (0, 3), new.kid: (4, None)}
    assert LogHead.get().seq == 5


def test_a_record_signed_with_the_rotated_out_key_is_rejected(ingest, key):
    records = rotated_history(key, SigningKey.generate(), sign_after=key)
    assert send_range(ingest, records, 0, 3).status == "ok"
    ack = send_range(ingest, records, 4, 5)
    assert ack.status == "rejected" and "rotated out" in ack.reason
    assert LogHead.get().seq == 3 and Quarantine.select().count() == 1


def test_a_rotation_the_new_key_did_not_sign_is_rejected(ingest, key):
    new, impostor = SigningKey.generate(), SigningKey.generate()
    records = rotated_history(key, impostor)  # the proof is the impostor's
    fields = records[3].fields()
    fields["new_key"] = base64.b64encode(new.verify_key.raw()).decode()
    fields["new_kid"] = new.kid
    forged = make_record(key=key, **_rebuild(fields))
    ack = ingest.handle(TOPIC, Batch(LOG, 0, (*records[:3], forged)).encode()).ack
    assert ack.status == "rejected" and "key rotation is invalid" in ack.reason
    assert ApplianceKey.select().count() == 1 and LogHead.get().seq == -1


def _rebuild(fields):
    """make_record's arguments for a record with these fields (its salt kept), as a forger would."""
    body = {k: v for k, v in fields.items() if k not in ("v", "kid", "salt", "prev", "tag")}
    kept = {"salt": base64.b64decode(fields["salt"]), "prev": base64.b64decode(fields["prev"])}
    if "tag" in fields:  # a version 2 record's owner tag, kept too
        kept["tag"] = base64.b64decode(fields["tag"])
    return body | kept


def test_a_rotation_inside_a_checkpointed_range_is_rejected(ingest, key):
    new = SigningKey.generate()
    records = rotated_history(key, new)
    ack = ingest.handle(TOPIC, checkpointed(key, records, 0, 5).encode()).ack
    assert ack.status == "rejected" and "must end its checkpointed range" in ack.reason


def test_a_fork_is_detected_on_overlap(ingest, key):
    send_range(ingest, history(key, 3), 0, 2)
    other = history(key, 5, emp_prefix="77")  # another history of the same log, validly signed
    ack = send_range(ingest, other, 0, 4)
    assert ack.status == "rejected" and "differs from the history the cloud holds" in ack.reason
    assert LogHead.get().seq == 2 and Punch.select().count() == 3
    ack = send_range(ingest, other, 3, 4)  # the other history's continuation does not link either
    assert ack.status == "rejected" and "differs from the history the cloud holds" in ack.reason


def test_unknown_appliance_and_malformed_payloads_are_quarantined(ingest, key):
    unknown = ingest.handle(topics.batch(PLANT, "pi-99"), Batch(LOG, 0, tuple(history(key, 1))).encode())
    assert unknown.ack.status == "rejected" and "not registered" in unknown.ack.reason
    assert ingest.handle(TOPIC, b"\x00garbage").ack.status == "rejected"
    assert ingest.handle("not/ours", b"x") is None
    assert Quarantine.select().count() == 3


def test_a_batch_on_another_appliances_topic_is_rejected(ingest, key, clock):
    other_key = SigningKey.generate()
    registry.register(
        {
            "plant": PLANT,
            "appliance": "pi-02",
            "log": f"punchproof/{PLANT}/pi-02/1",
            "public_key": other_key.verify_key.pem(),
        },
        clock,
    )
    ack = ingest.handle(topics.batch(PLANT, "pi-02"), Batch(LOG, 0, tuple(history(key, 1))).encode()).ack
    assert ack.status == "rejected" and "on the topic of" in ack.reason


def test_registration_is_idempotent_and_refuses_a_second_key(ingest, key, clock):
    identity = {"plant": PLANT, "appliance": NAME, "log": LOG, "public_key": key.verify_key.pem()}
    registry.register(identity, clock)
    with pytest.raises(registry.RegistryError, match="another key"):
        registry.register({**identity, "public_key": SigningKey.generate().verify_key.pem()}, clock)


def test_ingest_survives_the_database_dropping_its_connection(postgres_server, key, clock):
    url = postgres_server.create_database("reconnect")
    db = open_db(url)
    registry.register({"plant": PLANT, "appliance": NAME, "log": LOG, "public_key": key.verify_key.pem()}, clock)
    ingest = BatchIngest(clock)
    records = history(key, 3)
    assert reconnecting(lambda: send_range(ingest, records, 0, 0)).status == "ok"
    admin = psycopg2.connect(host="127.0.0.1", port=postgres_server.port, user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:  # what a server restart or a failover does to the worker's connection
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'reconnect'")
    admin.close()
    assert reconnecting(lambda: send_range(ingest, records, 1, 1)).status == "ok"
    assert reconnecting(lambda: send_range(ingest, records, 2, 2)).status == "ok"
    assert LogHead.get().seq == 2
    db.close()


def checkpointed(key, records, first, last, *, root_of=None):
    """A batch of records[first..last] carrying the log's signed checkpoint of records[0..last]."""
    leaves = [r.leaf for r in (root_of or records)[: last + 1]]
    checkpoint = note.Checkpoint(LOG, last + 1, merkle.root(leaves))
    signed = note.render(checkpoint, [note.sign(checkpoint, key)])
    return Batch(LOG, first, tuple(records[first : last + 1]), signed)


@pytest.fixture
def witness():
    return SigningKey.generate()


@pytest.fixture
def witnessed(cloud_db_url, key, clock, witness):
    db = open_db(cloud_db_url)
    registry.register({"plant": PLANT, "appliance": NAME, "log": LOG, "public_key": key.verify_key.pem()}, clock)
    yield BatchIngest(clock, witness, "test-cloud/witness")
    db.close()


def test_a_checkpointed_range_is_verified_by_its_root_and_cosigned(witnessed, key, witness, clock):
    records = history(key, 300)
    first = witnessed.handle(TOPIC, checkpointed(key, records, 0, 255).encode()).ack
    second = witnessed.handle(TOPIC, checkpointed(key, records, 256, 299).encode()).ack
    for ack, size in ((first, 256), (second, 300)):
        assert ack.status == "ok" and ack.cosignature
        stored = CloudCheckpoint.get(CloudCheckpoint.size == size)
        cosigned = stored.note + ack.cosignature
        assert note.verify_cosignature(cosigned, witness.verify_key, "test-cloud/witness") == clock.now().timestamp()
    assert LogHead.get().seq == 299 and Punch.select().count() == 300


@pytest.mark.parametrize(("position", "caught_by"), [(2, "does not link"), (3, "root")])
def test_a_record_altered_under_a_checkpoint_is_caught(witnessed, key, position, caught_by):
    records = history(key, 4)
    altered = SignedRecord(records[position].data.replace(b'"emp":"10', b'"emp":"66'), records[position].sig)
    tampered = [*records[:position], altered, *records[position + 1 :]]
    ack = witnessed.handle(TOPIC, checkpointed(key, tampered, 0, 3, root_of=records).encode()).ack
    assert ack.status == "rejected" and caught_by in ack.reason
    assert LogRecord.select().count() == 0


def test_a_checkpoint_not_signed_by_the_appliance_is_rejected(witnessed, key):
    records = history(key, 4)
    forged = checkpointed(SigningKey.generate(), records, 0, 3)
    ack = witnessed.handle(TOPIC, forged.encode()).ack
    assert ack.status == "rejected" and "not signed by key" in ack.reason


def test_a_checkpoint_for_another_size_is_rejected(witnessed, key):
    records = history(key, 4)
    wrong = checkpointed(key, records, 0, 3)
    ack = witnessed.handle(TOPIC, Batch(LOG, 0, wrong.records[:3], wrong.checkpoint).encode()).ack
    assert ack.status == "rejected" and "not for this range" in ack.reason


def test_a_duplicate_gets_the_stored_cosignature_again(witnessed, key):
    records = history(key, 4)
    batch = checkpointed(key, records, 0, 3).encode()
    first = witnessed.handle(TOPIC, batch).ack
    again = witnessed.handle(TOPIC, batch).ack  # the first acknowledgement was lost
    assert again.status == "duplicate" and again.cosignature == first.cosignature


def test_day_facts_and_actions_are_filed_under_their_employee(ingest, key):
    """So that an evidence export discloses the employee's confirmed day results and the actions on them."""
    records, prev = [], GENESIS_PREV
    bodies = [
        ("dayfact", {"fact": {"emp": "1001", "date": "2026-03-02", "status": "missing"}}),
        ("action", {"act": "seen_on_line", "emp": "1002", "user": "manager"}),
        ("seal", {"why": "minute"}),
    ]
    for seq, (kind, body) in enumerate(bodies):
        record = make_record(key=key, log=LOG, seq=seq, type=kind, prev=prev, t_wall_ms=seq, **body)
        records.append(record)
        prev = record.leaf
    assert send_range(ingest, records, 0, 2).status == "ok"
    assert [r.employee for r in LogRecord.select().order_by(LogRecord.seq)] == ["1001", "1002", None]


def test_a_range_parsed_ahead_in_another_process_is_stored_the_same(ingest, key):
    """cloud.ingest.prepare parses batches in a pool ahead of the store; the result must not differ in anything."""
    from cloud.ingest.prepare import AheadParser

    records = history(key, 12)
    payloads = [checkpointed(key, records, 0, 5).encode(), checkpointed(key, records, 3, 11).encode()]
    pending = iter(payloads)
    parser = AheadParser(2).start()
    try:
        stream = parser.ordered(lambda _block: (TOPIC, p) if (p := next(pending, None)) else None)
        acks = [ingest.handle(topic, payload, prepared).ack for topic, payload, prepared in stream]
    finally:
        parser.stop()
    assert [a.status for a in acks] == ["ok", "ok"]  # the second overlaps the first by three records
    assert [bytes(r.data) for r in LogRecord.select().order_by(LogRecord.seq)] == [r.data for r in records]
    assert Punch.select().count() == 12


def test_a_forged_range_parsed_ahead_is_still_rejected(ingest, key):
    from cloud.ingest.prepare import prepare

    records = history(key, 4)
    forged = checkpointed(SigningKey.generate(), records, 0, 3).encode()  # parses fine, signed by a stranger
    prepared = prepare(forged)
    assert prepared is not None
    ack = ingest.handle(TOPIC, forged, prepared).ack
    assert ack.status == "rejected" and LogRecord.select().count() == 0


def test_a_parser_process_that_dies_mid_stream_costs_nothing(ingest, key, caplog):
    """The OOM killer takes a pool process: the batches in its window are parsed by the worker itself."""
    import os
    import signal as signals

    from cloud.ingest.prepare import AheadParser

    records = history(key, 40)
    payloads = [checkpointed(key, records, first, first + 3).encode() for first in range(0, 40, 4)]
    arriving = [payloads[0]]  # the rest arrive after the fault
    parser = AheadParser(2).start()
    acks = []
    try:
        stream = parser.ordered(lambda _block: (TOPIC, arriving.pop(0)) if arriving else None)
        for index, (topic, payload, prepared) in enumerate(stream):
            if index == 0:
                for pid in list(parser._pool._processes):  # noqa: SLF001 - the fault is a dead pool process
                    os.kill(pid, signals.SIGKILL)
                arriving.extend(payloads[1:])
            acks.append(ingest.handle(topic, payload, prepared).ack)
    finally:
        parser.stop()
    assert [a.status for a in acks] == ["ok"] * 10
    assert LogRecord.select().count() == 40
    assert caplog.text.count("a batch-parsing process died") == 1, "one restart, whatever the window held"
