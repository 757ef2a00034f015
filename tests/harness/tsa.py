"""A real RFC 3161 time-stamping authority for tests: the demo's ``openssl ts -reply`` TSA
(``punchproof.demo_tsa``) with faults.

Each POSTed ``application/timestamp-query`` is handed to the ``openssl`` command line, which signs a
real reply with a TSA certificate issued by a root CA made at ``start()``. By default the signer
embeds only its own certificate (no ``certs`` in the config); ``embed_chain`` adds the root.

Faults are injected honestly: ``fault`` makes the server answer HTTP 500, garbage, a reply that
OpenSSL really signed for a different nonce or digest, a real rejection, or no answer at all.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import re
import shutil
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from punchproof.demo_tsa import LocalTsa, send

# SHA-256 AlgorithmIdentifier (NULL parameters optional) then the 32-byte OCTET STRING of the imprint.
_SHA256_IMPRINT = re.compile(rb"\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01(?:\x05\x00)?\x04\x20(.{32})", re.DOTALL)

_REJECTING = """
[ rejecting ]
serial = {dir}/serial
crypto_device = builtin
signer_cert = {dir}/tsa.pem
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha512
"""


class TsaFault(enum.Enum):
    NONE = "none"
    HTTP_500 = "http-500"
    GARBAGE = "garbage"  # HTTP 200 with bytes that are no TimeStampResp
    WRONG_NONCE = "wrong-nonce"  # a valid reply, signed for a fresh query with another nonce
    WRONG_DIGEST = "wrong-digest"  # a valid reply for the same nonce but another digest
    REJECT = "reject"  # OpenSSL's own rejection: the TSA accepts no SHA-256 imprint
    HANG = "hang"  # accept the connection, never answer (until stop())


class OpenSslTsa(LocalTsa):
    """``start()`` makes a CA and TSA certificate and serves on ``port`` (0: a free one, kept on restart).

    ``cert_not_after`` lets a test make the TSA sign with a certificate that has already expired;
    ``embed_chain`` makes it embed the root too, after its own certificate, as OpenSSL orders them.
    ``signing_time`` runs ``openssl ts -reply`` under ``faketime`` (apt package ``faketime``), for
    tokens made in the past, e.g. while a since-expired TSA certificate was valid.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        name: str = "Punchproof Test TSA",
        host: str = "127.0.0.1",
        port: int = 0,
        cert_not_after: datetime | None = None,
        embed_chain: bool = False,
        signing_time: datetime | None = None,
    ) -> None:
        super().__init__(
            workdir, name=name, host=host, port=port, cert_not_after=cert_not_after, embed_chain=embed_chain
        )
        self.signing_time = signing_time
        self.fault = TsaFault.NONE
        self.required_auth: tuple[str, str] | None = None  # (user, password) for HTTP Basic, like a paid TSA
        self._release = threading.Event()

    def start(self) -> OpenSslTsa:
        self._release.clear()
        super().start()
        return self

    def stop(self) -> None:
        self._release.set()
        super().stop()

    def __enter__(self) -> OpenSslTsa:
        return self.start()

    def config_text(self) -> str:
        return super().config_text() + _REJECTING.format(dir=self.workdir)

    def reply(self, query: bytes, section: str = "granting") -> bytes:
        """Sign a reply to ``query`` with ``openssl ts -reply``, bent by the current fault."""
        if self.fault is TsaFault.REJECT:
            section = "rejecting"
        elif self.fault is TsaFault.WRONG_NONCE:
            query = self.openssl("ts", "-query", "-digest", _imprint(query).hex(), "-sha256", "-cert")
        elif self.fault is TsaFault.WRONG_DIGEST:
            query = query.replace(_imprint(query), hashlib.sha256(b"not what was asked").digest())
        return super().reply(query, section)

    def command(self, argv: list[str]) -> list[str]:
        return at_fixed_time(self.signing_time, argv) if self.signing_time is not None else argv

    def respond(self, handler: BaseHTTPRequestHandler, query: bytes) -> None:
        if self.required_auth is not None and handler.headers.get("Authorization") != _basic(*self.required_auth):
            handler.send_response(401)
            handler.send_header("WWW-Authenticate", 'Basic realm="tsa"')
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if self.fault is TsaFault.HANG:
            self._release.wait()
            return
        if self.fault is TsaFault.HTTP_500:
            send(handler, 500, "text/plain", b"internal error")
        elif self.fault is TsaFault.GARBAGE:
            send(handler, 200, "application/timestamp-reply", b"<html>not a timestamp</html>")
        else:
            super().respond(handler, query)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _imprint(query: bytes) -> bytes:
    match = _SHA256_IMPRINT.search(query)
    if match is None:
        raise ValueError("the query has no SHA-256 message imprint")
    return match.group(1)


def at_fixed_time(at: datetime, command: list[str]) -> list[str]:
    """``command`` run under faketime with its clock stopped at ``at`` (run it with TZ=UTC).

    ``-f`` takes libfaketime's own format, where a bare date is a clock stopped at that second; the
    plain form starts the clock there and lets it run, so a process slow to start (a loaded machine)
    read a second later.
    """
    if shutil.which("faketime") is None:
        raise RuntimeError("signing_time needs faketime: apt-get install faketime")
    return ["faketime", "-f", at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), *command]
