"""Serving the ADMS receiver on one interface of the appliance: the plant LAN's.

Terminals authenticate by nothing but the serial number in the URL, so anyone who can reach
the port can push punches for a known terminal. Bind the address of the Pi's plant-LAN
interface (e.g. ``192.168.10.2``), never every interface: ``0.0.0.0``/``::`` are refused unless
the caller says ``allow_all_interfaces=True`` (a lab, or a Pi with a single, plant-only NIC).

The receiver runs in the appliance daemon (which owns the database writes): a plant has tens of
terminals, each polling every few seconds. Werkzeug parses the requests; which connections get
a thread, for how long, and how much of a body is read is bounded by ``connections.Limits``
(silent connections wait on one thread; ``workers`` threads serve requests; a body above
``max_body_bytes`` is answered ``413`` before it is read; a broken framing ``400``; a request
not received within ``request_s``, ``408``). The body is read whole, within those limits,
before the app sees it.
"""

from __future__ import annotations

import io
import logging
import re
import socket
import time

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler

from firmware_bridge.adms.connections import (
    Address,
    BodyTooLarge,
    DeadlineReader,
    Gate,
    Limits,
    MalformedBody,
    read_chunked,
)
from firmware_bridge.adms.receiver import AdmsReceiver

log = logging.getLogger(__name__)

WILDCARDS = {"", "0.0.0.0", "::", "*", "[::]"}  # noqa: S104 - listed to be refused
HEAD_BYTES = 64 * 1024  # a request's byte budget: its request line and headers, plus twice the body cap
LINGER_BYTES = 1024 * 1024  # read and dropped after a refusal, so that the client reads the answer
LINGER_S = 2.0  # at most, in all
LINGER_SILENCE_S = 0.5  # a client that sends nothing more for this long is done
_LENGTH = re.compile(r"[0-9]{1,15}")


class _Server(BaseWSGIServer):
    """Werkzeug's server for its request parsing; the gate accepts and schedules (``serve_forever`` unused)."""

    multithread = True  # requests run on the gate's workers

    def __init__(self, host: str, app: Flask, limits: Limits, fd: int) -> None:
        self.limits = limits
        super().__init__(host, 0, app, handler=_Handler, fd=fd)


