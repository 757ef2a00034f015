"""One employee's day: each scheduled shift evaluated, with its reason and how final it is.

Two tiers for a missed check-in. *Tentative*: no check-in ``tentative_after`` past the start plus
grace, given ``now``; shown live. *Confirmed*: only once ``now`` has passed the shift's end plus
``max(confirm_margin, checkout_after)`` (the last moment a punch could still count) AND every
terminal serving the shift has been read past that same moment (``watermarks``: for each terminal,
the instant up to which all its punches have been read). A terminal behind holds every result of
the shift back (``HELD``, and the reason names it). A day of a year whose holidays nobody has
published is judged by the provisional calendar and flagged (``calendar_unknown``, 临时日历).
Nothing here is edited later: leave approved afterwards, or a 补卡, is passed in and yields a new
evaluation, which ``dayfact.supersede`` links to the old one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from appliance.rules import reasons
from appliance.rules.attribution import Duplicate, assign_roles, attribute, collapse_duplicates
from appliance.rules.calendar_cn import CalendarDay, DayKind, PlantCalendar
from appliance.rules.errors import RulesError
from appliance.rules.instances import ShiftInstance, Span, local_day_span, materialize
from appliance.rules.model import BusinessTrip, Correction, Leave, Policy, Punch, Shift, require_utc
from appliance.rules.roster import DayPlan, EmployeeRoster, PlanKind, plan_day

ONE_DAY = timedelta(days=1)


class Status(StrEnum):
    UPCOMING = "upcoming"  # scheduled, nothing due yet
    PRESENT = "present"
    LATE = "late"
    LEFT_EARLY = "left_early"
    INCOMPLETE = "incomplete"  # 缺卡: some punches, a check-in or check-out missing
    MISSING = "missing"  # no punch at all for the shift (tentative or confirmed: see Confirmation)
    # no punch, but the shift began before this appliance was recording a terminal that serves it
    # (before it was installed, or the terminal was added later): nothing proves an absence, and
    # nothing ever counts it as one (未覆盖)
    UNCOVERED = "uncovered"
    ON_LEAVE = "on_leave"
    BUSINESS_TRIP = "business_trip"
    REST_DAY = "rest_day"
    HOLIDAY = "holiday"
    NOT_SCHEDULED = "not_scheduled"


class Confirmation(StrEnum):
    OPEN = "open"  # the shift is not over (plus margin): the result may change
    HELD = "held"  # over, but a terminal is behind: may still change
    CONFIRMED = "confirmed"  # final, unless superseded by leave or a correction passed in later


@dataclass(frozen=True, slots=True)
class Plant:
    """What is the same for every worker of the plant."""

    tz: ZoneInfo
    calendar: PlantCalendar
    shifts: Mapping[str, Shift]
    terminals: tuple[str, ...]  # serial numbers; serve every shift whose ``terminals`` is None
    terminal_names: Mapping[str, str] = field(default_factory=dict)  # sn -> "2 号机"
    policy: Policy = Policy()
    # since when this appliance has been recording each terminal (its first read; for terminals
    # read before this was kept, the log's start). A terminal missing from it has never been read.
    # None: not tracked (the rules' own tests), every terminal counts as recording since ever.
    recording_since: Mapping[str, datetime] | None = None


@dataclass(frozen=True, slots=True)
class SegmentResult:
    expected_in: datetime | None  # None when the segment is wholly excused by leave or a trip
    expected_out: datetime | None
    check_in: Punch | None
    check_out: Punch | None
    late_min: int
    early_min: int
    missing_in: bool
    missing_out: bool


@dataclass(frozen=True, slots=True)
class Evaluation:
    employee: str
    work_date: date
    shift_id: str  # "" on a day without a shift
    status: Status
    confirmation: Confirmation
    start: datetime | None
    end: datetime | None
    late_min: int
    early_min: int
    missed_punches: int
    segments: tuple[SegmentResult, ...]
    punches: tuple[Punch, ...]  # attributed to this shift (or made on this day off), in time order
    duplicates: tuple[Duplicate, ...]
    stray: tuple[Punch, ...]  # on this date, in no shift's window
    excusal: str  # the leave or trip that excuses all or part of the shift
    watch: str  # the leave or trip whose end makes this the first shift back
    held_by: tuple[str, ...]  # terminals behind the confirmation moment
    calendar: CalendarDay
    calendar_unknown: bool
    confirm_at: datetime | None
    watermark: datetime | None  # lowest watermark among the terminals serving the shift
    as_of: datetime
    reason_zh: str
    reason_en: str
    # The first moment after ``as_of`` at which the same inputs evaluate differently (a check-in
    # falls due, the shift ends, the result may be confirmed); None when time alone changes nothing
    # more. A result HELD by a terminal changes with that terminal's watermark instead.
    next_change: datetime | None

    @property
    def missing_tier(self) -> str:
        """ "tentative" or "confirmed" for a missed check-in, "" otherwise."""
        if self.status is not Status.MISSING:
            return ""
        return "confirmed" if self.confirmation is Confirmation.CONFIRMED else "tentative"


@dataclass(frozen=True, slots=True)
class _Excusal:
    start: datetime
    end: datetime
    kind: str  # "leave" or "trip"
    id: str
    label: str


def evaluate_day(
    plant: Plant,
    assignment: EmployeeRoster,
    work_date: date,
    *,
    punches: Iterable[Punch] = (),
    corrections: Iterable[Correction] = (),
    leaves: Iterable[Leave] = (),
    trips: Iterable[BusinessTrip] = (),
    now: datetime,
    watermarks: Mapping[str, datetime],
    memo: dict[object, DayPlan] | None = None,
) -> tuple[Evaluation, ...]:
    """Evaluate ``work_date`` for one employee. Pass the punches of ``instances.punch_range``;
    other employees' punches, leave and corrections are ignored. The result does not depend on
    the order of anything passed in. ``memo`` (a dict, optional) shares roster plans between the
    employees of one plant and one calendar within a single pass; it changes no result.
    """
    require_utc(now, "now")
    emp = assignment.employee
    fixes = {c.id: c for c in sorted(corrections, key=lambda c: (c.at, c.id)) if c.employee == emp}
    mine = [p for p in punches if p.employee == emp] + [c.as_punch() for c in fixes.values()]
    kept, duplicates = collapse_duplicates(mine, plant.policy.duplicate_window)
    excusals = _excusals(emp, leaves, trips)
    plans = {d: _plan(assignment, plant, d, memo) for d in (work_date - ONE_DAY, work_date, work_date + ONE_DAY)}
    instances = sorted(
        (materialize(_shift(plant, sid), d, plant.tz) for d, plan in plans.items() for sid in plan.shift_ids),
        key=lambda inst: (inst.start, inst.shift.id),
    )
    owned = attribute(kept, instances)
    w = reasons.Wording(plant.tz, work_date, plant.terminal_names)
    today = local_day_span(work_date, plant.tz)
    stray = tuple(p for p in owned.stray if today.start <= p.at < today.end)
    plan = plans[work_date]
    if plan.kind is not PlanKind.SCHEDULED:
        made = tuple(p for p in kept if today.start <= p.at < today.end)
        return (_day_off(emp, plan, made, duplicates, stray, today, now, w),)
    results = []
    for inst, mine_here in zip(instances, owned.by_instance, strict=True):
        if inst.work_date != work_date:
            continue
        dups = tuple(d for d in duplicates if d.kept in mine_here)
        ctx = _Ctx(plant, assignment, plan, excusals, fixes, now, watermarks, w)
        results.append(_evaluate_shift(ctx, inst, mine_here, dups, stray if not results else ()))
    return tuple(results)


@dataclass(frozen=True, slots=True)
class _Ctx:
    plant: Plant
    assignment: EmployeeRoster
    plan: DayPlan
    excusals: tuple[_Excusal, ...]
    fixes: Mapping[str, Correction]
    now: datetime
    watermarks: Mapping[str, datetime]
    w: reasons.Wording


def _evaluate_shift(
    ctx: _Ctx, inst: ShiftInstance, owned: tuple[Punch, ...], dups: tuple[Duplicate, ...], stray: tuple[Punch, ...]
) -> Evaluation:
    shift, policy, now, w = inst.shift, ctx.plant.policy, ctx.now, ctx.w
    roles = assign_roles(inst, owned)
    segs: list[SegmentResult] = []
    moments: list[datetime] = [inst.end]  # where ``now`` is compared below, next_change looks too
    texts: list[reasons.Text] = []
    notes: list[reasons.Text] = []
    for k, (seg, got) in enumerate(zip(inst.segments, roles, strict=True)):
        free = _subtract(seg, ctx.excusals)
        if not free:
            segs.append(SegmentResult(None, None, got.check_in, got.check_out, 0, 0, False, False))
            continue
        exp_in, exp_out = free[0].start, free[-1].end
        if exp_in != seg.start or exp_out != seg.end:
            notes.append(
                reasons.partly_excused(
                    w, exp_in if exp_in != seg.start else None, exp_out if exp_out != seg.end else None
                )
            )
        late = max(0, reasons.minutes(got.check_in.at - exp_in - shift.late_grace)) if got.check_in else 0
        early = max(0, reasons.minutes(exp_out - shift.early_grace - got.check_out.at)) if got.check_out else 0
        out_due = inst.segments[k + 1].start if k + 1 < len(inst.segments) else inst.window.end
        miss_in = got.check_in is None and now >= exp_in + shift.late_grace + policy.tentative_after
        miss_out = got.check_out is None and now >= out_due
        if got.check_in is None:
            moments.append(exp_in + shift.late_grace + policy.tentative_after)
        if got.check_out is None:
            moments.append(out_due)
        segs.append(SegmentResult(exp_in, exp_out, got.check_in, got.check_out, late, early, miss_in, miss_out))
        if late and got.check_in is not None:
            texts.append(reasons.late(w, late, exp_in, shift.late_grace, got.check_in, first=k == 0))
        if early and got.check_out is not None:
            texts.append(reasons.early(w, early, exp_out, shift.early_grace, got.check_out))
        if miss_in and got.check_out is not None:
            texts.append(reasons.missing_in(w, exp_in))
        if miss_out and got.check_in is not None:
            texts.append(reasons.missing_out(w, exp_out))
        notes.extend(reasons.mismatched(w, p, p is got.check_in) for p in got.mismatched)

    working = [s for s in segs if s.expected_in is not None]
    late_min = sum(s.late_min for s in working)
    early_min = sum(s.early_min for s in working)
    missed = sum(s.missing_in + s.missing_out for s in working)
    cover = next((x for x in ctx.excusals if x.start < inst.end and x.end > inst.start), None)
    confirm_at = inst.end + max(policy.confirm_margin, shift.checkout_after)
    moments.append(confirm_at)
    if not working:
        assert cover is not None  # every segment is excused, so something covers the shift
        status = Status.BUSINESS_TRIP if cover.kind == "trip" else Status.ON_LEAVE
        texts = [reasons.excused(w, cover.kind, cover.label, cover.start, cover.end)]
    elif not any(s.check_in or s.check_out for s in working):
        status = Status.MISSING if any(s.missing_in for s in working) else Status.UPCOMING
    else:
        status = (
            Status.LATE
            if late_min
            else Status.LEFT_EARLY
            if early_min
            else Status.INCOMPLETE
            if missed
            else Status.PRESENT
        )
    unwatched = _unwatched(ctx.plant, shift, inst.start) if status is Status.MISSING else []
    if unwatched:
        status = Status.UNCOVERED
    confirmation, held_by, lowest, held_text = _confirmation(ctx, shift, confirm_at, status)
    if status is Status.UNCOVERED:
        texts = [reasons.uncovered(w, inst.start, unwatched)]
    elif status is Status.MISSING:
        final = confirmation is Confirmation.CONFIRMED
        texts = [reasons.no_punch(w, working[0].expected_in or inst.start, inst.end, shift.late_grace, now, final)]
        if final:
            notes.append(reasons.confirmed(w, confirm_at))
    elif status is Status.UPCOMING:
        texts = [reasons.upcoming(w, working[0].expected_in or inst.start)]
    elif status is Status.PRESENT:
        texts = [reasons.present(w, inst.start, inst.end, working[0].check_in, working[-1].check_out)]
    notes.extend(_calendar_notes(ctx.plan))
    watch = _watch(ctx, inst)
    if watch is not None:
        notes.append(reasons.watched(w, watch.kind, watch.id, watch.end))
    notes.append(_correction_notes(ctx, owned))
    notes.append(reasons.counted(len(dups), "忽略重复打卡 {n} 次", "{n} duplicate press(es) ignored"))
    notes.append(reasons.counted(len(stray), "班次外打卡 {n} 次", "{n} punch(es) outside any shift"))
    notes.append(held_text)
    zh, en = reasons.join(texts + notes)
    return Evaluation(
        employee=ctx.assignment.employee,
        work_date=inst.work_date,
        shift_id=shift.id,
        status=status,
        confirmation=confirmation,
        start=inst.start,
        end=inst.end,
        late_min=late_min,
        early_min=early_min,
        missed_punches=missed,
        segments=tuple(segs),
        punches=owned,
        duplicates=dups,
        stray=stray,
        excusal=cover.id if cover is not None else "",
        watch=watch.id if watch is not None else "",
        held_by=held_by,
        calendar=ctx.plan.calendar,
        calendar_unknown=ctx.plan.calendar_unknown,
        confirm_at=confirm_at,
        watermark=lowest,
        as_of=now,
        reason_zh=zh,
        reason_en=en,
        next_change=min((m for m in moments if m > now), default=None),
    )


def _serving(plant: Plant, shift: Shift) -> tuple[str, ...]:
    return tuple(sorted(shift.terminals if shift.terminals is not None else plant.terminals))


def _unwatched(plant: Plant, shift: Shift, start: datetime) -> list[tuple[str, datetime | None]]:
    """The terminals serving ``shift`` that this appliance was not yet recording when it began at ``start``,
    with the moment it began recording each (None: never read). Empty: the appliance saw the whole shift."""
    if plant.recording_since is None:
        return []
    since = plant.recording_since
    return [(sn, since.get(sn)) for sn in _serving(plant, shift) if since.get(sn) is None or since[sn] > start]


def _confirmation(
    ctx: _Ctx, shift: Shift, confirm_at: datetime, status: Status
) -> tuple[Confirmation, tuple[str, ...], datetime | None, reasons.Text]:
    serving = _serving(ctx.plant, shift)
    marks = [ctx.watermarks.get(sn) for sn in serving]
    lowest = None if not marks or any(m is None for m in marks) else min(m for m in marks if m is not None)
    if ctx.now < confirm_at:
        return Confirmation.OPEN, (), lowest, ("", "")
    if not serving:
        return Confirmation.HELD, (), None, reasons.no_terminal()
    behind = [(sn, mark) for sn, mark in zip(serving, marks, strict=True) if mark is None or mark < confirm_at]
    # a day on the provisional calendar (its year unpublished) is confirmed as any other, and flagged
    # in its notes and fact: holding it waited for ever, with no fact and no case (issue #19, item 10)
    if behind:
        return Confirmation.HELD, tuple(sn for sn, _ in behind), lowest, reasons.held(ctx.w, behind)
    return Confirmation.CONFIRMED, (), lowest, ("", "")


def _calendar_notes(plan: DayPlan) -> list[reasons.Text]:
    day = plan.calendar
    notes = []
    if day.kind is DayKind.MAKEUP:
        notes.append(reasons.makeup_day(day.name_zh, day.name_en))
    elif day.kind is DayKind.HOLIDAY:
        notes.append(reasons.holiday_worked(day.name_zh, day.name_en))
    if plan.calendar_unknown:
        notes.append(reasons.calendar_provisional(plan.date.year))
    return notes


def _correction_notes(ctx: _Ctx, owned: tuple[Punch, ...]) -> reasons.Text:
    entries = [(p, ctx.fixes[p.ref].by, ctx.fixes[p.ref].reason) for p in owned if p.source == "correction"]
    return reasons.corrections(ctx.w, entries)


def _day_off(
    emp: str,
    plan: DayPlan,
    made: tuple[Punch, ...],
    dups: tuple[Duplicate, ...],
    stray: tuple[Punch, ...],
    today: Span,
    now: datetime,
    w: reasons.Wording,
) -> Evaluation:
    status = Status(plan.kind.value)
    text = reasons.day_off(plan.kind.value, plan.calendar.name_zh, plan.calendar.name_en)
    zh, en = reasons.join(
        [
            text,
            reasons.counted(len(made), "当日有打卡 {n} 次", "{n} punch(es) that day"),
            reasons.counted(len(dups), "忽略重复打卡 {n} 次", "{n} duplicate press(es) ignored"),
        ]
    )
    return Evaluation(
        employee=emp,
        work_date=plan.date,
        shift_id="",
        status=status,
        confirmation=Confirmation.CONFIRMED if now >= today.end else Confirmation.OPEN,
        start=None,
        end=None,
        late_min=0,
        early_min=0,
        missed_punches=0,
        segments=(),
        punches=made,
        duplicates=tuple(d for d in dups if today.start <= d.dropped.at < today.end),
        stray=stray,
        excusal="",
        watch="",
        held_by=(),
        calendar=plan.calendar,
        calendar_unknown=False,
        confirm_at=today.end,
        watermark=None,
        as_of=now,
        reason_zh=zh,
        reason_en=en,
        next_change=today.end if now < today.end else None,
    )


def _excusals(emp: str, leaves: Iterable[Leave], trips: Iterable[BusinessTrip]) -> tuple[_Excusal, ...]:
    found = [_Excusal(x.start, x.end, "leave", x.id, x.kind) for x in leaves if x.employee == emp]
    found += [_Excusal(x.start, x.end, "trip", x.id, x.destination or "出差") for x in trips if x.employee == emp]
    return tuple(sorted(found, key=lambda x: (x.start, x.end, x.kind, x.id)))


def _subtract(seg: Span, excusals: Sequence[_Excusal]) -> list[Span]:
    """What is left of the segment once leave and trips are taken out, in order."""
    parts = [seg]
    for x in excusals:
        if x.end <= seg.start or x.start >= seg.end:
            continue
        nxt = []
        for part in parts:
            if x.start > part.start:
                nxt.append(Span(part.start, min(part.end, x.start)))
            if x.end < part.end:
                nxt.append(Span(max(part.start, x.end), part.end))
        parts = [p for p in nxt if p.end > p.start]
    return parts


def _watch(ctx: _Ctx, inst: ShiftInstance) -> _Excusal | None:
    """The leave or trip after whose end this is the first shift still owed (the seeds' case:
    a sick leave ends and the worker does not come back)."""
    horizon = timedelta(days=ctx.plant.policy.watch_search_days)
    for x in ctx.excusals:
        if inst.start - horizon < x.end <= inst.end and _first_shift_after(ctx, x.end) == inst.key:
            return x
    return None


def _first_shift_after(ctx: _Ctx, moment: datetime) -> tuple[date, str] | None:
    plant = ctx.plant
    day = moment.astimezone(plant.tz).date() - ONE_DAY
    for _ in range(plant.policy.watch_search_days + 2):
        plan = plan_day(ctx.assignment, plant.calendar, day)
        found = sorted(
            (materialize(_shift(plant, sid), day, plant.tz) for sid in plan.shift_ids),
            key=lambda i: (i.start, i.shift.id),
        )
        for inst in found:
            if inst.end > moment and any(_subtract(seg, ctx.excusals) for seg in inst.segments):
                return inst.key
        day += ONE_DAY
    return None


def _plan(assignment: EmployeeRoster, plant: Plant, day: date, memo: dict[object, DayPlan] | None) -> DayPlan:
    if memo is None or assignment.explicit or assignment.valid_from or assignment.valid_to:
        return plan_day(assignment, plant.calendar, day)
    key = (assignment.roster, day)
    plan = memo.get(key)
    if plan is None:
        plan = memo[key] = plan_day(assignment, plant.calendar, day)
    return plan


def _shift(plant: Plant, shift_id: str) -> Shift:
    try:
        return plant.shifts[shift_id]
    except KeyError as err:
        raise RulesError(f"roster names shift {shift_id!r}, which the plant does not define") from err
