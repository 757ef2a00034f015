"""Attendance and user record layouts, parsed in linear time, one record at a time.

pyzk 0.9 re-slices the whole buffer for every record (quadratic) and lets one impossible
date abort the whole download; here each record is decoded on its own and a bad one is
reported and skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from firmware_bridge.zk.wire import decode_time, decode_time_hex, encode_time, encode_time_hex

ATT_8 = struct.Struct("<HB4sB")  # uid, verify, time, state
ATT_16 = struct.Struct("<I4sBB2sI")  # user_id, time, verify, state, reserved, workcode
ATT_40 = struct.Struct("<H24sB4sB8s")  # uid, user_id, verify, time, state, reserved
USER_72 = struct.Struct("<HB8s24sIx7sx24s")  # uid, privilege, password, name, card, group, user_id
USER_28 = struct.Struct("<HB5s8sIxBhI")
SUPPORTED_SIZES = (8, 16, 40, 49)
ATT_40_TAIL = b"\x00\x00\x00\x00\xff\x00\x00\x00"
ATT_49_EXTRA = b"\x00" * 9  # MB560-VL 2022 firmware appends 9 bytes; their meaning is not public
LIVE_TEXT = struct.Struct("<24sBB6s")  # user_id, verify, state, YY MM DD hh mm ss
LIVE_NUMERIC = struct.Struct("<IBB6s")  # 12-byte events of black-and-white terminals


@dataclass(frozen=True, slots=True)
class AttRecord:
    index: int
    uid: int
    user_id: str
    time: datetime
    verify: int
    state: int
    workcode: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class BadRecord:
    index: int
    raw: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class UserRecord:
    uid: int
    user_id: str
    name: str
    privilege: int = 0
    card: int = 0


def record_size(total_bytes: int, count: int) -> int:
    """Bytes per attendance record, from the dataset size and the terminal's record count."""
    if count <= 0:
        return 0
    size, remainder = divmod(total_bytes, count)
    if remainder or size not in SUPPORTED_SIZES:
        raise ValueError(f"{total_bytes} bytes for {count} records: unknown record layout")
    return size


def parse_attendance(
    data: bytes, size: int, *, uid_to_user: dict[int, str] | None = None, start_index: int = 0
) -> Iterator[AttRecord | BadRecord]:
    """Yield each record of ``data`` (without the u32 length prefix) in one pass."""
    view = memoryview(data)
    for n, offset in enumerate(range(0, len(data) - size + 1, size)):
        raw = bytes(view[offset : offset + size])
        index = start_index + n
        try:
            yield _parse_one(raw, size, index, uid_to_user or {})
        except (ValueError, UnicodeDecodeError) as err:
            yield BadRecord(index=index, raw=raw, reason=str(err))


def _parse_one(raw: bytes, size: int, index: int, uid_to_user: dict[int, str]) -> AttRecord:
    workcode = 0
    if size == 8:
        uid, verify, t, state = ATT_8.unpack(raw)
        user_id = uid_to_user.get(uid, str(uid))
    elif size == 16:
        number, t, verify, state, _reserved, workcode = ATT_16.unpack(raw)
        user_id, uid = str(number), 0
    else:  # 40, and 49 = 40 + 9 bytes of extension
        uid, user_bytes, verify, t, state, _reserved = ATT_40.unpack_from(raw)
        user_id = user_bytes.split(b"\x00", 1)[0].decode("ascii")
    time = decode_time(int.from_bytes(t, "little"))
    return AttRecord(index, uid, user_id, time, verify, state, workcode, raw)


def encode_attendance(
    size: int, uid: int, user_id: str, time: datetime, verify: int, state: int, workcode: int = 0
) -> bytes:
    """One record in the layout of ``size`` (8, 16, 40 or 49 bytes), as a terminal stores it."""
    t = encode_time(time).to_bytes(4, "little")
    if size == 8:
        return ATT_8.pack(uid, verify, t, state)
    if size == 16:
        return ATT_16.pack(int(user_id), t, verify, state, b"\x00\x00", workcode)
    record = ATT_40.pack(uid, user_id.encode("ascii"), verify, t, state, ATT_40_TAIL)
    if size == 49:
        return record + ATT_49_EXTRA
    if size != 40:
        raise ValueError(f"no attendance layout of {size} bytes")
    return record


def encode_attendance_40(uid: int, user_id: str, time: datetime, verify: int, state: int) -> bytes:
    return encode_attendance(40, uid, user_id, time, verify, state)


@dataclass(frozen=True, slots=True)
class LiveRecord:
    """One EF_ATTLOG event as the terminal sent it."""

    user_id: str
    time: datetime  # naive: the terminal's clock
    verify: int
    state: int
    workcode: int
    raw: bytes


def parse_live_event(payload: bytes) -> LiveRecord:
    """Decode an EF_ATTLOG payload; raises ValueError for unknown sizes and impossible dates.

    Sizes as pyzk knows them: 12 (numeric user id), 32 (text user id), 36/37 and 52+ (text user
    id followed by a u32 we read as the work code, then reserved bytes).
    """
    size = len(payload)
    if size == LIVE_NUMERIC.size:
        number, verify, state, t = LIVE_NUMERIC.unpack(payload)
        user_id, workcode = str(number), 0
    elif size == 32 or size in (36, 37) or size >= 52:
        user_bytes, verify, state, t = LIVE_TEXT.unpack_from(payload)
        user_id = user_bytes.split(b"\x00", 1)[0].decode("ascii")
        workcode = int.from_bytes(payload[32:36], "little") if size >= 36 else 0
    else:
        raise ValueError(f"unknown live event layout of {size} bytes")
    return LiveRecord(user_id, decode_time_hex(t), verify, state, workcode, bytes(payload))


def encode_live_event(
    user_id: str, time: datetime, verify: int, state: int, *, size: int = 32, workcode: int = 0
) -> bytes:
    """The EF_ATTLOG payload a terminal sends for a punch (32 bytes on TFT terminals)."""
    if size == LIVE_NUMERIC.size:
        return LIVE_NUMERIC.pack(int(user_id), verify, state, encode_time_hex(time))
    body = LIVE_TEXT.pack(user_id.encode("ascii"), verify, state, encode_time_hex(time))
    if size == 32:
        return body
    if size in (36, 37) or size >= 52:
        return (body + workcode.to_bytes(4, "little")).ljust(size, b"\x00")
    raise ValueError(f"no live event layout of {size} bytes")


def encode_user_72(user: UserRecord, encoding: str) -> bytes:
    return USER_72.pack(
        user.uid, user.privilege, b"", user.name.encode(encoding)[:24], user.card, b"", user.user_id.encode("ascii")
    )


def parse_users(data: bytes, count: int, encoding: str) -> list[UserRecord]:
    if count <= 0:
        return []
    size = len(data) // count
    layout = USER_72 if size == 72 else USER_28 if size == 28 else None
    if layout is None:
        raise ValueError(f"{len(data)} bytes for {count} users: unknown user layout")
    users = []
    for offset in range(0, count * size, size):
        fields = layout.unpack_from(data, offset)
        if size == 72:
            uid, privilege, _pw, name, card, _group, user_id = fields
            user_text = user_id.split(b"\x00", 1)[0].decode("ascii", errors="replace")
        else:
            uid, privilege, _pw, name, card, _group, _tz, number = fields
            user_text = str(number)
        users.append(
            UserRecord(uid, user_text, name.split(b"\x00", 1)[0].decode(encoding, errors="replace"), privilege, card)
        )
    return users
