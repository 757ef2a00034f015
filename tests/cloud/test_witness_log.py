"""The cloud's own log of the checkpoints it cosigned, on real SQLite and PostgreSQL."""

import threading
from datetime import UTC, datetime

import pytest

from cloud.appliances import registry
from cloud.evidence.witness_log import WitnessLog, leaves
from cloud.ingest.verifier import BatchIngest
from cloud.store import CloudCheckpoint, WitnessCheckpoint, WitnessEntry, open_db
from ledger import SigningKey, canonical, leaf_hash, merkle, note, topics
from ledger.witnesslog import entry_bytes, heads_extension
from tests.harness.clock import FrozenClock
from tests.harness.logs import LogBuilder


@pytest.fixture
def cloud(cloud_db_url):
    clock = FrozenClock(datetime(2026, 3, 2, 0, 0, tzinfo=UTC))
    db = open_db(cloud_db_url)
    witness = SigningKey.generate()
    ingest = BatchIngest(clock, witness, "test-cloud/witness")
    logs = []
    for name in ("pi-01", "pi-02"):
        key = SigningKey.generate()
        origin = f"punchproof/p1/{name}/1"
        registry.register({"plant": "p1", "appliance": name, "log": origin, "public_key": key.verify_key.pem()}, clock)
        logs.append((name, LogBuilder(key, origin, clock)))

    def sync(minutes: int = 2) -> None:
        for name, log in logs:
            log.minutes(minutes)
            ack = ingest.handle(topics.batch("p1", name), log.next_batch().encode()).ack
            assert ack.status == "ok", ack.reason

    yield {"clock": clock, "witness": witness, "sync": sync}
    db.close()


def test_every_cosigned_checkpoint_enters_the_signed_witness_log_once(cloud):
    witness_log = WitnessLog(cloud["witness"], cloud["clock"])
    cloud["sync"]()
    assert witness_log.seal().added == 2
    assert witness_log.seal().added == 0  # sealing again adds nothing, signs nothing
    cloud["sync"]()
    sealed = witness_log.seal()
    assert (sealed.size, sealed.added) == (4, 2)
    latest = WitnessCheckpoint.get_by_id(4)
    checkpoint = note.verify(latest.note, cloud["witness"].verify_key)
    assert checkpoint.origin == "punchproof-cloud/checkpoints" and checkpoint.root == merkle.root(leaves(4))
    assert WitnessCheckpoint.select().count() == 2
    heads: dict[str, int] = {}  # each entry names the previous one of its log; the checkpoint commits the last ones
    for entry in WitnessEntry.select().order_by(WitnessEntry.seq):
        cosigned = CloudCheckpoint.get_by_id(entry.checkpoint_id)
        origin = cosigned.appliance.log_origin
        expected = entry_bytes(
            origin,
            cosigned.size,
            bytes(cosigned.root),
            cosigned.cosigned_at,
            cosigned.cosignature.strip(),
            heads.get(origin, -1),
        )
        heads[origin] = entry.seq
        assert bytes(entry.data) == expected and bytes(entry.leaf) == leaf_hash(expected)
        assert canonical.decode(expected)["cosig"].startswith("— test-cloud/witness ")
    assert sorted(heads.values()) == [2, 3] and checkpoint.extensions == (heads_extension(heads),)
    first = note.verify(WitnessCheckpoint.get_by_id(2).note, cloud["witness"].verify_key)
    assert first.extensions == (heads_extension({origin: seq - 2 for origin, seq in heads.items()}),)


def test_sealers_racing_each_other_append_each_checkpoint_once(cloud):
    cloud["sync"]()
    cloud["sync"]()
    barrier = threading.Barrier(4)
    results, errors = [], []

    def seal():
        try:
            barrier.wait(timeout=10)
            results.append(WitnessLog(cloud["witness"], cloud["clock"]).seal().added)
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=seal) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert sorted(results) == [0, 0, 0, 4]
    assert WitnessEntry.select().count() == 4 and WitnessCheckpoint.select().count() == 1
