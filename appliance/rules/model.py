"""The facts the rules reason about: shifts, punches, leave, trips, corrections and the policy.

All frozen, all times aware. Shifts are wall-clock times in the plant's zone (a shift "08:00" is
08:00 wherever the clocks are that day); everything that happened (punches, leave, corrections)
is an instant in UTC, so that nothing is ever converted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum

from appliance.rules.errors import RulesError

MINUTE = timedelta(minutes=1)
DAY_MINUTES = 24 * 60

# ZK punch states: 0 check-in, 1 check-out, 2 break-out, 3 break-in, 4 overtime-in, 5 overtime-out,
# 255 "undefined" on terminals without state keys.
STATE_UNKNOWN = 255
_IN_STATES = frozenset({0, 3, 4})
_OUT_STATES = frozenset({1, 2, 5})


class Direction(StrEnum):
    IN = "in"
    OUT = "out"
    UNKNOWN = "unknown"


def direction_of(state: int) -> Direction:
    """What the terminal says the punch was; a hint only, since workers press the wrong key."""
    if state in _IN_STATES:
        return Direction.IN
    if state in _OUT_STATES:
        return Direction.OUT
    return Direction.UNKNOWN


def require_utc(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise RulesError(f"{what} must be an aware datetime in UTC, got {value!r}")


def parse_hhmm(text: str) -> time:
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError as err:
        raise RulesError(f"{text!r} is not a time of day HH:MM") from err


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of work. ``end`` at or before ``start`` means it ends the next day."""

    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Shift:
    """A shift type: one segment, or several for a split shift (两头班), laid out in order.

    Each segment starts at the first occurrence of its start time at or after the previous
    segment's end, so "22:00-02:00, 03:00-06:00" is one night shift. The whole shift spans at
    most 24 hours and belongs to the date it starts on.
    """

    id: str
    name: str
    segments: tuple[Segment, ...]
    late_grace: timedelta = timedelta(minutes=5)
    early_grace: timedelta = timedelta(0)
    checkin_before: timedelta = timedelta(hours=2)  # the earliest punch that counts for this shift
    checkout_after: timedelta = timedelta(hours=4)  # the latest punch that counts (overtime)
    terminals: tuple[str, ...] | None = None  # None: every terminal of the plant serves it
    offsets: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.segments:
            raise RulesError(f"shift {self.id}: no segment")
        for span in (self.late_grace, self.early_grace, self.checkin_before, self.checkout_after):
            if not timedelta(0) <= span <= timedelta(hours=24):
                raise RulesError(f"shift {self.id}: grace and windows are 0 to 24 hours")
        offsets: list[tuple[int, int]] = []
        cursor = _minutes(self.segments[0].start)
        for seg in self.segments:
            start = cursor + (_minutes(seg.start) - cursor) % DAY_MINUTES
            end = start + ((_minutes(seg.end) - start) % DAY_MINUTES or DAY_MINUTES)
            offsets.append((start, end))
            cursor = end
        if offsets[-1][1] - offsets[0][0] > DAY_MINUTES:
            raise RulesError(f"shift {self.id}: spans more than 24 hours")
        object.__setattr__(self, "offsets", tuple(offsets))

    @property
    def crosses_midnight(self) -> bool:
        return self.offsets[-1][1] > DAY_MINUTES


def _minutes(value: time) -> int:
    if value.tzinfo is not None or value.second or value.microsecond:
        raise RulesError(f"shift times are whole minutes of wall-clock time, got {value!r}")
    return value.hour * 60 + value.minute


def make_shift(shift_id: str, *spans: str, name: str = "", **options: object) -> Shift:
    """``make_shift("D", "08:00-12:00", "13:00-17:00", late_grace=timedelta(minutes=5))``."""
    segments = []
    for span in spans:
        start, _, end = span.partition("-")
        segments.append(Segment(parse_hhmm(start), parse_hhmm(end)))
    return Shift(shift_id, name or shift_id, tuple(segments), **options)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Punch:
    """One press on a terminal (or a 补卡 correction turned into one, ``source="correction"``)."""

    employee: str
    terminal: str  # the terminal's serial number
    at: datetime  # aware, UTC: the terminal's clock read in the plant's zone
    state: int = STATE_UNKNOWN
    verify: int = 1
    ref: str = ""  # where the punch is recorded (log seq, correction id): for evidence links
    source: str = "terminal"

    def __post_init__(self) -> None:
        require_utc(self.at, f"punch {self.ref or self.employee}")

    @property
    def direction(self) -> Direction:
        return direction_of(self.state)

    def order_key(self) -> tuple[datetime, str, str, int, int, str]:
        """A total order, so that results never depend on the order punches arrive in."""
        return (self.at, self.source, self.terminal, self.state, self.verify, self.ref)


@dataclass(frozen=True, slots=True)
class Leave:
    """Approved leave. Only approved leave is passed in; the type is shown in reasons (病假, 年假…)."""

    id: str
    employee: str
    start: datetime
    end: datetime
    kind: str

    def __post_init__(self) -> None:
        require_utc(self.start, f"leave {self.id} start")
        require_utc(self.end, f"leave {self.id} end")
        if self.end <= self.start:
            raise RulesError(f"leave {self.id}: ends before it starts")


@dataclass(frozen=True, slots=True)
class BusinessTrip:
    id: str
    employee: str
    start: datetime
    end: datetime
    destination: str = ""

    def __post_init__(self) -> None:
        require_utc(self.start, f"trip {self.id} start")
        require_utc(self.end, f"trip {self.id} end")
        if self.end <= self.start:
            raise RulesError(f"trip {self.id}: ends before it starts")


@dataclass(frozen=True, slots=True)
class Correction:
    """补卡: a punch added by a person, with the reason; it never replaces a recorded punch."""

    id: str
    employee: str
    at: datetime
    direction: Direction
    reason: str
    by: str
    recorded_at: datetime

    def __post_init__(self) -> None:
        require_utc(self.at, f"correction {self.id}")
        require_utc(self.recorded_at, f"correction {self.id} recorded_at")

    def as_punch(self) -> Punch:
        state = {Direction.IN: 0, Direction.OUT: 1}.get(self.direction, STATE_UNKNOWN)
        return Punch(self.employee, "", self.at, state, verify=-1, ref=self.id, source="correction")


@dataclass(frozen=True, slots=True)
class Policy:
    """The plant's knobs. ``version`` goes into every day fact, so a decision names its rules."""

    version: str = "default"
    duplicate_window: timedelta = timedelta(seconds=60)  # presses closer than this are one punch
    tentative_after: timedelta = timedelta(minutes=15)  # N: no punch this long after start + grace
    confirm_margin: timedelta = timedelta(hours=1)  # at least this long after the shift's end
    watch_search_days: int = 62  # how far after a leave's end its first shift is looked for

    def __post_init__(self) -> None:
        for span in (self.duplicate_window, self.tentative_after, self.confirm_margin):
            if span < timedelta(0):
                raise RulesError("policy windows cannot be negative")
