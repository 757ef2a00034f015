"""An emulated ZK terminal that real ZK clients (pyzk, the vendor SDK) talk to unchanged.

It answers the commands a time-and-attendance client uses (connect with comm key, options,
sizes, time, users and attendance by direct or chunked buffered read, enable/disable, clear)
with spec checksums, echoed reply numbers and a session id assigned at connect, and it
tolerates the off-by-one checksums some clients send.
"""

from __future__ import annotations

import itertools
import logging
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from firmware_bridge.zk import wire
from firmware_bridge.zk.records import UserRecord, encode_attendance_40, encode_user_72

log = logging.getLogger(__name__)

FREE_SIZES_INTS = 23


@dataclass(frozen=True, slots=True)
class StoredPunch:
    uid: int
    user_id: str
    time: datetime  # naive: the terminal's clock
    verify: int
    state: int
    raw: bytes | None = None  # a record stored verbatim (e.g. a corrupt one), for fault tests

    def encode(self) -> bytes:
        return (
            self.raw
            if self.raw is not None
            else encode_attendance_40(self.uid, self.user_id, self.time, self.verify, self.state)
        )


@dataclass
class TerminalState:
    """What the emulated terminal holds. Every method is safe to call from any thread."""

    serial: str
    tz: tzinfo
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    comm_key: int = 0
    clock_offset: timedelta = timedelta(0)
    encoding: str = "gbk"
    record_capacity: int = 200_000
    platform: str = "ZEM560_TFT"
    firmware: str = "Ver 6.60 Apr 28 2015"
    users: list[UserRecord] = field(default_factory=list)
    punches: list[StoredPunch] = field(default_factory=list)
    enabled: bool = True
    log_transfers: int = 0  # how often a client downloaded the attendance log
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def device_now(self) -> datetime:
        return (self.now() + self.clock_offset).astimezone(self.tz).replace(tzinfo=None, microsecond=0)

    def add_user(self, user_id: str, name: str) -> UserRecord:
        with self.lock:
            user = UserRecord(uid=len(self.users) + 1, user_id=user_id, name=name)
            self.users.append(user)
            return user

    def punch(self, user_id: str, *, state: int = 0, verify: int = 1, when: datetime | None = None) -> StoredPunch:
        """A worker presents a finger at the terminal: the punch goes into the terminal's log."""
        with self.lock:
            uid = next((u.uid for u in self.users if u.user_id == user_id), 0)
            stored = StoredPunch(uid, user_id, when or self.device_now(), verify, state)
            self.punches.append(stored)
            return stored

    def store_raw(self, raw: bytes) -> None:
        """Put a record into the log exactly as given, as a faulty terminal might."""
        with self.lock:
            self.punches.append(StoredPunch(0, "", datetime(2000, 1, 1), 0, 0, raw=raw))

    def attendance_buffer(self) -> bytes:
        with self.lock:
            self.log_transfers += 1
            body = b"".join(p.encode() for p in self.punches)
        return struct.pack("<I", len(body)) + body

    def user_buffer(self) -> bytes:
        with self.lock:
            body = b"".join(encode_user_72(u, self.encoding) for u in self.users)
        return struct.pack("<I", len(body)) + body

    def free_sizes(self) -> bytes:
        ints = [0] * FREE_SIZES_INTS
        with self.lock:
            ints[4], ints[8] = len(self.users), len(self.punches)
            ints[14], ints[15], ints[16] = 3000, 3000, self.record_capacity
            ints[17], ints[18], ints[19] = 3000, 3000 - len(self.users), self.record_capacity - len(self.punches)
        return struct.pack(f"<{FREE_SIZES_INTS}i", *ints)

    def options(self) -> dict[bytes, bytes]:
        return {
            b"~SerialNumber": self.serial.encode(),
            b"~Platform": self.platform.encode(),
            b"~DeviceName": b"F19",
            b"MAC": b"00:17:61:12:34:56",
            b"ZKFaceVersion": b"0",
            b"~ZKFPVersion": b"10",
            b"~ExtendFmt": b"1",
            b"~UserExtFmt": b"1",
            b"FaceFunOn": b"0",
            b"CompatOldFirmware": b"0",
            b"IPAddress": b"127.0.0.1",
            b"NetMask": b"255.255.255.0",
            b"GATEIPAddress": b"0.0.0.0",
            b"~OS": b"1",
        }


