"""One client's conversation with the emulated terminal: each request packet to its reply packets.

Behaves as captures of a real F19 show: spec checksums on everything sent, the session id
assigned at connect, the request's reply number echoed, client acknowledgements of live events
never answered, and off-by-one checksums from clients (node-zklib) tolerated and counted.

Users and templates are written as pyzk writes them: CMD_USER_WRQ with one user entry; a buffer
uploaded with CMD_PREPARE_DATA and CMD_DATA chunks, then stored by CMD_SAVE_USERTEMPS;
CMD_DELETE_USER, CMD_DELETE_USERTEMP (slot, finger), CMD_DEL_FPTMP (badge, finger); and
CMD_REFRESHDATA, after which the matcher knows them. All templates are read with a buffered read
of CMD_DB_RRQ (or CMD_USERTEMP_RRQ) and FCT_FINGERTMP, as the protocol notes and pyzk do.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

from firmware_bridge.zk import wire
from firmware_bridge.zk.emulator_state import TerminalState
from firmware_bridge.zk.records import decode_user, parse_template_upload

log = logging.getLogger(__name__)

UDP_DATA_MAX = 1024  # pyzk reads chunked UDP data 1024 payload bytes per datagram
DEVICE_STATE = 2  # what CMD_STATE_RRQ returned on the captured F19 (in the session field)

Reply = Callable[..., bytes]
USER_COMMANDS = frozenset(
    {
        wire.CMD_USER_WRQ,
        wire.CMD_DELETE_USER,
        wire.CMD_DELETE_USERTEMP,
        wire.CMD_DEL_FPTMP,
        wire.CMD_PREPARE_DATA,
        wire.CMD_DATA,
        wire.CMD_SAVE_USERTEMPS,
        wire.CMD_REFRESHDATA,
    }
)


class Session:
    DIRECT_LIMIT = 1016  # larger datasets go the chunked way, as on real terminals (and UDP needs it)

    def __init__(self, state: TerminalState, session_id: int, *, udp: bool = False) -> None:
        self.state = state
        self.session_id = session_id
        self.udp = udp
        self.authenticated = state.comm_key == 0
        self.buffer = b""
        self.upload = bytearray()  # what the client sent with CMD_PREPARE_DATA / CMD_DATA
        self.bad_checksums = 0
        self.event_flags = 0  # what the client registered for with CMD_REG_EVENT

    def handle(self, request: wire.Packet) -> list[bytes]:
        if not request.checksum_ok:
            # Some clients send spec-1; real terminals answer anyway. Count it, do not drop it.
            self.bad_checksums += 1
            with self.state.lock:
                self.state.bad_checksums += 1
        command, reply_id = request.command, request.reply_id

        def reply(code: int, payload: bytes = b"", session_id: int | None = None) -> bytes:
            return wire.packet(code, self.session_id if session_id is None else session_id, reply_id, payload)

        if command == wire.CMD_ACK_OK:
            with self.state.lock:
                self.state.events_acked += 1
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

    def _dispatch(self, command: int, payload: bytes, reply: Reply) -> list[bytes]:
        state = self.state
        if command in (
            wire.CMD_EXIT,
            wire.CMD_CANCELCAPTURE,
            wire.CMD_STARTVERIFY,
            wire.CMD_OPTIONS_WRQ,
        ):
            return [reply(wire.CMD_ACK_OK)]
        if command == wire.CMD_FREE_DATA:
            self.buffer = b""
            self.upload = bytearray()
            return [reply(wire.CMD_ACK_OK)]
        if command in USER_COMMANDS:
            return [reply(wire.CMD_ACK_OK if self._write(command, payload) else wire.CMD_ACK_ERROR)]
        if command == wire.CMD_REG_EVENT:
            self.event_flags = struct.unpack_from("<I", payload.ljust(4, b"\x00"))[0]
            return [reply(wire.CMD_ACK_OK)]
        if command in (wire.CMD_ENABLEDEVICE, wire.CMD_DISABLEDEVICE):
            state.enabled = command == wire.CMD_ENABLEDEVICE
            return [reply(wire.CMD_ACK_OK)]
        if command == wire.CMD_GET_VERSION:
            return [reply(wire.CMD_ACK_OK, state.firmware.encode() + b"\x00")]
        if command == wire.CMD_STATE_RRQ:
            return [reply(wire.CMD_ACK_OK, session_id=DEVICE_STATE)]
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
            state.set_device_time(wire.decode_time(struct.unpack_from("<I", payload)[0]))
            return [reply(wire.CMD_ACK_OK)]
        if command == wire.CMD_CLEAR_ATTLOG:
            state.clear_log()
            return [reply(wire.CMD_ACK_OK)]
        if command == wire.CMD_PREPARE_BUFFER:
            return self._prepare_buffer(payload, reply)
        if command == wire.CMD_READ_BUFFER:
            return self._read_buffer(payload, reply)
        if command in (wire.CMD_ACK_ERROR, wire.CMD_ACK_UNKNOWN):
            return [reply(wire.CMD_ACK_OK)]  # pyzk's _clear_error sends these as commands
        return [reply(wire.CMD_ACK_UNKNOWN)]

    def _write(self, command: int, payload: bytes) -> bool:
        """A user or template command; False when the terminal refuses it (answered ACK_ERROR)."""
        state = self.state
        try:
            if command == wire.CMD_USER_WRQ:
                return state.write_user(decode_user(payload, state.encoding))
            if command == wire.CMD_DELETE_USER:
                return state.delete_user(struct.unpack_from("<H", payload)[0])
            if command == wire.CMD_DELETE_USERTEMP:
                uid, finger = struct.unpack_from("<HB", payload)
                return state.delete_template(uid, finger)
            if command == wire.CMD_DEL_FPTMP:
                badge, finger = struct.unpack_from("<24sB", payload)
                user = state.user(badge.split(b"\x00", 1)[0].decode("ascii", errors="replace"))
                return user is not None and state.delete_template(user.uid, finger)
            if command == wire.CMD_PREPARE_DATA:  # an upload begins: its size
                self.upload = bytearray()
                return len(payload) >= 4
            if command == wire.CMD_DATA:  # a chunk of it
                self.upload += payload
                return True
            if command == wire.CMD_SAVE_USERTEMPS:
                user, fingers = parse_template_upload(bytes(self.upload), state.encoding)
                return state.save_templates(user, fingers)
            state.refresh()  # CMD_REFRESHDATA
            return True
        except (struct.error, ValueError, UnicodeDecodeError) as err:
            log.warning("refusing command %d: %s", command, err)
            return False

    def _prepare_buffer(self, payload: bytes, reply: Reply) -> list[bytes]:
        _flag, inner, fct, _ext = struct.unpack_from("<bhii", payload)
        if inner == wire.CMD_ATTLOG_RRQ:
            buffer = self.state.attendance_buffer()
        elif fct == wire.FCT_FINGERTMP and inner in (wire.CMD_DB_RRQ, wire.CMD_USERTEMP_RRQ):
            buffer = self.state.template_buffer()
        elif inner == wire.CMD_USERTEMP_RRQ:
            buffer = self.state.user_buffer()
        else:
            return [reply(wire.CMD_ACK_ERROR)]
        if len(buffer) <= self.DIRECT_LIMIT:
            return [reply(wire.CMD_DATA, buffer)]
        self.buffer = buffer
        return [reply(wire.CMD_ACK_OK, b"\x00" + struct.pack("<III", len(buffer), len(buffer), 0))]

    def _read_buffer(self, payload: bytes, reply: Reply) -> list[bytes]:
        start, size = struct.unpack_from("<ii", payload)
        chunk = self.buffer[start : start + size]
        prepare = reply(wire.CMD_PREPARE_DATA, struct.pack("<II", len(chunk), 0))
        if self.udp:
            parts = [chunk[i : i + UDP_DATA_MAX] for i in range(0, len(chunk), UDP_DATA_MAX)]
            return [prepare, *(reply(wire.CMD_DATA, part) for part in parts), reply(wire.CMD_ACK_OK)]
        return [prepare, reply(wire.CMD_DATA, chunk), reply(wire.CMD_ACK_OK)]
