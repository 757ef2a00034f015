"""Applying the state machine (``ladder.decide``) to cases held in a ``CaseBatch``: no SQL here.

``advance`` asks ``decide`` for the due transitions and applies them until nothing more is due,
then sets ``wake_ms``, the next moment a timer of the case needs looking at. Every change lands in
the batch, which the caller flushes inside the transaction holding the cases' locks.
"""

from __future__ import annotations

import json
from datetime import time, timedelta

from cloud.escalation import ladder, workdays
from cloud.escalation.batch import PENDING_SQL, CaseBatch, pending
from cloud.escalation.models import AbsenceCase, CaseStep, CaseTask, Gate, Service
from cloud.escalation.policy import Policy, PolicyVersion

_policies: dict[int, Policy] = {}  # a version is never edited: parsed once per process


def policy_by_id(version_id: int) -> Policy:
    parsed = _policies.get(version_id)
    if parsed is None:
        parsed = _policies[version_id] = PolicyVersion.get_by_id(version_id).parsed()
    return parsed


def policy_of(case: AbsenceCase) -> Policy:
    return policy_by_id(case.policy_id)


def _base(key: str) -> str:
    return key.split("#", 1)[0]


def snapshot(b: CaseBatch, case: AbsenceCase) -> ladder.Snapshot:
    steps: dict[str, str] = {}
    for row in b.steps[case.id]:  # in id order: the latest round of a key wins
        steps[_base(row["key"])] = row["status"]
    return ladder.Snapshot(
        state=case.state,
        level=case.level,
        days=case.days,
        consecutive=case.consecutive,
        cumulative_month=case.cumulative_month,
        cumulative_year=case.cumulative_year,
        acked_until_ms=case.acked_until_ms,
        ack_expired=case.ack_expired,
        contacted=case.contacted,
        welfare=case.welfare,
        deadline_ms=case.deadline_ms,
        union_wait_until_ms=case.union_wait_until_ms,
        effective_ms=case.effective_ms,
        blocked=case.blocked,
        steps=steps,
        gates={kind: row["status"] for kind, row in b.gates[case.id].items()},
        tasks={kind: row["status"] for kind, row in b.tasks[case.id].items()},
        climbed=dict(b.climbed.get(case.id, {})),
        services={
            doc: {
                "status": s["status"],
                "sent_ms": s["sent_ms"],
                "served_ms": s["served_ms"],
                "deemed_ms": s["deemed_ms"],
            }
            for doc, s in b.services[case.id].items()
        },
    )


def calendar(policy: Policy, tz: str) -> ladder.Calendar:
    """The plant's calendar for the ladder: the one place the return deadline and the union's dates are computed."""
    return ladder.Calendar(
        union_deadline=lambda at: workdays.add_working_days(at, policy.union_wait_working_days, tz),
        return_deadline=lambda served: workdays.period_end(served, policy.return_days, tz, policy.return_by),
        workday_start=lambda at: workdays.next_workday_start(at, tz),
        day_start=lambda at, days: workdays.at(workdays.local_day(at, tz) + timedelta(days=days), time(0), tz),
    )


def expected_deadline(policy: Policy, issued_ms: int, tz: str) -> int:
    """The deadline a 催告函 states when it is issued: its service expected ``service_allowance_days`` later (the
    post), then the return days, moved off rest days and holidays. Service achieved later moves it on."""
    return calendar(policy, tz).return_deadline(issued_ms + policy.service_allowance_days * ladder.DAY_MS)


def advance(b: CaseBatch, case: AbsenceCase, now_ms: int, tz: str) -> int:
    """Apply the due transitions; returns how many actions were applied."""
    policy = policy_of(case)
    cal = calendar(policy, tz)
    applied = 0
    last: ladder.Snapshot | None = None  # the case as the last decide saw it, when nothing changed since
    for _round in range(20):
        last = snapshot(b, case)
        actions = ladder.decide(last, policy, now_ms, cal)
        if not actions:
            break
        for action in actions:
            _apply(b, case, action, now_ms)
        applied += len(actions)
        last = None
    case.wake_ms = _wake(b, case, cal, now_ms, last)
    case.updated_ms = now_ms
    b.touch(case)
    return applied


def _wake(
    b: CaseBatch, case: AbsenceCase, cal: ladder.Calendar, now_ms: int, seen: ladder.Snapshot | None = None
) -> int | None:
    """The next moment the case's timers need looking at; ``seen``: its snapshot, taken already."""
    if case.open_key is None or case.state == ladder.MEDICAL:
        return None
    times = [case.acked_until_ms]
    if case.level < 3:  # the next rung is due by its days but spaced from the one below (ladder.climb_from)
        s = seen if seen is not None else snapshot(b, case)
        due = ladder.climb_from(s, policy_of(case), cal)
        if due and due > now_ms and ladder.decide(s, policy_of(case), due, cal):
            times.append(due)
    if case.level in (3, 4) and (case.deadline_ms or 0) > now_ms:  # once past, service or a person moves it
        times.append(case.deadline_ms)
    if case.level == 6 and case.union_wait_until_ms is not None:
        times.append(cal.workday_start(case.union_wait_until_ms))
    times += [s["deemed_ms"] for s in b.services[case.id].values() if s["status"] == "published"]
    future = [t for t in times if t is not None]
    return min(future) if future else None


