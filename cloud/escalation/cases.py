"""Cases under their locks: count their days again, open them, advance them, resolve them.

``locked_case`` is the way in for one case: PostgreSQL locks the case row (``FOR UPDATE``), SQLite
takes its write lock up front (``BEGIN IMMEDIATE``), so two runners, or a runner and a person
clicking "approve", never interleave on one case. The engine's tick works on groups of cases the
same way (``recount_group``, ``advance_group``: every case of the group locked, in id order, for the
group's one transaction), reading and writing each table once per group (``batch``). The state
machine itself is applied in ``machine`` and the counting of days in ``counting``; this module
keeps the one-case entry points people's actions use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import peewee as pw

from cloud.escalation import machine, timeline
from cloud.escalation.batch import CaseBatch, lock
from cloud.escalation.counting import (  # noqa: F401 - part of this module's interface
    CORRECTION_AFTER_MS,
    CORRECTION_BEFORE_MS,
    WINDOW_DAYS,
    Current,
    Day,
    Item,
    Recounted,
    classify,
    recount_group,
)
from cloud.escalation.machine import _policies, policy_of, snapshot  # noqa: F401 - re-exported
from cloud.escalation.models import AbsenceCase, CaseTask
from cloud.escalation.policy import PolicyVersion, current
from cloud.store import Plant, database

ACK_REASONS = {
    "contacted": ("已联系上员工", "employee reached"),
    "sick": ("员工生病", "employee is ill"),
    "family": ("家庭原因", "family matter"),
    "police": ("被公安机关限制人身自由", "held by the police"),
    "leave_pending": ("请假手续办理中", "leave request pending"),
    "device_fault": ("考勤设备故障，待核实", "terminal fault, being checked"),
    "other": ("其他", "other"),
}
CONTACT_REASONS = frozenset({"contacted", "sick", "family", "police", "leave_pending"})


class CaseError(ValueError):
    """An action the case's state does not allow; zh-CN first."""


def transaction() -> contextlib.AbstractContextManager:
    """A write transaction: on SQLite the write lock up front (``BEGIN IMMEDIATE``), on PostgreSQL a
    plain one whose row locks are taken by ``FOR UPDATE`` as cases are read. Nested, a savepoint."""
    db = database.obj
    return db.atomic("IMMEDIATE") if isinstance(db, pw.SqliteDatabase) else db.atomic()


@contextmanager
def locked_case(case_id: int) -> Iterator[AbsenceCase]:
    with transaction():
        query = AbsenceCase.select().where(AbsenceCase.id == case_id)
        yield (query if isinstance(database.obj, pw.SqliteDatabase) else query.for_update()).get()


class Versions:
    """The newest policy version per plant, read once for a tick (``policy.current`` per plant otherwise)."""

    def __init__(self) -> None:
        self._latest: dict[str, PolicyVersion] | None = None

    def __call__(self, plant_id: str) -> PolicyVersion | None:
        if self._latest is None:
            self._latest = {}
            for row in PolicyVersion.select().order_by(PolicyVersion.scope, PolicyVersion.number):
                self._latest[row.scope] = row
        return self._latest.get(plant_id) or self._latest.get("*")


def timezones(plant_ids: Sequence[str]) -> dict[str, str]:
    ids = sorted(set(plant_ids))
    return dict(Plant.select(Plant.id, Plant.timezone).where(Plant.id.in_(ids)).tuples()) if ids else {}


def advance_group(case_ids: Sequence[int], now_ms: int, *, due_only: bool = True) -> int:
    """Advance the cases (inside the caller's transaction): each still open whose timer is due (or
    every open one, ``due_only=False``); returns how many were advanced."""
    locked = lock(case_ids)
    tz = timezones([c.plant_id for c in locked])
    batch = CaseBatch.load(locked)
    done = 0
    for case in locked:
        if case.open_key is not None and (not due_only or (case.wake_ms is not None and case.wake_ms <= now_ms)):
            machine.advance(batch, case, now_ms, tz[case.plant_id])
            done += 1
    batch.flush()
    return done


# -- one case (people's actions; the engine uses the group functions) ---------------------------


def recount(plant: Plant, user_id: str, *, now_ms: int, punch_ms: int | None = None) -> AbsenceCase | None:
    """Look at a badge's confirmed days again: open a case for a new spell, or update the open one."""
    item = [(plant.id, user_id, punch_ms)]
    for _attempt in range(3):  # a retry finds the case another runner just opened, and counts it
        with transaction():
            done = recount_group(item, tz={plant.id: plant.timezone}, now_ms=now_ms, current=current)
        if not done.retry:
            break
    return done.cases.get((plant.id, user_id))


