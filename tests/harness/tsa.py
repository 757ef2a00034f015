"""A real RFC 3161 time-stamping authority for tests: ``openssl ts -reply`` behind a tiny HTTP server.

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
import os
import re
import shutil
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# SHA-256 AlgorithmIdentifier (NULL parameters optional) then the 32-byte OCTET STRING of the imprint.
_SHA256_IMPRINT = re.compile(rb"\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01(?:\x05\x00)?\x04\x20(.{32})", re.DOTALL)

_CONFIG = """\
[ tsa ]
default_tsa = granting

[ granting ]
serial = {dir}/serial
crypto_device = builtin
signer_cert = {dir}/tsa.pem
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
{certs}
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


class OpenSslTsa:
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
        self.workdir = Path(workdir)
        self.name = name
        self.host = host
        self.port = port
        self.cert_not_after = cert_not_after
        self.embed_chain = embed_chain
        self.signing_time = signing_time
        self.fault = TsaFault.NONE
        self.required_auth: tuple[str, str] | None = None  # (user, password) for HTTP Basic, like a paid TSA
        self.requests = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # openssl increments one serial file
        self._release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/tsa"

    @property
    def ca_path(self) -> Path:
        return self.workdir / "ca.pem"

    @property
    def ca_pem(self) -> bytes:
        return self.ca_path.read_bytes()

    def start(self) -> OpenSslTsa:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._make_certificates()
        (self.workdir / "serial").write_text("01\n")
        certs = f"certs = {self.ca_path}\n" if self.embed_chain else ""
        (self.workdir / "tsa.cnf").write_text(_CONFIG.format(dir=self.workdir, certs=certs))
        self._release.clear()
        self._server = ThreadingHTTPServer((self.host, self.port), _handler(self))  # port 0: the OS picks
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"tsa-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> OpenSslTsa:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def reply(self, query: bytes) -> bytes:
        """Sign a reply to ``query`` with ``openssl ts -reply``, bent by the current fault."""
        section = "granting"
        if self.fault is TsaFault.REJECT:
            section = "rejecting"
        elif self.fault is TsaFault.WRONG_NONCE:
            query = self._openssl("ts", "-query", "-digest", _imprint(query).hex(), "-sha256", "-cert")
        elif self.fault is TsaFault.WRONG_DIGEST:
            query = query.replace(_imprint(query), hashlib.sha256(b"not what was asked").digest())
        with self._lock:
            query_path = self.workdir / "query.tsq"
            query_path.write_bytes(query)
            config = str(self.workdir / "tsa.cnf")
            reply = ("ts", "-reply", "-config", config, "-section", section, "-queryfile", str(query_path))
            return self._openssl(*reply, at=self.signing_time)

    def _openssl(self, *args: str, at: datetime | None = None) -> bytes:
        command = ["openssl", *args]
        if at is not None:
            command = at_fixed_time(at, command)
        env = {**os.environ, "TZ": "UTC"}  # faketime reads its time in the local zone
        result = subprocess.run(command, capture_output=True, check=False, cwd=self.workdir, env=env)
        if result.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr.decode(errors='replace')}")
        return result.stdout

    def _make_certificates(self) -> None:
        now = datetime.now(UTC)
        not_after = self.cert_not_after or now + timedelta(days=365)
        not_before = min(now, not_after) - timedelta(days=30)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name} Root CA")])
        ca = (
            _builder(ca_name, ca_name, ca_key.public_key(), not_before, not_after + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        tsa_key = ec.generate_private_key(ec.SECP256R1())
        tsa_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        tsa = (
            _builder(tsa_name, ca_name, tsa_key.public_key(), not_before, not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        (self.workdir / "tsa.pem").write_bytes(tsa.public_bytes(serialization.Encoding.PEM))
        key_pem = tsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (self.workdir / "tsa.key").write_bytes(key_pem)
        (self.workdir / "tsa.key").chmod(0o600)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _imprint(query: bytes) -> bytes:
    match = _SHA256_IMPRINT.search(query)
    if match is None:
        raise ValueError("the query has no SHA-256 message imprint")
    return match.group(1)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, not_before: datetime, not_after: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _handler(tsa: OpenSslTsa) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
            tsa.requests += 1
            query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if tsa.required_auth is not None and self.headers.get("Authorization") != _basic(*tsa.required_auth):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="tsa"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if tsa.fault is TsaFault.HANG:
                tsa._release.wait()
                return
            if tsa.fault is TsaFault.HTTP_500:
                self._send(500, "text/plain", b"internal error")
            elif tsa.fault is TsaFault.GARBAGE:
                self._send(200, "application/timestamp-reply", b"<html>not a timestamp</html>")
            elif self.headers.get("Content-Type") != "application/timestamp-query":
                self._send(415, "text/plain", b"expected application/timestamp-query")
            else:
                self._send(200, "application/timestamp-reply", tsa.reply(query))

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            """Quiet: tests read outcomes, not the access log."""

    return Handler


def at_fixed_time(at: datetime, command: list[str]) -> list[str]:
    """``command`` run under faketime with its clock stopped at ``at`` (run it with TZ=UTC).

    ``-f`` takes libfaketime's own format, where a bare date is a clock stopped at that second; the
    plain form starts the clock there and lets it run, so a process slow to start (a loaded machine)
    read a second later.
    """
    if shutil.which("faketime") is None:
        raise RuntimeError("signing_time needs faketime: apt-get install faketime")
    return ["faketime", "-f", at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), *command]
