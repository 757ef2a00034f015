"""The HR office's spreadsheets read alike on both sides: files into sheets of rows, and cells into values.

The appliance's roster import and head office's HR import read the same files: ``.xlsx`` workbooks
(openpyxl; one sheet per kind, the sheet named for what it holds) and ``.csv`` files (one kind, given
or guessed from the headers) in UTF-8 (with or without BOM) or GB18030, as Excel writes it on a
Chinese Windows. Blank rows are skipped; the first row with something in it is the header, and the
rows after it are numbered from 2 on, counting only the rows with something in them. Headers are
mapped to field names by the caller's tables (Chinese headers; any other header stands for itself,
lower-cased).

What each side knows stays with it: its ``Layout`` (kinds, sheet names, header tables), the words its
cells may use, what a row becomes, and how a problem is worded. A file that cannot be read raises
``Unreadable``; a cell that cannot be read is handed to ``Row.refuse`` as a ``Refusal``.
"""

from __future__ import annotations

import csv
import io
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo

# The field that gives a CSV's kind away, tried in this order; a file with none of them is employees.
MARKERS: tuple[tuple[str, str], ...] = (
    ("shifts", "spans"),
    ("rosters", "pattern"),
    ("corrections", "reason"),
    ("trips", "destination"),
    ("leave", "start"),
    ("schedule", "day"),
)
UNMARKED = "employees"

Reason = Literal["suffix", "empty", "workbook", "no sheet", "too many rows"]
# rows of a file, empty ones included, read at most: a plant's HR sheets hold thousands; an 89 KiB workbook
# can hold 300,000 rows that took 25 s to read and gave a 71 MB page of problems
MAX_ROWS = 50_000
P = TypeVar("P")  # a problem as one side words it


class Unreadable(ValueError):
    """The file cannot be read as sheets, for the importer to word: ``reason`` is "suffix" (neither .csv
    nor .xlsx), "empty", "workbook" (openpyxl cannot open it; ``detail`` says why), "no sheet" (no
    sheet is named for a kind; ``found`` lists the other sheets that hold something) or "too many rows"
    (more than ``MAX_ROWS``, empty ones included)."""

    def __init__(self, reason: Reason, *, detail: str = "", found: list[str] | None = None) -> None:
        self.reason, self.detail, self.found = reason, detail, found or []
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class Layout:
    """What one side calls HR's sheets: each kind with the sheet names that mean it (lower-case), and
    each kind's table of headers to field names."""

    kinds: Mapping[str, tuple[str, ...]]
    headers: Mapping[str, Mapping[str, str]]


@dataclass
class Sheet:
    kind: str
    name: str
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (row number, fields), in order


def read(path: Path, layout: Layout, kind: str = "auto") -> list[Sheet]:
    """The sheets of a .csv or .xlsx file, headers mapped to field names; ``Unreadable`` if it has none.

    A CSV is one sheet of ``kind`` (guessed from its headers when "auto"; a kind the layout does not
    know is kept, for the caller to refuse); an XLSX is every sheet named for a kind, and ``kind`` is
    not used.
    """
    if path.suffix.lower() == ".xlsx":
        return _read_xlsx(path, layout)
    if path.suffix.lower() != ".csv":
        raise Unreadable("suffix")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030")
    table = [row for row in _Bounded(csv.reader(io.StringIO(text))) if any(cell.strip() for cell in row)]
    if not table:
        raise Unreadable("empty")
    header = _header(table[0])
    if kind == "auto":
        kind = guess(header, layout)
    return [_sheet(layout, kind, path.name, header, table[1:])]


def _read_xlsx(path: Path, layout: Layout) -> list[Sheet]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises many kinds for a damaged file; all mean the same here
        raise Unreadable("workbook", detail=str(err)) from err
    sheets, unknown, read_so_far = [], [], 0
    try:
        for ws in book.worksheets:
            kind = next((k for k, names in layout.kinds.items() if ws.title.strip().lower() in names), None)
            rows = _Bounded(ws.iter_rows(values_only=True), already=read_so_far)
            table = [list(r) for r in rows if any(c not in (None, "") for c in r)]
            read_so_far += rows.count
            if not table:
                continue
            if kind is None:
                unknown.append(ws.title)
                continue
            sheets.append(_sheet(layout, kind, ws.title, _header(table[0]), table[1:]))
    finally:
        book.close()
    if not sheets:
        raise Unreadable("no sheet", found=unknown)
    return sheets


