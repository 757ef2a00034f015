"""Attendance, user and fingerprint template layouts, parsed in linear time, one record at a time.

pyzk 0.9 re-slices the whole buffer for every record (quadratic) and lets one impossible
date abort the whole download; here each record is decoded on its own and a bad one is
reported and skipped. Its template parser loops forever on an entry that says it is empty;
here a template dataset that does not add up is an error.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from firmware_bridge.zk.wire import decode_time, decode_time_hex, encode_time, encode_time_hex

ATT_8 = struct.Struct("<HB4sB")  # uid, verify, time, state
ATT_16 = struct.Struct("<I4sBB2sI")  # user_id, time, verify, state, reserved, workcode
ATT_40 = struct.Struct("<H24sB4sB8s")  # uid, user_id, verify, time, state, reserved
USER_72 = struct.Struct("<HB8s24sIx7sx24s")  # uid, privilege, password, name, card, group, user_id
USER_28 = struct.Struct("<HB5s8sIxBhI")  # uid, privilege, password, name, card, group, timezone, user_id
TEMPLATE_HEAD = struct.Struct("<HHBB")  # entry size (head included), uid, finger, flag; the template follows
UPLOAD_HEAD = struct.Struct("<III")  # CMD_SAVE_USERTEMPS buffer: user, table and templates sizes
UPLOAD_ENTRY = struct.Struct("<BHBI")  # 2, uid, 0x10 + finger, offset of the template in the templates part
UPLOAD_FINGER_BASE = 0x10
NAME_BYTES = {72: 23, 28: 8}  # room for a name in each user layout (72: 24 bytes, one kept for the NUL)
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
    uid: int  # the terminal's slot
    user_id: str  # the badge number
    name: str
    privilege: int = 0  # 0 user, 2 enroller, 6 manager, 14 admin; bit 0 set: disabled
    card: int = 0
    password: str = field(default="", repr=False)  # the terminal's PIN for this user: kept as it was, never shown
    group: str = ""


FLAG_VALID = 1  # a template's flag: 1 valid, 3 duress finger, 0 invalid


@dataclass(frozen=True, slots=True)
class FingerTemplate:
    """One fingerprint template as the terminal holds it: biometric data, never logged or shown."""

    uid: int
    finger: int  # 0-9
    flag: int  # FLAG_VALID, 3 duress, 0 invalid
    data: bytes = field(repr=False)


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
        user.uid,
        user.privilege,
        user.password.encode("ascii", errors="replace"),
        fit_name(user.name, encoding, 24).encode(encoding),
        user.card,
        user.group.encode("ascii", errors="replace"),
        user.user_id.encode("ascii"),
    )


def decode_user(data: bytes, encoding: str) -> UserRecord:
    """One user entry as CMD_USER_WRQ carries it (72 or 28 bytes)."""
    if len(data) >= USER_72.size:
        uid, privilege, password, name, card, group, user_id = USER_72.unpack_from(data)
        user_text = _text(user_id, "ascii")
    elif len(data) >= USER_28.size:
        uid, privilege, password, name, card, group_number, _tz, number = USER_28.unpack_from(data)
        user_text, group = str(number), str(group_number).encode()
    else:
        raise ValueError(f"a user entry of {len(data)} bytes")
    return UserRecord(
        uid, user_text, _text(name, encoding), privilege, card, _text(password, "ascii"), _text(group, "ascii")
    )


def fit_name(name: str, encoding: str, room: int) -> str:
    """The name as a terminal with ``room`` bytes for it will show it: characters its encoding lacks become
    "?", and it is cut at a character boundary (pyzk cuts bytes, leaving half a GBK character at the end).

    Writing this and comparing with it makes a rename idempotent: the terminal reads back exactly this.
    """
    fitted = ""
    used = 0
    for char in name.encode(encoding, errors="replace").decode(encoding):
        size = len(char.encode(encoding))
        if used + size > room:
            break
        fitted, used = fitted + char, used + size
    return fitted.rstrip("\x00")


def parse_templates(data: bytes) -> list[FingerTemplate]:
    """The entries of a FCT_FINGERTMP dataset (without its u32 length prefix); ValueError if they do not add up."""
    templates = []
    offset = 0
    while offset < len(data):
        if offset + TEMPLATE_HEAD.size > len(data):
            raise ValueError(f"template dataset: {len(data) - offset} stray bytes at offset {offset}")
        size, uid, finger, flag = TEMPLATE_HEAD.unpack_from(data, offset)
        if size <= TEMPLATE_HEAD.size or offset + size > len(data):
            raise ValueError(f"template dataset: an entry of {size} bytes at offset {offset} of {len(data)}")
        templates.append(FingerTemplate(uid, finger, flag, bytes(data[offset + TEMPLATE_HEAD.size : offset + size])))
        offset += size
    return templates


def encode_templates(templates: list[FingerTemplate]) -> bytes:
    return b"".join(
        TEMPLATE_HEAD.pack(TEMPLATE_HEAD.size + len(t.data), t.uid, t.finger, t.flag) + t.data for t in templates
    )


def parse_template_upload(buffer: bytes, encoding: str) -> tuple[UserRecord, list[tuple[int, bytes]]]:
    """What pyzk's ``save_user_template`` uploads before CMD_SAVE_USERTEMPS: the user (a 0x02 byte and a
    72- or 28-byte entry), a table of (uid, 0x10 + finger, offset) and the templates, each u16 size first."""
    user_size, table_size, templates_size = UPLOAD_HEAD.unpack_from(buffer)
    start = UPLOAD_HEAD.size
    if start + user_size + table_size + templates_size > len(buffer) or table_size % UPLOAD_ENTRY.size:
        raise ValueError(f"an upload of {len(buffer)} bytes announces {user_size}+{table_size}+{templates_size}")
    user = decode_user(buffer[start + 1 : start + user_size], encoding)
    table = buffer[start + user_size : start + user_size + table_size]
    templates = buffer[start + user_size + table_size :]
    fingers = []
    for _two, uid, code, at in UPLOAD_ENTRY.iter_unpack(table):
        (size,) = struct.unpack_from("<H", templates, at)
        if uid != user.uid or not 0 <= code - UPLOAD_FINGER_BASE <= 9 or at + 2 + size > len(templates):
            raise ValueError(f"upload table entry uid {uid}, finger code {code:#x}, offset {at} does not fit")
        fingers.append((code - UPLOAD_FINGER_BASE, bytes(templates[at + 2 : at + 2 + size])))
    return user, fingers


def _text(raw: bytes, encoding: str) -> str:
    return raw.split(b"\x00", 1)[0].decode(encoding, errors="replace")


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
            uid, privilege, password, name, card, group, user_id = fields
            user_text = _text(user_id, "ascii")
        else:
            uid, privilege, password, name, card, group_number, _tz, number = fields
            user_text, group = str(number), str(group_number).encode()
        users.append(
            UserRecord(
                uid, user_text, _text(name, encoding), privilege, card, _text(password, "ascii"), _text(group, "ascii")
            )
        )
    return users


def user_layout(total_bytes: int, count: int) -> int:
    """Bytes per user entry (72 on colour terminals, 28 on older black-and-white ones)."""
    if count <= 0:
        return 72  # nothing to tell by: colour terminals are what plants buy now
    size, remainder = divmod(total_bytes, count)
    if remainder or size not in (72, 28):
        raise ValueError(f"{total_bytes} bytes for {count} users: unknown user layout")
    return size
