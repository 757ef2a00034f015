"""What an emulated ZK terminal holds: users, fingerprint templates, the attendance log, its clock, and its faults.

Tests and ``punchproof emulate zk`` change this state; the emulator's sessions read it. Punches
are announced to listeners (the emulator's live sessions) as they happen, so a test can make two
workers punch "at once" (``punch_together``) and see both events leave in one TCP segment.

Users and templates written over the wire are kept at once but, as on a real terminal, the
fingerprint matcher works from what it loaded at the last CMD_REFRESHDATA; a finger enrolled at
the terminal's own keypad (``enrol_finger``) works at once. ``present_finger`` is a worker putting
a finger on the sensor: a punch if the matcher knows the template, nothing otherwise.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from firmware_bridge.zk.records import (
    FLAG_VALID,
    FingerTemplate,
    UserRecord,
    encode_attendance,
    encode_live_event,
    encode_templates,
    encode_user_72,
)

FREE_SIZES_INTS = 23
FINGER_CAPACITY = 3000
TEMPLATE_BYTES = 1_400  # about what a ZKFinger 10 template takes


def keypad_template(user_id: str, finger: int, size: int = TEMPLATE_BYTES) -> bytes:
    """A template as a finger placed three times at the keypad would give: the same bytes for the same
    worker and finger, unlike any other's (tests can then look for them anywhere they must not be)."""
    seed = f"finger/{user_id}/{finger}".encode()
    blocks = (hashlib.sha256(seed + n.to_bytes(4, "little")).digest() for n in range(size // 32 + 1))
    return b"".join(blocks)[:size]


@dataclass(frozen=True, slots=True)
class StoredPunch:
    uid: int
    user_id: str
    time: datetime  # naive: the terminal's clock
    verify: int
    state: int
    raw: bytes | None = None  # a record stored verbatim (e.g. a corrupt one), for fault tests
    workcode: int = 0

    def encode(self, size: int = 40) -> bytes:
        if self.raw is not None:
            return self.raw
        return encode_attendance(size, self.uid, self.user_id, self.time, self.verify, self.state, self.workcode)

    def live_event(self, size: int = 32) -> bytes:
        if self.raw is not None:  # a record given verbatim is announced verbatim
            return self.raw
        return encode_live_event(self.user_id, self.time, self.verify, self.state, size=size, workcode=self.workcode)


@dataclass
class TerminalState:
    """What the emulated terminal holds. Every method is safe to call from any thread."""

    serial: str
    tz: tzinfo
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    comm_key: int = 0
    clock_offset: timedelta = timedelta(0)
    drift_s_per_day: float = 0.0  # a drifting clock: the offset grows by this much per day
    encoding: str = "gbk"
    record_size: int = 40  # 8, 16, 40 or 49 bytes per attendance record
    live_event_size: int = 32  # EF_ATTLOG payload: 12, 32, 36 or 52 bytes
    record_capacity: int = 200_000
    platform: str = "ZEM560_TFT"
    firmware: str = "Ver 6.60 Apr 28 2015"
    users: list[UserRecord] = field(default_factory=list)
    templates: dict[tuple[int, int], FingerTemplate] = field(default_factory=dict)  # by (uid, finger)
    punches: list[StoredPunch] = field(default_factory=list)
    enabled: bool = True
    reset_mid_transfer: bool = False  # fault: the connection is reset halfway through a log transfer
    log_transfers: int = 0  # how often a client downloaded the attendance log
    events_sent: int = 0
    events_acked: int = 0  # ACK_OKs received from clients for live events
    bad_checksums: int = 0  # requests whose checksum was not the spec's (answered anyway)
    refreshes: int = 0  # CMD_REFRESHDATA received
    template_transfers: int = 0  # how often a client downloaded the templates
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _matcher: dict[bytes, int] = field(default_factory=dict, repr=False)  # template -> uid, as last loaded
    _listeners: list[Callable[[list[StoredPunch]], None]] = field(default_factory=list, repr=False)
    _drift_since: datetime | None = field(default=None, repr=False)
    _encoded: tuple[int, StoredPunch | None, int, bytes] = field(default=(0, None, 0, b""), repr=False)

    def device_now(self) -> datetime:
        now = self.now()
        offset = self.clock_offset
        if self.drift_s_per_day:
            self._drift_since = self._drift_since or now
            offset += timedelta(seconds=self.drift_s_per_day * (now - self._drift_since) / timedelta(days=1))
        return (now + offset).astimezone(self.tz).replace(tzinfo=None, microsecond=0)

    def set_device_time(self, wanted: datetime) -> None:
        """What CMD_SET_TIME does: the terminal's clock shows ``wanted`` (naive, terminal-local) now."""
        with self.lock:
            self.clock_offset = wanted.replace(tzinfo=self.tz) - self.now().replace(microsecond=0)
            self._drift_since = None

    def add_user(self, user_id: str, name: str, *, privilege: int = 0, card: int = 0) -> UserRecord:
        """A user enrolled at the terminal's keypad: the next free slot."""
        with self.lock:
            uid = max((u.uid for u in self.users), default=0) + 1
            user = UserRecord(uid=uid, user_id=user_id, name=name, privilege=privilege, card=card)
            self.users.append(user)
            return user

    def user(self, user_id: str) -> UserRecord | None:
        with self.lock:
            return next((u for u in self.users if u.user_id == user_id), None)

    def write_user(self, user: UserRecord) -> bool:
        """CMD_USER_WRQ: create or overwrite the user in ``user.uid``'s slot; refused (False) if the badge
        number is another slot's."""
        with self.lock:
            if any(u.user_id == user.user_id and u.uid != user.uid for u in self.users):
                return False
            self.users = [u for u in self.users if u.uid != user.uid] + [user]
            self.users.sort(key=lambda u: u.uid)
            return True

    def delete_user(self, uid: int) -> bool:
        """CMD_DELETE_USER: the user and every template of theirs; False if the slot is empty."""
        with self.lock:
            if not any(u.uid == uid for u in self.users):
                return False
            self.users = [u for u in self.users if u.uid != uid]
            self.templates = {k: t for k, t in self.templates.items() if k[0] != uid}
            return True

    def save_templates(self, user: UserRecord, fingers: list[tuple[int, bytes]]) -> bool:
        """CMD_SAVE_USERTEMPS: the uploaded user (as CMD_USER_WRQ) and its templates, each replacing the
        finger's old one; the user's other fingers stay."""
        with self.lock:
            if not self.write_user(user):
                return False
            for finger, data in fingers:
                self.templates[(user.uid, finger)] = FingerTemplate(user.uid, finger, FLAG_VALID, data)
            return True

    def delete_template(self, uid: int, finger: int) -> bool:
        with self.lock:
            return self.templates.pop((uid, finger), None) is not None

    def refresh(self) -> None:
        """CMD_REFRESHDATA: the matcher loads the users and templates written since."""
        with self.lock:
            self.refreshes += 1
            self._matcher = {t.data: t.uid for t in self.templates.values() if t.flag == FLAG_VALID}

    # -- at the terminal itself (test controls) --

    def enrol_finger(self, user_id: str, finger: int, template: bytes | None = None) -> bytes:
        """A worker enrols a finger at this terminal's keypad (an admin picks the user, the worker presses
        three times): stored, and recognised at once. Returns the template."""
        with self.lock:
            user = self.user(user_id)
            if user is None:
                raise KeyError(f"no user {user_id} on terminal {self.serial}")
            data = template if template is not None else keypad_template(user_id, finger)
            old = self.templates.get((user.uid, finger))
            if old is not None:
                self._matcher.pop(old.data, None)
            self.templates[(user.uid, finger)] = FingerTemplate(user.uid, finger, FLAG_VALID, data)
            self._matcher[data] = user.uid
            return data

    def remove_finger(self, user_id: str, finger: int) -> None:
        """An admin deletes one of a user's fingers at the terminal's menu."""
        with self.lock:
            user = self.user(user_id)
            if user is not None and self.delete_template(user.uid, finger):
                self.refresh()

    def remove_user(self, user_id: str) -> None:
        """An admin deletes a user at the terminal's menu."""
        with self.lock:
            user = self.user(user_id)
            if user is not None:
                self.delete_user(user.uid)
                self.refresh()

    def finger(self, user_id: str, finger: int) -> bytes | None:
        with self.lock:
            user = self.user(user_id)
            held = self.templates.get((user.uid, finger)) if user is not None else None
            return held.data if held is not None else None

    def fingers(self, user_id: str) -> dict[int, bytes]:
        with self.lock:
            user = self.user(user_id)
            if user is None:
                return {}
            return {f: t.data for (uid, f), t in sorted(self.templates.items()) if uid == user.uid}

    def present_finger(self, template: bytes, *, when: datetime | None = None) -> StoredPunch | None:
        """A finger on the sensor: the matcher's user punches (verify 1, fingerprint), or nobody does."""
        with self.lock:
            uid = self._matcher.get(template)
            user = next((u for u in self.users if u.uid == uid), None)
        if user is None:
            return None
        return self.punch(user.user_id, verify=1, when=when)

    def punch(
        self, user_id: str, *, state: int = 0, verify: int = 1, when: datetime | None = None, workcode: int = 0
    ) -> StoredPunch:
        """A worker presents a finger at the terminal: the punch goes into the log and out as an event."""
        return self.punch_together([(user_id, state, verify, when, workcode)])[0]

    def punch_together(self, presses: list[tuple[str, int, int, datetime | None, int]]) -> list[StoredPunch]:
        """Several punches announced at once (user_id, state, verify, when, workcode): one TCP segment."""
        with self.lock:
            stored = []
            for user_id, state, verify, when, workcode in presses:
                uid = next((u.uid for u in self.users if u.user_id == user_id), 0)
                stored.append(StoredPunch(uid, user_id, when or self.device_now(), verify, state, workcode=workcode))
            self.punches.extend(stored)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(stored)
        return stored

    def load_log(self, punches: Iterable[StoredPunch]) -> int:
        """Records already in the log when the terminal starts (``emulate zk --records``): appended
        and not announced, as a log filled before anyone was listening. Returns the log's size."""
        with self.lock:
            self.punches.extend(punches)
            return len(self.punches)

    def clear_log(self) -> int:
        """Empty the attendance log, as CMD_CLEAR_ATTLOG or an admin at the terminal's menu does (no
        client is told: a reader finds out at its next read). Returns how many records were cleared."""
        with self.lock:
            cleared = len(self.punches)
            self.punches.clear()
            return cleared

    def store_raw(self, raw: bytes) -> None:
        """Put a record into the log exactly as given, as a faulty terminal might."""
        with self.lock:
            self.punches.append(StoredPunch(0, "", datetime(2000, 1, 1), 0, 0, raw=raw))

    def announce_raw_event(self, payload: bytes) -> None:
        """Send a live event with exactly these bytes (and log nothing), as a faulty terminal might."""
        with self.lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener([StoredPunch(0, "", datetime(2000, 1, 1), 0, 0, raw=payload)])

    def subscribe(self, listener: Callable[[list[StoredPunch]], None]) -> None:
        with self.lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[list[StoredPunch]], None]) -> None:
        with self.lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def attendance_buffer(self) -> bytes:
        """u32 length + every record; the encoding of an unchanged prefix is kept between reads."""
        with self.lock:
            self.log_transfers += 1
            count, last, size, body = self._encoded
            if count > len(self.punches) or size != self.record_size or (count and self.punches[count - 1] is not last):
                count, body = 0, b""
            body += b"".join(p.encode(self.record_size) for p in self.punches[count:])
            n = len(self.punches)
            self._encoded = (n, self.punches[-1] if n else None, self.record_size, body)
        return struct.pack("<I", len(body)) + body

    def user_buffer(self) -> bytes:
        with self.lock:
            body = b"".join(encode_user_72(u, self.encoding) for u in self.users)
        return struct.pack("<I", len(body)) + body

    def template_buffer(self) -> bytes:
        """u32 length + every template entry, by slot and finger."""
        with self.lock:
            self.template_transfers += 1
            body = encode_templates([self.templates[k] for k in sorted(self.templates)])
        return struct.pack("<I", len(body)) + body

    def free_sizes(self) -> bytes:
        ints = [0] * FREE_SIZES_INTS
        with self.lock:
            ints[4], ints[6], ints[8] = len(self.users), len(self.templates), len(self.punches)
            ints[14], ints[15], ints[16] = FINGER_CAPACITY, 3000, self.record_capacity
            ints[17] = FINGER_CAPACITY - len(self.templates)
            ints[18], ints[19] = 3000 - len(self.users), self.record_capacity - len(self.punches)
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
