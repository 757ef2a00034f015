"""The tick's intake: which badges the new day facts and punches touch, and counting them again.

A badge is counted again when a fact or punch of it arrived, when it has an open case and it attended
or punched, or when HR changed its employee (leave, 补卡). Counting works in groups (``groups``: at most
``group`` badges with an open case, at most ``OPENING_GROUP`` in all), each in one transaction
(``counting.recount_group``); a case another runner opened meanwhile is counted alone, under its lock.
"""

from __future__ import annotations

from collections.abc import Iterator

from cloud.escalation import cases, facts
from cloud.escalation.models import AbsenceCase
from cloud.hr.models import HrChange, PlantBadge
from cloud.store import Plant

OPENING_GROUP = 2_000  # badges per group when few of them have an open case (``groups``)


def recount(fresh: facts.Fresh, now: int, *, group: int) -> int:
    """Count again every badge ``fresh`` touches (see the module's text); the number of badges counted. The
    cyclic garbage collector is held off meanwhile, as for reading (``facts.read_new``): counting makes many
    short-lived rows and no cycles, while the day's million badges read stay alive for each full collection
    to walk."""
    with facts.collector_held():
        return _recount(fresh, now, group=group)


def _recount(fresh: facts.Fresh, now: int, *, group: int) -> int:
    todo: dict[tuple[str, str], int | None] = {badge: None for badge in fresh.touched}
    open_badges: set[tuple[str, str]] = set()
    if todo or fresh.attended or fresh.punches:
        open_badges = set(
            AbsenceCase.select(AbsenceCase.plant, AbsenceCase.user_id)
            .where(AbsenceCase.open_key.is_null(False))
            .tuples()
        )
        # an attended fact or a punch matters only with an open case: the open cases (tens of thousands) are
        # looked up in the badges read (a group's day: a million), not the other way round
        todo.update({b: None for b in open_badges if b in fresh.attended or b in fresh.punches})
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
    for part in groups(items, open_badges, group=group, opening=max(group, OPENING_GROUP)):
        with cases.transaction():
            retry += cases.recount_group(part, tz=tz, now_ms=now, current=versions).retry
    for plant_id, user_id, at in retry:  # another runner opened the case meanwhile: count it alone, under its lock
        cases.recount(Plant(id=plant_id, timezone=tz[plant_id]), user_id, now_ms=now, punch_ms=at)
    for employee_id, changed_ms in changed:  # only what was seen: a change made meanwhile stays marked
        HrChange.delete().where((HrChange.employee == employee_id) & (HrChange.changed_ms == changed_ms)).execute()
    return len(todo)


def groups(
    items: list[cases.Item], open_badges: set[tuple[str, str]], *, group: int, opening: int
) -> Iterator[list[cases.Item]]:
    """``items`` in order, a group at a time: at most ``group`` badges with an open case (whose locks the group
    holds while it counts, and a person's click on one of them waits for), and at most ``opening`` in all. A
    badge without an open case locks nothing another transaction can see: the cases it opens are new rows,
    invisible until the group commits, so a group's morning of new absences goes in a few large groups."""
    part: list[cases.Item] = []
    locked = 0
    for item in items:
        part.append(item)
        locked += (item[0], item[1]) in open_badges
        if locked >= group or len(part) >= opening:
            yield part
            part, locked = [], 0
    if part:
        yield part
