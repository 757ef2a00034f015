"""A verified configuration document from the cloud, applied to the master-data tables.

Everything is checked first (shifts parse, rosters name defined shifts, employees name defined
rosters, head office's calendar parses, device settings name this appliance's terminals); only a
document without a problem is written, in one transaction. Each section the document carries
replaces that section: a definition it no longer holds (a shift, a roster, a day of the schedule,
a device setting) is deleted; a person or an event it no longer holds is kept readable, as the
importers do, with the employee made inactive and leave, trips and 补卡 cancelled. Past days whose
leave, trips, 补卡 or schedule changed are queued for the evaluator (``roster_store``), as an import
of the same rows would be; a changed statutory calendar queues every day still looked back over. The
calendar is kept in a row of its own: the plant's own file (厂休) is merged over it, never replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import peewee as pw

from appliance.config import MIN_CLOCK_CORRECT_S
from appliance.roster import importer as roster_import
from appliance.roster import store as roster_store
from appliance.rules import RulesError, parse_overrides
from appliance.store import (
    AppliedConfig,
    CalendarFile,
    CorrectionEntry,
    DeviceSetting,
    Employee,
    LeaveEntry,
    PlantPolicy,
    RosterDef,
    ScheduleDay,
    ShiftDef,
    TripEntry,
)
from ledger.config_message import KEYS, ConfigDocument

MAX_POLL_SECONDS = 3600
DEFINITIONS = ("shifts", "rosters", "schedule")  # replaced: rows the document lacks are deleted
STATUS_KEPT = {"leave": LeaveEntry, "trips": TripEntry, "corrections": CorrectionEntry}  # lacking: cancelled


class ConfigRejected(ValueError):
    """The document is signed and meant for us, but the rules could not use it; nothing was written."""


@dataclass(frozen=True)
class ApplyReport:
    version: int
    counts: Mapping[str, int]
    removed: Mapping[str, int]  # deleted, deactivated or cancelled, per section
    reevaluate: tuple[str, ...]
    restart_needed: bool  # device settings changed: they take effect when the daemon starts


def check(document: ConfigDocument, terminals: Sequence[str]) -> None:
    """Raise ``ConfigRejected`` listing every problem of the document; write nothing."""
    problems: list[str] = []
    sections = document.sections
    for row in sections.get("shifts", []):
        try:
            roster_store.shift_of(ShiftDef(**row))
        except (RulesError, ValueError) as err:
            problems.append(f"shifts {row['id']}: {err}")
    if "shifts" not in sections:
        shift_ids = {s.id for s in ShiftDef.select(ShiftDef.id)}
    else:
        shift_ids = {r["id"] for r in sections["shifts"]}
    for row in sections.get("rosters", []):
        days = roster_store.parse_pattern(row["pattern"])
        unknown = sorted({s for day in days for s in day if s not in shift_ids})
        if unknown:
            problems.append(f"rosters {row['id']}: names undefined shift(s) {', '.join(unknown)}")
        if row["kind"] == "weekly" and len(days) != 7:
            problems.append(f"rosters {row['id']}: a weekly pattern has 7 days, Monday first; got {len(days)}")
        if row["kind"] == "rotating" and not row["anchor"]:
            problems.append(f"rosters {row['id']}: a rotating roster needs the date of day 0 of its cycle")
        problems += _dates(f"rosters {row['id']}", row, ("anchor",))
    roster_ids = (
        {r["id"] for r in sections["rosters"]}
        if "rosters" in sections
        else {r.id for r in RosterDef.select(RosterDef.id)}
    )
    for row in sections.get("employees", []):
        if row["roster"] and row["roster"] not in roster_ids:
            problems.append(f"employees {row['user_id']}: roster {row['roster']!r} is not defined")
        problems += _dates(f"employees {row['user_id']}", row, ("valid_from", "valid_to"))
    for row in sections.get("schedule", []):
        where = f"schedule {row['employee']} {row['day']}"
        problems += _dates(where, row, ("day",))
        unknown = [s for s in roster_store.split_day(row["shifts"]) if s not in shift_ids]
        if unknown:
            problems.append(f"{where}: unknown shift(s) {', '.join(unknown)}")
    for section in ("leave", "trips"):
        problems += [
            f"{section} {r['id']}: ends before it starts"
            for r in sections.get(section, [])
            if r["end_ms"] <= r["start_ms"]
        ]
    if "calendar" in sections:
        try:
            parse_overrides(sections["calendar"]["text"], source="cloud configuration")
        except RulesError as err:
            problems.append(f"calendar: {err}")
    if "policy" in sections:
        policy = sections["policy"]
        problems += [f"policy.{k}: must not be negative" for k, v in policy.items() if isinstance(v, int) and v < 0]
    for row in sections.get("devices", []):
        where = f"devices {row['terminal']}"
        if row["terminal"] not in terminals:
            problems.append(
                f"{where}: no such ZK terminal on this appliance (it has: {', '.join(terminals) or 'none'})"
            )
        if row["clock_alarm_s"] <= 0:
            problems.append(f"{where}: clock_alarm_s must be positive")
        correct = row["clock_correct_above_s"]
        if correct is not None and correct < MIN_CLOCK_CORRECT_S:
            problems.append(f"{where}: clock_correct_above_s must be at least {MIN_CLOCK_CORRECT_S:g} s, or null")
        if not 1 <= row["poll_seconds"] <= MAX_POLL_SECONDS:
            problems.append(f"{where}: poll_seconds must be between 1 and {MAX_POLL_SECONDS}")
    problems += _orphans(sections, shift_ids, roster_ids)
    if problems:
        raise ConfigRejected("; ".join(problems))


def _orphans(sections: Mapping[str, Any], shift_ids: set[str], roster_ids: set[str]) -> list[str]:
    """Rows kept from before that would name a shift or roster this document removes."""
    problems = []
    if "shifts" in sections:
        if "rosters" not in sections:
            for row in RosterDef.select():
                gone = sorted({s for day in roster_store.parse_pattern(row.pattern) for s in day} - shift_ids)
                if gone:
                    problems.append(f"rosters {row.id} (kept) names shift(s) {', '.join(gone)} this document removes")
        if "schedule" not in sections:
            for row in ScheduleDay.select():
                gone = sorted(set(roster_store.split_day(row.shifts)) - shift_ids)
                if gone:
                    problems.append(
                        f"schedule {row.employee} {row.day} (kept) names removed shift(s) {', '.join(gone)}"
                    )
    if "rosters" in sections and "employees" not in sections:
        for emp in Employee.select().where((Employee.active == True) & (Employee.roster != "")):  # noqa: E712
            if emp.roster not in roster_ids:
                problems.append(
                    f"employees {emp.user_id} (kept) has roster {emp.roster!r}, which this document removes"
                )
    return problems


def apply(document: ConfigDocument, tz: ZoneInfo, terminals: Sequence[str], now_ms: int) -> ApplyReport:
    """Check, then write the document's sections and record its version, all in one transaction."""
    sections = document.sections
    source = f"cloud:v{document.version}"
    db: pw.Database = Employee._meta.database
    removed: dict[str, int] = {}
    # IMMEDIATE: take the write lock first, so the checks see what is written, and SQLite never has to
    # upgrade a read transaction while the log writer holds the lock (that fails at once, "database is locked")
    with db.atomic("IMMEDIATE"):
        check(document, terminals)
        cancelled_spans = _retire(sections, tz, source, now_ms, removed)
        rows = {kind: list(sections[kind]) for kind in roster_import.ORDER if kind in sections}
        report = roster_import.store(rows, tz, now_ms, source=source)
        again = roster_store.request_reevaluation(cancelled_spans, tz, now_ms)
        if "calendar" in sections:
            again += _replace_calendar(sections["calendar"]["text"], tz, source, now_ms)
        if "policy" in sections:
            PlantPolicy.replace(id=1, **sections["policy"], source=source, updated_ms=now_ms).execute()
        restart = False
        if "devices" in sections:
            restart = _replace_devices(sections["devices"], source, now_ms, removed)
        AppliedConfig.replace(
            id=1,
            version=document.version,
            hash=document.hash,
            created_ms=document.created_ms,
            by=document.by,
            applied_ms=now_ms,
            rejected="",
            rejected_ms=None,
        ).execute()
    days = tuple(sorted(set(report.reevaluate) | set(again)))
    return ApplyReport(document.version, report.counts, removed, days, restart)


