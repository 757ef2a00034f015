"""The demo's own RFC 3161 timestamp authority: ``openssl ts -reply`` behind a small HTTP server.

``punchproof demo`` runs one so that the demo's evidence bundles carry RFC 3161 stamps, as a real
deployment's do. It is not a third party: its root certificate is made at start in the demo's folder,
and its name says it is the demo's own. A real cloud is configured with a public TSA instead
(docs/keys-and-timestamps.md). The tests' TSA (``tests.harness.tsa``) is this one with faults added.
"""

from __future__ import annotations

import os
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

DEMO_NAME = "Punchproof demo TSA (the demo's own, not a third party)"

GRANTING = """\
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
{certs}"""


class LocalTsa:
    """``start()`` makes a root CA and a TSA certificate in ``workdir`` and serves RFC 3161 on ``port`` (0: a free
    one, kept on restart). Each POSTed ``application/timestamp-query`` is signed by the ``openssl`` command line.

    ``cert_not_after`` sets when the TSA certificate expires; ``embed_chain`` makes replies carry the root too.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        name: str = DEMO_NAME,
        host: str = "127.0.0.1",
        port: int = 0,
        cert_not_after: datetime | None = None,
        embed_chain: bool = False,
    ) -> None:
        self.workdir = Path(workdir)
        self.name = name
        self.host = host
        self.port = port
        self.cert_not_after = cert_not_after
        self.embed_chain = embed_chain
        self.requests = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # openssl increments one serial file

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/tsa"

    @property
    def ca_path(self) -> Path:
        return self.workdir / "ca.pem"

    @property
    def ca_pem(self) -> bytes:
        return self.ca_path.read_bytes()

    def start(self) -> LocalTsa:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._make_certificates()
        (self.workdir / "serial").write_text("01\n")
        (self.workdir / "tsa.cnf").write_text(self.config_text())
        self._server = ThreadingHTTPServer((self.host, self.port), _handler(self))  # port 0: the OS picks
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"tsa-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> LocalTsa:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def config_text(self) -> str:
        """OpenSSL's ``ts`` configuration: the ``granting`` section signs SHA-256 (and longer) imprints."""
        certs = f"certs = {self.ca_path}\n" if self.embed_chain else ""
        return GRANTING.format(dir=self.workdir, certs=certs)

    def reply(self, query: bytes, section: str = "granting") -> bytes:
        """A DER ``TimeStampResp`` to ``query``, signed by ``openssl ts -reply`` with ``section``."""
        with self._lock:
            query_path = self.workdir / "query.tsq"
            query_path.write_bytes(query)
            config = str(self.workdir / "tsa.cnf")
            return self.openssl("ts", "-reply", "-config", config, "-section", section, "-queryfile", str(query_path))

    def openssl(self, *args: str) -> bytes:
        result = subprocess.run(
            self.command(["openssl", *args]),
            capture_output=True,
            check=False,
            cwd=self.workdir,
            env={**os.environ, "TZ": "UTC"},
        )
        if result.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr.decode(errors='replace')}")
        return result.stdout

    def command(self, argv: list[str]) -> list[str]:
        """The command line that runs ``argv`` (a subclass may wrap it, e.g. in faketime)."""
        return argv

    def respond(self, handler: BaseHTTPRequestHandler, query: bytes) -> None:
        """Answer one POST: a timestamp reply, or 415 for a body that is not a timestamp query."""
        if handler.headers.get("Content-Type") != "application/timestamp-query":
            send(handler, 415, "text/plain", b"expected application/timestamp-query")
        else:
            try:
                reply = self.reply(query)
            except (OSError, RuntimeError) as err:  # no openssl on this machine, or it refused the query
                send(handler, 500, "text/plain", f"the demo TSA could not sign: {err}".encode())
                return
            send(handler, 200, "application/timestamp-reply", reply)

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
        key_file = self.workdir / "tsa.key"
        key_file.write_bytes(
            tsa_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_file.chmod(0o600)


def send(handler: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


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


def _handler(tsa: LocalTsa) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
            tsa.requests += 1
            tsa.respond(self, self.rfile.read(int(self.headers.get("Content-Length", "0"))))

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            """Quiet: the cloud logs every stamp it gets."""

    return Handler
