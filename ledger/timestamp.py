"""RFC 3161 timestamps on the cloud's checkpoint log, checked offline.

A TSA's signature over a digest proves the digest existed at the token's ``genTime``: the third
time witness, after the device clock and the cloud's cosignature, and the one courts know.

What is stored: the TSA's whole reply, the DER ``TimeStampResp`` (a ``.tsr`` file), exactly as the
TSA sent it. That is what ``openssl ts -reply -out`` writes and what ``openssl ts -verify -in``
and ``rfc3161_client.decode_timestamp_response`` read, so an arbitrator needs no conversion step.
The signed part is the ``TimeStampToken`` inside; the wrapper around it only says "granted".

The stamped message imprint is a SHA-256 digest chosen by the caller (e.g. the hash of a
checkpoint note); it is compared byte for byte, so the same 32 bytes must be given to verify.
Certificates are checked at ``genTime``, not now, so tokens stay verifiable after the TSA's
certificate expires; that is also why the manual command carries ``-attime``.
"""

from __future__ import annotations

import contextlib
import shlex
from datetime import UTC, datetime

import rfc3161_client
from cryptography import x509

from ledger.errors import LedgerError

SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
DIGEST_SIZE = 32


class TimestampInvalid(LedgerError):
    """A timestamp does not prove that this digest existed at its time, under the trusted TSA roots."""


def load_roots(roots_pem: bytes) -> list[x509.Certificate]:
    """The trusted TSA root certificates, from PEM (one or more)."""
    try:
        roots = x509.load_pem_x509_certificates(roots_pem)
    except ValueError as err:
        raise TimestampInvalid(f"the TSA root certificates do not parse as PEM: {err}") from err
    if not roots:
        raise TimestampInvalid("no TSA root certificate given: a timestamp can only be checked against a trusted root")
    return roots


def parse_reply(tsr: bytes) -> rfc3161_client.TimeStampResponse:
    """Decode a DER ``TimeStampResp``; says so plainly when the bytes are not one.

    rfc3161-client refuses a token whose embedded certificates are not in DER ``SET OF`` order, as
    OpenSSL writes them when a TSA embeds its chain. That SET is outside the signature, so it is
    parsed here in sorted order; the stored bytes stay exactly as the TSA sent them.
    """
    try:
        return rfc3161_client.decode_timestamp_response(tsr)
    except ValueError as err:
        if "InvalidSetOrdering" in str(err) and (in_order := _certificates_in_der_order(tsr)) != tsr:
            with contextlib.suppress(ValueError):  # if it still fails, the first error is the one to show
                return rfc3161_client.decode_timestamp_response(in_order)
        raise TimestampInvalid(f"not an RFC 3161 TimeStampResp: {err}") from err


def token_of(tsr: bytes) -> bytes:
    """The ``TimeStampToken`` (CMS ``ContentInfo``) inside a ``TimeStampResp``, byte for byte."""
    try:
        ((_tag, _begin, start, end),) = _elements(tsr, 0, len(tsr))  # TimeStampResp
        _status, (_tag, begin, _start, end) = _elements(tsr, start, end)  # PKIStatusInfo, TimeStampToken
    except ValueError as err:
        raise TimestampInvalid(f"not a TimeStampResp holding a token: {err}") from err
    return tsr[begin:end]


def _certificates_in_der_order(tsr: bytes) -> bytes:
    """The reply with SignedData's ``certificates [0]`` sorted as DER requires; same length, same signature."""
    try:
        ((_tag, _begin, start, end),) = _elements(tsr, 0, len(tsr))  # TimeStampResp
        _status, (_tag, _begin, start, end) = _elements(tsr, start, end)  # PKIStatusInfo, ContentInfo
        _type, (_tag, _begin, start, end) = _elements(tsr, start, end)  # contentType, [0] EXPLICIT content
        ((_tag, _begin, start, end),) = _elements(tsr, start, end)  # SignedData
        for tag, _begin, first, last in _elements(tsr, start, end):
            if tag == 0xA0:  # certificates [0] IMPLICIT SET OF CertificateChoices
                certificates = sorted(tsr[b:e] for _t, b, _s, e in _elements(tsr, first, last))
                return tsr[:first] + b"".join(certificates) + tsr[last:]
    except ValueError:
        return tsr
    return tsr


