"""The plant's share of the master data, as the document the configuration channel carries.

``plant_config(master)`` is pure: the same master data always gives the same dict, and its
``version`` is the SHA-256 of the rest, so an appliance (and the channel) can tell at once whether
anything changed. Field names are the appliance's master tables' (``appliance/store.py``), so the
appliance saves each list as it comes. Leave, trips and 补卡 are keyed by the badge ``user_id``
the plant's terminals know. Only what attendance needs leaves head office: names, lines and
departments, never phones, addresses or emergency contacts (PIPL: the plant does not need them).
The calendar is head office's statutory years with the plant's own 厂休 over them (``calendar``).
A termination that took effect ends the badge's ``valid_to`` at its date (``terminations``): the appliance
expects the worker no more after it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import peewee as pw

from cloud.escalation.models import AbsenceCase
from cloud.hr.calendar import calendar_text
from cloud.hr.models import (
    Correction,
    Employee,
    Leave,
    PlantBadge,
    RosterDef,
    ScheduleDay,
    ShiftDef,
    Trip,
)
from cloud.store import Plant

CONFIG_KIND = "punchproof/plant-config"
CONFIG_FORMAT = 1


@dataclass(frozen=True)
class PlantMaster:
    """Everything of one plant's master data, read in one go (``load_plant_master``)."""

    plant_id: str
    timezone: str
    shifts: Sequence[dict[str, Any]]
    rosters: Sequence[dict[str, Any]]
    badges: Sequence[dict[str, Any]]  # user_id, name, line, department, roster, valid_from, valid_to, active
    schedule: Sequence[dict[str, Any]]
    leave: Sequence[dict[str, Any]]  # with "user_id" instead of the employee
    trips: Sequence[dict[str, Any]]
    corrections: Sequence[dict[str, Any]]
    calendar: str = ""


def plant_config(master: PlantMaster) -> dict[str, Any]:
    """The configuration document for the plant's appliances (pure; lists in a stable order)."""
    body: dict[str, Any] = {
        "kind": CONFIG_KIND,
        "format": CONFIG_FORMAT,
        "plant": master.plant_id,
        "timezone": master.timezone,
        "shifts": sorted(master.shifts, key=lambda r: r["id"]),
        "rosters": sorted(master.rosters, key=lambda r: r["id"]),
        "employees": sorted(master.badges, key=lambda r: r["user_id"]),
        "schedule": sorted(master.schedule, key=lambda r: (r["employee"], r["day"])),
        "leave": sorted(master.leave, key=lambda r: r["id"]),
        "trips": sorted(master.trips, key=lambda r: r["id"]),
        "corrections": sorted(master.corrections, key=lambda r: r["id"]),
        "calendar": master.calendar,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return {**body, "version": hashlib.sha256(canonical).hexdigest()}


def _earliest(*days: str) -> str:
    given = [d for d in days if d]
    return min(given) if given else ""


def terminations(employees: Sequence[Employee], timezone: str) -> dict[int, str]:
    """The plant date each employee's contract ended by a termination that took effect (an absence case's
    ``effective_ms``: the 解除通知书 served), the latest one; none for a contract begun after it (rehired)."""
    ids = sorted({e.id for e in employees})
    if not ids:
        return {}
    start = {e.id: e.contract_start for e in employees}
    zone = ZoneInfo(timezone)
    out: dict[int, str] = {}
    query = (
        AbsenceCase.select(AbsenceCase.employee, pw.fn.MAX(AbsenceCase.effective_ms))
        .where(AbsenceCase.employee.in_(ids) & AbsenceCase.effective_ms.is_null(False))
        .group_by(AbsenceCase.employee)
        .tuples()
    )
    for employee_id, effective_ms in query:
        day = datetime.fromtimestamp(effective_ms / 1000, UTC).astimezone(zone).date().isoformat()
        if not start.get(employee_id) or start[employee_id] <= day:
            out[employee_id] = day
    return out


def load_plant_master(plant: Plant, *, since_ms: int = 0) -> PlantMaster:
    """Read the plant's master data. ``since_ms`` limits leave and trips to those ending after it
    (an appliance needs the recent past for re-evaluation, not years of history)."""
    shifts = [
        {
            "id": s.shift_id,
            "name": s.name,
            "spans": s.spans,
            "late_grace_min": s.late_grace_min,
            "early_grace_min": s.early_grace_min,
            "checkin_before_min": s.checkin_before_min,
            "checkout_after_min": s.checkout_after_min,
            "terminals": s.terminals,
        }
        for s in ShiftDef.select().where(ShiftDef.plant == plant)
    ]
    rosters = [
        {
            "id": r.roster_id,
            "kind": r.kind,
            "pattern": r.pattern,
            "anchor": r.anchor,
            "holidays": r.holidays,
            "makeup_weekday": r.makeup_weekday,
        }
        for r in RosterDef.select().where(RosterDef.plant == plant)
    ]
    badge_rows = list(PlantBadge.select(PlantBadge, Employee).join(Employee).where(PlantBadge.plant == plant))
    ended = terminations([b.employee for b in badge_rows], plant.timezone)
    badges = [
        {
            "user_id": b.user_id,
            "name": b.employee.name,
            "line": b.line,
            "department": b.employee.department,
            "roster": b.roster,
            "valid_from": max(b.valid_from, b.employee.contract_start),  # ISO dates; not rostered before hire
            "valid_to": _earliest(b.valid_to, ended.get(b.employee_id, "")),  # nor after a termination took effect
            "active": bool(b.employee.active),
        }
        for b in badge_rows
    ]
    badge_of: dict[int, list[str]] = {}
    for b in badge_rows:
        badge_of.setdefault(b.employee_id, []).append(b.user_id)
    people = list(badge_of)
    schedule = [
        {"employee": d.user_id, "day": d.day, "shifts": d.shifts}
        for d in ScheduleDay.select().where(ScheduleDay.plant == plant)
    ]
    leave = [
        {"id": x.ref, "employee": uid, "kind": x.kind, "start_ms": x.start_ms, "end_ms": x.end_ms, "status": x.status}
        for x in Leave.select().where(Leave.employee.in_(people) & (Leave.end_ms >= since_ms))
        for uid in badge_of[x.employee_id]
    ]
    trips = [
        {
            "id": x.ref,
            "employee": uid,
            "destination": x.destination,
            "start_ms": x.start_ms,
            "end_ms": x.end_ms,
            "status": x.status,
        }
        for x in Trip.select().where(Trip.employee.in_(people) & (Trip.end_ms >= since_ms))
        for uid in badge_of[x.employee_id]
    ]
    corrections = [
        {
            "id": x.ref,
            "employee": uid,
            "at_ms": x.at_ms,
            "direction": x.direction,
            "reason": x.reason,
            "by": x.approved_by,
            "recorded_ms": x.recorded_ms,
            "status": x.status,
        }
        for x in Correction.select().where(Correction.employee.in_(people) & (Correction.at_ms >= since_ms))
        for uid in badge_of[x.employee_id]
    ]
    return PlantMaster(
        plant.id, plant.timezone, shifts, rosters, badges, schedule, leave, trips, corrections, calendar_text(plant)
    )
