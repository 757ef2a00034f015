"""Asks an RFC 3161 time-stamping authority (TSA) to stamp a digest, and checks the answer at once.

The cloud stamps the root of its checkpoint log, so one token dates every device checkpoint in
it. A reply is kept only after it verified here exactly as the offline verifier will check it later
(``ledger.timestamp``), plus the nonce that only this request knows: a stored token that a bundle
verifier would refuse must never be mistaken for coverage.

HTTP goes through an injected ``urllib`` opener, so a TSA that needs authentication gets an opener
with the right handler; a URL with a user or password is refused, and a URL's query (an API key,
say) is never put in a message or a log.
"""

from __future__ import annotations

import http.client
import logging
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rfc3161_client import PKIStatus

from cloud.config import CloudSettings, ConfigError
from ledger.timestamp import DIGEST_SIZE, TimestampInvalid, load_roots, parse_reply, token_of, verify_timestamp

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 1 << 20  # a TSA reply is a few kB; more is not a reply
_SHA256_ALGORITHM = bytes.fromhex("300d06096086480165030402010500")  # AlgorithmIdentifier, NULL parameters


NO_TSA_ZH = (
    "未配置第三方时间戳机构：导出的证据包中的时间仅由用人单位自己的设备与服务器证明，对方可主张记录系事后制作，"
    "报告与 punchproof verify 都不会显示“全部校验通过”。请在 cloud.toml 中加入 [[tsa.authority]]（url 与 "
    "ca_file，见 docs/keys-and-timestamps.md），然后重启 punchproof-ingest@* 与 punchproof-cloud-web。"
)
NO_TSA_EN = (
    "no third-party timestamp authority: the times in exported bundles rest only on the employer's own devices "
    "and server, the other side may say the records were made afterwards, and neither the report nor "
    "'punchproof verify' will show a full pass. Add a [[tsa.authority]] (url and ca_file, see "
    "docs/keys-and-timestamps.md) to cloud.toml, then restart punchproof-ingest@* and punchproof-cloud-web."
)


class TimestampError(Exception):
    """No verified timestamp was obtained; the message says why and what to check."""


class TsaConfigError(TimestampError):
    """The TSA URL or trust roots in the configuration are unusable."""


class TsaUnreachable(TimestampError):
    """The TSA could not be reached or did not answer in time."""


