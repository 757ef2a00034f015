"""The cloud's TSA client against a real OpenSSL TSA over HTTP, including its failures."""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.evidence.tsa import (
    Timestamp,
    TimestampClient,
    TimestampError,
    TsaConfigError,
    TsaHttpError,
    TsaRejected,
    TsaReplyInvalid,
    TsaUnreachable,
    timestamp_query,
)
from ledger.timestamp import verify_timestamp
from punchproof.broker import free_port
from tests.harness.tsa import OpenSslTsa, TsaFault

DIGEST = hashlib.sha256(b"cloud checkpoint log, size 42").digest()


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[OpenSslTsa]:
    with OpenSslTsa(tmp_path / "tsa") as server:
        yield server


def client_for(tsa: OpenSslTsa, *, timeout: float = 10.0) -> TimestampClient:
    return TimestampClient(tsa.url, tsa.ca_pem, timeout=timeout)


def test_a_stamp_is_verified_and_keeps_the_reply_for_the_offline_verifier(tsa):
    before = datetime.now(UTC) - timedelta(seconds=1)

    stamp = client_for(tsa).stamp(DIGEST)

    assert isinstance(stamp, Timestamp)
    assert stamp.message_digest == DIGEST
    assert stamp.gen_time.tzinfo is UTC
    assert before <= stamp.gen_time <= datetime.now(UTC) + timedelta(seconds=1)
    assert verify_timestamp(stamp.tsr, DIGEST, tsa.ca_pem) == stamp.gen_time
    assert stamp.tsr.endswith(stamp.token)  # the signed token is the reply's last element
    assert tsa.requests == 1


def test_a_tsa_that_embeds_its_chain_is_accepted_and_its_reply_kept_as_sent(tmp_path):
    with OpenSslTsa(tmp_path / "chained", embed_chain=True) as chained:
        stamp = client_for(chained).stamp(DIGEST)
    assert stamp.tsr.endswith(stamp.token)
    assert verify_timestamp(stamp.tsr, DIGEST, chained.ca_pem) == stamp.gen_time


def test_each_stamp_has_its_own_nonce_and_serial(tsa):
    client = client_for(tsa)
    first, second = client.stamp(DIGEST), client.stamp(DIGEST)

    assert first.serial_number != second.serial_number
    assert reply_nonce(first.tsr) != reply_nonce(second.tsr)


def reply_nonce(tsr: bytes) -> str:
    text = subprocess.run(
        ["openssl", "ts", "-reply", "-in", "/dev/stdin", "-text"], input=tsr, capture_output=True, check=True
    ).stdout.decode()
    return re.search(r"Nonce: (0x[0-9A-F]+)", text).group(1)


def test_the_query_is_what_openssl_reads_as_sha256_with_nonce_and_cert_request(tmp_path):
    nonce = 0x80_00_00_00_00_00_00_01  # top bit set: the DER INTEGER needs its leading zero byte
    query = tmp_path / "q.tsq"
    query.write_bytes(timestamp_query(DIGEST, nonce))

    text = subprocess.run(
        ["openssl", "ts", "-query", "-in", str(query), "-text"], capture_output=True, check=True, text=True
    ).stdout

    assert "Hash Algorithm: sha256" in text
    assert "Certificate required: yes" in text
    assert "Nonce: 0x8000000000000001" in text
    hexdump = "".join(re.findall(r"^\s+[0-9a-f]{4} - (.*?)\s{2,}", text, re.MULTILINE))
    assert bytes.fromhex(re.sub(r"[ -]", "", hexdump)) == DIGEST


def test_a_tsa_that_is_down_is_reported_as_unreachable(tsa):
    client = TimestampClient(f"http://127.0.0.1:{free_port()}/tsa", tsa.ca_pem)
    with pytest.raises(TsaUnreachable, match="unreachable.*check the TSA URL") as caught:
        client.stamp(DIGEST)
    assert caught.value.__cause__ is not None


def test_a_tsa_that_stopped_is_unreachable_and_works_again_once_back(tsa):
    client = client_for(tsa)
    tsa.stop()
    with pytest.raises(TsaUnreachable):
        client.stamp(DIGEST)
    tsa.start()
    client = client_for(tsa)  # a restarted harness makes a new CA, as a new TSA would
    assert client.stamp(DIGEST).message_digest == DIGEST


