"""An emulated ZK terminal that real ZK clients (pyzk, the vendor SDK) talk to unchanged.

It serves a ``TerminalState`` on TCP and, like real terminals, on UDP at the same port number.
Sessions registered for events (CMD_REG_EVENT) get every punch as an EF_ATTLOG event; punches
made together leave in one write (one TCP segment), as at a shift change. Faults for tests:
``drop_connections()`` (the link goes down), ``TerminalState.reset_mid_transfer``, corrupt records,
``TerminalState.clear_log()`` (an admin clears the log at the terminal, behind the readers' backs).

A client that stops reading is held under TCP flow control, as a real terminal holds it: the
reply waits in the socket buffers for as long as the client reads nothing, and the terminal gives
up only when a send has made no progress for ``send_idle_s`` (60 s by default). A send waiting
longer than ``SLOW_READER_NOTICE_S`` is logged once, so whoever tests a tool sees that it stalled.
``stop()`` and ``drop_connections()`` still end every connection within ``POLL_S``.
"""

from __future__ import annotations

import itertools
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from firmware_bridge.zk import wire
from firmware_bridge.zk.emulator_session import Session
from firmware_bridge.zk.emulator_state import StoredPunch, TerminalState

__all__ = ["StoredPunch", "TerminalState", "ZKEmulator"]

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often a waiting socket operation looks at the stop flag
SEND_IDLE_S = 60.0  # a send that makes no progress this long: the terminal gives the client up
SLOW_READER_NOTICE_S = 0.5  # a send waiting this long is logged (once a send)


class ClientGone(ConnectionAbortedError):
    """The emulator stopped, the connection was dropped, or the client read nothing for too long."""


@dataclass
class _TcpClient:
    sock: socket.socket
    session: Session
    peer: str = ""
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    dropped: threading.Event = field(default_factory=threading.Event)

    def send(self, data: bytes, *, stopping: threading.Event, idle_s: float, clock: Callable[[], float]) -> None:
        """All of ``data``, waiting under flow control while the client does not read.

        The socket keeps its ``POLL_S`` timeout (it bounds each wait, not the send), so a stop or a
        drop is seen within ``POLL_S``; ``ClientGone`` after ``idle_s`` without a byte accepted."""
        view = memoryview(data)
        with self.send_lock:
            since = clock()
            noticed = False
            while view:
                if stopping.is_set() or self.dropped.is_set():
                    raise ClientGone(f"client {self.peer}: connection closed with {len(view)} bytes unsent")
                try:
                    sent = self.sock.send(view)
                except TimeoutError:
                    waited = clock() - since
                    if waited >= idle_s:
                        log.warning(
                            "client %s read nothing for %.0f s (%d bytes unsent): giving it up",
                            self.peer,
                            waited,
                            len(view),
                        )
                        _reset(self.sock)  # a reset, not an orderly end: pyzk spins on the latter mid-transfer
                        raise ClientGone(f"client {self.peer} read nothing for {waited:.0f} s") from None
                    if not noticed and waited >= SLOW_READER_NOTICE_S:
                        noticed = True
                        log.info(
                            "client %s is not reading (%d bytes unsent): waiting under TCP flow control, "
                            "as a terminal does; giving up after %.0f s without progress",
                            self.peer,
                            len(view),
                            idle_s,
                        )
                    continue
                view = view[sent:]
                since = clock()


