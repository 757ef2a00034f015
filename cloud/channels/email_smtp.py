"""E-mail over SMTP (STARTTLS optional), the notice PDF attached, the exact message kept.

SMTP's "250" only proves the company's own mail server took the message; the value as evidence is the message
itself: the stored RFC 5322 bytes are exactly what went to the server, and the body lists each attachment's
SHA-256 so the recipient's copy can be matched to the log. The Message-ID is the provider message id.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from cloud.channels.base import Attempt, OutboundMessage, Status, attempt_for
from cloud.clock import Clock, SystemClock


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str  # the From address, e.g. hr@factory.example.cn
    sender_name: str = "人力资源部"
    username: str = ""
    password: str = ""
    starttls: bool = True
    timeout_s: float = 30.0


class SmtpChannel:
    kind = "email"
    provider = "smtp"

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        name: str = "email",
        clock: Clock | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings, self.name = settings, name
        self.clock = clock or SystemClock()
        self.tls_context = tls_context

    def build(self, message: OutboundMessage) -> EmailMessage:
        now = self.clock.now()
        domain = self.settings.sender.rpartition("@")[2] or "localhost"
        unique = hashlib.sha256(
            f"{message.case_ref}|{message.step_id}|{message.recipient}|{now.isoformat()}".encode()
        ).hexdigest()[:32]
        mail = EmailMessage(policy=policy.SMTP)
        mail["From"] = formataddr((self.settings.sender_name, self.settings.sender))
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        mail["Date"] = format_datetime(now)
        mail["Message-ID"] = f"<{unique}@{domain}>"
        body = message.text
        if message.attachments:
            listed = "\n".join(f"  {a.name}  SHA-256 {a.sha256}" for a in message.attachments)
            body += f"\n\n附件及其 SHA-256 校验值 / Attachments and their SHA-256\n{listed}\n"
        mail.set_content(body, charset="utf-8")
        for item in message.attachments:
            maintype, _, subtype = item.mime.partition("/")
            mail.add_attachment(item.data, maintype=maintype, subtype=subtype, filename=item.name)
        return mail

    def send(self, message: OutboundMessage) -> Attempt:
        mail = self.build(message)
        raw = mail.as_bytes(policy=policy.SMTP)
        message_id = mail["Message-ID"]

        def attempt(status: Status, reason: str = "", response: str = "") -> Attempt:
            return attempt_for(
                self,
                message,
                self.clock.now(),
                status,
                reason=reason,
                message_id=message_id,
                response=response,
                request=raw,
            )

        s = self.settings
        try:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        except OSError as err:
            return attempt(Status.FAILED, f"cannot reach the SMTP server {s.host}:{s.port}: {err}")
        sent_data = False
        try:
            smtp.ehlo()
            if s.starttls:
                smtp.starttls(context=self.tls_context or ssl.create_default_context())
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password)
            code, reply = smtp.mail(s.sender)
            if code != 250:
                return attempt(Status.FAILED, f"sender refused: {code} {reply.decode(errors='replace')}")
            code, reply = smtp.rcpt(message.recipient)
            if code not in (250, 251):
                return attempt(Status.FAILED, f"recipient refused: {code} {reply.decode(errors='replace')}")
            sent_data = True
            code, reply = smtp.data(raw)
            answer = f"{code} {reply.decode(errors='replace')}"
            if code != 250:
                return attempt(Status.FAILED, f"message refused: {answer}", answer)
            return attempt(Status.SENT, response=answer)
        except (smtplib.SMTPServerDisconnected, TimeoutError, ConnectionError) as err:
            if sent_data:
                return attempt(Status.UNCERTAIN, f"no answer after the message was sent: {err}")
            return attempt(Status.FAILED, f"the SMTP session broke before the message was sent: {err}")
        except smtplib.SMTPException as err:
            return attempt(Status.FAILED, f"SMTP error: {err}")
        except ssl.SSLError as err:
            return attempt(Status.FAILED, f"STARTTLS failed: {err}")
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
