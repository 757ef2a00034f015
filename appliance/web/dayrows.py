"""The board's rows of a day, kept rendered in a worker and brought up to date by what changed.

At a shift change the evaluator moves the board's version every second or two, and every open board fetches its
page again. Reading the day's 5,000 rows to sort them, and each page's 500 to render them, at each version was
most of what the pages cost a Pi's core. A worker keeps instead, for a day and a language, every row of the day in
the board's order, each with its text: at a new version it reads only the rows written since the version it has
(``BoardRow.changed`` is above it: see ``appliance.store``), renders those, and sorts the day again (a sort of an
order barely changed costs little); a page is a slice of that order. A row deleted (an employee removed from the
roster, a day pruned) is found by the day's count, which no longer matches.

The rows and the version they are read at come from one read transaction: a row written after it has a
``changed`` above that version, so it is read at the next one, and none is missed.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter, OrderedDict, namedtuple
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from appliance.store import BoardRow, EvaluatorState
from appliance.web import present

# What a row's text shows (board_row.html), and its place in the board's order (``start_ms``)
FIELDS = (
    "work_date", "employee", "shift", "name", "line", "shift_name", "status", "tier", "missing_tier", "late_min",
    "in_ms", "out_ms", "reason_zh", "reason_en", "fact_seq", "start_ms",
)  # fmt: skip
Fields = namedtuple("Fields", FIELDS)  # type: ignore[misc]

CHUNK = 500  # rows read and rendered at a time
_TABLE = BoardRow._meta.table_name
_SELECT = f"SELECT {', '.join(FIELDS)} FROM {_TABLE} WHERE work_date = ?"
_CHANGED = f"{_SELECT} AND changed > ?"
_COUNT = f"SELECT count(*) FROM {_TABLE} WHERE work_date = ?"
_KEYS = f"SELECT employee, shift FROM {_TABLE} WHERE work_date = ?"
_VERSION = f"SELECT board_version FROM {EvaluatorState._meta.table_name} WHERE id = 1"


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the board as a page lists it: what its filters, counts and groups look at, and its text."""

    # the board's order: who should be here and is not (overdue, missing) first, then by the shift's start (none
    # first), shift, line, badge
    order: tuple[Any, ...]
    employee: str
    shift: str
    name: str
    line: str
    shift_name: str
    status: str
    missing_tier: str
    text: bytes  # the row's HTML (UTF-8)


@dataclass(frozen=True)
class View:
    """A day's rows at one board version, in the board's order: what every page of it shares, with the day's count
    per category (and per missing tier) over every row, its shifts (id, name) and its lines."""

    version: int
    rows: tuple[Row, ...]
    counts: Counter[str]
    shifts: list[tuple[str, str]]
    lines: list[str]


class _Tally:
    """What the rows of a day add up to (categories, shifts, lines), kept as rows come and go: a new version
    costs the rows it changed, not a walk through the day's 5,000."""

    def __init__(self) -> None:
        self.statuses: Counter[tuple[str, str]] = Counter()
        self.shifts: Counter[tuple[str, str]] = Counter()
        self.lines: Counter[str] = Counter()

    def add(self, row: Row, n: int = 1) -> None:
        self.statuses[(row.status, row.missing_tier)] += n
        if row.shift:
            self.shifts[(row.shift, row.shift_name)] += n
        if row.line:
            self.lines[row.line] += n

    def view(self, version: int, rows: tuple[Row, ...]) -> View:
        counts: Counter[str] = Counter()
        for (status, tier), n in self.statuses.items():
            if n > 0:
                counts[present.CATEGORY_OF.get(status, "off")] += n
                if tier:
                    counts[f"missing_{tier}"] += n
        shifts = sorted(key for key, n in self.shifts.items() if n > 0)
        return View(version, rows, counts, shifts, sorted(line for line, n in self.lines.items() if n > 0))


Render = Callable[[Sequence[Any]], list[bytes]]


