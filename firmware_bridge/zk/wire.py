"""ZK protocol framing: header, checksum, TCP prefix, comm key and the 31-day-month clock.

Layouts follow the reverse-engineered protocol notes (adrobinoga/zk-protocol) and pyzk 0.9;
the golden frames in ``tests/firmware_bridge/test_zk_wire.py`` come from captures of a real F19.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

USHRT_MAX = 0xFFFF
TCP_MAGIC = b"\x50\x50\x82\x7d"

CMD_CONNECT = 1000
CMD_EXIT = 1001
CMD_ENABLEDEVICE = 1002
CMD_DISABLEDEVICE = 1003
CMD_RESTART = 1004
CMD_REFRESHDATA = 1013
CMD_GET_VERSION = 1100
CMD_AUTH = 1102
CMD_OPTIONS_RRQ = 11
CMD_OPTIONS_WRQ = 12
CMD_DB_RRQ = 7  # inner command of a buffered read of all templates (with FCT_FINGERTMP)
CMD_USER_WRQ = 8  # write one user entry (create or overwrite by uid)
CMD_USERTEMP_RRQ = 9
CMD_DELETE_USER = 18  # delete a user by uid (and the user's templates)
CMD_DELETE_USERTEMP = 19  # delete one template: uid, finger
CMD_SAVE_USERTEMPS = 110  # store the uploaded user and templates (pyzk's save_user_template)
CMD_DEL_FPTMP = 134  # delete one template: badge (24 bytes), finger
CMD_ATTLOG_RRQ = 13
CMD_CLEAR_DATA = 14
CMD_CLEAR_ATTLOG = 15
CMD_GET_FREE_SIZES = 50
CMD_STARTVERIFY = 60
CMD_CANCELCAPTURE = 62
CMD_STATE_RRQ = 64
CMD_GET_TIME = 201
CMD_SET_TIME = 202
CMD_REG_EVENT = 500
CMD_PREPARE_DATA = 1500
CMD_DATA = 1501
CMD_FREE_DATA = 1502
CMD_PREPARE_BUFFER = 1503
CMD_READ_BUFFER = 1504
CMD_ACK_OK = 2000
CMD_ACK_ERROR = 2001
CMD_ACK_DATA = 2002
CMD_ACK_UNAUTH = 2005
CMD_ACK_UNKNOWN = 0xFFFF

FCT_FINGERTMP = 2
FCT_USER = 5
EF_ATTLOG = 1

HEADER = struct.Struct("<4H")
TCP_TOP = struct.Struct("<4sI")


@dataclass(frozen=True, slots=True)
class Packet:
    command: int
    checksum: int
    session_id: int
    reply_id: int
    payload: bytes

    @property
    def checksum_ok(self) -> bool:
        return self.checksum == checksum(HEADER.pack(self.command, 0, self.session_id, self.reply_id) + self.payload)


def checksum(data: bytes) -> int:
    """The protocol's 16-bit one's-complement sum (spec; real terminals emit this)."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(word for (word,) in struct.iter_unpack("<H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total ^ 0xFFFF


def packet(command: int, session_id: int, reply_id: int, payload: bytes = b"") -> bytes:
    """Header + payload with the spec checksum (a UDP datagram, or the body of a TCP frame)."""
    check = checksum(HEADER.pack(command, 0, session_id, reply_id) + payload)
    return HEADER.pack(command, check, session_id, reply_id) + payload


def tcp_frame(body: bytes) -> bytes:
    return TCP_TOP.pack(TCP_MAGIC, len(body)) + body


def parse_packet(body: bytes) -> Packet:
    if len(body) < HEADER.size:
        raise ValueError(f"packet of {len(body)} bytes is shorter than the 8-byte header")
    command, check, session_id, reply_id = HEADER.unpack_from(body)
    return Packet(command, check, session_id, reply_id, bytes(body[HEADER.size :]))


class TcpDeframer:
    """Splits a TCP byte stream into packets, however the segments fall."""

    MAX_FRAME = 16 * 1024 * 1024

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        self._buffer += data
        packets = []
        while len(self._buffer) >= TCP_TOP.size:
            magic, length = TCP_TOP.unpack_from(self._buffer)
            if magic != TCP_MAGIC or not HEADER.size <= length <= self.MAX_FRAME:
                raise ValueError(f"not a ZK TCP frame: {bytes(self._buffer[:8]).hex(' ')}")
            end = TCP_TOP.size + length
            if len(self._buffer) < end:
                break
            packets.append(parse_packet(bytes(self._buffer[TCP_TOP.size : end])))
            del self._buffer[:end]
        return packets


def make_commkey(key: int, session_id: int, ticks: int = 50) -> bytes:
    """The CMD_AUTH payload for comm key ``key`` (the SDK's MakeKey)."""
    reversed_key = int(f"{key & 0xFFFFFFFF:032b}"[::-1], 2)
    value = (reversed_key + session_id) & 0xFFFFFFFF
    b = bytes(x ^ y for x, y in zip(struct.pack("<I", value), b"ZKSO", strict=True))
    b = b[2:4] + b[0:2]
    t = ticks & 0xFF
    return bytes([b[0] ^ t, b[1] ^ t, t, b[3] ^ t])


def encode_time(t: datetime) -> int:
    """Terminal time as u32: seconds on a calendar of 31-day months and 372-day years from 2000."""
    days = ((t.year % 100) * 12 * 31) + ((t.month - 1) * 31) + t.day - 1
    return days * 86400 + (t.hour * 60 + t.minute) * 60 + t.second


def decode_time(value: int) -> datetime:
    """Inverse of ``encode_time``; raises ValueError for dates that cannot exist (e.g. 30 Feb)."""
    second = value % 60
    value //= 60
    minute = value % 60
    value //= 60
    hour = value % 24
    value //= 24
    day = value % 31 + 1
    value //= 31
    month = value % 12 + 1
    value //= 12
    return datetime(value + 2000, month, day, hour, minute, second)


def encode_time_hex(t: datetime) -> bytes:
    """The 6-byte YY MM DD hh mm ss form of live events."""
    return bytes([t.year - 2000, t.month, t.day, t.hour, t.minute, t.second])


def decode_time_hex(raw: bytes) -> datetime:
    year, month, day, hour, minute, second = raw[:6]
    return datetime(2000 + year, month, day, hour, minute, second)
