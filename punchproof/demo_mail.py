"""The demo's stand-ins for the message channels, on loopback: what the escalation runner "sends" lands in files.

``Outbox(folder)`` runs two servers once ``start()`` is called:

- an SMTP sink (RFC 5321, the commands ``smtplib`` uses, no TLS, no login) on asyncio streams: each message is
  kept whole as ``mail/NNNN.eml``, exactly the bytes head office's e-mail channel sent;
- an SMS provider speaking Aliyun's SendSms and QuerySendDetails (``cloud.channels.sms_aliyun`` is pointed at it
  with ``endpoint``): each SMS is kept as ``sms/NNNN.json`` (number, 签名, template, its variables) and every
  query answers "delivered", so the case page shows a receipt. Signatures are not checked: it is the demo's.

``index.txt`` gets one line per message, zh-CN first: when, which channel, to whom, what. Nothing leaves the
machine; a real cloud is configured with the company's mail server and an SMS account (``[channels.*]``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import urllib.parse
import uuid
from datetime import datetime
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cloud.clock import Clock, SystemClock

log = logging.getLogger(__name__)
MAX_MESSAGE = 32 * 1024 * 1024  # a notice PDF or two fits; the sink refuses more
LINE_LIMIT = 4096


class Outbox:
    def __init__(
        self,
        folder: Path,
        host: str = "127.0.0.1",
        tz: ZoneInfo | None = None,
        clock: Clock | None = None,
        approved: dict[str, str] | None = None,
    ) -> None:
        self.folder = Path(folder)
        # TemplateCode -> approved content (${var}): an SMS is then kept and listed as the phone shows it, and that is
        # what QuerySendDetails answers as Content, as Aliyun does
        self.approved = dict(approved or {})
        self.clock = clock or SystemClock()  # story mode: the virtual clock, so receipts say the story's time
        self.host = host
        self.tz = tz  # the plant's zone, for index.txt (the machine's own zone if None)
        self.smtp_port = 0
        self.sms_port = 0
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._smtp_thread: threading.Thread | None = None
        self._smtp_server: asyncio.base_events.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._biz_ids = itertools.count(900_619_746_936_498_440)
        self._sms: dict[str, dict[str, Any]] = {}

    @property
    def sms_url(self) -> str:
        return f"http://{self.host}:{self.sms_port}/"

    @property
    def index(self) -> Path:
        return self.folder / "index.txt"

    def start(self) -> Outbox:
        for sub in ("mail", "sms"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.index.touch()
        ready = threading.Event()
        self._smtp_thread = threading.Thread(target=self._smtp_main, args=(ready,), name="demo-smtp", daemon=True)
        self._smtp_thread.start()
        if not ready.wait(10) or not self.smtp_port:
            raise RuntimeError("the demo's SMTP sink did not start")
        self._http = ThreadingHTTPServer((self.host, 0), _sms_handler(self))
        self._http.daemon_threads = True
        self.sms_port = self._http.server_address[1]
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.1}, name="demo-sms", daemon=True
        )
        self._http_thread.start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._loop is not None and self._smtp_server is not None:
            self._loop.call_soon_threadsafe(self._smtp_server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._smtp_thread is not None:
            self._smtp_thread.join(timeout=10)
            self._smtp_thread = None

    # -- keeping what arrives ----------------------------------------------------------------------
    def _keep(self, kind: str, suffix: str, data: bytes, line: str) -> Path:
        with self._lock:
            path = self.folder / kind / f"{next(self._numbers):04d}.{suffix}"
            path.write_bytes(data)
            stamp = self.clock.now().astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")
            with self.index.open("a", encoding="utf-8") as index:
                index.write(f"{stamp}  {line}  ({path.relative_to(self.folder)})\n")
        return path

    def keep_mail(self, sender: str, recipients: list[str], data: bytes) -> Path:
        mail = message_from_bytes(data, policy=policy.default)
        subject = str(mail.get("Subject", ""))
        attached = [part.get_filename() for part in mail.iter_attachments()]  # type: ignore[attr-defined]
        extra = f"，附件 {len(attached)} 个 / {len(attached)} attachment(s)" if attached else ""
        line = f"邮件 e-mail  发给 to {', '.join(recipients)}：{subject}{extra}"
        return self._keep("mail", "eml", data, line)

    def keep_sms(self, params: dict[str, str]) -> dict[str, Any]:
        biz_id = f"{next(self._biz_ids)}^0"
        try:
            variables = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            variables = {"unreadable": params.get("TemplateParam", "")}
        sms = {
            "biz_id": biz_id,
            "phone": params.get("PhoneNumbers", ""),
            "sign_name": params.get("SignName", ""),
            "template": params.get("TemplateCode", ""),
            "variables": variables,
            "received": self.clock.now().isoformat(),
        }
        sms["content"] = self._content(sms)
        line = f"短信 SMS  发给 to {sms['phone']}：{sms['content']}"
        if sms["template"] in self.approved:
            line += f"（模板 template {sms['template']}）"
        self._keep("sms", "json", json.dumps(sms, ensure_ascii=False, indent=2).encode(), line)
        with self._lock:
            self._sms[biz_id] = sms
        return sms

    def _content(self, sms: dict[str, Any]) -> str:
        """The SMS as the phone shows it: 【签名】 and the approved content filled in; for a template with no content
        known here, its code and variables."""
        content = self.approved.get(sms["template"])
        if content is None:
            words = "，".join(f"{k}={v}" for k, v in sms["variables"].items())
            return f"【{sms['sign_name']}】模板 template {sms['template']} {words}"
        for name, value in sms["variables"].items():
            content = content.replace("${" + name + "}", str(value))
        return f"【{sms['sign_name']}】{content}"

    def sms_detail(self, biz_id: str, phone: str) -> list[dict[str, Any]]:
        with self._lock:
            sms = self._sms.get(biz_id)
        if sms is None or sms["phone"] != phone:
            return []
        sent = datetime.fromisoformat(sms["received"]).astimezone(ZoneInfo("Asia/Shanghai"))  # Aliyun: Beijing time
        return [
            {
                "ErrCode": "DELIVERED",
                "TemplateCode": sms["template"],
                "ReceiveDate": sent.strftime("%Y-%m-%d %H:%M:%S"),
                "SendDate": sent.strftime("%Y-%m-%d %H:%M:%S"),
                "PhoneNum": sms["phone"],
                "Content": sms["content"],
                "SendStatus": 3,
            }
        ]

    # -- SMTP ----------------------------------------------------------------------------------
    def _smtp_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._smtp_server = loop.run_until_complete(
                asyncio.start_server(self._smtp_session, self.host, 0, limit=LINE_LIMIT * 2)
            )
            self.smtp_port = self._smtp_server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
        finally:
            ready.set()
            loop.close()

    async def _smtp_session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        sender, recipients = "", []
        try:
            await say("220 punchproof-demo SMTP sink (nothing leaves this machine)")
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                command = raw.decode("utf-8", "replace").strip()
                verb = command[:4].upper()
                if verb in ("EHLO", "HELO"):
                    await say("250-punchproof-demo" if verb == "EHLO" else "250 punchproof-demo")
                    if verb == "EHLO":
                        await say(f"250-SIZE {MAX_MESSAGE}")
                        await say("250 8BITMIME")
                elif verb == "MAIL":
                    sender, recipients = _address(command), []
                    await say("250 OK")
                elif verb == "RCPT":
                    recipients.append(_address(command))
                    await say("250 OK")
                elif verb == "DATA":
                    if not recipients:
                        await say("503 RCPT first")
                        continue
                    await say("354 end with <CRLF>.<CRLF>")
                    data = await _read_data(reader)
                    if data is None:
                        await say("552 message too large")
                        return
                    self.keep_mail(sender, recipients, data)
                    await say(f"250 OK queued as {uuid.uuid4().hex[:12]}")
                    sender, recipients = "", []
                elif verb == "RSET":
                    sender, recipients = "", []
                    await say("250 OK")
                elif verb == "NOOP":
                    await say("250 OK")
                elif verb == "QUIT":
                    await say("221 bye")
                    return
                else:
                    await say("502 command not implemented")
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as err:
            log.info("SMTP session ended: %s", err)
        finally:
            writer.close()


def _address(command: str) -> str:
    _verb, _, rest = command.partition(":")
    return rest.strip().split(" ")[0].strip("<>")


async def _read_data(reader: asyncio.StreamReader) -> bytes | None:
    """The message after DATA up to the lone dot, dots unstuffed (RFC 5321 4.5.2); None when over the size."""
    lines, size = [], 0
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("client left during DATA")
        if line in (b".\r\n", b".\n"):
            return b"".join(lines)
        if line.startswith(b"."):
            line = line[1:]
        size += len(line)
        if size > MAX_MESSAGE:
            return None
        lines.append(line)


def _sms_handler(outbox: Outbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the base class's name
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query, keep_blank_values=True))
            request_id = str(uuid.uuid4()).upper()
            action = query.get("Action")
            if action == "SendSms" and query.get("PhoneNumbers") and query.get("TemplateCode"):
                sms = outbox.keep_sms(query)
                self._answer({"Code": "OK", "Message": "OK", "BizId": sms["biz_id"], "RequestId": request_id})
            elif action == "QuerySendDetails":
                details = outbox.sms_detail(query.get("BizId", ""), query.get("PhoneNumber", ""))
                self._answer(
                    {
                        "Code": "OK",
                        "Message": "OK",
                        "RequestId": request_id,
                        "TotalCount": len(details),
                        "SmsSendDetailDTOs": {"SmsSendDetailDTO": details},
                    }
                )
            else:
                self._answer({"Code": "InvalidParameter", "Message": f"unsupported: {action}"}, 400)

        def _answer(self, body: dict[str, Any], status: int = 200) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

    return Handler
