"""ledger.verify.verify_parsed: the rest of checking a range parsed ahead, from its summary. Each check
it owns must refuse what it is there to refuse."""

from __future__ import annotations

import pytest

from ledger import GENESIS_PREV, ChainBroken, Forged, Malformed, SigningKey, make_record, merkle, note
from ledger.merkle import CompactRange
from ledger.record import b64
from ledger.verify import verify_parsed

LOG = "punchproof/p/a/1"
TERM = {"sn": "ZK1", "t": "2026-03-02T07:58:00", "tz": "Asia/Shanghai", "state": 0, "verify": 1}


@pytest.fixture
def key():
    return SigningKey.generate()


def chain(key, count):
    records, prev = [], GENESIS_PREV
    for seq in range(count):
        records.append(
            make_record(key=key, log=LOG, seq=seq, type="punch", prev=prev, t_wall_ms=seq, emp="1", term=TERM)
        )
        prev = records[-1].leaf
    return records


def signed(key, leaves, size=None):
    checkpoint = note.Checkpoint(LOG, size or len(leaves), merkle.root(leaves))
    return note.render(checkpoint, [note.sign(checkpoint, key)])


def check(key, records, first, *, text=None, first_prev=None, kids=None, leaves=None, by=None):
    part = records[first:]
    all_leaves = [r.leaf for r in records]
    tree = CompactRange()
    tree.extend(all_leaves[:first])
    return verify_parsed(
        LOG,
        first,
        text if text is not None else signed(key, all_leaves),
        leaves=leaves if leaves is not None else [r.leaf for r in part],
        first_prev=first_prev if first_prev is not None else b64(all_leaves[first - 1] if first else GENESIS_PREV),
        kids=kids if kids is not None else [key.kid] * len(part),
        key=(by or key).verify_key,
        prev=all_leaves[first - 1] if first else GENESIS_PREV,
        tree=tree,
    )


def test_a_range_that_continues_the_log_verifies_to_its_checkpoint(key):
    records = chain(key, 9)
    checkpoint, tree = check(key, records, 4)
    assert checkpoint.size == 9 and tree.size == 9 and tree.root() == merkle.root([r.leaf for r in records])


def test_a_first_record_that_does_not_link_to_the_head_is_refused(key):
    with pytest.raises(ChainBroken, match="seq 4: does not link"):
        check(key, chain(key, 9), 4, first_prev=b64(bytes(32)))


def test_a_record_naming_another_key_is_refused(key):
    with pytest.raises(Forged, match="seq 6: names key"):
        check(key, chain(key, 9), 4, kids=[key.kid] * 2 + ["someone-else"] * 3)


def test_leaves_that_do_not_hash_to_the_signed_root_are_refused(key):
    records = chain(key, 9)
    leaves = [r.leaf for r in records[4:]]
    leaves[2] = bytes(32)
    with pytest.raises(Forged, match="do not hash to the root"):
        check(key, records, 4, leaves=leaves)


def test_a_checkpoint_by_another_key_or_for_another_size_is_refused(key):
    records = chain(key, 9)
    with pytest.raises(Forged):
        check(key, records, 4, by=SigningKey.generate())
    with pytest.raises(Malformed, match="not for this range ending at seq 8"):
        check(key, records, 4, text=signed(key, [r.leaf for r in records[:8]]))
