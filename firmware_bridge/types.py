"""Data that crosses from the drivers to the appliance: frozen, with aware UTC datetimes.

A terminal's own clock reading is kept as it was read (naive, the terminal's local time);
``at_utc`` is that reading interpreted in the plant's time zone, converted once, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

STATE_UNKNOWN = 255  # terminals without state keys report 255: in/out is inferred from the shift
TIME_FROM_TERMINAL = "terminal"  # device_time is the terminal's own clock reading
TIME_FROM_APPLIANCE = "appliance"  # the reader has no clock (serial card and fingerprint readers): our reading
INDEX_LIVE = -1  # a punch from a live event: the terminal does not say where it sits in its log

PunchKey = tuple[str, str, str, int, int, int]


@dataclass(frozen=True, slots=True)
class ClockAlarm:
    """The terminal's clock is further off than the policy tolerates."""

    offset_ms: int
    threshold_ms: int

    def __str__(self) -> str:
        return (
            f"终端时钟偏差 {self.offset_ms / 1000:+.0f} 秒，超过 {self.threshold_ms / 1000:.0f} 秒 / "
            f"terminal clock is {self.offset_ms / 1000:+.0f} s off (threshold {self.threshold_ms / 1000:.0f} s)"
        )


@dataclass(frozen=True, slots=True)
class RawPunch:
    terminal_sn: str
    user_id: str  # the badge number; not the device slot
    uid: int  # the device slot
    device_time: datetime  # naive, as the terminal's clock showed it
    at_utc: datetime  # device_time read in the plant's zone, in UTC
    verify: int  # verify mode: 0 password, 1 fingerprint, 15 face, ...
    state: int  # punch state: 0 in, 1 out, ..., 255 unknown
    workcode: int
    index: int  # position in the terminal's log at download; INDEX_LIVE for a live event
    raw: bytes  # the record exactly as the terminal sent it
    time_source: str = TIME_FROM_TERMINAL  # whose clock device_time comes from

    @property
    def key(self) -> PunchKey:
        """What the terminal said about the punch: equal for the live event and the downloaded record."""
        return (self.terminal_sn, self.user_id, self.device_time.isoformat(), self.verify, self.state, self.workcode)


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record the terminal sent that cannot be a punch (e.g. an impossible date)."""

    terminal_sn: str
    index: int
    raw: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Download:
    """The result of one read of a terminal's log."""

    terminal_sn: str
    record_count: int  # records in the terminal's log at the time of the read
    record_size: int
    punches: tuple[RawPunch, ...]
    rejected: tuple[RejectedRecord, ...]
    clock_offset_ms: int  # terminal clock minus our clock, measured at this read
    capacity: int  # records the terminal can still store
    clock_alarm: ClockAlarm | None = None  # set when the offset is above the policy's threshold


@dataclass(frozen=True, slots=True)
class TerminalInfo:
    """What ``punchproof bridge probe`` shows: who the terminal is and how full it is."""

    terminal_sn: str
    platform: str
    firmware: str
    device_name: str
    users: int
    records: int
    record_capacity: int
    records_left: int
    clock_offset_ms: int
    terminal_time: datetime  # naive, as the terminal's clock showed it
    clock_alarm: ClockAlarm | None = None


@dataclass(frozen=True, slots=True)
class LogCleared:
    """The terminal's log was cleared after the caller vouched for every record in it."""

    terminal_sn: str
    records_cleared: int
    at_utc: datetime
