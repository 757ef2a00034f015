"""The XLSX of an export, written row by row to a temporary file, never held in memory.

openpyxl's write-only workbook writes each appended row to an XML file of its own (about 750
bytes a row: 116 MB for a month of 5,000 workers), then zips it into the workbook (a tenth of
that). Both files are in the process's temporary directory, which ``punchproof appliance web``
sets to the state directory's ``tmp/``: a Pi's /tmp may be a tmpfs, which would put the month
back in RAM. The workbook is an unnamed file (O_TMPFILE), so its space returns to the disk when
the response closes it, or when the worker dies. Text that Excel would run (a name starting with
``=``) is written as a string cell, shown as typed (``opskit.cells.xlsx_row``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from opskit.cells import xlsx_row

MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SHEET = "考勤"
TEMP_BYTES_PER_ROW = 900  # on the disk while a row is written: its sheet XML (~750 B), then its zipped part


def workbook(header: Sequence[str], records: Iterable[Sequence[Any]]) -> IO[bytes]:
    """The workbook in an unnamed temporary file, at its start; the caller closes it.

    Raises ``OSError`` when a temporary file cannot be made or written (a full disk): nothing of
    this export is left on the disk then.
    """
    from openpyxl import Workbook

    out = tempfile.TemporaryFile()  # noqa: SIM115 - the response sends and closes it
    book = Workbook(write_only=True)
    sheet = book.create_sheet(SHEET)
    try:
        sheet.append(xlsx_row(sheet, header))
        for record in records:
            sheet.append(xlsx_row(sheet, record))
        book.save(out)
    except BaseException:
        out.close()
        raise
    finally:
        _drop_sheet_file(sheet)
    out.seek(0)
    return out


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
