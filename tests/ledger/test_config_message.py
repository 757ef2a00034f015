import json
import os
import zlib

import pytest

from ledger import Forged, Malformed, SigningKey, canonical
from ledger.config_message import (
    COMPRESS_ABOVE,
    CONFIG_DOMAIN,
    MAX_CONFIG_BYTES,
    ZLIB_MAGIC,
    ConfigDocument,
    ConfigStatus,
    ConfigTooLarge,
    SignedConfig,
)
from ledger.messages import ACK_DOMAIN, MAX_MESSAGE_BYTES
from ledger.record import b64

SECTIONS = {
    "shifts": [{"id": "D", "name": "白班", "spans": "08:00-12:00,13:00-17:00"}],
    "rosters": [{"id": "std", "pattern": "D,D,D,D,D,-,-"}],
    "employees": [{"user_id": "1001", "name": "张三", "roster": "std"}],
    "leave": [{"id": "L1", "employee": "1001", "start_ms": 1_772_409_600_000, "end_ms": 1_772_496_000_000}],
    "policy": {"confirm_margin_min": 30},
    "devices": [{"terminal": "gate-1", "clock_alarm_s": 30, "clock_correct_above_s": None}],
}


def document(version=1, sections=None, plant="p1", appliance="pi-01"):
    return ConfigDocument.build(plant, appliance, version, 1_772_409_600_000, "hr", sections or SECTIONS)


def test_a_signed_document_round_trips_and_verifies():
    key = SigningKey.generate()
    signed = SignedConfig.sign(document(), key)
    payload = signed.encode()
    assert payload.startswith(b"{") and payload == canonical.encode(json.loads(payload))
    decoded = SignedConfig.decode(payload)
    assert decoded.verify(key.verify_key) == signed.document
    assert decoded.document.hash == signed.document.hash
    # defaults are filled in before signing, so what the appliance applies is exactly what was signed
    assert decoded.document.sections["shifts"][0]["late_grace_min"] == 5
    assert decoded.document.sections["employees"][0]["active"] is True


def test_a_tampered_document_does_not_verify():
    key = SigningKey.generate()
    message = json.loads(SignedConfig.sign(document(), key).encode())
    message["doc"]["sections"]["employees"][0]["roster"] = ""
    tampered = SignedConfig.decode(canonical.encode(message))
    with pytest.raises(Forged):
        tampered.verify(key.verify_key)


def test_another_key_does_not_verify():
    signed = SignedConfig.decode(SignedConfig.sign(document(), SigningKey.generate()).encode())
    with pytest.raises(Forged):
        signed.verify(SigningKey.generate().verify_key)


def test_an_acknowledgement_signature_cannot_pass_for_a_configuration():
    """Domain separation: the same key signs acks and configurations, over different prefixes."""
    key = SigningKey.generate()
    doc = document()
    assert CONFIG_DOMAIN != ACK_DOMAIN
    ack_sig = key.sign(ACK_DOMAIN + doc.canonical())  # as if an ack's fields were these bytes
    with pytest.raises(Forged):
        SignedConfig(doc, b64(ack_sig)).verify(key.verify_key)


def test_versions_differ_in_hash_and_older_is_visible():
    assert document(1).hash != document(2).hash
    assert document(2).version > document(1).version


@pytest.mark.parametrize(
    ("sections", "match"),
    [
        ({"robots": []}, "unknown section"),
        ({"employees": [{"name": "no id"}]}, "user_id: required"),
        ({"employees": [{"user_id": "1", "salary": 5}]}, "unknown field"),
        ({"employees": [{"user_id": 1001}]}, "expected str"),
        ({"employees": [{"user_id": "1"}, {"user_id": "1"}]}, "appears twice"),
        ({"leave": [{"id": "L", "employee": "1", "start_ms": 1.5, "end_ms": 2}]}, "expected int"),
        ({"leave": [{"id": "L", "employee": "1", "start_ms": True, "end_ms": 2}]}, "expected int"),
        ({"rosters": [{"id": "r", "pattern": "D", "kind": "sometimes"}]}, "not one of"),
        ({"devices": [{"terminal": "g", "clock_correct_above_s": "never"}]}, "integer or null"),
        ({"policy": []}, "must be an object"),
    ],
)
def test_bad_sections_are_refused(sections, match):
    with pytest.raises(Malformed, match=match):
        document(sections=sections)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"v":1,"kind":"config"}',
        b'{"v":1,"kind":"ack","doc":{},"sig":""}',
        b'{"v":1,"kind":"config","doc":{"v":1},"sig":""}',
        ZLIB_MAGIC + b"not zlib",
    ],
)
def test_malformed_payloads_are_refused(payload):
    with pytest.raises(Malformed):
        SignedConfig.decode(payload)