class _Bounded:
    """The rows of ``rows``, raising ``Unreadable("too many rows")`` past ``MAX_ROWS`` (with ``already``)."""

    def __init__(self, rows: Iterable[Any], *, already: int = 0) -> None:
        self._rows, self.count, self._already = iter(rows), 0, already

    def __iter__(self) -> _Bounded:
        return self

    def __next__(self) -> Any:
        row = next(self._rows)
        self.count += 1
        if self.count + self._already > MAX_ROWS:
            raise Unreadable("too many rows", detail=str(MAX_ROWS))
        return row


def guess(header: list[str], layout: Layout) -> str:
    """The kind a CSV holds: the first of ``MARKERS`` whose field a header means, in any kind's table."""
    fields = {table.get(h, h.lower()) for table in layout.headers.values() for h in header}
    return next((kind for kind, marker in MARKERS if marker in fields), UNMARKED)


def _header(cells: list[Any]) -> list[str]:
    return ["" if h is None else str(h).strip() for h in cells]


def _sheet(layout: Layout, kind: str, name: str, header: list[str], rows: Iterable[list[Any]]) -> Sheet:
    table = layout.headers.get(kind, {})
    names = [table.get(h, h.lower()) for h in header]
    sheet = Sheet(kind, name)
    for number, row in enumerate(rows, start=2):
        values = {n: row[i] for i, n in enumerate(names) if n and i < len(row)}
        sheet.rows.append((number, {k: ("" if v is None else v) for k, v in values.items()}))
    return sheet


@dataclass(frozen=True)
class Refusal:
    """Why a cell was not read: it is not a "number", a "date", an "instant" (a date or a date and time)
    or one of ``allowed`` ("choice"). ``text`` is the cell as the parser read it."""

    what: Literal["number", "date", "instant", "choice"]
    text: str
    allowed: tuple[str, ...] = ()


class Row(ABC, Generic[P]):
    """One row of a sheet read cell by cell: text (with the side's ``words`` for Chinese values),
    integer, day, instant, choice. A cell that cannot be read gives the default and goes to
    ``refuse``, which each importer words as its own problem and adds to ``problems``, the list the
    whole file's problems are gathered in."""

    words: Mapping[str, str] = {}  # a cell's Chinese value -> the stored value

    def __init__(self, sheet: Sheet, number: int, values: Mapping[str, Any], tz: ZoneInfo, problems: list[P]) -> None:
        self.sheet, self.number, self.values, self.tz, self.problems = sheet, number, values, tz, problems

    @abstractmethod
    def refuse(self, name: str, why: Refusal) -> None:
        """Add to ``problems`` that cell ``name`` was not read, as the importer words it."""

    def text(self, name: str, default: str = "") -> str:
        value = self.values.get(name, "")
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # a number typed into Excel (a badge number) comes back as 1001.0
        text = str(value).strip() if value != "" else default
        return self.words.get(text, text)

    def integer(self, name: str, default: int) -> int:
        text = self.text(name)
        try:
            return int(float(text)) if text else default
        except ValueError:
            self.refuse(name, Refusal("number", text))
            return default

    def day(self, name: str) -> str:
        """An ISO date (``YYYY-MM-DD``; ``/`` taken for ``-``), or "" for an empty cell."""
        value = self.values.get(name, "")
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        text = self.text(name).replace("/", "-")
        try:
            return date.fromisoformat(text).isoformat() if text else ""
        except ValueError:
            self.refuse(name, Refusal("date", text))
            return ""

    def instant(self, name: str, *, end: bool = False) -> int:
        """Epoch ms UTC of a local date-time; a bare date is its start (or, with ``end``, the next midnight)."""
        value = self.values.get(name, "")
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime.combine(value + timedelta(days=int(end)), time())
        else:
            text = self.text(name).replace("/", "-").replace("T", " ")
            try:
                if len(text) == 10:
                    moment = datetime.combine(date.fromisoformat(text) + timedelta(days=int(end)), time())
                else:
                    moment = datetime.fromisoformat(text)
            except ValueError:
                self.refuse(name, Refusal("instant", text))
                return 0
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.tz)
        return int(moment.astimezone(UTC).timestamp() * 1000)

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        text = self.text(name, default)
        if text not in allowed:
            self.refuse(name, Refusal("choice", text, allowed))
        return text
