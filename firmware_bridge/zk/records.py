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

from firmware_bridge.zk.wire import decode_time, encode_time

ATT_8 = struct.Struct("<HB4sB")  # uid, verify, time, state
ATT_16 = struct.Struct("<I4sBB2sI")  # user_id, time, verify, state, reserved, workcode
ATT_40 = struct.Struct("<H24sB4sB8s")  # uid, user_id, verify, time, state, reserved
USER_72 = struct.Struct("<HB8s24sIx7sx24s")  # uid, privilege, password, name, card, group, user_id
USER_28 = struct.Struct("<HB5s8sIxBhI")
SUPPORTED_SIZES = (8, 16, 40, 49)


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


def encode_attendance_40(uid: int, user_id: str, time: datetime, verify: int, state: int) -> bytes:
    return ATT_40.pack(
        uid,
        user_id.encode("ascii"),
        verify,
        encode_time(time).to_bytes(4, "little"),
        state,
        b"\x00\x00\x00\x00\xff\x00\x00\x00",
    )


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
