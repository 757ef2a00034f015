"""A whole plant's day at once: what the daemon runs every minute and the board shows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Protocol, TypeVar

from appliance.rules.evaluate import Evaluation, Plant, evaluate_day
from appliance.rules.model import BusinessTrip, Correction, Leave, Punch
from appliance.rules.roster import DayPlan, EmployeeRoster


class _HasEmployee(Protocol):
    @property
    def employee(self) -> str: ...


T = TypeVar("T", bound=_HasEmployee)


def by_employee(items: Iterable[T]) -> dict[str, list[T]]:
    grouped: dict[str, list[T]] = defaultdict(list)
    for item in items:
        grouped[item.employee].append(item)
    return grouped


def evaluate_plant_day(
    plant: Plant,
    rosters: Iterable[EmployeeRoster],
    work_date: date,
    *,
    punches: Mapping[str, Sequence[Punch]],
    corrections: Mapping[str, Sequence[Correction]] | None = None,
    leaves: Mapping[str, Sequence[Leave]] | None = None,
    trips: Mapping[str, Sequence[BusinessTrip]] | None = None,
    now: datetime,
    watermarks: Mapping[str, datetime],
) -> list[Evaluation]:
    """Every rostered employee's evaluations for ``work_date``; inputs grouped with ``by_employee``."""
    corrections, leaves, trips = corrections or {}, leaves or {}, trips or {}
    results: list[Evaluation] = []
    memo: dict[object, DayPlan] = {}
    for assignment in rosters:
        emp = assignment.employee
        results.extend(
            evaluate_day(
                plant,
                assignment,
                work_date,
                punches=punches.get(emp, ()),
                corrections=corrections.get(emp, ()),
                leaves=leaves.get(emp, ()),
                trips=trips.get(emp, ()),
                now=now,
                watermarks=watermarks,
                memo=memo,
            )
        )
    return results
