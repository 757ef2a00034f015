"""Text written into an exported spreadsheet stays text: shown as typed, never run as a formula.

A name imported as ``=HYPERLINK("http://evil","x")`` would otherwise become a live link in the XLSX
(openpyxl makes any string starting with ``=`` a formula) and a formula again when Excel opens the CSV
(it runs any cell starting with ``=``, ``+``, ``-`` or ``@``, and a tab or CR before them).

- XLSX: such a cell is written as a string cell (``data_type = "s"``) with Excel's quote prefix, so
  it shows exactly as typed and stays text if someone edits it. Nothing is added to the text.
- CSV: a CSV has no cell types, so such a cell gets a single quote in front (the OWASP rule for CSV
  injection): ``'=HYPERLINK(...)``. Excel shows the rest as text; a program reading the file sees the
  quote and must drop it.

Both sides' exports (the plant's day and month, head office's monthly report) write through this.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# openpyxl stores these strings as error cells (#N/A shows as Excel's error, not as the text)
ERROR_CODES = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"))


def risky(value: object) -> bool:
    """Whether a spreadsheet would take ``value`` for something other than the text it is."""
    return isinstance(value, str) and (value.startswith(FORMULA_START) or value in ERROR_CODES)


def csv_row(values: Iterable[Any]) -> list[Any]:
    """The row for ``csv.writer``: a text cell a spreadsheet would run gets a ``'`` in front."""
    return [f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_START) else v for v in values]


def xlsx_row(sheet: Any, values: Sequence[Any]) -> list[Any]:
    """The row for ``sheet.append`` (an openpyxl sheet, write-only or not): text a spreadsheet would run
    becomes a string cell with the quote prefix; every other value is left for openpyxl as it is."""
    if not any(risky(v) for v in values):
        return list(values)
    from openpyxl.cell import WriteOnlyCell

    row: list[Any] = []
    for value in values:
        if risky(value):
            cell = WriteOnlyCell(sheet, value)
            cell.data_type = "s"
            cell.quotePrefix = True
            value = cell
        row.append(value)
    return row
