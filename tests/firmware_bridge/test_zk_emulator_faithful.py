"""The emulator as any ZK client sees it on the wire: golden frames from a real F19 checked both ways.

Frames are from the captures in adrobinoga/zk-protocol (see ../shared/DEVICES.md §1-2); each test
speaks raw bytes over a real socket, so nothing of our client code is between the test and the wire.
"""

import socket
import struct
import threading
from datetime import datetime

import pytest

from firmware_bridge.errors import TerminalProtocolError
from firmware_bridge.zk import wire
from firmware_bridge.zk.emulator_session import Session
from firmware_bridge.zk.emulator_state import TerminalState
from firmware_bridge.zk.session import ZKSession
from tests.conftest import PLANT_TZ

# ~Platform-style option read captured on the F19: OPTIONS_RRQ "~OS", session 0xC0C5, reply number 5
GOLDEN_OS_REQUEST = "5050827d0c0000000b0058efc5c005007e4f5300"
# CMD_STATE_RRQ answered by the F19: ACK_OK, state 2 in the session field, reply number 0x37
GOLDEN_STATE_REPLY = "5050827d08000000d007f6f702003700"
# EF_ATTLOG event: user 999111333, verify 1, state 0, 2018-06-25 17:41:05
GOLDEN_ATTLOG_EVENT = "5050827d28000000f401ac1201000000" + "393939313131333333".ljust(48, "0") + "0100" + "120619112905"
# pyzk 0.9's first packet: CMD_CONNECT, session 0, reply number 0
GOLDEN_CONNECT = "5050827d08000000e80317fc00000000"


class RawClient:
    """A bare TCP peer: bytes out, frames in."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=3)
        self.deframer = wire.TcpDeframer()

    def send(self, frame: bytes) -> None:
        self.sock.sendall(frame)

    def frames(self) -> list[bytes]:
        """The frames of one recv(), as they arrived (several if the sender coalesced them)."""
        data = self.sock.recv(65536)
        frames, offset = [], 0
        while offset < len(data):
            length = struct.unpack_from("<I", data, offset + 4)[0]
            frames.append(data[offset : offset + 8 + length])
            offset += 8 + length
        return frames

    def request(self, command: int, session_id: int, reply_id: int, payload: bytes = b"") -> wire.Packet:
        self.send(wire.tcp_frame(wire.packet(command, session_id, reply_id, payload)))
        (frame,) = self.frames()
        return wire.parse_packet(frame[8:])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(zk_terminal):
    client = RawClient(zk_terminal.address)
    yield client
    client.close()


def test_golden_connect_gets_a_session_id_and_the_reply_number_echoed(raw):
    raw.send(bytes.fromhex(GOLDEN_CONNECT))
    (frame,) = raw.frames()
    reply = wire.parse_packet(frame[8:])
    assert frame[:4] == wire.TCP_MAGIC and struct.unpack_from("<I", frame, 4)[0] == len(frame) - 8
    assert reply.command == wire.CMD_ACK_OK and reply.session_id != 0 and reply.reply_id == 0
    assert reply.checksum_ok


def test_golden_option_request_parses_and_is_answered_in_kind():
    (request,) = wire.TcpDeframer().feed(bytes.fromhex(GOLDEN_OS_REQUEST))
    assert (request.command, request.session_id, request.reply_id, request.payload) == (11, 0xC0C5, 5, b"~OS\x00")
    assert request.checksum_ok
    session = Session(TerminalState(serial="S", tz=PLANT_TZ), 0xC0C5)
    (reply_body,) = session.handle(request)
    reply = wire.parse_packet(reply_body)
    assert (reply.command, reply.session_id, reply.reply_id, reply.payload) == (2000, 0xC0C5, 5, b"~OS=1\x00")
    assert reply.checksum_ok and session.bad_checksums == 0


def test_state_reply_is_byte_identical_to_the_capture(raw):
    session_id = raw.request(wire.CMD_CONNECT, 0, 0).session_id
    raw.send(wire.tcp_frame(wire.packet(wire.CMD_STATE_RRQ, session_id, 0x37)))
    assert raw.frames() == [bytes.fromhex(GOLDEN_STATE_REPLY)]


def test_live_attlog_event_is_byte_identical_to_the_capture(raw, terminal_state):
    session_id = raw.request(wire.CMD_CONNECT, 0, 0).session_id
    assert raw.request(wire.CMD_REG_EVENT, session_id, 1, struct.pack("<I", wire.EF_ATTLOG)).command == 2000
    terminal_state.punch("999111333", verify=1, state=0, when=datetime(2018, 6, 25, 17, 41, 5))
    assert raw.frames() == [bytes.fromhex(GOLDEN_ATTLOG_EVENT)]


def test_two_punches_together_leave_in_one_segment(raw, terminal_state):
    session_id = raw.request(wire.CMD_CONNECT, 0, 0).session_id
    raw.request(wire.CMD_REG_EVENT, session_id, 1, struct.pack("<I", wire.EF_ATTLOG))
    when = datetime(2026, 3, 2, 7, 59)
    terminal_state.punch_together([("1001", 0, 1, when, 0), ("1002", 0, 1, when, 0)])
    frames = raw.frames()
    assert len(frames) == 2, "both events must arrive in one read, as at a real shift change"
    assert all(wire.parse_packet(f[8:]).checksum_ok for f in frames)


def test_off_by_one_checksums_from_clients_are_answered(raw, terminal_state):
    body = bytearray(wire.packet(wire.CMD_CONNECT, 0, 0))
    check = struct.unpack_from("<H", body, 2)[0]
    struct.pack_into("<H", body, 2, (check - 1) & 0xFFFF)  # node-zklib's 65534 - s
    raw.send(wire.tcp_frame(bytes(body)))
    (frame,) = raw.frames()
    reply = wire.parse_packet(frame[8:])
    assert reply.command == wire.CMD_ACK_OK and reply.checksum_ok
    assert terminal_state.bad_checksums == 1


def test_every_reply_of_a_long_conversation_has_the_spec_checksum(zk_terminal, terminal_state):
    for _ in range(200):
        terminal_state.punch("1001")
    host, port = zk_terminal.address
    session = ZKSession(host, port, timeout=3)
    session.open()
    try:
        for command in (wire.CMD_GET_VERSION, wire.CMD_GET_FREE_SIZES, wire.CMD_GET_TIME, wire.CMD_STATE_RRQ):
            assert session.request(command).command == wire.CMD_ACK_OK
        assert session.option("~SerialNumber") == "TEST-ZK-01"
        request = struct.pack("<bhii", 1, wire.CMD_ATTLOG_RRQ, 0, 0)
        assert session.request(wire.CMD_PREPARE_BUFFER, request).command == wire.CMD_ACK_OK  # chunked
    finally:
        session.close()
    assert session.tolerated_checksums == 0  # our session raises on anything but spec (or spec - 1)


def test_garbage_frames_are_a_clear_protocol_error():
    server = socket.create_server(("127.0.0.1", 0))
    host, port = server.getsockname()
    session = ZKSession(host, port, timeout=2)

    def garbage():
        conn, _ = server.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(wire.TCP_MAGIC + struct.pack("<I", 8) + b"\xd0\x07\x00\x00\x01\x00\x00\x00")  # bad sum

    threading.Thread(target=garbage, daemon=True).start()
    with pytest.raises(TerminalProtocolError, match="wrong checksum"):
        session.open()
    server.close()
