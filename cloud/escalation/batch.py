"""A group of cases read at once under their locks, changed in memory, written back in a few statements.

The state machine reads a case's steps, gates, tasks, services, counted days and timeline head, and
writes a handful of rows per transition. Done row by row that is some fifty statements a case; here
each table is read once for the whole group and each kind of write is one multi-row statement at
``flush``. The caller holds the locks: ``lock`` takes them (PostgreSQL ``FOR UPDATE`` in case-id
order, so two runners never wait on each other in a circle; SQLite's ``BEGIN IMMEDIATE`` around the
group has already made the whole database ours), and ``flush`` runs inside the same transaction.

Steps are the one table changed outside a case's lock (a dispatcher claims a step by a conditional
update), so steps are never written back whole: superseding, re-timing and finishing a step are
conditional ``UPDATE``\\ s, exactly as the row-at-a-time code did them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from cloud.escalation import bulk, ladder
from cloud.escalation.models import AbsenceCase, CaseDay, CaseEntry, CaseStep, CaseTask, Gate, Service
from cloud.escalation.timeline import GENESIS, digest, encode_data
from cloud.store import database

PENDING_SQL = "status IN ('awaiting_approval', 'due')"
RUNGS = {"L1": 1, "L2": 2, "L3": 3}  # the entry a climb to a rung writes (ladder._climb's note), and its level
Row = dict[str, Any]


class Refused(Exception):
    """A case this group opened was opened by another runner meanwhile (its open key is taken): nothing of the
    group's flush was written after the cases, and the caller rolls back to before it and counts the group again."""


def lock(case_ids: Iterable[int]) -> list[AbsenceCase]:
    """The open and closed cases named, locked for this transaction (PostgreSQL), in id order."""
    ids = sorted(set(case_ids))
    if not ids:
        return []
    out: list[AbsenceCase] = []
    locking = "" if isinstance(database.obj, pw.SqliteDatabase) else " FOR UPDATE"
    for part in bulk.chunks(ids, 10_000):
        out.extend(bulk.instances(AbsenceCase, "id", part, tail=locking))
    return out


