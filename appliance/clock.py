"""Time, injected: the daemon reads the wall clock and the boot clock only through here."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

from appliance.timesync import kernel_clock_status


class Clock(Protocol):
    def now(self) -> datetime: ...  # aware, UTC
    def boot_ns(self) -> int: ...  # CLOCK_BOOTTIME: keeps counting across suspend, resets at boot
    def monotonic(self) -> float: ...  # seconds, for timeouts and backoff
    def sync_status(self) -> dict[str, int | str]: ...  # is the wall clock synchronised, and how well


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def boot_ns(self) -> int:
        return time.clock_gettime_ns(time.CLOCK_BOOTTIME)

    def monotonic(self) -> float:
        return time.monotonic()

    def sync_status(self) -> dict[str, int | str]:
        return kernel_clock_status()


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
