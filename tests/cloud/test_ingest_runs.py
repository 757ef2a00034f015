"""A backlog's batches parsed ahead into compact summaries and stored in runs (one transaction each),
against real SQLite and PostgreSQL: the same rows as one by one, and a bad batch in a run costs only itself."""

from __future__ import annotations

import peewee as pw

from cloud.ingest.prepare import AheadParser, prepare
from cloud.store import CloudCheckpoint, LogHead, LogRecord, Punch, Quarantine, database, write_transaction
from ledger import SigningKey, make_record
from ledger.record import GENESIS_PREV
from tests.cloud.test_verifier import LOG, TERM, TOPIC, checkpointed, history, ingest, key  # noqa: F401 - fixtures


def stored() -> list[list[tuple]]:
    """Every log record and punch row, without its id and time of receipt."""
    tables = []
    for model in (LogRecord, Punch):
        columns = [f for f in model._meta.sorted_fields if f.name not in {"id", "received_ms"}]
        rows = model.select(*columns).order_by(model.seq).tuples()
        tables.append([tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows])
    return tables


def test_a_range_parsed_ahead_stores_exactly_the_rows_of_the_whole_check(ingest, key):  # noqa: F811
    records = history(key, 20)
    payloads = [checkpointed(key, records, first, first + 4).encode() for first in range(0, 20, 5)]
    copy = isinstance(database.obj, pw.PostgresqlDatabase)  # as the ingest worker asks its parsers
    for payload in payloads:
        prepared = prepare(payload, copy=copy)
        assert prepared is not None and isinstance(prepared.records, str) == copy
        assert ingest.handle(TOPIC, payload, prepared).ack.status == "ok"
    ahead = stored()
    assert len(ahead[0]) == len(ahead[1]) == 20
    for model in (Punch, LogRecord, CloudCheckpoint):  # the same batches again, checked whole in the worker
        model.delete().execute()
    LogHead.update(seq=-1, leaf=None, compact="[]").execute()
    for payload in payloads:
        assert ingest.handle(TOPIC, payload).ack.status == "ok"
    assert stored() == ahead


def test_a_range_holding_a_key_rotation_is_not_summarised(key):  # noqa: F811
    new = SigningKey.generate()
    record = make_record(key=key, log=LOG, seq=0, type="keyrot", prev=GENESIS_PREV, t_wall_ms=0, rotate_to=new)
    assert prepare(checkpointed(key, [record], 0, 0).encode()) is None  # the worker checks it whole


def test_a_summary_that_does_not_continue_the_stored_log_falls_back_to_the_whole_check(ingest, key):  # noqa: F811
    records = history(key, 10)
    assert ingest.handle(TOPIC, checkpointed(key, records, 0, 5).encode()).ack.status == "ok"
    overlapping = checkpointed(key, records, 3, 9).encode()
    ack = ingest.handle(TOPIC, overlapping, prepare(overlapping)).ack
    assert (ack.status, ack.head_seq) == ("ok", 9)
    duplicate = checkpointed(key, records, 0, 5).encode()
    assert ingest.handle(TOPIC, duplicate, prepare(duplicate)).ack.status == "duplicate"
    assert LogRecord.select().count() == 10 and Punch.select().count() == 10


def test_a_summary_naming_a_stranger_s_key_midway_is_rejected_and_quarantined(ingest, key):  # noqa: F811
    stranger, records, prev = SigningKey.generate(), [], GENESIS_PREV
    for seq in range(4):  # a linked chain whose last two records name another key; our key signs the checkpoint
        signer = key if seq < 2 else stranger
        record = make_record(key=signer, log=LOG, seq=seq, type="punch", prev=prev, t_wall_ms=seq, emp="1", term=TERM)
        records.append(record)
        prev = record.leaf
    payload = checkpointed(key, records, 0, 3).encode()
    prepared = prepare(payload)
    assert prepared is not None and prepared.kids == [key.kid, key.kid, stranger.kid, stranger.kid]
    ack = ingest.handle(TOPIC, payload, prepared).ack
    assert ack.status == "rejected" and f"seq 2: names key {stranger.kid}" in ack.reason
    assert LogRecord.select().count() == 0 and Quarantine.select().count() == 1


def test_a_run_stored_in_one_transaction_keeps_the_good_batches_around_a_forged_one(ingest, key):  # noqa: F811
    records = history(key, 12)
    good = [checkpointed(key, records, 0, 3).encode(), checkpointed(key, records, 4, 7).encode()]
    forged = checkpointed(SigningKey.generate(), records, 8, 11).encode()
    run = [(TOPIC, p, prepare(p)) for p in (*good, forged)]
    with write_transaction():  # what the ingest worker does with a run
        acks = [ingest.handle(*item).ack for item in run]
    assert [a.status for a in acks] == ["ok", "ok", "rejected"]
    assert LogRecord.select().count() == 8 and LogHead.get().seq == 7
    assert Quarantine.select().count() == 1


def test_runs_group_parsed_batches_and_leave_other_messages_alone(key):  # noqa: F811
    records = history(key, 16)
    batches = [(TOPIC, checkpointed(key, records, f, f + 3).encode()) for f in range(0, 16, 4)]
    status = (TOPIC.replace("/up/batch", "/status"), b"online")
    arriving = [batches[0], status, *batches[1:]]
    parser = AheadParser(2).start()
    try:
        # all queued before the first is taken; every batch is parsed before a run is cut
        runs = list(parser.runs(lambda _block: arriving.pop(0) if arriving else None, limit=2))
    finally:
        parser.stop()
    shapes = [[topic.rsplit("/", 1)[-1] for topic, _p, _r in run] for run in runs]
    assert [m for run in shapes for m in run] == ["batch", "status", "batch", "batch", "batch"]  # order kept
    assert ["status"] in shapes  # never in a run with batches
    assert all(len(run) <= 2 for run in shapes)


def test_bulk_insert_keeps_every_byte_and_awkward_text(ingest):  # noqa: F811 - on SQLite and PostgreSQL (COPY)
    from cloud import rows
    from cloud.store import Appliance, bulk_insert

    appliance = Appliance.get()
    awkward = ["tab\there", "new\nline", "back\\slash \\N", "carriage\rreturn", '大门 "1"', ""]
    data = bytes(range(256))
    records = [(seq, "punch", data, bytes(64), bytes(32), seq, text) for seq, text in enumerate(awkward)]
    records.append((len(awkward), "boot", b"\\x00", bytes(64), bytes(32), 0, None))
    bulk_insert(LogRecord, rows.LOG_COLUMNS, records, {"appliance_id": appliance.id, "received_ms": 7})
    back = LogRecord.select().order_by(LogRecord.seq)
    assert [r.employee for r in back] == [*awkward, None]
    assert [bytes(r.data) for r in back] == [data] * len(awkward) + [b"\\x00"]
    assert {(r.appliance_id, r.received_ms) for r in back} == {(appliance.id, 7)}
