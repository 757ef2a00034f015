"""Which punch belongs to which shift, and which punch is the check-in and which the check-out.

Double presses. Presses by one employee within ``duplicate_window`` of the last punch kept are
one punch: the earliest is kept, the others are reported, never silently lost.

Attribution. A punch may belong to a shift only inside that shift's window (check-in opens
``checkin_before`` the start, check-out closes ``checkout_after`` the end; both ends included).
When windows overlap (a night shift's check-out window and the next day's check-in window), the
punch goes to the shift with a segment boundary (a start or an end) nearest in time, because a
punch is made at a boundary: 07:05 after an 18:00-07:00 night belongs to the night, not to the
14:00 shift (Frappe HRMS #3298). On an exact tie (07:00 between a shift ending and one starting)
the terminal's state decides when it says in or out; otherwise the shift that starts there wins,
since a missing check-in raises an alarm and a missing check-out only a flag. Further ties go to
the earlier shift. Each punch ends up in at most one shift; punches in no window are "stray".

Roles. Within a shift, punches are split among segments at the midpoint of each break. In a
segment, the check-in is the earliest punch before the segment's midpoint, or marked "in" before its end;
the check-out is the latest other punch after the midpoint, or marked "out" after its start; if there is no check-in
and two punches or more, the earliest is the check-in. The time decides over the state key, so a
worker who pressed "out" on arrival is still checked in (Horilla #340), and state 255 needs
nothing special; a state that disagrees with the role given is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from appliance.rules.instances import ShiftInstance, Span
from appliance.rules.model import Direction, Punch


@dataclass(frozen=True, slots=True)
class Duplicate:
    dropped: Punch
    kept: Punch


@dataclass(frozen=True, slots=True)
class SegmentPunches:
    check_in: Punch | None
    check_out: Punch | None
    extra: tuple[Punch, ...]  # attributed to the segment but neither the check-in nor the check-out
    mismatched: tuple[Punch, ...]  # the role given disagrees with the terminal's state key


@dataclass(frozen=True, slots=True)
class Attribution:
    by_instance: tuple[tuple[Punch, ...], ...]  # parallel to the instances passed in
    stray: tuple[Punch, ...]


def collapse_duplicates(punches: Iterable[Punch], window: timedelta) -> tuple[tuple[Punch, ...], tuple[Duplicate, ...]]:
    kept: list[Punch] = []
    dropped: list[Duplicate] = []
    last: dict[str, Punch] = {}
    for punch in sorted(punches, key=Punch.order_key):
        previous = last.get(punch.employee)
        if previous is not None and punch.at - previous.at <= window:
            dropped.append(Duplicate(punch, previous))
            continue
        kept.append(punch)
        last[punch.employee] = punch
    return tuple(kept), tuple(dropped)


def attribute(punches: Sequence[Punch], instances: Sequence[ShiftInstance]) -> Attribution:
    """Give each punch to at most one instance, by the rule in the module's docstring."""
    owned: list[list[Punch]] = [[] for _ in instances]
    stray: list[Punch] = []
    for punch in sorted(punches, key=Punch.order_key):
        best: tuple[timedelta, int, datetime, int] | None = None
        for index, inst in enumerate(instances):
            if not inst.window.contains(punch.at):
                continue
            distance, at_start = _nearest_boundary(inst, punch.at)
            rank = (distance, _tie_rank(punch.direction, at_start), inst.start, index)
            if best is None or rank < best:
                best = rank
        if best is None:
            stray.append(punch)
        else:
            owned[best[3]].append(punch)
    return Attribution(tuple(tuple(p) for p in owned), tuple(stray))


def _nearest_boundary(inst: ShiftInstance, at: datetime) -> tuple[timedelta, bool]:
    best = (timedelta.max, False)
    for seg in inst.segments:
        for boundary, is_start in ((seg.start, True), (seg.end, False)):
            distance = abs(at - boundary)
            # at equal distance a start ranks first, so ties resolve the same way every time
            if distance < best[0] or (distance == best[0] and is_start):
                best = (distance, is_start)
    return best


def _tie_rank(direction: Direction, at_start: bool) -> int:
    if direction is Direction.IN:
        return 0 if at_start else 1
    if direction is Direction.OUT:
        return 1 if at_start else 0
    return 0 if at_start else 1


def assign_roles(inst: ShiftInstance, punches: Sequence[Punch]) -> tuple[SegmentPunches, ...]:
    """Split the instance's punches among its segments and pick each segment's in and out."""
    groups: list[list[Punch]] = [[] for _ in inst.segments]
    cuts = [_midpoint(Span(a.end, b.start)) for a, b in zip(inst.segments, inst.segments[1:], strict=False)]
    for punch in punches:
        index = sum(1 for cut in cuts if punch.at >= cut)
        groups[index].append(punch)
    return tuple(_roles(seg, group) for seg, group in zip(inst.segments, groups, strict=True))


def _roles(seg: Span, punches: list[Punch]) -> SegmentPunches:
    mid = _midpoint(seg)
    ordered = sorted(punches, key=Punch.order_key)
    check_in = next((p for p in ordered if p.at < mid or (p.direction is Direction.IN and p.at < seg.end)), None)
    if check_in is None and len(ordered) >= 2:
        check_in = ordered[0]
    check_out = next(
        (
            p
            for p in reversed(ordered)
            if p is not check_in and (p.at >= mid or (p.direction is Direction.OUT and p.at > seg.start))
        ),
        None,
    )
    if check_out is not None and check_in is not None and check_out.at < check_in.at:
        check_out = None  # an "out" key pressed before the check-in cannot be the check-out
    extra = tuple(p for p in ordered if p is not check_in and p is not check_out)
    mismatched = tuple(
        p
        for p, role in ((check_in, Direction.IN), (check_out, Direction.OUT))
        if p is not None and p.direction is not Direction.UNKNOWN and p.direction is not role
    )
    return SegmentPunches(check_in, check_out, extra, mismatched)


def _midpoint(span: Span) -> datetime:
    return span.start + (span.end - span.start) / 2
