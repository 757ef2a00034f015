"""Head office's pages against hostile input (issue #24, items 7 and 8): a name that is a spreadsheet formula,
numbers too large for the database in the address, an employee field made to break the download's header.
Through the app factory on the database the real engine filled (``conftest``); the export runs in its own
process, as it does in production."""

from __future__ import annotations

import io
import re
from urllib.parse import unquote

import pytest
from openpyxl import load_workbook

from cloud import witness
from cloud.hr.models import Employee
from cloud.store import database
from tests.harness.wait import wait_until

EVIL = '=HYPERLINK("http://evil","x")'
HUGE = "99999999999999999999999"  # past a 64-bit integer: SQLite raised OverflowError, a 500


def test_a_name_that_is_a_formula_is_a_text_cell_in_the_monthly_report(login):
    quoted = EVIL.replace('"', '""')
    onboard = f'工号,考勤号,姓名,手机\nE6001,6001,"{quoted}",13800000009\n'
    response = login("admin").post(
        "/import",
        {"plant": "p1", "kind": "auto", "file": (io.BytesIO(onboard.encode("utf-8-sig")), "onboard.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    report = login("pm1").get("/reports/attendance.xlsx?plant=p1&month=2025-03")
    sheet = load_workbook(io.BytesIO(report.data))["2025-03 考勤"]
    (row,) = [r for r in sheet.iter_rows() if r[0].value == "6001"]
    assert (row[2].value, row[2].data_type) == (EVIL, "s"), "a string cell holding the name as typed, not a formula"


def _with_huge_ints(rule: str) -> str:
    return re.sub(r"<[^>]+>", "x", re.sub(r"<int:[^>]+>", HUGE, rule))


def test_a_huge_number_in_any_path_is_a_400_that_says_so(app, login):
    admin = login("admin")
    refused = []
    for rule in app.url_map.iter_rules():
        if "<int:" not in rule.rule:
            continue
        path = _with_huge_ints(rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = admin.get(path) if method == "GET" else admin.post(path, {})
            body = response.get_data(as_text=True)
            assert response.status_code == 400 and "编号超出范围" in body, (method, path, response.status_code)
            assert HUGE not in body
            refused.append(path)
    assert len(refused) >= 15


@pytest.mark.parametrize(
    "path",
    [
        f"/cases?page={HUGE}",
        "/cases?page=²",  # "²".isdigit() is true, int("²") is not
        f"/cases?level={HUGE}",
        f"/employees?page={HUGE}",
        "/employees?page=0",
        f"/reports/attendance.xlsx?plant=p1&month={HUGE}-01",
        "/reports/attendance.xlsx?plant=p1&month=2025-13",
    ],
)
def test_a_bad_number_in_a_query_is_a_plain_400(login, path):
    response = login("admin").get(path)
    assert response.status_code == 400 and response.mimetype == "text/plain", response.status_code
    name = re.search(r"[?&](page|level|month)=", path).group(1)
    assert name in response.get_data(as_text=True)


def test_a_bad_number_or_date_in_a_form_is_refused_not_a_500(login):
    staff = login("staff")
    form = {"plant": "p1", "first": "2025-03-01", "last": "2025-03-18"}
    assert staff.post("/evidence/export", {**form, "case": HUGE}).status_code == 400
    with database.connection_context():
        employee = Employee.get(Employee.employee_no == "E2001").id
    leave = {"kind": "病假", "start": "0001-01-01T00:00", "end": "0001-01-02T00:00"}  # before UTC's year 1
    response = staff.post(f"/employees/{employee}/leave", leave)
    assert response.status_code == 302
    assert "超出范围" in staff.get(f"/employees/{employee}").get_data(as_text=True)


def test_the_bundles_name_is_the_employee_as_typed_and_the_header_stays_one_header(app, login):
    witness.create(app.config["SETTINGS"])
    staff = login("staff")
    typed = 'x"\r\nSet-Cookie: a=b; 张三'
    form = {"employee": typed, "plant": "p1", "first": "2025-03-01", "last": "2025-03-01"}
    job = staff.post("/evidence/export", form).headers["Location"]
    status = {}
    wait_until(lambda: status.update(staff.get(job + ".json").get_json()) or status["done"], timeout=60)
    assert status["result"]["ok"], status
    download = staff.get(job + "/bundle.zip")
    assert download.status_code == 200
    assert not [c for c in download.headers.getlist("Set-Cookie") if c.startswith("a=")], "no header of the typist's"
    header = download.headers["Content-Disposition"]
    assert "\r" not in header and "\n" not in header and "张三" not in header
    plain = re.fullmatch(r'attachment; filename="([A-Za-z0-9._-]+)"; filename\*=UTF-8\'\'([A-Za-z0-9%._~-]+)', header)
    assert plain, header
    assert plain[1] == "evidence-p1-x_Set-Cookie_a_b_-2025-03-01-2025-03-01.zip"
    assert unquote(plain[2]) == 'evidence-p1-x"Set-Cookie: a=b; 张三-2025-03-01-2025-03-01.zip'
