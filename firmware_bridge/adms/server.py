"""Serving the ADMS receiver on one interface of the appliance: the plant LAN's.

Terminals authenticate by nothing but the serial number in the URL, so anyone who can reach
the port can push punches for a known terminal. Bind the address of the Pi's plant-LAN
interface (e.g. ``192.168.10.2``), never every interface: ``0.0.0.0``/``::`` are refused unless
the caller says ``allow_all_interfaces=True`` (a lab, or a Pi with a single, plant-only NIC).

The receiver runs in the appliance daemon (which owns the database writes), on werkzeug's
threaded server: a plant has tens of terminals, each polling every few seconds.
"""

from __future__ import annotations

import logging
import socket
import threading

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from firmware_bridge.adms.receiver import AdmsReceiver

log = logging.getLogger(__name__)

WILDCARDS = {"", "0.0.0.0", "::", "*", "[::]"}  # noqa: S104 - listed to be refused


class _Handler(WSGIRequestHandler):
    """Leaves the ``Date`` header to the app (from the receiver's clock) and logs at debug level:
    terminals poll every few seconds and would drown the journal."""

    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())

    def log(self, type: str, message: str, *args: object) -> None:  # noqa: A002 - werkzeug's signature
        log.debug("%s " + message, self.address_string(), *args)


class AdmsServer:
    """``start()`` binds and serves in a thread; port 0 picks a free port."""

    def __init__(self, receiver: AdmsReceiver, host: str, port: int, *, allow_all_interfaces: bool = False) -> None:
        if host.strip() in WILDCARDS and not allow_all_interfaces:
            raise ValueError(
                f"ADMS 接收端不能监听所有网卡 ({host!r}): 请填写工厂局域网网卡的地址 / "
                "the ADMS receiver must not listen on every interface: give the plant LAN interface's address"
            )
        self.receiver = receiver
        self._bind = (host, port)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

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
            self._server = make_server(
                host, port, self.receiver.create_app(), threaded=True, request_handler=_Handler, fd=listener.fileno()
            )
        except OSError as err:
            raise OSError(f"ADMS receiver cannot listen on {host}:{port}: {err}") from err
        finally:
            listener.close()  # make_server holds its own duplicate of the socket
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="adms-receiver", daemon=True
        )
        self._thread.start()
        log.info("ADMS receiver listening on http://%s:%d/iclock/", *self.address)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> AdmsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(receiver: AdmsReceiver, host: str, port: int = 8081, *, allow_all_interfaces: bool = False) -> AdmsServer:
    """Serve ``receiver`` on ``host:port`` (the plant-LAN address; see the module docstring)."""
    return AdmsServer(receiver, host, port, allow_all_interfaces=allow_all_interfaces).start()
