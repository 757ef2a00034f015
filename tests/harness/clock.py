"""A clock that moves only when the test says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FrozenClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
        self._boot_ns = 1_000_000_000

    def now(self) -> datetime:
        return self._now

    def boot_ns(self) -> int:
        return self._boot_ns

    def monotonic(self) -> float:
        return self._boot_ns / 1e9

    def sync_status(self) -> dict[str, int | str]:
        return {"sync": 1, "src": "test", "err_us": 1000}

    def advance(self, **delta: float) -> None:
        step = timedelta(**delta)
        self._now += step
        self._boot_ns += int(step.total_seconds() * 1e9)

    def advance_to(self, moment: datetime) -> None:
        """Move on to ``moment`` (both clocks, as ``advance`` does): a test says when, not how long."""
        self.advance(seconds=(moment - self._now).total_seconds())

    def jump_wall(self, **delta: float) -> None:
        """Someone sets the wall clock: it jumps, the boot clock does not."""
        self._now += timedelta(**delta)