def test_a_tsa_that_never_answers_times_out(tsa):
    tsa.fault = TsaFault.HANG
    with pytest.raises(TsaUnreachable, match="did not answer within 0.3 s") as caught:
        client_for(tsa, timeout=0.3).stamp(DIGEST)
    assert isinstance(caught.value.__cause__, TimeoutError)


def test_http_500_is_an_http_error_with_its_status(tsa):
    tsa.fault = TsaFault.HTTP_500
    with pytest.raises(TsaHttpError, match="HTTP 500") as caught:
        client_for(tsa).stamp(DIGEST)
    assert caught.value.status == 500
    assert isinstance(caught.value, TimestampError)  # the one class a scheduler catches
    assert caught.value.__cause__ is not None


def test_garbage_is_an_invalid_reply(tsa):
    tsa.fault = TsaFault.GARBAGE
    with pytest.raises(TsaReplyInvalid, match="not a timestamp") as caught:
        client_for(tsa).stamp(DIGEST)
    assert caught.value.__cause__ is not None


def test_a_refusal_is_reported_with_the_tsa_reason(tsa):
    tsa.fault = TsaFault.REJECT
    with pytest.raises(TsaRejected, match="REJECTION.*digest algorithm is not supported"):
        client_for(tsa).stamp(DIGEST)


def test_a_genuine_reply_to_another_request_is_refused(tsa):
    tsa.fault = TsaFault.WRONG_NONCE
    with pytest.raises(TsaReplyInvalid, match="Nonce mismatch"):
        client_for(tsa).stamp(DIGEST)


def test_a_genuine_reply_for_another_digest_is_refused(tsa):
    tsa.fault = TsaFault.WRONG_DIGEST
    with pytest.raises(TsaReplyInvalid, match="Mismatch between messages"):
        client_for(tsa).stamp(DIGEST)


def test_a_reply_from_a_tsa_outside_the_trusted_roots_is_refused(tsa, tmp_path):
    with OpenSslTsa(tmp_path / "impostor", name="Impostor TSA") as impostor:
        client = TimestampClient(impostor.url, tsa.ca_pem)
        with pytest.raises(TsaReplyInvalid, match="update the configured TSA root"):
            client.stamp(DIGEST)


def test_secrets_in_the_url_never_reach_messages_or_logs(tsa, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TsaConfigError, match="HTTPBasicAuthHandler") as refused:
        TimestampClient(f"http://ops:s3cret@127.0.0.1:{tsa.port}/tsa", tsa.ca_pem)
    with pytest.raises(TsaUnreachable) as unreachable:
        TimestampClient(f"http://127.0.0.1:{free_port()}/tsa?key=k3y", tsa.ca_pem).stamp(DIGEST)
    TimestampClient(f"{tsa.url}?key=k3y", tsa.ca_pem).stamp(DIGEST)

    shown = str(refused.value) + str(unreachable.value) + caplog.text
    assert "timestamped" in caplog.text
    assert "127.0.0.1" in shown
    assert "s3cret" not in shown
    assert "k3y" not in shown


def test_an_opener_with_basic_auth_is_used_for_a_tsa_that_needs_an_account(tsa):
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, tsa.url, "ops", "s3cret")
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(passwords))
    tsa.required_auth = ("ops", "s3cret")

    with pytest.raises(TsaHttpError, match="HTTP 401"):
        client_for(tsa).stamp(DIGEST)
    assert TimestampClient(tsa.url, tsa.ca_pem, opener=opener).stamp(DIGEST).message_digest == DIGEST


def test_configuration_mistakes_are_caught_when_the_client_is_made(tsa):
    with pytest.raises(TsaConfigError, match="http"):
        TimestampClient("ftp://tsa.example.cn/", tsa.ca_pem)
    with pytest.raises(TsaConfigError, match="root certificate"):
        TimestampClient(tsa.url, b"-----BEGIN NONSENSE-----")
    with pytest.raises(ValueError, match="32-byte"):
        client_for(tsa).stamp(b"short")
    assert tsa.requests == 0


def test_constructors_do_no_io(tsa, tmp_path):
    OpenSslTsa(tmp_path / "never-started")
    TimestampClient(tsa.url, tsa.ca_pem)
    assert not (tmp_path / "never-started").exists()
    assert tsa.requests == 0
