import pytest

from ledger import Malformed, SigningKey
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
