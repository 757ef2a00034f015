"""The XLSX of an export, written row by row to a temporary file, never held in memory.

openpyxl's write-only workbook writes each appended row to an XML file of its own (about 750
bytes a row: 116 MB for a month of 5,000 workers), then zips it into the workbook (a tenth of
that). Both files are in the process's temporary directory, which ``punchproof appliance web``
sets to the state directory's ``tmp/``: a Pi's /tmp may be a tmpfs, which would put the month
back in RAM. The workbook is an unnamed file (O_TMPFILE), so its space returns to the disk when
the response closes it, or when the worker dies.

What HR does with it first is sort and filter: each sheet has its header row frozen, an autofilter
over its rows and columns wide enough for what they hold; dates and times are Excel dates and
times (a date cell, a date-time cell, with their number formats), not text that sorts wrongly.
Text that Excel would run (a name starting with ``=``) is written as a string cell, shown as typed
(``opskit.cells.xlsx_row``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from opskit.cells import xlsx_row

MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TEMP_BYTES_PER_ROW = 900  # on the disk while a row is written: its sheet XML (~750 B), then its zipped part
FORMATS = {date: "yyyy-mm-dd", datetime: "yyyy-mm-dd hh:mm:ss"}


@dataclass(frozen=True)
class Column:
    header: str
    width: float  # in Excel's character widths (a CJK character is about two)


@dataclass(frozen=True)
class Sheet:
    title: str
    columns: Sequence[Column]
    records: Iterable[Sequence[Any]]  # dates as ``date``, times as naive local ``datetime``, None for empty


def workbook(sheets: Sequence[Sheet]) -> IO[bytes]:
    """The workbook in an unnamed temporary file, at its start; the caller closes it.

    Raises ``OSError`` when a temporary file cannot be made or written (a full disk): nothing of
    this export is left on the disk then.
    """
    from openpyxl import Workbook

    out = tempfile.TemporaryFile()  # noqa: SIM115 - the response sends and closes it
    book = Workbook(write_only=True)
    written: list[Any] = []
    try:
        for spec in sheets:
            sheet = book.create_sheet(spec.title)
            written.append(sheet)
            _write(sheet, spec)
        book.save(out)
    except BaseException:
        out.close()
        raise
    finally:
        for sheet in written:
            _drop_sheet_file(sheet)
    out.seek(0)
    return out


def _write(sheet: Any, spec: Sheet) -> None:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    for number, column in enumerate(spec.columns, start=1):  # before the first row: write-only sheets
        sheet.column_dimensions[get_column_letter(number)].width = column.width
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for column in spec.columns:
        cell = WriteOnlyCell(sheet, column.header)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    count = 0
    for record in spec.records:
        values = []
        for value in record:
            number_format = FORMATS.get(type(value))
            if number_format is not None:
                cell = WriteOnlyCell(sheet, value)
                cell.number_format = number_format
                value = cell
            values.append(value)
        sheet.append(xlsx_row(sheet, values))
        count += 1
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(spec.columns))}{count + 1}"


def _drop_sheet_file(sheet: Any) -> None:
    """Remove openpyxl's XML of the sheet if it is still there.

    ``save`` removes it; when the disk filled up before, the partial file would stay until the
    worker exits and keep the disk full. openpyxl names it only on its write-only sheet's writer
    (``_writer.out``, openpyxl 3.1); ``tests/appliance/web/test_export_stream.py`` checks that
    nothing is left.
    """
    path = getattr(getattr(sheet, "_writer", None), "out", None)
    if isinstance(path, str):
        Path(path).unlink(missing_ok=True)
