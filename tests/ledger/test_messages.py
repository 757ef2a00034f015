import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import Malformed, SignedRecord, SigningKey, canonical
from ledger.messages import MAX_MESSAGE_BYTES, Ack, Batch
from tests.ledger.test_record import LOG, chain


def test_batch_round_trip_keeps_bytes_exactly():
    records = tuple(chain(SigningKey.generate(), 3))
    decoded = Batch.decode(Batch(LOG, 0, records).encode())
    assert decoded == Batch(LOG, 0, records)
    assert decoded.last == 2


def test_oversized_payload_is_refused_before_parsing():
    with pytest.raises(Malformed, match="exceeds"):
        Batch.decode(b"{" + b" " * MAX_MESSAGE_BYTES + b"}")


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"v":1,"kind":"ack","log":"x"}',
        b'{"v":1,"kind":"batch","log":"x","first":0,"records":[]}',
        b'{"v":1,"kind":"batch","log":"x","first":0,"records":[["{}","c2ln"]]}',
    ],
)
def test_malformed_batches_are_refused(payload):
    with pytest.raises(Malformed):
        Batch.decode(payload)


def test_ack_round_trip_and_unknown_status():
    ack = Ack(LOG, "ok", 4, "aGFzaA==", 0, 4)
    assert Ack.decode(ack.encode()) == ack
    with pytest.raises(Malformed):
        Ack.decode(Ack(LOG, "maybe", 4, "", 0, 4).encode())


record_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(record_text, min_size=1, max_size=5),
    checkpoint=record_text,
    log=record_text,
    first=st.integers(0, 2**53 - 5),  # the last of up to 5 records is still a seq of the format
)
def test_a_batch_encodes_to_exactly_the_canonical_bytes(texts, checkpoint, log, first):
    """Batch.encode escapes records on the bytes; it must match the general canonical encoder byte for byte,
    quotes, backslashes, Chinese and control characters included (the cloud checks canonical form)."""
    records = tuple(
        SignedRecord(canonical.encode({"emp": text, "name": '大门 "A" \\ 1'}), bytes([n]) * 64)
        for n, text in enumerate(texts)
    )
    raw = tuple(SignedRecord(text.encode("utf-8"), bytes(64)) for text in texts)  # not JSON: control bytes too
    for batch in (Batch(log, first, records, checkpoint), Batch(log, first, raw, checkpoint)):
        general = {
            "v": 1,
            "kind": "batch",
            "log": batch.log,
            "first": batch.first,
            "records": [[r.data.decode("utf-8"), base64.b64encode(r.sig).decode()] for r in batch.records],
            "checkpoint": batch.checkpoint,
        }
        assert batch.encode() == canonical.encode(general)
        assert Batch.decode(batch.encode()) == batch


def test_a_batch_with_a_record_that_is_not_utf8_is_refused():
    with pytest.raises(Malformed, match="not UTF-8"):
        Batch(LOG, 0, (SignedRecord(b'{"x":"\xff"}', bytes(64)),)).encode()
