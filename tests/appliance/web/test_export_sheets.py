"""The plant's XLSX and CSV exports as HR opens them: real Excel dates and times, a frozen header,
an autofilter, columns wide enough, the raw punches beside the day conclusions, and no cell a
spreadsheet would run, even for workers named ``=HYPERLINK(...)`` or ``@SUM(1)`` (openpyxl reads the
workbook back; the CSV is read as text)."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime

import pytest
from openpyxl import load_workbook

from appliance.roster import importer as roster_import
from tests.appliance.web.test_attendance_pages import DAY, Plant, local
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock

LINK = '=HYPERLINK("http://evil.example/x","点这里")'
SUM = "@SUM(1)"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One plant for the module: the tests only read its exports."""
    plant = Plant(tmp_path_factory.mktemp("export"), FrozenClock(local(2, 18, 30)))
    roster_import.store(
        {
            "employees": [
                {"user_id": "1001", "name": LINK, "line": "-一线", "roster": "wk", "active": True},
                {"user_id": "1002", "name": SUM, "line": "+二线", "roster": "wk", "active": True},
            ],
        },
        PLANT_TZ,
        0,
        source="test",
    )
    plant.punch("1001", local(2, 7, 58), state=0)
    plant.punch("1001", local(2, 17, 3), state=1)
    plant.punch("1002", local(2, 8, 22), state=0)
    plant.read_terminal()
    plant.evaluator.run_once()
    client = plant.client()
    yield client
    plant.db.close()


def test_the_xlsx_has_excel_dates_a_frozen_filtered_header_widths_and_the_raw_punches(exported):
    response = exported.get(f"/export?period=day&date={DAY}&format=xlsx")
    book = load_workbook(io.BytesIO(response.get_data()))
    assert book.sheetnames == ["考勤", "打卡记录"], "the raw punches beside the day conclusions"
    days, punches = book["考勤"], book["打卡记录"]
    header = [c.value for c in days[1]]
    assert header[:3] == ["日期", "工号", "姓名"] and not any(re.search(r"[A-Za-z_]", h) for h in header)
    assert days.freeze_panes == "A2" and punches.freeze_panes == "A2", "the header stays when scrolling"
    assert days.auto_filter.ref == "A1:N3" and punches.auto_filter.ref == "A1:G4"
    assert days.column_dimensions["M"].width >= 40 and days.column_dimensions["A"].width >= 10
    (row,) = [r for r in days.iter_rows(min_row=2) if r[1].value == "1002"]
    assert row[0].is_date and row[0].value == datetime(2026, 3, 2) and row[0].number_format == "yyyy-mm-dd"
    assert row[10].is_date and row[10].value == datetime(2026, 3, 2, 8, 22), "local time, an Excel date-time"
    assert row[10].number_format == "yyyy-mm-dd hh:mm:ss"
    assert row[7].value == 17 and row[7].data_type == "n", "minutes late are a number"

    listed = [[c.value for c in r] for r in punches.iter_rows(min_row=2)]
    assert [r[:2] + r[3:5] for r in listed] == [
        [datetime(2026, 3, 2, 7, 58), "1001", "上班", "gate-1"],
        [datetime(2026, 3, 2, 8, 22), "1002", "上班", "gate-1"],
        [datetime(2026, 3, 2, 17, 3), "1001", "下班", "gate-1"],
    ]
    assert punches["A2"].number_format == "yyyy-mm-dd hh:mm:ss" and punches["F2"].is_date, "the terminal's time too"

    for sheet in (days, punches):
        for cells in sheet.iter_rows(min_row=2):
            for cell in cells:
                if isinstance(cell.value, str) and cell.value[:1] in "=+-@":
                    assert cell.data_type == "s", f"{sheet.title}!{cell.coordinate} would run: {cell.value}"
    names = {c.value for c in punches["C"][1:]} | {c.value for c in days["C"][1:]}
    assert names == {LINK, SUM}, "shown as typed"


def test_the_english_xlsx_has_readable_headers(exported):
    response = exported.get(f"/export?period=day&date={DAY}&format=xlsx&lang=en")
    book = load_workbook(io.BytesIO(response.get_data()), read_only=True)
    assert book.sheetnames == ["Attendance", "Punches"]
    header = next(book["Attendance"].iter_rows(max_row=1, values_only=True))
    assert not any("_" in h for h in header), header


def test_the_csv_neutralises_every_formula_and_writes_dates_as_text(exported):
    text = exported.get(f"/export?period=day&date={DAY}&format=csv").get_data().decode("utf-8-sig")
    table = {r[1]: r for r in list(csv.reader(io.StringIO(text)))[1:]}
    assert table["1001"][2] == "'" + LINK and table["1001"][3] == "'-一线"
    assert table["1002"][2] == "'" + SUM and table["1002"][3] == "'+二线"
    assert table["1002"][0] == date(2026, 3, 2).isoformat() and table["1002"][10] == "2026-03-02 08:22:00"