@dataclass
class CaseBatch:
    """Cases (peewee rows, mutated in place) and their children as dicts by field name."""

    cases: dict[int, AbsenceCase]
    days: dict[int, dict[str, Row]] = field(default_factory=dict)  # case -> fact_key -> CaseDay
    steps: dict[int, list[Row]] = field(default_factory=dict)  # case -> CaseStep rows in id order
    gates: dict[int, dict[str, Row]] = field(default_factory=dict)  # case -> kind -> Gate
    tasks: dict[int, dict[str, Row]] = field(default_factory=dict)  # case -> kind -> CaseTask
    services: dict[int, dict[str, Row]] = field(default_factory=dict)  # case -> document -> Service
    heads: dict[int, tuple[int, str]] = field(default_factory=dict)  # case -> (next seq, previous hash)
    climbed: dict[int, dict[int, int]] = field(default_factory=dict)  # case -> level -> last climbed to (L1..L3)
    _new: dict[type[pw.Model], list[Row]] = field(default_factory=dict)
    _dirty: dict[type[pw.Model], dict[int, Row]] = field(default_factory=dict)
    _step_updates: dict[tuple[tuple[tuple[str, Any], ...], str], list[int]] = field(default_factory=dict)
    _touched: dict[int, AbsenceCase] = field(default_factory=dict)
    unstored: set[int] = field(default_factory=set)  # new cases whose ids are drawn but rows not yet written

    @classmethod
    def load(cls, cases: Iterable[AbsenceCase], *, fresh: Iterable[int] = ()) -> CaseBatch:
        """Read the children of ``cases`` (already locked); ``fresh`` cases were created just now and have none."""
        batch = cls({c.id: c for c in cases})
        for case_id in batch.cases:
            batch.days[case_id], batch.steps[case_id] = {}, []
            batch.gates[case_id], batch.tasks[case_id], batch.services[case_id] = {}, {}, {}
            batch.heads[case_id] = (0, GENESIS)
            batch.climbed[case_id] = {}
        new = set(fresh)
        ids = [i for i in batch.cases if i not in new]
        if not ids:
            return batch
        for row in _rows(CaseDay, ids):
            batch.days[row["case"]][row["fact_key"]] = row
        for row in _rows(CaseStep, ids):
            batch.steps[row["case"]].append(row)
        for row in _rows(Gate, ids):
            batch.gates[row["case"]][row["kind"]] = row
        for row in _rows(CaseTask, ids):
            batch.tasks[row["case"]][row["kind"]] = row
        for row in _rows(Service, ids):
            batch.services[row["case"]][row["document"]] = row
        for case_id, seq, hash_ in bulk.select_in(
            "SELECT e.case_id, e.seq, e.hash FROM case_entry e WHERE e.seq = "
            "(SELECT MAX(m.seq) FROM case_entry m WHERE m.case_id = e.case_id) AND e.case_id IN ({})",
            ids,
        ):
            batch.heads[case_id] = (seq + 1, hash_)
        for case_id, kind, at_ms in bulk.select_in(  # the rungs' entries: when each was climbed (ladder.climb_from)
            f"SELECT case_id, kind, MAX(at_ms) FROM case_entry WHERE kind IN ({', '.join(repr(k) for k in RUNGS)}) "
            "AND case_id IN ({}) GROUP BY case_id, kind",
            ids,
        ):
            batch.climbed[case_id][RUNGS[kind]] = at_ms
        return batch

    # -- changes, in memory until flush ---------------------------------------------------------

    def touch(self, case: AbsenceCase) -> None:
        self._touched[case.id] = case

    def add(self, model: type[pw.Model], row: Row) -> Row:
        """A new row (written at flush); it is also put where the case's reads find it."""
        bulk.complete(model, row)
        self._new.setdefault(model, []).append(row)
        case_id = row["case"]
        if model is CaseDay:
            self.days[case_id][row["fact_key"]] = row
        elif model is CaseStep:
            self.steps[case_id].append(row)
        elif model is Gate:
            self.gates[case_id][row["kind"]] = row
        elif model is CaseTask:
            self.tasks[case_id][row["kind"]] = row
        elif model is Service:
            self.services[case_id][row["document"]] = row
        return row

    def change(self, model: type[pw.Model], row: Row, **values: Any) -> None:
        """Change a row held under the case's lock (not a step: see ``change_step``)."""
        row.update(values)
        if row["id"] is not None:
            self._dirty.setdefault(model, {})[row["id"]] = row

    def change_step(self, row: Row, condition: str, **values: Any) -> None:
        """Change a step; stored rows by ``UPDATE ... WHERE id IN (...) AND <condition>``."""
        row.update(values)
        if row["id"] is not None:
            key = (tuple(sorted(values.items())), condition)
            self._step_updates.setdefault(key, []).append(row["id"])

    def append(
        self, case: AbsenceCase, kind: str, zh: str, en: str, *, at_ms: int, actor: str = "engine", **data: Any
    ) -> None:
        """A timeline entry, chained to the case's last one (as ``timeline.append`` does row by row)."""
        seq, prev = self.heads[case.id]
        text = encode_data(data)
        self._new.setdefault(CaseEntry, []).append(
            {
                "case": case.id,
                "seq": seq,
                "at_ms": at_ms,
                "kind": kind,
                "actor": actor,
                "text_zh": zh,
                "text_en": en,
                "data": text,
                "prev_hash": prev,
                "hash": (hashed := digest(prev, seq, at_ms, kind, actor, zh, en, text)),
            }
        )
        self.heads[case.id] = (seq + 1, hashed)
        if kind in RUNGS:
            self.climbed.setdefault(case.id, {})[RUNGS[kind]] = at_ms

    # -- writing -----------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every change, in as few statements as the tables allow; call inside the locking transaction."""
        fresh, self.unstored = self.unstored, set()
        if fresh:  # written once, as they now stand (not inserted when opened and written again here)
            rows = [bulk.row_of(self.cases[i]) for i in sorted(fresh)]
            if len(bulk.insert(AbsenceCase, rows, ignore=True, returning="id", with_id=True)) < len(rows):
                raise Refused
        stored = [bulk.row_of(c) for c in self._touched.values() if c.id not in fresh]
        if stored:
            bulk.upsert(AbsenceCase, stored)
        for (assignments, condition), ids in self._step_updates.items():
            sets = ", ".join(f'"{name}" = ?' for name, _ in assignments)
            where = f" AND {condition}" if condition else ""
            for part in bulk.chunks(ids, 10_000):
                bulk.execute(
                    f'UPDATE "case_step" SET {sets} WHERE id IN ({bulk.marks(len(part))}){where}',
                    [value for _, value in assignments] + list(part),
                )
        for model, rows in self._dirty.items():
            bulk.upsert(model, list(rows.values()))
        for model in (CaseDay, CaseStep, Gate, CaseTask, Service, CaseEntry):
            rows = self._new.get(model)
            if rows:
                bulk.insert(model, rows, ignore=model is Service)  # a Service row may exist: keep it
        self._new.clear()
        self._dirty.clear()
        self._step_updates.clear()
        self._touched.clear()


def _rows(model: type[pw.Model], case_ids: list[int]) -> list[Row]:
    return bulk.rows_in(model, "case_id", case_ids)


def pending(row: Row) -> bool:
    return row["status"] in ladder.PENDING