def _retire(
    sections: Mapping[str, Any], tz: ZoneInfo, source: str, now_ms: int, removed: dict[str, int]
) -> list[tuple[int, int]]:
    """Delete, deactivate or cancel what a carried section no longer holds; return the spans to look at again."""
    stamp = {"source": source, "updated_ms": now_ms}
    spans: list[tuple[int, int]] = []
    for kind in DEFINITIONS:
        if kind in sections:
            model = roster_import.MODELS[kind]
            keep = {_key(kind, row) for row in sections[kind]}
            gone = [row for row in model.select() if _key(kind, row) not in keep]
            for row in gone:
                row.delete_instance()
                if kind == "schedule":
                    midnight = int(datetime.combine(date.fromisoformat(row.day), time(), tz).timestamp() * 1000)
                    spans.append((midnight, midnight))
            removed[kind] = len(gone)
    if "employees" in sections:
        keep = {row["user_id"] for row in sections["employees"]}
        gone_ids = [e.user_id for e in Employee.select(Employee.user_id).where(Employee.active == True)]  # noqa: E712
        gone_ids = [uid for uid in gone_ids if uid not in keep]
        for start in range(0, len(gone_ids), 500):
            Employee.update(active=False, **stamp).where(Employee.user_id.in_(gone_ids[start : start + 500])).execute()
        removed["employees"] = len(gone_ids)
    for kind, model in STATUS_KEPT.items():
        if kind not in sections:
            continue
        keep = {row["id"] for row in sections[kind]}
        gone = [r for r in model.select().where(model.status == "approved") if r.id not in keep]
        for row in gone:
            model.update(status="cancelled", **stamp).where(model.id == row.id).execute()
            spans.append((row.at_ms, row.at_ms) if kind == "corrections" else (row.start_ms, row.end_ms))
        removed[kind] = len(gone)
    return spans