class ZKEmulator:
    """``start()`` binds; port 0 picks a free port (UDP then takes the same number)."""

    def __init__(
        self,
        state: TerminalState,
        host: str = "127.0.0.1",
        port: int = 4370,
        *,
        udp: bool = True,
        send_idle_s: float = SEND_IDLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.send_idle_s = send_idle_s
        self._clock = clock
        self._bind = (host, port)
        self._serve_udp = udp
        self._server: socket.socket | None = None
        self._udp: socket.socket | None = None
        self._udp_sessions: dict[tuple[str, int], Session] = {}
        self._clients: list[_TcpClient] = []
        self._clients_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._session_ids = itertools.count(0x8DF3)
        self.connections = 0

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.getsockname()[:2]
        return host, port

    @property
    def live_sessions(self) -> int:
        """How many clients are registered for attendance events right now."""
        with self._clients_lock:
            tcp = sum(1 for c in self._clients if c.session.event_flags & wire.EF_ATTLOG)
        return tcp + sum(1 for s in list(self._udp_sessions.values()) if s.event_flags & wire.EF_ATTLOG)

    def start(self) -> ZKEmulator:
        self._stopping.clear()
        self._server = socket.create_server(self._bind)
        self._server.settimeout(POLL_S)
        self._spawn(self._accept_loop, "zk-emulator")
        if self._serve_udp:
            self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._udp.bind(self.address)
            self._udp.settimeout(POLL_S)
            self._spawn(self._udp_loop, "zk-emulator-udp")
        self.state.subscribe(self._announce)
        log.info("ZK terminal %s listening on %s:%d", self.state.serial, *self.address)
        return self

    def stop(self) -> None:
        self.state.unsubscribe(self._announce)
        self._stopping.set()
        self.drop_connections()
        for thread in self._threads:
            thread.join(timeout=5)
        for sock in (self._server, self._udp):
            if sock is not None:
                sock.close()

    def drop_connections(self) -> None:
        """Reset every open TCP connection, as a cable pulled or a terminal rebooting would."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.dropped.set()  # a send waiting on a client that does not read ends at its next poll
            _reset(client.sock)
        self._udp_sessions.clear()

    def __enter__(self) -> ZKEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _announce(self, punches: list[StoredPunch]) -> None:
        """Send each punch as an EF_ATTLOG event (cmd 500, event code in the session field, reply 0)."""
        size = self.state.live_event_size
        events = [wire.packet(wire.CMD_REG_EVENT, wire.EF_ATTLOG, 0, p.live_event(size)) for p in punches]
        with self._clients_lock:
            clients = [c for c in self._clients if c.session.event_flags & wire.EF_ATTLOG]
        for client in clients:
            try:
                self._send(client, b"".join(wire.tcp_frame(e) for e in events))  # one write: one segment
            except OSError as err:
                log.debug("live event not sent: %s", err)
                continue
            with self.state.lock:
                self.state.events_sent += len(events)
        for addr, session in list(self._udp_sessions.items()):
            if session.event_flags & wire.EF_ATTLOG and self._udp is not None:
                for event in events:
                    self._udp.sendto(event, addr)
                with self.state.lock:
                    self.state.events_sent += len(events)

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stopping.is_set():
            try:
                conn, addr = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            peer = f"{addr[0]}:{addr[1]}"
            client = _TcpClient(conn, Session(self.state, next(self._session_ids) & 0xFFFF), peer)
            with self._clients_lock:
                self._clients.append(client)
            self._spawn(self._serve, "zk-emulator-conn", client)

    def _serve(self, client: _TcpClient) -> None:
        deframer = wire.TcpDeframer()
        client.sock.settimeout(POLL_S)
        try:
            while not self._stopping.is_set():
                try:
                    data = client.sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                try:
                    packets = deframer.feed(data)
                except ValueError as err:
                    log.warning("dropping connection: %s", err)
                    return
                for request in packets:
                    for body in client.session.handle(request):
                        if self.state.reset_mid_transfer and _is_big_data(body):
                            self._send(client, wire.tcp_frame(body)[: len(body) // 2])
                            _reset(client.sock)
                            return
                        self._send(client, wire.tcp_frame(body))
                    if request.command == wire.CMD_EXIT:
                        return
        except OSError as err:
            log.debug("connection ended: %s", err)
        finally:
            with self._clients_lock:
                if client in self._clients:
                    self._clients.remove(client)
            client.sock.close()

    def _send(self, client: _TcpClient, data: bytes) -> None:
        client.send(data, stopping=self._stopping, idle_s=self.send_idle_s, clock=self._clock)

    def _udp_loop(self) -> None:
        assert self._udp is not None
        while not self._stopping.is_set():
            try:
                data, addr = self._udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                request = wire.parse_packet(data)
            except ValueError as err:
                log.warning("ignoring a datagram from %s: %s", addr, err)
                continue
            session = self._udp_sessions.get(addr)
            if session is None or request.command == wire.CMD_CONNECT:
                session = Session(self.state, next(self._session_ids) & 0xFFFF, udp=True)
                self._udp_sessions[addr] = session
            try:
                for body in session.handle(request):
                    self._udp.sendto(body, addr)
            except OSError as err:
                log.debug("UDP reply to %s not sent: %s", addr, err)
            if request.command == wire.CMD_EXIT:
                self._udp_sessions.pop(addr, None)


def _is_big_data(body: bytes) -> bool:
    return len(body) > 1024 and struct.unpack_from("<H", body)[0] == wire.CMD_DATA


def _reset(sock: socket.socket) -> None:
    """Make the coming close a reset (linger 0: RST, not FIN) and wake the thread serving it.

    A reset, because pyzk 0.9 spins forever on an orderly end in the middle of a transfer.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)  # wakes recv() in the serving thread, which then closes
    except OSError as err:
        log.debug("reset: %s", err)
