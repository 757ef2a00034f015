"""Offline checks of stored RFC 3161 replies, on replies a real OpenSSL TSA signed.

The queries are made with ``openssl ts -query``, not with our client, so the verifier is tested
against tokens our own code had no hand in.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import rfc3161_client

from ledger import LedgerError
from ledger.timestamp import TimestampInvalid, manual_verify_command, parse_reply, token_of, verify_timestamp
from tests.harness.requires import need_tool
from tests.harness.tsa import OpenSslTsa, TsaFault, at_fixed_time

DIGEST = hashlib.sha256(b"punchlog checkpoint 1").digest()


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[OpenSslTsa]:
    with OpenSslTsa(tmp_path / "tsa") as server:
        yield server


@pytest.fixture
def other_tsa(tmp_path: Path) -> Iterator[OpenSslTsa]:
    with OpenSslTsa(tmp_path / "other-tsa", name="Someone Else's TSA") as server:
        yield server


def openssl_query(digest: bytes, *, algorithm: str = "sha256") -> bytes:
    result = subprocess.run(
        ["openssl", "ts", "-query", "-digest", digest.hex(), f"-{algorithm}", "-cert"], capture_output=True, check=True
    )
    return result.stdout


def stamp(tsa: OpenSslTsa, digest: bytes = DIGEST) -> bytes:
    return tsa.reply(openssl_query(digest))


def test_a_granted_reply_verifies_and_gives_its_time_in_utc(tsa):
    before = datetime.now(UTC).replace(microsecond=0)
    tsr = stamp(tsa)
    after = datetime.now(UTC)

    gen_time = verify_timestamp(tsr, DIGEST, tsa.ca_pem)

    assert gen_time.tzinfo is UTC
    assert before - timedelta(seconds=1) <= gen_time <= after + timedelta(seconds=1)


def test_a_reply_for_another_digest_is_rejected(tsa):
    tsr = stamp(tsa)
    with pytest.raises(TimestampInvalid, match="Mismatch between messages"):
        verify_timestamp(tsr, hashlib.sha256(b"punchlog checkpoint 2").digest(), tsa.ca_pem)


def test_a_reply_from_a_tsa_we_do_not_trust_is_rejected(tsa, other_tsa):
    tsr = stamp(other_tsa)
    with pytest.raises(TimestampInvalid, match="certificate"):
        verify_timestamp(tsr, DIGEST, tsa.ca_pem)
    assert verify_timestamp(tsr, DIGEST, tsa.ca_pem + other_tsa.ca_pem)  # trusted once its root is listed


def test_an_impostor_embedding_its_own_root_is_still_rejected(tsa, tmp_path):
    with OpenSslTsa(tmp_path / "impostor", name="Impostor", embed_chain=True) as impostor:
        tsr = stamp(impostor)
        assert len(parse_reply(tsr).signed_data.certificates) == 2  # its root travels inside the token
        with pytest.raises(TimestampInvalid, match="certificate"):
            verify_timestamp(tsr, DIGEST, tsa.ca_pem)


def test_an_altered_gen_time_breaks_the_signature(tsa):
    tsr = stamp(tsa)
    gen_time = re.search(rb"\x18\x0f\d{13}(\d)Z", tsr)  # GeneralizedTime inside the signed TSTInfo
    assert gen_time is not None
    second = b"1" if gen_time.group(1) == b"0" else b"0"  # a second off: the certificate is still valid then
    altered = tsr[: gen_time.start(1)] + second + tsr[gen_time.end(1) :]

    with pytest.raises(TimestampInvalid, match="digest failure|signature failure"):
        verify_timestamp(altered, DIGEST, tsa.ca_pem)


def test_a_tsa_certificate_expired_at_gen_time_is_rejected(tmp_path):
    with OpenSslTsa(tmp_path / "stale", cert_not_after=datetime.now(UTC) - timedelta(days=1)) as stale:
        tsr = stamp(stale)
        with pytest.raises(TimestampInvalid, match="expired"):
            verify_timestamp(tsr, DIGEST, stale.ca_pem)


def test_a_reply_embedding_the_chain_out_of_der_order_still_verifies_and_is_kept_as_sent(tmp_path):
    with OpenSslTsa(tmp_path / "chained", embed_chain=True) as chained:
        tsr = stamp(chained)
        with pytest.raises(ValueError, match="InvalidSetOrdering"):  # what rfc3161-client alone does with it
            rfc3161_client.decode_timestamp_response(tsr)

        assert verify_timestamp(tsr, DIGEST, chained.ca_pem)
        assert len(parse_reply(tsr).signed_data.certificates) == 2
        with pytest.raises(TimestampInvalid):
            verify_timestamp(tsr, hashlib.sha256(b"other").digest(), chained.ca_pem)
        ca = tmp_path / "ca.pem"
        ca.write_bytes(chained.ca_pem)
        (tmp_path / "r.tsr").write_bytes(tsr)
        line = manual_verify_command("r.tsr", DIGEST, "ca.pem", verify_timestamp(tsr, DIGEST, chained.ca_pem))
        assert subprocess.run(shlex.split(line), cwd=tmp_path, capture_output=True, check=False).returncode == 0


def test_the_token_is_cut_from_the_reply_byte_for_byte(tsa):
    tsr = stamp(tsa)
    assert token_of(tsr) == parse_reply(tsr).time_stamp_token()
    assert tsr.endswith(token_of(tsr))
    with pytest.raises(TimestampInvalid):
        token_of(b"\x30\x05\x30\x03\x02\x01\x02")  # a refusal: status only, no token


def test_a_token_stays_valid_after_its_tsa_certificate_expired(tmp_path):
    need_tool("faketime", "faketime")
    signed_at = datetime(2020, 12, 15, 12, 0, 0, tzinfo=UTC)
    old = OpenSslTsa(tmp_path / "2020", cert_not_after=datetime(2020, 12, 31, tzinfo=UTC), signing_time=signed_at)
    with old:
        tsr = stamp(old)
    (tmp_path / "old.tsr").write_bytes(tsr)
    (tmp_path / "old-ca.pem").write_bytes(old.ca_pem)

    assert verify_timestamp(tsr, DIGEST, old.ca_pem) == signed_at
    line = manual_verify_command("old.tsr", DIGEST, "old-ca.pem", signed_at)
    by_hand = subprocess.run(shlex.split(line), cwd=tmp_path, capture_output=True, text=True, check=False)
    assert by_hand.returncode == 0, by_hand.stderr
    without_attime = shlex.split(line)[:-2]
    naive = subprocess.run(without_attime, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert naive.returncode != 0
    assert "certificate has expired" in naive.stderr  # why the manual command carries -attime


def test_a_signing_time_holds_however_slowly_the_signer_starts():
    """The TSA stand-in's clock is stopped, not started, at ``signing_time``: on a loaded machine the
    expired-certificate test above once got a token signed at 12:00:01 for 12:00:00."""
    need_tool("faketime", "faketime")
    at = datetime(2020, 12, 15, 12, 0, 0, tzinfo=UTC)
    slow = at_fixed_time(at, ["sh", "-c", "sleep 1.2; date -u +%H:%M:%S"])  # a start 1.2 s slower than usual
    shown = subprocess.run(slow, capture_output=True, text=True, check=True, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"})
    assert shown.stdout.strip() == "12:00:00"


def test_a_refusal_is_not_a_timestamp(tsa):
    tsa.fault = TsaFault.REJECT
    tsr = stamp(tsa)
    with pytest.raises(TimestampInvalid, match="REJECTION"):
        verify_timestamp(tsr, DIGEST, tsa.ca_pem)


def test_garbage_and_bad_roots_are_ledger_errors(tsa):
    with pytest.raises(LedgerError, match="not an RFC 3161 TimeStampResp"):
        verify_timestamp(b"\x30\x03\x02\x01\x00garbage", DIGEST, tsa.ca_pem)
    with pytest.raises(LedgerError, match="PEM"):
        verify_timestamp(stamp(tsa), DIGEST, b"not a certificate")


def test_an_imprint_made_with_another_hash_is_rejected(tsa):
    tsr = tsa.reply(openssl_query(hashlib.sha512(b"checkpoint").digest(), algorithm="sha512"))
    with pytest.raises(TimestampInvalid, match="not SHA-256"):
        verify_timestamp(tsr, DIGEST, tsa.ca_pem)


def test_the_nonce_is_checked_when_the_caller_knows_it(tsa):
    tsr = stamp(tsa)
    nonce = int(re.search(r"Nonce: 0x([0-9A-F]+)", reply_text(tsr)).group(1), 16)

    assert verify_timestamp(tsr, DIGEST, tsa.ca_pem, nonce=nonce)
    with pytest.raises(TimestampInvalid, match="Nonce mismatch"):
        verify_timestamp(tsr, DIGEST, tsa.ca_pem, nonce=nonce + 1)


def reply_text(tsr: bytes) -> str:
    return subprocess.run(
        ["openssl", "ts", "-reply", "-in", "/dev/stdin", "-text"], input=tsr, capture_output=True, check=True
    ).stdout.decode()


def test_the_manual_openssl_command_verifies_the_reply_as_written(tsa, other_tsa, tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "checkpoints").mkdir(parents=True)
    tsr = stamp(tsa)
    (bundle / "checkpoints" / "cloud-7.tsr").write_bytes(tsr)
    (bundle / "tsa-ca.pem").write_bytes(tsa.ca_pem)
    (bundle / "other-ca.pem").write_bytes(other_tsa.ca_pem)
    gen_time = verify_timestamp(tsr, DIGEST, tsa.ca_pem)

    def run(digest: bytes, ca: str) -> subprocess.CompletedProcess[str]:
        line = manual_verify_command("checkpoints/cloud-7.tsr", digest, ca, gen_time)
        return subprocess.run(shlex.split(line), cwd=bundle, capture_output=True, text=True, check=False)

    good = run(DIGEST, "tsa-ca.pem")
    assert good.returncode == 0, good.stderr
    assert "Verification: OK" in good.stdout
    wrong_digest = run(hashlib.sha256(b"another checkpoint").digest(), "tsa-ca.pem")
    assert wrong_digest.returncode != 0
    assert "imprint mismatch" in wrong_digest.stderr
    wrong_root = run(DIGEST, "other-ca.pem")
    assert wrong_root.returncode != 0


def test_the_manual_command_checks_certificates_at_gen_time_not_now():
    line = manual_verify_command("a b.tsr", DIGEST, "ca.pem", datetime(2026, 3, 2, 8, 0, 1, 500_000, tzinfo=UTC))
    assert line == (f"openssl ts -verify -in 'a b.tsr' -digest {DIGEST.hex()} -CAfile ca.pem -attime {1772438401}")