def _replace_calendar(text: str, tz: ZoneInfo, source: str, now_ms: int) -> list[str]:
    """Head office's statutory calendar, kept apart from the plant's own file (which still applies over it).

    A changed calendar may turn a day judged on the provisional calendar into a holiday, or a 调休
    Saturday into a working day: every day the evaluator still looks back over is evaluated again.
    """
    row_id = roster_store.CALENDAR_HEAD_OFFICE_ROW
    before = CalendarFile.get_or_none(CalendarFile.id == row_id)
    CalendarFile.replace(id=row_id, text=text, source=source, updated_ms=now_ms).execute()
    if before is not None and before.text == text:
        return []
    return roster_store.request_reevaluation([(now_ms - roster_store.REEVALUATE_DAYS * 86_400_000, now_ms)], tz, now_ms)


def _replace_devices(rows: Iterable[Mapping[str, Any]], source: str, now_ms: int, removed: dict[str, int]) -> bool:
    before = {r.terminal: _device(r.__data__) for r in DeviceSetting.select()}
    after = {r["terminal"]: _device(r) for r in rows}
    removed["devices"] = DeviceSetting.delete().where(DeviceSetting.terminal.not_in(list(after) or [""])).execute()
    roster_store.save(DeviceSetting, after.values(), source=source, now_ms=now_ms)
    return before != after


def _device(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("terminal", "clock_alarm_s", "clock_correct_above_s", "poll_seconds")}


def _key(kind: str, row: Any) -> tuple[Any, ...]:
    get = row.get if isinstance(row, Mapping) else lambda name: getattr(row, name)
    return tuple(get(name) for name in KEYS[kind])


def _dates(where: str, row: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    problems = []
    for name in names:
        if row[name]:
            try:
                date.fromisoformat(row[name])
            except ValueError:
                problems.append(f"{where}: {name} {row[name]!r} is not a date YYYY-MM-DD")
    return problems