def _one(case: AbsenceCase) -> tuple[CaseBatch, str]:
    return CaseBatch.load([case]), Plant.get_by_id(case.plant_id).timezone


def advance(case: AbsenceCase, now_ms: int) -> int:
    """Apply the due transitions (inside ``locked_case``); returns how many actions were applied."""
    batch, tz = _one(case)
    applied = machine.advance(batch, case, now_ms, tz)
    batch.flush()
    return applied


def resolve(case: AbsenceCase, reason: str, zh: str, en: str, *, actor: str, now_ms: int) -> None:
    """Close the case (inside ``locked_case``); what is pending is superseded, what was done stays."""
    batch, _tz = _one(case)
    machine.resolve(batch, case, reason, zh, en, actor=actor, now_ms=now_ms)
    batch.flush()


def _supersede_step(case: AbsenceCase, key: str, zh: str, en: str, now_ms: int) -> None:
    batch, _tz = _one(case)
    machine.supersede_step(batch, case, key, zh, en, now_ms)
    batch.flush()


def stated_deadline(case: AbsenceCase, issued_ms: int, tz: str) -> int:
    """The return deadline a 催告函 issued at ``issued_ms`` states (``issue_deadline`` stores it; the case page's
    preview shows it): the case's own while still ahead, else the expected one from this issue."""
    if case.deadline_ms is not None and case.deadline_ms > issued_ms:
        return int(case.deadline_ms)
    return machine.expected_deadline(policy_of(case), issued_ms, tz)


def issue_union_window(case_id: int, issued_ms: int, now_ms: int, tz: str) -> None:
    """The union's reply window as the letter issued at ``issued_ms`` states it: counted from its issue. The
    confirmation set it from the day the letter was expected to go; a letter that went out later (the channels
    down, a retry) moves the window, the termination date the letter proposes and the union reply task's due
    date with it, so the notice never proposes a date inside the window it gives the union."""
    with locked_case(case_id) as case:
        if case.union_wait_until_ms is None:
            return
        until = machine.calendar(policy_of(case), tz).union_deadline(issued_ms)
        if until <= case.union_wait_until_ms:
            return
        was = case.union_wait_until_ms
        case.union_wait_until_ms = until
        case.save()
        CaseTask.update(due_ms=until).where(
            (CaseTask.case == case) & (CaseTask.kind == "union_reply") & (CaseTask.status == "open")
        ).execute()
        timeline.append(
            case,
            "union_window",
            "工会通知函晚于预定时间发出：工会答复期限自实际发出之日起计算，拟解除日期相应顺延",
            "the union letter went out later than planned: the union's reply window counts from its issue, and the "
            "proposed termination date moves with it",
            at_ms=now_ms,
            wait_until_ms=until,
            was_ms=was,
        )


def issue_deadline(case_id: int, issued_ms: int, now_ms: int, tz: str) -> int:
    """The return deadline a 催告函 issued at ``issued_ms`` states, stored on the case before it is printed:
    the case's own when it has one (service already known) still ahead, else the expected one
    (``machine.expected_deadline``). A 催告函 issued again because service came later than expected, recorded
    only after the deadline that service gives had passed, would state a day already over: it states the
    expected one from its own issue instead (later, never earlier, than the case's).
    """
    with locked_case(case_id) as case:
        deadline = stated_deadline(case, issued_ms, tz)
        if deadline == case.deadline_ms:
            return deadline
        passed = case.deadline_ms
        policy = policy_of(case)
        case.deadline_ms = deadline
        case.save()
        again_zh = "催告函重新发出时原返岗期限已过，期限自本次发出重新计算" if passed else "催告函返岗期限"
        again_en = (
            " (the one before passed before this notice could state it: counted from this issue)" if passed else ""
        )
        timeline.append(
            case,
            "deadline",
            f"{again_zh}：发出后预计 {policy.service_allowance_days} 日内送达，"
            f"送达后 {policy.return_days} 日（遇休息日、法定节假日顺延）；实际送达更晚的，期限顺延并重新发出",
            f"return deadline{again_en}: service expected within {policy.service_allowance_days} days of issue, "
            f"then {policy.return_days} days (moved off rest days and holidays); a later service moves it on",
            at_ms=now_ms,
            deadline_ms=case.deadline_ms,
            issued_ms=issued_ms,
            **({"was_ms": passed} if passed is not None else {}),
        )
        return int(case.deadline_ms)
