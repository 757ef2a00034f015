"""The plant's pages against hostile input (issue #24, items 7 and 8): names that are spreadsheet formulas,
numbers too large for SQLite in the address. Through Flask's test client on a real database the evaluator
filled, as the other page tests."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from appliance.roster.importer import import_file
from tests.appliance.web.test_attendance_pages import DAY, PLANT_TZ, Plant, local
from tests.harness.clock import FrozenClock

EVIL = '=HYPERLINK("http://evil","x")'
HUGE = "99999999999999999999999"  # past SQLite's 64-bit INTEGER: an OverflowError when it reached a query


@pytest.fixture
def plant(tmp_path):
    p = Plant(tmp_path, FrozenClock(local(2, 8, 30)))
    yield p
    p.db.close()


def test_a_name_that_is_a_formula_is_exported_as_text(plant, tmp_path):
    sheet = tmp_path / "roster.csv"
    sheet.write_text(f'工号,姓名,产线,排班\n1003,"{EVIL.replace(chr(34), chr(34) * 2)}",+1线,wk\n', encoding="utf-8")
    import_file(sheet, PLANT_TZ, 0)
    plant.read_terminal()
    plant.evaluator.run_once()
    client = plant.client()

    text = client.get(f"/export?period=day&date={DAY}&format=csv").get_data().decode("utf-8-sig")
    (row,) = [r for r in csv.reader(io.StringIO(text)) if r[1] == "1003"]
    assert row[2] == "'" + EVIL, "the OWASP rule: a quote in front, the rest as typed"
    assert row[3] == "'+1线"

    response = client.get(f"/export?period=day&date={DAY}&format=xlsx")
    sheet = load_workbook(io.BytesIO(response.get_data())).active
    (cells,) = [r for r in sheet.iter_rows() if r[1].value == "1003"]
    assert (cells[2].value, cells[2].data_type) == (EVIL, "s"), "a string cell holding the text, not a formula"
    assert (cells[3].value, cells[3].data_type) == ("+1线", "s")
    assert cells[0].value.date().isoformat() == DAY and cells[2].quotePrefix


def test_the_kiosk_refuses_a_seq_too_large_for_the_database_without_a_login(plant):
    kiosk = plant.client(login=False)
    for path, headers in (
        (f"/kiosk/feed?after={HUGE}", {}),
        (f"/kiosk/feed?after=-{HUGE}", {}),
        ("/kiosk/feed?after=1e9", {}),
        (f"/kiosk/events?after={HUGE}", {}),
        ("/kiosk/events", {"Last-Event-ID": HUGE}),
    ):
        response = kiosk.get(path, headers=headers, buffered=False)
        body = response.get_data(as_text=True)
        assert response.status_code == 400, (path, headers, response.status_code)
        assert response.mimetype == "text/plain" and "整数" in body and "whole number" in body, body
        assert HUGE not in body, "the value is not echoed"
    assert kiosk.get("/kiosk/feed?after=-1").status_code == 200, "what a kiosk that just opened sends"


def test_the_board_refuses_a_page_number_out_of_range(plant):
    plant.read_terminal()
    plant.evaluator.run_once()
    client = plant.client()
    for page in (HUGE, "0", "²"):
        response = client.get(f"/?date={DAY}&page={page}")
        assert response.status_code == 400 and "page" in response.get_data(as_text=True), page
    assert client.get(f"/?date={DAY}&page=99").status_code == 200, "past the end is still the last page"
