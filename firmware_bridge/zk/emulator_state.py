"""What an emulated ZK terminal holds: users, the attendance log, its clock, and its faults.

Tests and ``punchproof emulate zk`` change this state; the emulator's sessions read it. Punches
are announced to listeners (the emulator's live sessions) as they happen, so a test can make two
workers punch "at once" (``punch_together``) and see both events leave in one TCP segment.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from firmware_bridge.zk.records import UserRecord, encode_attendance, encode_live_event, encode_user_72

FREE_SIZES_INTS = 23


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
    punches: list[StoredPunch] = field(default_factory=list)
    enabled: bool = True
    reset_mid_transfer: bool = False  # fault: the connection is reset halfway through a log transfer
    log_transfers: int = 0  # how often a client downloaded the attendance log
    events_sent: int = 0
    events_acked: int = 0  # ACK_OKs received from clients for live events
    bad_checksums: int = 0  # requests whose checksum was not the spec's (answered anyway)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
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

    def add_user(self, user_id: str, name: str) -> UserRecord:
        with self.lock:
            user = UserRecord(uid=len(self.users) + 1, user_id=user_id, name=name)
            self.users.append(user)
            return user

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
