"""The tick's intake: which badges the new day facts and punches touch, and counting them again.

A badge is counted again when a fact or punch of it arrived, when it has an open case and it attended
or punched, or when HR changed its employee (leave, 补卡). Counting works in groups of cases (``group``),
each in one transaction (``counting.recount_group``); a case another runner opened meanwhile is
counted alone, under its lock.
"""

from __future__ import annotations

from cloud.escalation import bulk, cases, facts
from cloud.escalation.models import AbsenceCase
from cloud.hr.models import HrChange, PlantBadge
from cloud.store import Plant


def recount(fresh: facts.Fresh, now: int, *, group: int) -> int:
    """Count again every badge ``fresh`` touches (see the module's text); the number of badges counted."""
    todo: dict[tuple[str, str], int | None] = {badge: None for badge in fresh.touched}
    maybe = fresh.attended | set(fresh.punches)
    if maybe:
        open_badges = set(
            AbsenceCase.select(AbsenceCase.plant, AbsenceCase.user_id)
            .where(AbsenceCase.open_key.is_null(False))
            .tuples()
        )
        todo.update({badge: None for badge in maybe & open_badges})
    for badge, at in fresh.punches.items():
        if badge in todo:
            todo[badge] = at
    changed = list(HrChange.select(HrChange.employee, HrChange.changed_ms).tuples())
    if changed:
        for plant_id, user_id in (
            PlantBadge.select(PlantBadge.plant, PlantBadge.user_id)
            .where(PlantBadge.employee.in_([e for e, _ in changed]))
            .tuples()
        ):
            todo.setdefault((plant_id, user_id), None)
    tz = cases.timezones([p for p, _ in todo])
    versions = cases.Versions()  # policy versions as they stand at the tick's start
    items = [(plant, user, at) for (plant, user), at in sorted(todo.items())]
    retry: list[cases.Item] = []
    for part in bulk.chunks(items, group):
        with cases.transaction():
            retry += cases.recount_group(part, tz=tz, now_ms=now, current=versions).retry
    for plant_id, user_id, at in retry:  # another runner opened the case meanwhile: count it alone, under its lock
        cases.recount(Plant(id=plant_id, timezone=tz[plant_id]), user_id, now_ms=now, punch_ms=at)
    for employee_id, changed_ms in changed:  # only what was seen: a change made meanwhile stays marked
        HrChange.delete().where((HrChange.employee == employee_id) & (HrChange.changed_ms == changed_ms)).execute()
    return len(todo)