class Session:
    """One client's conversation: turns each request packet into the reply packets to send."""

    DIRECT_LIMIT = 1016  # larger datasets go the chunked way, as on real terminals

    def __init__(self, state: TerminalState, session_id: int) -> None:
        self.state = state
        self.session_id = session_id
        self.authenticated = state.comm_key == 0
        self.buffer = b""
        self.bad_checksums = 0

    def handle(self, request: wire.Packet) -> list[bytes]:
        if not request.checksum_ok:
            # Some clients send spec-1; real terminals answer anyway. Count it, do not drop it.
            self.bad_checksums += 1
        command, reply_id = request.command, request.reply_id

        def reply(code: int, payload: bytes = b"") -> bytes:
            return wire.packet(code, self.session_id, reply_id, payload)

        if command == wire.CMD_ACK_OK:
            return []  # a client acknowledging a live event: never answered
        if command == wire.CMD_CONNECT:
            return [reply(wire.CMD_ACK_OK if self.authenticated else wire.CMD_ACK_UNAUTH)]
        if command == wire.CMD_AUTH:
            payload = request.payload[:4]
            ticks = payload[2] if len(payload) == 4 else 0
            self.authenticated = payload == wire.make_commkey(self.state.comm_key, self.session_id, ticks)
            return [reply(wire.CMD_ACK_OK if self.authenticated else wire.CMD_ACK_UNAUTH)]
        if not self.authenticated:
            return [reply(wire.CMD_ACK_UNAUTH)]
        return self._dispatch(command, request.payload, reply)

    def _dispatch(self, command: int, payload: bytes, reply: Callable[..., bytes]) -> list[bytes]:
        state = self.state
        if command in (
            wire.CMD_EXIT,
            wire.CMD_REFRESHDATA,
            wire.CMD_FREE_DATA,
            wire.CMD_CANCELCAPTURE,
            wire.CMD_STARTVERIFY,
            wire.CMD_REG_EVENT,
            wire.CMD_OPTIONS_WRQ,
        ):
            if command == wire.CMD_FREE_DATA:
                self.buffer = b""
            return [reply(wire.CMD_ACK_OK)]
        if command in (wire.CMD_ENABLEDEVICE, wire.CMD_DISABLEDEVICE):
            state.enabled = command == wire.CMD_ENABLEDEVICE
            return [reply(wire.CMD_ACK_OK)]
        if command == wire.CMD_GET_VERSION:
            return [reply(wire.CMD_ACK_OK, state.firmware.encode() + b"\x00")]
        if command == wire.CMD_OPTIONS_RRQ:
            key = payload.split(b"\x00", 1)[0]
            value = state.options().get(key)
            if value is None:
                return [reply(wire.CMD_ACK_ERROR)]
            return [reply(wire.CMD_ACK_OK, key + b"=" + value + b"\x00")]
        if command == wire.CMD_GET_FREE_SIZES:
            return [reply(wire.CMD_ACK_OK, state.free_sizes())]
        if command == wire.CMD_GET_TIME:
            return [reply(wire.CMD_ACK_OK, struct.pack("<I", wire.encode_time(state.device_now())))]
        if command == wire.CMD_SET_TIME:
            wanted = wire.decode_time(struct.unpack_from("<I", payload)[0]).replace(tzinfo=state.tz)
            state.clock_offset = wanted - state.now().replace(microsecond=0)
            return [reply(wire.CMD_ACK_OK)]
        if command == wire.CMD_CLEAR_ATTLOG:
            with state.lock:
                state.punches.clear()
            return [reply(wire.CMD_ACK_OK)]
        if command == wire.CMD_PREPARE_BUFFER:
            return self._prepare_buffer(payload, reply)
        if command == wire.CMD_READ_BUFFER:
            start, size = struct.unpack_from("<ii", payload)
            chunk = self.buffer[start : start + size]
            return [
                reply(wire.CMD_PREPARE_DATA, struct.pack("<II", len(chunk), 0)),
                reply(wire.CMD_DATA, chunk),
                reply(wire.CMD_ACK_OK),
            ]
        if command in (wire.CMD_ACK_ERROR, wire.CMD_ACK_UNKNOWN):
            return [reply(wire.CMD_ACK_OK)]  # pyzk's _clear_error sends these as commands
        return [reply(wire.CMD_ACK_UNKNOWN)]

    def _prepare_buffer(self, payload: bytes, reply: Callable[..., bytes]) -> list[bytes]:
        _flag, inner, _fct, _ext = struct.unpack_from("<bhii", payload)
        if inner == wire.CMD_ATTLOG_RRQ:
            buffer = self.state.attendance_buffer()
        elif inner == wire.CMD_USERTEMP_RRQ:
            buffer = self.state.user_buffer()
        else:
            return [reply(wire.CMD_ACK_ERROR)]
        if len(buffer) <= self.DIRECT_LIMIT:
            return [reply(wire.CMD_DATA, buffer)]
        self.buffer = buffer
        return [reply(wire.CMD_ACK_OK, b"\x00" + struct.pack("<III", len(buffer), len(buffer), 0))]


class ZKEmulator:
    """Serves a ``TerminalState`` over TCP. ``start()`` binds; port 0 picks a free port."""

    def __init__(self, state: TerminalState, host: str = "127.0.0.1", port: int = 4370) -> None:
        self.state = state
        self._bind = (host, port)
        self._server: socket.socket | None = None
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

    def start(self) -> ZKEmulator:
        server = socket.create_server(self._bind, reuse_port=False)
        server.settimeout(0.2)
        self._server = server
        thread = threading.Thread(target=self._accept_loop, name="zk-emulator", daemon=True)
        thread.start()
        self._threads.append(thread)
        log.info("ZK terminal %s listening on %s:%d", self.state.serial, *self.address)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._server is not None:
            self._server.close()

    def __enter__(self) -> ZKEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stopping.is_set():
            try:
                conn, _peer = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            worker = threading.Thread(target=self._serve, args=(conn,), name="zk-emulator-conn", daemon=True)
            worker.start()
            self._threads = [t for t in self._threads if t.is_alive()] + [worker]

    def _serve(self, conn: socket.socket) -> None:
        session = Session(self.state, next(self._session_ids) & 0xFFFF)
        deframer = wire.TcpDeframer()
        conn.settimeout(0.2)
        with conn:
            while not self._stopping.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                try:
                    packets = deframer.feed(data)
                except ValueError as err:
                    log.warning("dropping connection: %s", err)
                    return
                for request in packets:
                    for body in session.handle(request):
                        conn.sendall(wire.tcp_frame(body))
                    if request.command == wire.CMD_EXIT:
                        return
