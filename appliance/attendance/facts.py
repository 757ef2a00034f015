"""Confirmed day facts into the signed log, each decision once.

The latest fact appended for a key (employee/date/shift) is kept in ``DayFactIndex`` (derived from
the log in the same transaction). A confirmed evaluation whose decision equals it appends
nothing; a different decision (leave approved later, a 补卡) appends a new fact that supersedes
it, exactly as ``appliance.rules.supersede`` defines, without re-reading the old record.

The record carries the fact under ``fact`` (``{"type": "dayfact", "fact": {...}}``), so the fact's
own field names (``key``, ``date``...) never collide with the log's common fields, and
``fact_id(record["fact"])`` is the id that a superseding fact names.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import peewee as pw

from appliance.rules import Confirmation, Evaluation, Plant, Status, day_fact, fact_id
from appliance.rules.dayfact import decision
from appliance.store import DayFactIndex

if TYPE_CHECKING:  # the log writer's side, imported where it runs: the evaluator's process never loads it (handoff)
    from appliance.capture.punchlog import Entry, LogWriter

Fact = dict[str, int | str]
CHUNK = 500  # facts per append: one short transaction each
KEYS_PER_QUERY = 500  # well inside SQLite's limit on a statement's variables


@dataclass(frozen=True)
class Latest:
    seq: int
    fact_id: str
    decision: str


def latest(work_date: str, keys: Sequence[str] | None = None) -> dict[str, Latest]:
    """The last fact of each key of ``work_date`` (of ``keys`` only, when given: a pass over a few
    employees need not read the whole day's facts)."""
    query = DayFactIndex.select(DayFactIndex.key, DayFactIndex.fact_id, DayFactIndex.decision, DayFactIndex.seq)
    return {key: Latest(seq, fid, dec) for key, fid, dec, seq in _rows(query, work_date, keys)}


def seqs(work_date: str, keys: Sequence[str] | None = None) -> dict[str, int]:
    """The seq of the last fact of each key of ``work_date`` (of ``keys`` only, when given)."""
    return {key: seq for key, seq in _rows(DayFactIndex.select(DayFactIndex.key, DayFactIndex.seq), work_date, keys)}


def latest_of(work_date: str, employees: Collection[str]) -> dict[str, Latest]:
    """The last fact of every key of these employees on ``work_date`` (``emp/date/...``), whatever its shift:
    a slice of a full pass needs them all, to withdraw a fact for a shift the day no longer has."""
    query = DayFactIndex.select(DayFactIndex.key, DayFactIndex.fact_id, DayFactIndex.decision, DayFactIndex.seq)
    return {key: Latest(seq, fid, dec) for key, fid, dec, seq in _employee_rows(query, work_date, employees)}


def seqs_of(work_date: str, employees: Collection[str]) -> dict[str, int]:
    """The seq of the last fact of every key of these employees on ``work_date``."""
    query = DayFactIndex.select(DayFactIndex.key, DayFactIndex.seq)
    return {key: seq for key, seq in _employee_rows(query, work_date, employees)}


def _employee_rows(query: pw.ModelSelect, work_date: str, employees: Collection[str]) -> Iterator[tuple[Any, ...]]:
    """The query's rows of these employees' keys of ``work_date``, in seq order (its first column the key).

    One query, not a list of hundreds of values (a statement of its own for each length, ~100 kB at a
    thousand, see ``store.open_db``): the keys between the smallest of their prefixes (``emp/date/``) and
    the largest of their ends (``emp/date0``, '0' coming just after '/'), the other employees' keys in
    between (there are none when a slice is a range of ids and no id is another's prefix) dropped here.
    """
    if not employees:
        return
    wanted = set(employees)
    lowest = min(f"{e}/{work_date}/" for e in wanted)
    highest = max(f"{e}/{work_date}0" for e in wanted)
    query = query.where(
        (DayFactIndex.work_date == work_date) & (DayFactIndex.key >= lowest) & (DayFactIndex.key < highest)
    )
    middle = f"/{work_date}/"
    for found in query.order_by(DayFactIndex.seq).tuples().iterator():
        key = found[0]
        if key[: key.rfind(middle)] in wanted:
            yield found


def _rows(query: pw.ModelSelect, work_date: str, keys: Sequence[str] | None) -> Iterator[tuple[Any, ...]]:
    """The query's rows of ``work_date`` in seq order (so that the last of a key wins in a dict)."""
    query = query.where(DayFactIndex.work_date == work_date)
    if keys is None:
        yield from query.order_by(DayFactIndex.seq).tuples()
        return
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(keys), KEYS_PER_QUERY):
        found.extend(query.where(DayFactIndex.key.in_(list(keys[start : start + KEYS_PER_QUERY]))).tuples())
    yield from sorted(found, key=lambda r: r[-1])