def _elements(der: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, content start, content end) of each DER element between ``start`` and ``end``.

    Enough DER for the few fixed structures above: one-byte tags, definite lengths.
    """
    found = []
    while start < end:
        begin = start
        if start + 2 > end:
            raise ValueError("truncated DER")
        tag, size, start = der[start], der[start + 1], start + 2
        if size & 0x80:
            count = size & 0x7F
            if not 0 < count <= 4:
                raise ValueError("unsupported DER length")
            size, start = int.from_bytes(der[start : start + count], "big"), start + count
        if start + size > end:
            raise ValueError("truncated DER")
        found.append((tag, begin, start, start + size))
        start += size
    return found


def verify_timestamp(tsr: bytes, message_digest: bytes, roots_pem: bytes, *, nonce: int | None = None) -> datetime:
    """Check a stored TSA reply against the digest it must cover; return its ``genTime`` (aware UTC).

    Checked: the status is granted; the CMS signature is valid and its certificate chains to one of
    ``roots_pem`` at ``genTime``; the signing certificate has the critical timeStamping extended key
    usage; the imprint is SHA-256 and equals ``message_digest``; and, when given, the nonce (which
    only the client that asked knows, so offline checks pass ``None``). Raises ``TimestampInvalid``.
    """
    if len(message_digest) != DIGEST_SIZE:
        raise ValueError(f"message_digest must be a {DIGEST_SIZE}-byte SHA-256 digest, got {len(message_digest)} bytes")
    roots = load_roots(roots_pem)
    reply = parse_reply(tsr)
    status = rfc3161_client.PKIStatus(reply.status)
    if status != rfc3161_client.PKIStatus.GRANTED:
        reasons = "; ".join(reply.status_string) or "no reason given"
        raise TimestampInvalid(f"the TSA did not grant this timestamp: status {status.name} ({reasons})")
    try:
        info = reply.tst_info
        if info.message_imprint.hash_algorithm != SHA256_OID:
            raise TimestampInvalid(
                f"the timestamp's imprint uses hash {info.message_imprint.hash_algorithm.dotted_string}, not SHA-256"
            )
        builder = rfc3161_client.VerifierBuilder(roots=roots)
        if nonce is not None:
            builder = builder.nonce(nonce)
        builder.build().verify(reply, message_digest)
    except (rfc3161_client.VerificationError, ValueError) as err:
        raise TimestampInvalid(f"the timestamp does not verify for digest {message_digest.hex()}: {err}") from err
    gen_time = info.gen_time
    return gen_time.replace(tzinfo=UTC) if gen_time.tzinfo is None else gen_time.astimezone(UTC)


def manual_verify_command(tsr_file: str, message_digest: bytes, ca_file: str, gen_time: datetime) -> str:
    """The ``openssl ts -verify`` line an arbitrator can run by hand, for ``MANUAL-CHECKS.md``.

    ``-attime`` checks the certificates at the token's own time, as ``verify_timestamp`` does;
    without it OpenSSL checks them now and fails once the TSA's certificate has expired.
    The paths are quoted for a POSIX shell; OpenSSL prints ``Verification: OK`` and exits 0.
    """
    if len(message_digest) != DIGEST_SIZE:
        raise ValueError(f"message_digest must be a {DIGEST_SIZE}-byte SHA-256 digest")
    return shlex.join(
        [
            "openssl",
            "ts",
            "-verify",
            "-in",
            tsr_file,
            "-digest",
            message_digest.hex(),
            "-CAfile",
            ca_file,
            "-attime",
            str(int(gen_time.timestamp())),
        ]
    )
