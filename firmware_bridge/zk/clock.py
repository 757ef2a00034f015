"""The terminal's clock: measured at every contact, alarmed above a threshold, corrected only by policy.

Anchors overwrite terminal clocks blindly on every download, which destroys the evidence of how
wrong past punches were. Here the offset is measured every time, an alarm is raised when it is
too large, and a correction happens only when the policy allows it, returning a record of what
was changed (the old offset and the new time) for the appliance to sign.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from firmware_bridge.types import ClockAlarm


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    """When to raise an alarm, and whether (and above what offset) the clock may be set."""

    alarm_above_ms: int = 60_000
    correct_above_ms: int | None = None  # None: never touch the terminal's clock

    def alarm(self, offset_ms: int) -> ClockAlarm | None:
        return ClockAlarm(offset_ms, self.alarm_above_ms) if abs(offset_ms) > self.alarm_above_ms else None

    def should_correct(self, offset_ms: int) -> bool:
        return self.correct_above_ms is not None and abs(offset_ms) > self.correct_above_ms


@dataclass(frozen=True, slots=True)
class ClockCorrection:
    """What a correction changed; the appliance signs this before the next punch is trusted."""

    terminal_sn: str
    old_offset_ms: int  # terminal minus our clock, before
    old_terminal_time: datetime  # naive: what the terminal showed before
    new_terminal_time: datetime  # naive: what we set it to (our clock, in the plant's zone)
    new_offset_ms: int  # measured again after setting
    at_utc: datetime  # our clock when the correction was made


def measure_offset_ms(conn: Any, tz: tzinfo, now: Callable[[], datetime]) -> tuple[int, datetime]:
    """Terminal minus our clock (ms), reading the terminal once between two readings of ours."""
    before = now()
    device = conn.get_time()
    after = now()
    ours = before + (after - before) / 2
    return round((device.replace(tzinfo=tz) - ours).total_seconds() * 1000), device