class DayRows:
    """One day's rows in one language, as a worker keeps them; ``view`` brings them up to the board's version."""

    def __init__(self, day: str) -> None:
        self.day = day
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], Row] = {}
        self._tally = _Tally()
        self._view: View | None = None
        self.rendered = 0  # rows rendered, since the start

    def view(self, render: Render, version: int | None = None) -> View:
        """The rows at the board's version (``version``, when the caller read it just now: nothing is read when the
        rows are at it). ``render`` gives rows' texts (``Fields`` in, UTF-8 out, in order)."""
        with self._lock:
            kept = self._view
            if kept is not None and version is not None and version <= kept.version:
                return kept
            now, fresh, keys = self._read(None if kept is None else kept.version, render)
            if kept is not None and not fresh and keys is None:  # a version that changed another day's rows
                self._view = View(max(now, kept.version), kept.rows, kept.counts, kept.shifts, kept.lines)
                return self._view
            moved = {(row.employee, row.shift) for row in fresh}
            # the rows kept, in their order, less those moved or gone; then the new: a sort of runs already in order
            ordered = [row for row in (kept.rows if kept else ()) if (row.employee, row.shift) not in moved]
            for row in fresh:
                before = self._rows.get((row.employee, row.shift))
                if before is not None:
                    self._tally.add(before, -1)
                self._tally.add(row)
                self._rows[(row.employee, row.shift)] = row
                ordered.append(row)
            if keys is not None:
                for key in set(self._rows) - keys:
                    self._tally.add(self._rows.pop(key), -1)
                ordered = [row for row in ordered if (row.employee, row.shift) in keys]
            ordered.sort(key=attrgetter("order"))
            self._view = self._tally.view(now, tuple(ordered))
            return self._view

    def _read(self, since: int | None, render: Render) -> tuple[int, list[Row], set[tuple[str, str]] | None]:
        """(the board's version, the rows written since ``since`` (all: None), rendered, the day's keys when a row
        went). The rows are read and rendered ``CHUNK`` at a time: a day's 5,000 rows with their reasons, and their
        text, were megabytes at once, which the worker's resident size kept."""
        db = BoardRow._meta.database
        fresh: list[Row] = []
        # one read transaction (deferred: it takes no write lock, unlike the database's other transactions): the
        # version and the rows as they were at it
        with db.atomic(lock_type="DEFERRED"):
            version = int((db.execute_sql(_VERSION).fetchone() or (0,))[0] or 0)
            cursor = (
                db.execute_sql(_SELECT, (self.day,)) if since is None else db.execute_sql(_CHANGED, (self.day, since))
            )
            while batch := cursor.fetchmany(CHUNK):
                fields = [Fields._make(values) for values in batch]
                texts = render(fields)
                if len(texts) != len(fields):
                    raise RuntimeError(f"rendered {len(texts)} rows for {len(fields)}")
                fresh += map(_row, fields, texts)
                self.rendered += len(fields)
            count = db.execute_sql(_COUNT, (self.day,)).fetchone()[0]
            known = len(self._rows.keys() | {(row.employee, row.shift) for row in fresh})
            keys = None
            if known != count:  # a row went: which are left
                keys = {(employee, shift) for employee, shift in db.execute_sql(_KEYS, (self.day,))}
        return version, fresh, keys


def _row(f: Any, text: bytes) -> Row:
    """A row as kept: the words many rows share (a status, a shift, a line) kept once, not once a row."""
    shift, line, status = sys.intern(f.shift), sys.intern(f.line), sys.intern(f.status)
    return Row(
        (0 if status in present.URGENT else 1, f.start_ms is not None, f.start_ms or 0, shift, line, f.employee),
        f.employee, shift, f.name, line, sys.intern(f.shift_name), status, sys.intern(f.missing_tier), text,
    )  # fmt: skip


class Days:
    """The days' rows a worker keeps: a few (day, language, address) at most, the least recently asked for going."""

    def __init__(self, size: int = 3) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._days: OrderedDict[Hashable, DayRows] = OrderedDict()

    def get(self, day: str, key: Hashable) -> DayRows:
        with self._lock:
            rows = self._days.get((day, key))
            if rows is None:
                rows = self._days[(day, key)] = DayRows(day)
            self._days.move_to_end((day, key))
            while len(self._days) > self._size:
                self._days.popitem(last=False)
            return rows

    @property
    def rendered(self) -> int:
        with self._lock:
            return sum(rows.rendered for rows in self._days.values())