def _apply(b: CaseBatch, case: AbsenceCase, action: ladder.Action, now_ms: int) -> None:
    if isinstance(action, ladder.Set):
        for name, value in action.fields.items():
            setattr(case, name, value)
        b.touch(case)
    elif isinstance(action, ladder.Note):
        b.append(case, action.kind, action.zh, action.en, at_ms=now_ms, **dict(action.data))
    elif isinstance(action, ladder.Plan):
        rounds = [r for r in b.steps[case.id] if r["key"] == action.key or r["key"].startswith(action.key + "#")]
        if any(r["status"] in ladder.PENDING for r in rounds) or (
            not action.again and any(r["status"] != "superseded" for r in rounds)
        ):
            return
        b.add(
            CaseStep,
            {
                "case": case.id,
                "key": action.key if not rounds else f"{action.key}#{len(rounds) + 1}",  # a round a key
                "level": action.level,
                "notice": action.notice,
                "recipients": ",".join(action.recipients),
                "channels": ",".join(action.channels),
                "to_people": action.to_people,
                "automatic": action.automatic,
                "status": "awaiting_approval" if action.needs_approval else "due",
                "planned_ms": now_ms,
                "due_ms": now_ms,
            },
        )
    elif isinstance(action, ladder.OpenGate):
        gate = b.gates[case.id].get(action.kind)
        if gate is None:
            b.add(
                Gate,
                {
                    "case": case.id,
                    "kind": action.kind,
                    "required": action.required,
                    "opened_ms": now_ms,
                    "checklist": json.dumps(dict(action.checklist), ensure_ascii=False),
                },
            )
        elif gate["status"] == "superseded":
            b.change(Gate, gate, status="open", opened_ms=now_ms, closed_ms=None)
    elif isinstance(action, ladder.Withdraw):
        gate = b.gates[case.id].get(action.gate)
        if gate is not None and gate["status"] == "open":
            b.change(Gate, gate, status="superseded", closed_ms=now_ms)
        task = b.tasks[case.id].get(action.task)
        if task is not None and task["status"] == "open":
            b.change(CaseTask, task, status="superseded")
    elif isinstance(action, ladder.Task):
        task = b.tasks[case.id].get(action.kind)
        if task is not None and task["status"] == "superseded" and case.open_key is not None:
            b.change(CaseTask, task, status="open")  # a withdrawn draft made again: its review is due again
        if action.kind not in b.tasks[case.id]:
            b.add(
                CaseTask,
                {
                    "case": case.id,
                    "kind": action.kind,
                    "title_zh": action.zh,
                    "title_en": action.en,
                    "due_ms": action.due_ms,
                    "statutory": action.statutory,
                    "created_ms": now_ms,
                },
            )
    elif isinstance(action, ladder.Supersede):
        supersede_step(b, case, action.key, action.zh, action.en, now_ms)
    elif isinstance(action, ladder.Deemed):
        service = b.services[case.id].get(action.document)
        if service is not None:
            b.change(Service, service, status="deemed")
        b.append(
            case,
            "deemed_served",
            f"公告期满，视为送达（{action.document}）",
            f"public notice period over: deemed served ({action.document})",
            at_ms=now_ms,
            document=action.document,
        )


def supersede_step(b: CaseBatch, case: AbsenceCase, key: str, zh: str, en: str, now_ms: int) -> None:
    """Every pending round of ``key``: superseded, with an entry each (a step taken stays taken)."""
    for step in [r for r in b.steps[case.id] if (r["key"] == key or r["key"].startswith(key + "#")) and pending(r)]:
        b.change_step(step, PENDING_SQL, status="superseded")
        b.append(
            case,
            "superseded",
            f"未执行的步骤 {step['key']} 作废：{zh}",
            f"pending step {step['key']} superseded: {en}",
            at_ms=now_ms,
            step=step["key"],
        )
        if step["notice"] == "cuigao":
            gate = b.gates[case.id].get("approve_cuigao")
            if gate is not None and gate["status"] == "open":
                b.change(Gate, gate, status="superseded", closed_ms=now_ms)


def resolve(b: CaseBatch, case: AbsenceCase, reason: str, zh: str, en: str, *, actor: str, now_ms: int) -> None:
    """Close the case; what is pending is superseded, what was done stays."""
    for step in [r for r in b.steps[case.id] if pending(r)]:
        supersede_step(b, case, step["key"], "案件已结案", "case resolved", now_ms)
    for gate in b.gates[case.id].values():
        if gate["status"] == "open":
            b.change(Gate, gate, status="superseded", closed_ms=now_ms)
    for task in b.tasks[case.id].values():
        if task["status"] == "open" and not task["statutory"]:
            b.change(CaseTask, task, status="superseded")
    case.state, case.resolved_ms, case.resolution = ladder.RESOLVED, now_ms, reason
    case.open_key, case.wake_ms, case.updated_ms = None, None, now_ms
    b.touch(case)
    b.append(case, "resolved", f"结案：{zh}", f"resolved: {en}", at_ms=now_ms, actor=actor, reason=reason)