def decision_text(fact: Mapping[str, int | str]) -> str:
    return json.dumps(decision(fact), ensure_ascii=False, separators=(",", ":"))


def due(evaluations: Iterable[Evaluation], plant: Plant, known: Mapping[str, Latest]) -> list[Fact]:
    """The facts to append: confirmed evaluations whose decision is new or changed, and the withdrawal
    of each earlier fact whose shift this employee's day no longer has (``withdrawn``)."""
    out = []
    evaluations = list(evaluations)
    for ev in evaluations:
        if ev.confirmation is not Confirmation.CONFIRMED or ev.status is Status.NOT_SCHEDULED:
            continue
        fact = day_fact(ev, plant)
        previous = known.get(str(fact["key"]))
        if previous is not None:
            if previous.decision == decision_text(fact):
                continue
            fact = day_fact(ev, plant, supersedes=previous.fact_id)
        out.append(fact)
    out += withdrawn(evaluations, plant, known)
    return out


def withdrawn(
    evaluations: Sequence[Evaluation], plant: Plant, known: Mapping[str, Latest]
) -> list[dict[str, int | str]]:
    """A fact for a shift the day no longer has (the roster changed, or a provisional calendar's working
    day turned out a holiday) stood for ever: the day's new facts have other keys (``emp/date/``), so
    the cloud kept counting an absence on a shift nobody was scheduled for. Each such key gets a last
    fact, 未排班 (not_scheduled), superseding it."""
    base = {(ev.employee, ev.work_date.isoformat()): ev for ev in evaluations}
    current = {f"{ev.employee}/{ev.work_date.isoformat()}/{ev.shift_id}" for ev in evaluations}
    out = []
    for key, previous in known.items():
        emp, day, shift = key.rsplit("/", 2)
        ev = base.get((emp, day))
        if key in current or ev is None or not shift:
            continue
        gone = replace(
            ev,
            shift_id=shift,
            status=Status.NOT_SCHEDULED,
            confirmation=Confirmation.CONFIRMED,
            start=None,
            end=None,
            late_min=0,
            early_min=0,
            missed_punches=0,
            segments=(),
            punches=(),
            duplicates=(),
            stray=(),
            excusal="",
            watch="",
            held_by=(),
            reason_zh=f"班次 {shift} 已不在当日排班中：此前的结论撤回",
            reason_en=f"shift {shift} is no longer scheduled that day: the earlier decision is withdrawn",
        )
        fact = day_fact(gone, plant)
        if previous.decision != decision_text(fact):
            out.append(day_fact(gone, plant, supersedes=previous.fact_id))
    return out


def append(writer: LogWriter, facts: list[dict[str, int | str]]) -> list[int]:
    seqs: list[int] = []
    for start in range(0, len(facts), CHUNK):
        entries = [entry(f) for f in facts[start : start + CHUNK]]
        seqs += writer.append(entries)
    return seqs


def entry(fact: dict[str, int | str]) -> Entry:
    from appliance.capture.punchlog import Entry

    def derive(seq: int, _now_ms: int) -> tuple[type[DayFactIndex], dict[str, object]]:
        return DayFactIndex, {
            "seq": seq,
            "key": fact["key"],
            "work_date": fact["date"],
            "fact_id": fact_id(fact),
            "decision": decision_text(fact),
        }

    # nested: the fact's own fields (``key``...) never meet the log's, and ``fact_id(record["fact"])``
    # is the id a superseding fact names
    return Entry("dayfact", {"fact": fact}, derive)
