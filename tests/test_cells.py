"""``opskit.cells``: what both sides' exports write for text a spreadsheet would run."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import Workbook, load_workbook

from opskit.cells import csv_row, xlsx_row

EVIL = '=HYPERLINK("http://evil","x")'
RISKY = [EVIL, "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


@pytest.mark.parametrize("text", RISKY)
def test_a_csv_cell_a_spreadsheet_would_run_gets_a_quote_in_front(text):
    buffer = io.StringIO()
    csv.writer(buffer).writerow(csv_row([text, "张三", "", 5, -5, None]))
    (row,) = csv.reader(io.StringIO(buffer.getvalue()))
    assert row == ["'" + text, "张三", "", "5", "-5", ""], "numbers and plain text as they were"


@pytest.mark.parametrize("write_only", [True, False])
def test_an_xlsx_cell_holds_the_text_as_typed_as_a_string(write_only):
    book = Workbook(write_only=write_only)
    sheet = book.create_sheet("s")
    risky = RISKY[:-1]  # a lone CR is read back as LF (XML's line ends), whatever the cell's type
    values = [*risky, "#N/A", "张三", 5, None]
    sheet.append(xlsx_row(sheet, values))
    sheet.append(xlsx_row(sheet, ["plain", 1]))  # nothing risky: the row is appended as it was
    out = io.BytesIO()
    book.save(out)
    first, second = load_workbook(io.BytesIO(out.getvalue()))["s"].iter_rows(max_row=2)
    assert [c.value for c in first[: len(risky) + 2]] == [*risky, "#N/A", "张三"]
    assert {c.data_type for c in first[: len(risky) + 2]} == {"s"}
    assert all(c.quotePrefix for c in first[: len(risky) + 1]), "stays text when someone edits the cell"
    assert (first[len(risky) + 2].value, first[len(risky) + 2].data_type) == (5, "n")
    assert [c.value for c in second[:2]] == ["plain", 1]
