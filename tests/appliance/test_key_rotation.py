"""Rotating the appliance's signing key: recorded in the log, signed by both keys, safe across a crash."""

import pytest

from appliance.capture.punchlog import Entry, KeyMismatch, LogWriter
from appliance.identity import finish_rotation, load_or_create_key, load_pending_key, start_rotation
from appliance.store import Checkpoint, LogRecord
from ledger import GENESIS_PREV, SignedRecord, SigningKey, note
from ledger.merkle import CompactRange
from ledger.messages import Batch
from ledger.verify import verify_range

LOG = "punchproof/test/pi-01/1"


def whole_log() -> Batch:
    rows = LogRecord.select().order_by(LogRecord.seq)
    return Batch(LOG, 0, tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows))


def seal(writer: LogWriter, count: int = 1) -> None:
    writer.append([Entry("seal", {"why": "test"}) for _ in range(count)])


def test_a_rotation_is_a_record_signed_by_both_keys_and_checkpointed_by_the_old(db, clock):
    old, new = SigningKey.generate(), SigningKey.generate()
    writer = LogWriter(db, old, LOG, clock, boot_id="b")
    writer.start()
    seal(writer, 3)
    seq = writer.rotate(new, "scheduled")
    seal(writer, 2)
    assert (seq, writer.kid) == (3, new.kid)
    verified = verify_range(whole_log(), key=old.verify_key, prev=GENESIS_PREV, tree=CompactRange())
    assert [(s, k.kid) for s, k in verified.rotations] == [(3, new.kid)]
    assert [f["kid"] for f, _ in verified.records] == [old.kid] * 4 + [new.kid] * 2
    checkpoint = Checkpoint.get(Checkpoint.size == 4)  # right after the rotation, by the old key
    assert note.verify(checkpoint.note, old.verify_key).size == 4
    writer.checkpoint()
    last = Checkpoint.select().order_by(Checkpoint.size.desc()).first()
    assert note.verify(last.note, new.verify_key).size == 6


def test_a_crash_between_the_rotation_record_and_the_key_file_is_finished_at_restart(db, clock, tmp_path):
    path = tmp_path / "keys" / "log-signing.pem"
    old = load_or_create_key(path)
    new = start_rotation(path)
    writer = LogWriter(db, old, LOG, clock, boot_id="b")
    writer.start()
    seal(writer)
    writer.rotate(new, "rotate-key")  # ... and the power goes before the key file is replaced
    restarted = LogWriter(db, load_or_create_key(path), LOG, clock, boot_id="b2")
    restarted.start(load_pending_key(path))
    assert restarted.kid == new.kid
    finish_rotation(path)
    assert load_or_create_key(path).kid == new.kid and load_pending_key(path) is None
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    seal(restarted)
    verify_range(whole_log(), key=old.verify_key, prev=GENESIS_PREV, tree=CompactRange())


def test_a_crash_before_the_rotation_record_leaves_the_old_key_in_force(db, clock, tmp_path):
    path = tmp_path / "log-signing.pem"
    old = load_or_create_key(path)
    writer = LogWriter(db, old, LOG, clock, boot_id="b")
    writer.start()
    seal(writer)
    start_rotation(path)  # the power goes before the daemon records it
    restarted = LogWriter(db, old, LOG, clock, boot_id="b2")
    restarted.start(load_pending_key(path))
    assert restarted.kid == old.kid  # the daemon will record the rotation now
    with pytest.raises(FileExistsError, match="already pending"):
        start_rotation(path)


def test_a_key_file_that_is_not_the_logs_key_is_refused(db, clock):
    writer = LogWriter(db, SigningKey.generate(), LOG, clock, boot_id="b")
    writer.start()
    seal(writer)
    with pytest.raises(KeyMismatch, match="restore this appliance's own key file"):
        LogWriter(db, SigningKey.generate(), LOG, clock, boot_id="b2").start()


def test_a_rotation_must_be_the_last_entry_of_an_append(db, clock):
    writer = LogWriter(db, SigningKey.generate(), LOG, clock, boot_id="b")
    writer.start()
    with pytest.raises(ValueError, match="last entry"):
        writer.append([Entry("keyrot", {"reason": "x"}, rotate_to=SigningKey.generate()), Entry("seal", {})])
    assert LogRecord.select().count() == 0
