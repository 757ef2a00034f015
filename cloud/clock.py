"""Time, injected."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> datetime: ...  # aware, UTC


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


DEMO_MARKER = ".punchproof-demo"  # ``punchproof demo``'s working directory holds it; no installation does


class VirtualClockRefused(RuntimeError):
    """A virtual clock asked for outside the demo's working directory."""


class VirtualClock:
    """The demo's story mode only (``punchproof demo --story``): real time moved forward by an offset that the
    story keeps in ``path`` (JSON ``{"offset_ms": N}``), so a week of a case plays in minutes. Every process the
    story starts reads the same file, so they agree on the time; the offset only grows, and time never goes back.

    Refused unless ``path`` lies in a demo's working directory (one holding ``.punchproof-demo``): nothing an
    installation runs reads it, and no command takes it from the environment."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def check(self) -> VirtualClock:
        if not (self.path.parent / DEMO_MARKER).exists():
            raise VirtualClockRefused(
                f"虚拟时钟只用于演示 / a virtual clock is for the demo only: {self.path.parent} is no demo directory"
            )
        return self

    def offset(self) -> timedelta:
        try:
            return timedelta(milliseconds=int(json.loads(self.path.read_text(encoding="utf-8"))["offset_ms"]))
        except FileNotFoundError:
            return timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset()

    def advance_to(self, moment: datetime) -> None:
        """Move virtual time to ``moment`` (never back: an earlier moment leaves it where it is)."""
        offset = max(self.offset(), moment - datetime.now(UTC))
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"offset_ms": to_ms_delta(offset)}), encoding="utf-8")
        temporary.replace(self.path)  # the readers see the old offset or the new, never half a file


def to_ms_delta(delta: timedelta) -> int:
    """Whole milliseconds, rounded up: a clock advanced to a moment never reads earlier than it."""
    return -((-delta // timedelta(microseconds=1)) // 1000)


ZONE_NAMES = {  # the zones a plant in China is in, as its people call them
    "Asia/Shanghai": ("北京时间", "China Standard Time"),
    "Asia/Chongqing": ("北京时间", "China Standard Time"),
    "Asia/Urumqi": ("新疆时间", "Xinjiang time"),
    "Asia/Hong_Kong": ("香港时间", "Hong Kong time"),
}


def zone_words(zone: str, lang: str = "zh") -> str:
    """A plant's zone as people read it beside a time: "北京时间" / "China Standard Time"; another zone by its
    offset ("当地时间 UTC+07:00" / "local time, UTC+07:00"), never its database name."""
    en = lang == "en"
    if zone in ZONE_NAMES:
        return ZONE_NAMES[zone][en]
    offset = datetime.now(ZoneInfo(zone)).strftime("%z")
    return f"{'local time, ' if en else '当地时间 '}UTC{offset[:3]}:{offset[3:]}"
