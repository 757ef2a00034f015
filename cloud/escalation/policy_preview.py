"""How a policy (published or not) would run a case, day by day: "若员工自某周一起缺勤，将按以下时间推进".

Nothing is written and nothing is sent: the preview drives the engine's own state machine (``ladder.decide``)
with the plant's calendar (``machine.calendar``: the return deadline, the union's wait, working days) on a
snapshot held here, the way ``machine.advance`` drives it on a stored case. What the engine does between two
decisions is played with its own functions too: a step is held as the runner holds it (``engine.FORMAL`` on
working days, ``engine.next_window`` for the quiet hours), a 催告函 states ``machine.expected_deadline`` from
its issue, and a union letter's window counts from its issue (``calendar.union_deadline``).

What a person does is assumed done at the next moment the preview looks (so the page says where a person is
waited for): HR approves the 催告函, closes the welfare check and confirms the termination; the 催告函 is
served when the policy expects it (``service_allowance_days`` after it is issued), which is when its deadline
is counted from. The worker is rostered on the calendar's working days and never comes back; each absent day is
confirmed at ``confirmed_at`` (the end of a day shift). The preview ends once the 解除通知书 goes out, or after
``max_days`` calendar days.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, time, timedelta

from cloud.escalation import ladder, machine, workdays
from cloud.escalation.engine import FORMAL, next_window
from cloud.escalation.policy import Policy


@dataclass(frozen=True)
class Event:
    at_ms: int
    kind: str  # send | approval | gate | task | note | deadline | served | welfare
    zh: str
    en: str
    key: str = ""  # the ladder's step key for a send ("L1", "L3:welfare"...)
    notice: str = ""
    recipients: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    due_ms: int | None = None  # a deadline's moment


@dataclass
class Day:
    day: date
    workday: bool
    absent_day: int | None = None  # the n-th absent working day confirmed that day
    events: list[Event] = field(default_factory=list)

    def sends(self) -> list[Event]:
        return [e for e in self.events if e.kind == "send"]


@dataclass
class _Held:
    key: str
    level: int
    notice: str
    recipients: tuple[str, ...]
    channels: tuple[str, ...]
    to_people: bool
    approval: bool  # still waiting for HR's approval (granted at the next moment)


def _hold_until(notice: str, to_people: bool, now_ms: int, tz: str, policy: Policy) -> int:
    """When the runner lets a due step go (``engine.Engine._hold_until``'s rules for a step without an ack)."""
    at = now_ms
    for _round in range(3):
        if notice in FORMAL and not workdays.is_workday(workdays.local_day(at, tz)):
            at = workdays.at(workdays.first_workday(workdays.local_day(at, tz)), policy.quiet_start, tz)
            continue
        later = next_window(at, tz, policy.quiet_start, policy.quiet_end) if to_people else None
        if later is None:
            return at
        at = later
    return at


def simulate(
    policy: Policy,
    first_day: date,
    tz: str,
    *,
    confirmed_at: time = time(18, 0),
    max_days: int = 60,
) -> list[Day]:
    """The days from ``first_day`` (the first absent day) to the end of the ladder, each with what happens on it."""
    cal = machine.calendar(policy, tz)
    s = ladder.Snapshot(state=ladder.STATES[0], level=0, days=0, consecutive=0)
    held: list[_Held] = []
    served_due: int | None = None  # when the 催告函 is expected served
    gates_pending: list[str] = []
    days: list[Day] = []
    finished = False
    for offset in range(max_days):
        today = first_day + timedelta(days=offset)
        row = Day(today, workdays.is_workday(today))
        days.append(row)
        moments = sorted({policy.quiet_start, policy.return_by, confirmed_at})
        for moment in moments:
            now = workdays.at(today, moment, tz)
            if moment == confirmed_at and row.workday:
                s = dataclasses.replace(
                    s,
                    days=s.days + 1,
                    consecutive=s.consecutive + 1,
                    cumulative_month=s.cumulative_month + 1,
                    cumulative_year=s.cumulative_year + 1,
                )
                row.absent_day = s.days
            if s.days == 0:
                continue  # no case before the first absent day is confirmed
            s = _people_act(s, held, gates_pending, now, row)
            if served_due is not None and now >= served_due and "cuigao" not in s.services:
                services = {**s.services, "cuigao": {"status": "served", "served_ms": served_due}}
                s = dataclasses.replace(s, services=services)
                row.events.append(
                    Event(
                        served_due,
                        "served",
                        f"催告函按政策预计送达（发出后 {policy.service_allowance_days} 日），返岗期限自此计算",
                        f"the notice to return is expected served ({policy.service_allowance_days} days after "
                        "issue); the return deadline counts from here",
                    )
                )
            s = _decide(s, policy, cal, now, held, gates_pending, row)
            s, issued, done = _release(s, policy, cal, tz, now, held, row)
            if issued is not None and served_due is None:
                served_due = issued + policy.service_allowance_days * ladder.DAY_MS
            s = _decide(s, policy, cal, now, held, gates_pending, row)
            finished = finished or done
        if finished:
            break
    while days and not days[-1].events and days[-1].absent_day is None:
        days.pop()
    return days


def _people_act(s: ladder.Snapshot, held: list[_Held], gates_pending: list[str], now: int, row: Day) -> ladder.Snapshot:
    """What HR was waited for at the moment before: approved, confirmed, the welfare check closed."""
    for step in held:
        if step.approval:
            step.approval = False
            row.events.append(Event(now, "approval", "人事已批准发送催告函（预览假定）", "HR approved (assumed)"))
    steps = {**s.steps, **{h.key: "due" for h in held}}
    gates = dict(s.gates)
    for kind in gates_pending:
        gates[kind] = "approved"
        if kind == "confirm_termination":
            row.events.append(Event(now, "approval", "人事已确认解除（预览假定）", "HR confirmed (assumed)"))
        if kind == "approve_cuigao":
            gates[kind] = "approved"
    gates_pending.clear()
    welfare = s.welfare
    if welfare == "open":
        welfare = "closed"
        row.events.append(
            Event(now, "welfare", "人事结束福利核查（预览假定）", "HR closed the welfare check (assumed)")
        )
    return dataclasses.replace(s, steps=steps, gates=gates, welfare=welfare)


def _decide(
    s: ladder.Snapshot,
    policy: Policy,
    cal: ladder.Calendar,
    now: int,
    held: list[_Held],
    gates_pending: list[str],
    row: Day,
) -> ladder.Snapshot:
    """``ladder.decide`` until nothing more is due, applied as ``machine._apply`` applies it (to the snapshot)."""
    for _round in range(20):
        actions = ladder.decide(s, policy, now, cal)
        if not actions:
            break
        for action in actions:
            s = _apply(s, action, now, held, gates_pending, row)
    return s


def _apply(
    s: ladder.Snapshot,
    action: ladder.Action,
    now: int,
    held: list[_Held],
    gates_pending: list[str],
    row: Day,
) -> ladder.Snapshot:
    if isinstance(action, ladder.Set):
        s = dataclasses.replace(s, **dict(action.fields))
        level = action.fields.get("level")
        if isinstance(level, int) and 1 <= level <= 3:
            s = dataclasses.replace(s, climbed={**s.climbed, level: now})
        return s
    if isinstance(action, ladder.Plan):
        if action.key in s.steps and not action.again:
            return s
        held.append(
            _Held(
                action.key,
                action.level,
                action.notice,
                action.recipients,
                action.channels,
                action.to_people,
                action.needs_approval,
            )
        )
        status = "awaiting_approval" if action.needs_approval else "due"
        if action.needs_approval:
            row.events.append(
                Event(now, "gate", "等待人事批准后才发出催告函", "waits for HR's approval", key=action.key)
            )
        return dataclasses.replace(s, steps={**s.steps, action.key: status})
    if isinstance(action, ladder.OpenGate):
        if action.kind == "confirm_termination":
            row.events.append(
                Event(
                    now,
                    "gate",
                    f"等待人事确认解除（需 {action.required} 人确认）",
                    f"waits for HR's confirmation ({action.required} person(s))",
                )
            )
        gates_pending.append(action.kind)
        return dataclasses.replace(s, gates={**s.gates, action.kind: "open"})
    if isinstance(action, ladder.Task):
        row.events.append(Event(now, "task", action.zh, action.en))
        return dataclasses.replace(s, tasks={**s.tasks, action.kind: "open"})
    if isinstance(action, ladder.Note):
        if action.kind == "deadline":
            return s  # said by the deadline event itself
        row.events.append(Event(now, "note", action.zh, action.en))
        return s
    return s


def _release(
    s: ladder.Snapshot,
    policy: Policy,
    cal: ladder.Calendar,
    tz: str,
    now: int,
    held: list[_Held],
    row: Day,
) -> tuple[ladder.Snapshot, int | None, bool]:
    """The held steps the runner lets go at ``now``: sent. Returns the snapshot, when a 催告函 was issued (if one
    was), and whether the 解除通知书 went out (the end of the ladder)."""
    issued, done = None, False
    for step in list(held):
        if step.approval or _hold_until(step.notice, step.to_people, now, tz, policy) > now:
            continue
        held.remove(step)
        s = dataclasses.replace(s, steps={**s.steps, step.key: "sent"})
        row.events.append(
            Event(
                now,
                "send",
                "",
                "",
                key=step.key,
                notice=step.notice,
                recipients=step.recipients,
                channels=step.channels,
            )
        )
        if step.notice == "cuigao" and s.deadline_ms is None:
            issued = now
            deadline = machine.expected_deadline(policy, now, tz)
            s = dataclasses.replace(s, deadline_ms=deadline)
            row.events.append(Event(now, "deadline", "", "", key="return_deadline", due_ms=deadline))
        if step.notice == "union_letter" and s.union_wait_until_ms is not None:
            until = max(s.union_wait_until_ms, cal.union_deadline(now))
            s = dataclasses.replace(s, union_wait_until_ms=until)
            row.events.append(Event(now, "deadline", "", "", key="union_wait", due_ms=until))
        if step.notice == "termination":
            done = True
    return s, issued, done
