"""E-mail to a real SMTP server on loopback (aiosmtpd), with and without STARTTLS."""

from __future__ import annotations

import datetime as dt
import email
import hashlib
import ipaddress
import json
import socket
import ssl
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloud.channels.base import Attachment, OutboundMessage, Status
from cloud.channels.contact_log import ContactAttempt
from cloud.channels.dispatch import Dispatcher
from cloud.channels.email_smtp import SmtpChannel, SmtpSettings

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
MESSAGE = OutboundMessage(
    case_ref="case-2026-0042",
    step_id="L3.cuigao",
    recipient="zhangsan@example.cn",
    channel="email",
    template_id="cuigao",
    template_version="1",
    subject="关于限期返岗的通知（催告函）某电人〔2026〕第 017 号",
    text="张三：\n\n请查阅附件《关于限期返岗的通知（催告函）》。",
    attachments=(Attachment("催告函-017.pdf", PDF),),
    operator="hr.wangmin",
)


class Mailbox:
    def __init__(self, refuse: str = "") -> None:
        self.envelopes: list = []
        self.refuse = refuse

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's hook
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    """aiosmtpd's Controller needs a port number up front (it connects to it to know the server is up)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, mailbox
    controller.stop()


def tls_pair(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cafile=str(folder / "cert.pem"))
    return server, client


def test_mail_is_sent_with_the_pdf_and_the_exact_message_is_kept(smtp_server, clock, db):
    controller, mailbox = smtp_server
    channel = SmtpChannel(
        SmtpSettings("127.0.0.1", controller.port, "hr@factory.example.cn", starttls=False), clock=clock
    )
    attempt = Dispatcher([channel], clock=clock).dispatch(MESSAGE)
    assert attempt.status is Status.SENT and attempt.raw_response.startswith("250")
    received = mailbox.envelopes[0].original_content
    row = ContactAttempt.get_by_id(attempt.attempt_id)
    assert bytes(row.request).rstrip(b"\r\n") == received.rstrip(b"\r\n")  # the stored message is what arrived
    parsed = email.message_from_bytes(received, policy=policy.default)
    assert parsed["Message-ID"] == attempt.provider_message_id and parsed["Subject"] == MESSAGE.subject
    (part,) = list(parsed.iter_attachments())
    attached = part.get_content()
    recorded = json.loads(row.attachments)[0]["sha256"]
    assert attached == PDF and recorded == hashlib.sha256(attached).hexdigest()
    assert recorded in parsed.get_body(("plain",)).get_content()  # the recipient can check the hash too
    assert row.content_sha256 == MESSAGE.content_sha256 and row.operator == "hr.wangmin"
    assert Dispatcher([channel], clock=clock).dispatch(MESSAGE).attempt_id == attempt.attempt_id
    assert len(mailbox.envelopes) == 1


def test_mail_over_starttls(tmp_path, clock, db):
    server_tls, client_tls = tls_pair(tmp_path)
    mailbox = Mailbox()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=free_port(), tls_context=server_tls, require_starttls=True
    )
    controller.start()
    try:
        channel = SmtpChannel(
            SmtpSettings("127.0.0.1", controller.port, "hr@factory.example.cn", starttls=True),
            clock=clock,
            tls_context=client_tls,
        )
        assert Dispatcher([channel], clock=clock).dispatch(MESSAGE).status is Status.SENT
        plain = SmtpChannel(
            SmtpSettings("127.0.0.1", controller.port, "hr@factory.example.cn", starttls=False), clock=clock
        )
        refused = plain.send(MESSAGE)  # the server requires STARTTLS
        assert refused.status is Status.FAILED and "530" in refused.reason
    finally:
        controller.stop()
    assert len(mailbox.envelopes) == 1


def test_refused_recipient_and_unreachable_server_are_failed_attempts(clock, db):
    mailbox = Mailbox(refuse="550 5.1.1 No such user")
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        channel = SmtpChannel(
            SmtpSettings("127.0.0.1", controller.port, "hr@factory.example.cn", starttls=False), clock=clock
        )
        attempt = channel.send(MESSAGE)
        assert attempt.status is Status.FAILED and "550" in attempt.reason
        port = controller.port
    finally:
        controller.stop()
    gone = SmtpChannel(SmtpSettings("127.0.0.1", port, "hr@factory.example.cn", timeout_s=2), clock=clock)
    assert gone.send(MESSAGE).status is Status.FAILED
