import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import GENESIS_PREV, ChainBroken, Forged, Malformed, SignedRecord, SigningKey, make_record, parse
from ledger.messages import Batch
from ledger.verify import verify_batch

LOG = "punchproof/test-plant/pi-01/1"
TERM = {"sn": "ZK1", "t": "2026-03-02T07:58:00", "tz": "Asia/Shanghai", "state": 0, "verify": 1}


def fixed_key() -> SigningKey:
    return SigningKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def chain(key: SigningKey, count: int, log: str = LOG, version: int = 2) -> list[SignedRecord]:
    records, prev = [], GENESIS_PREV
    for seq in range(count):
        record = make_record(
            key=key,
            log=log,
            seq=seq,
            type="punch",
            prev=prev,
            t_wall_ms=1_772_409_480_000 + seq,
            salt=bytes(16),
            emp=f"10{seq:02d}",
            term=TERM,
            version=version,
            **({"tag": bytes(32)} if version == 2 else {}),
        )
        records.append(record)
        prev = record.leaf
    return records


def test_golden_vector_for_reimplementers():
    """docs/record-format.md quotes these bytes: a change here is a format change. Version 1 (a log's records
    before its switch to owner tags); version 2's vector is in test_owner_tags.py.

    The leaf hash, signature and key id were computed with the OpenSSL command line
    (``openssl dgst -sha256``, ``openssl pkeyutl -sign -rawin``), not with our code.
    """
    record = chain(fixed_key(), 1, version=1)[0]
    assert fixed_key().kid == "oFCDfYUHBYLM9zlLCYiEfMMSy4glm4lImfbyOc8XkaU="
    assert record.data == (
        b'{"emp":"1000","kid":"' + fixed_key().kid.encode() + b'","log":"punchproof/test-plant/pi-01/1",'
        b'"prev":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","salt":"AAAAAAAAAAAAAAAAAAAAAA==","seq":0,'
        b'"t_wall_ms":1772409480000,"term":{"sn":"ZK1","state":0,"t":"2026-03-02T07:58:00","tz":"Asia/Shanghai",'
        b'"verify":1},"type":"punch","v":1}'
    )
    assert base64.b64encode(record.leaf).decode() == "N9PCy63pke2iMSBhTU0Cs32AcqniGxP5jE3HfJy6uxw="
    assert record.sig.hex() == (
        "ad055f3f0c6b747f3ac85ebb3e9c13a508961eb4946c3e49386452c44e35a935"
        "eaed180d91c10ac43f3f3ed03e94d4d867d880607b2fb20fb640e67f18027a0a"
    )


def test_signature_verifies_and_an_edited_byte_does_not():
    key = SigningKey.generate()
    record = chain(key, 1)[0]
    record.verify(key.verify_key)
    edited = SignedRecord(record.data.replace(b'"emp":"1000"', b'"emp":"1001"'), record.sig)
    with pytest.raises(Forged):
        edited.verify(key.verify_key)
    with pytest.raises(Forged):
        record.verify(SigningKey.generate().verify_key)


def test_range_verifies_and_links_to_prev():
    key = SigningKey.generate()
    records = chain(key, 5)
    out = verify_batch(Batch(LOG, 0, tuple(records)), key=key.verify_key, prev=GENESIS_PREV)
    assert [f["seq"] for f, _ in out] == [0, 1, 2, 3, 4]
    verify_batch(Batch(LOG, 2, tuple(records[2:])), key=key.verify_key, prev=records[1].leaf)


@pytest.mark.parametrize("tamper", ["delete", "insert", "reorder", "wrong_prev", "wrong_first"])
def test_chain_tampering_is_detected(tamper):
    key = SigningKey.generate()
    records = chain(key, 5)
    first, prev = 0, GENESIS_PREV
    if tamper == "delete":
        del records[2]
    elif tamper == "insert":
        records.insert(2, chain(key, 3)[2])  # a validly signed record from another history
        records[2] = make_record(
            key=key, log=LOG, seq=2, type="punch", prev=records[1].leaf, t_wall_ms=1, emp="9999", term=TERM
        )
    elif tamper == "reorder":
        records[1], records[2] = records[2], records[1]
    elif tamper == "wrong_prev":
        prev = b"\x01" * 32
    else:
        first = 1
    with pytest.raises(ChainBroken):
        verify_batch(Batch(LOG, first, tuple(records)), key=key.verify_key, prev=prev)


def test_record_from_another_log_is_refused():
    key = SigningKey.generate()
    records = chain(key, 1, log="punchproof/other/pi-9/1")
    with pytest.raises(Malformed, match="belongs to log"):
        verify_batch(Batch(LOG, 0, tuple(records)), key=key.verify_key, prev=GENESIS_PREV)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "nonsense"},
        {"type": "punch", "emp": 1001, "term": TERM},
        {"type": "punch", "emp": "1001", "term": {**TERM, "t": "not a time"}},
        {"type": "punch", "emp": "1001", "term": {"sn": "ZK1"}},
    ],
)
def test_schema_violations_are_malformed(body):
    key = SigningKey.generate()
    with pytest.raises(Malformed):
        make_record(key=key, log=LOG, seq=0, prev=GENESIS_PREV, t_wall_ms=0, **body)


def test_parse_rejects_bad_salt_and_prev():
    key = SigningKey.generate()
    data = chain(key, 1)[0].data
    with pytest.raises(Malformed, match="salt"):
        parse(data.replace(b'"salt":"AAAAAAAAAAAAAAAAAAAAAA=="', b'"salt":"AAAA"'))


def test_key_round_trip_and_private_key_file_mode(tmp_path):
    key = SigningKey.generate()
    path = tmp_path / "keys" / "k.pem"
    key.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert SigningKey.load(path).kid == key.kid
    assert "PRIVATE" not in repr(key)
    with pytest.raises(FileExistsError):
        key.save(path)  # a key is never silently replaced