class _Handler(WSGIRequestHandler):
    """Reads the whole request within the limits before the app runs; leaves the ``Date`` header
    to the app (from the receiver's clock) and logs at debug level: terminals poll every few
    seconds and would drown the journal."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        limits = self.server.limits
        self.rfile.close()  # the socket's own file: every read goes through the deadline instead
        budget = HEAD_BYTES + 2 * limits.max_body_bytes  # chunk framing may double a body, no more
        self.rfile = io.BufferedReader(DeadlineReader(self.connection, time.monotonic() + limits.request_s, budget))

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":  # no status line, no headers: no terminal speaks it
            self.send_error(400, "HTTP/0.9 is not supported")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """With a status line even when the version could not be read (http.server then answers
        as HTTP/0.9: a bare body), and 400 for a version other than 1.x: a 5xx says the
        receiver failed, and the request is what is wrong."""
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        super().send_error(400 if code == 505 else code, message, explain)

    def run_wsgi(self) -> None:
        refusal = self._take_body()
        if refusal is not None:
            self._refuse(*refusal)
            return
        self.connection.settimeout(self.server.limits.request_s)  # for the answer
        super().run_wsgi()

    def _take_body(self) -> tuple[int, str] | None:
        """Read the body, de-chunked, into memory; or say why not (status, text)."""
        limit = self.server.limits.max_body_bytes
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = [value.strip() for value in self.headers.get_all("Content-Length") or []]
        try:
            if encodings:
                if lengths or [e.strip().lower() for e in ",".join(encodings).split(",")] != ["chunked"]:
                    return 400, "ERROR: unsupported Transfer-Encoding"
                self._continue()
                body = read_chunked(self.rfile, limit)
            elif lengths:
                if len(set(lengths)) != 1 or not _LENGTH.fullmatch(lengths[0]):
                    return 400, "ERROR: malformed Content-Length"
                if int(lengths[0]) > limit:
                    return 413, "ERROR: body too large"
                self._continue()
                body = self.rfile.read(int(lengths[0]))
                if len(body) < int(lengths[0]):
                    return 400, "ERROR: body shorter than its Content-Length"
            else:
                body = b""
        except BodyTooLarge:
            return 413, "ERROR: body too large"
        except MalformedBody as err:
            return 400, f"ERROR: {err}"
        except TimeoutError:
            return 408, "ERROR: request not received in time"  # nothing left to drain: no linger
        self.rfile = io.BytesIO(body)
        for name in ("Transfer-Encoding", "Content-Length", "Expect"):
            del self.headers[name]
        self.headers["Content-Length"] = str(len(body))
        return None

    def _continue(self) -> None:
        if self.headers.get("Expect", "").strip().lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _refuse(self, code: int, text: str) -> None:
        """Answer and close; read a little of what the client still sends, so it sees the answer
        rather than a reset, but never the rest of a body refused for its size."""
        body = (text + "\n").encode()
        self.close_connection = True
        try:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.connection.shutdown(socket.SHUT_WR)
            deadline, dropped = time.monotonic() + (LINGER_S if code != 408 else 0), 0
            while dropped < LINGER_BYTES and time.monotonic() < deadline:
                self.connection.settimeout(min(LINGER_SILENCE_S, deadline - time.monotonic()))
                data = self.connection.recv(65536)
                if not data:
                    break
                dropped += len(data)
        except OSError:  # the client is gone, or kept sending past the linger: it is closed either way
            pass

    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())

    def log(self, type: str, message: str, *args: object) -> None:  # noqa: A002 - werkzeug's signature
        log.debug("%s " + message, self.address_string(), *args)


class AdmsServer:
    """``start()`` binds and serves in a thread; port 0 picks a free port."""

    def __init__(
        self,
        receiver: AdmsReceiver,
        host: str,
        port: int,
        *,
        allow_all_interfaces: bool = False,
        limits: Limits | None = None,
    ) -> None:
        if host.strip() in WILDCARDS and not allow_all_interfaces:
            raise ValueError(
                f"ADMS 接收端不能监听所有网卡 ({host!r}): 请填写工厂局域网网卡的地址 / "
                "the ADMS receiver must not listen on every interface: give the plant LAN interface's address"
            )
        self.receiver = receiver
        self.limits = limits or Limits()
        self._bind = (host, port)
        self._server: _Server | None = None
        self.gate: Gate | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the ADMS server is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> AdmsServer:
        host, port = self._bind
        # Bind the socket ourselves: werkzeug's make_server prints and calls sys.exit() on a bind error.
        listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(128)
            app = self.receiver.create_app(max_body_bytes=self.limits.max_body_bytes)
            self._server = _Server(host, app, self.limits, listener.fileno())
        except OSError as err:
            raise OSError(f"ADMS receiver cannot listen on {host}:{port}: {err}") from err
        finally:
            listener.close()  # the server holds its own duplicate of the socket
        self.gate = Gate(self._server.socket, self._serve, self.limits, name="ADMS")
        self.gate.start()
        log.info("ADMS receiver listening on http://%s:%d/iclock/", *self.address)
        return self

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.stop()
        if self._server is not None:
            self._server.server_close()
        self._server = self.gate = None

    def _serve(self, sock: socket.socket, address: Address) -> None:
        assert self._server is not None
        self._server.finish_request(sock, address)  # type: ignore[arg-type]
        self._server.shutdown_request(sock)  # type: ignore[arg-type]

    def __enter__(self) -> AdmsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    receiver: AdmsReceiver,
    host: str,
    port: int = 8081,
    *,
    allow_all_interfaces: bool = False,
    limits: Limits | None = None,
) -> AdmsServer:
    """Serve ``receiver`` on ``host:port`` (the plant-LAN address; see the module docstring)."""
    return AdmsServer(receiver, host, port, allow_all_interfaces=allow_all_interfaces, limits=limits).start()