class TsaHttpError(TimestampError):
    """The TSA answered, but not with HTTP 200."""

    def __init__(self, message: str, *, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class TsaRejected(TimestampError):
    """The TSA answered with an RFC 3161 refusal (status not granted)."""


class TsaReplyInvalid(TimestampError):
    """The TSA's answer is not a timestamp that verifies for this request under the trusted roots."""


@dataclass(frozen=True)
class Timestamp:
    """A verified stamp. Store ``tsr`` as-is (a ``.tsr`` file); ``token`` is the signed part inside it."""

    tsr: bytes
    token: bytes
    message_digest: bytes
    gen_time: datetime  # aware, UTC
    serial_number: int


class TimestampClient:
    """``stamp(digest)`` POSTs one RFC 3161 query (SHA-256 imprint, random nonce, certReq) and verifies the reply."""

    def __init__(
        self,
        url: str,
        roots_pem: bytes,
        *,
        timeout: float = 10.0,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        try:
            _ = parts.port
        except ValueError as err:
            raise TsaConfigError(f"the TSA URL has a bad port: {_public(url)!r}") from err
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TsaConfigError(f"the TSA URL must be http:// or https:// with a host, got {_public(url)!r}")
        if parts.username is not None:
            raise TsaConfigError(
                f"the TSA URL {_public(url)!r} carries a user name or password: give them to the HTTP opener instead "
                "(urllib.request.HTTPBasicAuthHandler), so that they never appear in a URL, a message or a log"
            )
        try:
            load_roots(roots_pem)
        except TimestampInvalid as err:
            raise TsaConfigError(f"the configured TSA root certificate file is unusable: {err}") from err
        self.url = url
        self.roots_pem = roots_pem
        self.timeout = timeout
        self.opener = opener or urllib.request.build_opener()

    def stamp(self, message_digest: bytes) -> Timestamp:
        """Get a timestamp on a SHA-256 ``message_digest``; raises a ``TimestampError`` subclass."""
        if len(message_digest) != DIGEST_SIZE:
            raise ValueError(f"message_digest must be a {DIGEST_SIZE}-byte SHA-256 digest")
        nonce = secrets.randbits(64) or 1
        tsr = self._post(timestamp_query(message_digest, nonce))
        where = _public(self.url)
        try:
            reply = parse_reply(tsr)
        except TimestampInvalid as err:
            raise TsaReplyInvalid(f"the TSA at {where} answered with something that is not a timestamp: {err}") from err
        if reply.status != PKIStatus.GRANTED:  # grantedWithMods too: a modified request is not what we asked
            reasons = "; ".join(reply.status_string) or "no reason given"
            raise TsaRejected(
                f"the TSA at {where} did not grant the request (status {_status_name(reply.status)}: {reasons}); "
                "check that it accepts SHA-256 imprints and needs no other policy or account"
            )
        try:
            gen_time = verify_timestamp(tsr, message_digest, self.roots_pem, nonce=nonce)
        except TimestampInvalid as err:
            raise TsaReplyInvalid(
                f"the timestamp from {where} does not verify ({err}); the reply was discarded. If the TSA changed its "
                "certificate, update the configured TSA root; otherwise something between us and the TSA altered "
                "or replayed the reply"
            ) from err
        log.info("timestamped %s at %s by %s", message_digest.hex()[:16], gen_time.isoformat(), where)
        return Timestamp(
            tsr=tsr,
            token=token_of(tsr),
            message_digest=message_digest,
            gen_time=gen_time,
            serial_number=reply.tst_info.serial_number,
        )

    def _post(self, query: bytes) -> bytes:
        where = _public(self.url)
        request = urllib.request.Request(
            self.url,
            data=query,
            method="POST",
            headers={"Content-Type": "application/timestamp-query", "Accept": "application/timestamp-reply"},
        )
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                body: bytes = response.read(MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as err:
            raise TsaHttpError(
                f"the TSA at {where} answered HTTP {err.code} {err.reason}; "
                "check the TSA URL and, if it needs an account, the credentials",
                status=err.code,
            ) from err
        except urllib.error.URLError as err:
            raise TsaUnreachable(
                f"the TSA at {where} is unreachable ({err.reason}); check the TSA URL and this host's network"
            ) from err
        except http.client.HTTPException as err:
            raise TsaHttpError(f"the TSA at {where} broke the HTTP exchange ({err!r})", status=None) from err
        except OSError as err:  # a timeout or reset while reading
            raise TsaUnreachable(
                f"the TSA at {where} did not answer within {self.timeout:g} s ({err}); "
                "check this host's network, or raise the timeout"
            ) from err
        if len(body) > MAX_REPLY_BYTES:
            raise TsaReplyInvalid(f"the TSA at {where} sent more than {MAX_REPLY_BYTES} bytes: not a timestamp reply")
        return body


def timestamp_query(message_digest: bytes, nonce: int) -> bytes:
    """DER ``TimeStampReq`` (RFC 3161 §2.4.1) for a SHA-256 digest we already have.

    Built here because rfc3161-client's request builder hashes the data itself, and we stamp a
    digest (e.g. a checkpoint root), not a message.
    """
    imprint = _der(0x30, _SHA256_ALGORITHM + _der(0x04, message_digest))
    cert_req = _der(0x01, b"\xff")
    return _der(0x30, _der_int(1) + imprint + _der_int(nonce) + cert_req)


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _der_int(value: int) -> bytes:
    """A non-negative DER INTEGER (a leading zero byte keeps the sign bit clear)."""
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _status_name(status: int) -> str:
    try:
        return PKIStatus(status).name
    except ValueError:
        return str(status)


def _public(url: str) -> str:
    """The URL without user, password, query or fragment: safe to log."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def configured_clients(settings: CloudSettings) -> list[TimestampClient]:
    """A client for each timestamp authority of ``[tsa]`` (none: an empty list). Reads each root certificate
    file; raises ``ConfigError`` listing every authority whose file or URL is unusable."""
    clients, problems = [], []
    for authority in settings.tsas:
        try:
            roots = Path(authority.ca_file).read_bytes()
        except OSError as err:
            problems.append(
                f"tsa: 无法读取时间戳机构 {_public(authority.url)} 的根证书文件 / cannot read the root certificate "
                f"{authority.ca_file} of {_public(authority.url)}: {err.strerror}"
            )
            continue
        try:
            clients.append(TimestampClient(authority.url, roots, timeout=settings.tsa_timeout_s))
        except TsaConfigError as err:
            problems.append(f"tsa: {err}")
    if problems:
        raise ConfigError(settings.source, problems)
    return clients