def test_a_document_without_defaults_filled_is_refused():
    key = SigningKey.generate()
    message = json.loads(SignedConfig.sign(document(), key).encode())
    del message["doc"]["sections"]["shifts"][0]["late_grace_min"]
    with pytest.raises(Malformed, match="defaults"):
        SignedConfig.decode(canonical.encode(message))


def test_oversized_payload_is_refused_before_parsing():
    with pytest.raises(Malformed, match="exceeds"):
        SignedConfig.decode(b"{" + b" " * MAX_MESSAGE_BYTES + b"}")


def test_a_zlib_bomb_is_refused():
    bomb = ZLIB_MAGIC + zlib.compress(b"{" + b" " * (MAX_CONFIG_BYTES + 10) + b"}", 9)
    assert len(bomb) < MAX_MESSAGE_BYTES
    with pytest.raises(Malformed, match="inflates beyond"):
        SignedConfig.decode(bomb)


def many_employees(count):
    return {
        "employees": [
            {"user_id": f"{10000 + i}", "name": f"员工{i}", "line": f"L{i % 12}", "roster": "std"} for i in range(count)
        ],
        "rosters": [{"id": "std", "pattern": "D,D,D,D,D,-,-"}],
        "shifts": [{"id": "D", "spans": "08:00-17:00"}],
    }


def test_a_large_document_is_compressed_and_round_trips():
    key = SigningKey.generate()
    signed = SignedConfig.sign(document(sections=many_employees(5000)), key)
    payload = signed.encode()
    assert len(signed.document.canonical()) > COMPRESS_ABOVE
    assert payload.startswith(ZLIB_MAGIC)
    assert len(payload) < len(signed.document.canonical()) / 4
    assert SignedConfig.decode(payload).verify(key.verify_key).hash == signed.document.hash


def test_a_document_too_large_even_compressed_is_refused_by_the_sender():
    noise = [{"user_id": os.urandom(24).hex(), "name": os.urandom(40).hex()} for _ in range(7000)]
    signed = SignedConfig.sign(document(sections={"employees": noise}), SigningKey.generate())
    with pytest.raises(ConfigTooLarge, match="message limit"):
        signed.encode()


def test_status_round_trip_and_bad_status():
    status = ConfigStatus(3, "ab" * 32, "rejected", 2, 1_772_409_600_000, "forged")
    assert ConfigStatus.decode(status.encode()) == status
    with pytest.raises(Malformed):
        ConfigStatus.decode(ConfigStatus(3, "", "maybe", 2, 0).encode())
    with pytest.raises(Malformed):
        ConfigStatus.decode(b'{"v":1,"kind":"config_status","version":1}')


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 30_000 + b"]" * 30_000,  # a RecursionError escaped the ingest worker's handling (#24.2)
        # past PostgreSQL's bigint: an error on storing it
        b'{"v":1,"kind":"config_status","version":9223372036854775808,"hash":"","status":"ok","applied":2,"at_ms":0}',
        b'{"v":1,"kind":"config_status","version":3,"hash":"","status":"ok","applied":-1,"at_ms":0}',
    ],
)
def test_a_status_too_deep_or_with_numbers_out_of_range_is_malformed(payload):
    with pytest.raises(Malformed):
        ConfigStatus.decode(payload)
