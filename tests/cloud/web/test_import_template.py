"""The import page's templates (#21): HR downloads a workbook over HTTP, fills in one row with openpyxl as Excel
would, uploads it and the employee is imported. Each kind's template has the importer's own Chinese headers on its
first sheet and a second sheet, 填写说明, saying for each column whether it is required, its format and an example.
A refused row is explained in Chinese, in the words a cell may hold."""

from __future__ import annotations

import io
import threading
import urllib.request
import uuid

import pytest
from openpyxl import load_workbook
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from cloud.config import CloudSettings
from cloud.hr import importer
from cloud.hr.models import Employee, PlantBadge
from cloud.store import Account, Plant, database
from cloud.web import create_app
from tests.harness.http import WebClient
from tests.harness.raw_codes import raw_codes, visible_text

PASSWORD = "a long enough password"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def hr(tmp_path):
    """Head office on its own SQLite file, served over HTTP, and HR's client signed in."""
    settings = CloudSettings(database_url=f"sqlite:///{tmp_path}/cloud.sqlite3", state_dir=str(tmp_path))
    app = create_app(settings)
    with database.connection_context():
        Plant.create(id="p1", name="一厂", timezone="Asia/Shanghai")
        hashed = generate_password_hash(PASSWORD)
        Account.create(username="hr", password_hash=hashed, role="hr_admin", plant="", created_ms=0)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    client = WebClient(f"http://127.0.0.1:{server.server_port}")
    assert client.login("hr", PASSWORD)[0] == 200
    yield client
    server.shutdown()
    if not database.is_closed():
        database.close()


def download(client: WebClient, path: str) -> tuple[str, str, bytes]:
    with client.opener.open(client.base + path, timeout=10) as response:
        return response.headers["Content-Type"], response.headers["Content-Disposition"], response.read()


def upload(client: WebClient, workbook: bytes, name: str) -> tuple[int, str]:
    """The import form as a browser sends it: multipart, with the page's CSRF token."""
    _status, page = client.get("/import")
    boundary = uuid.uuid4().hex
    parts = [
        *(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in (("csrf", client.csrf(page)), ("plant", "p1"), ("kind", "auto"))
        ),
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {XLSX}\r\n\r\n".encode()
        + workbook
        + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    request = urllib.request.Request(
        client.base + "/import",
        data=b"".join(parts),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with client.opener.open(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_hr_downloads_the_template_fills_one_row_and_imports_it(hr):
    _status, page = hr.get("/import")
    assert 'href="/import/template.xlsx?kind=employees"' in page and raw_codes(visible_text(page), {"hr"}) == []
    kind, disposition, data = download(hr, "/import/template.xlsx?kind=employees")
    assert kind == XLSX and "xlsx" in disposition
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["员工", "填写说明"]
    sheet = book["员工"]
    headers = [c.value for c in sheet[1]]
    assert set(headers) <= set(importer.HEADERS), "every header is one the importer reads"
    explained = {row[0]: row[1:] for row in book["填写说明"].iter_rows(min_row=3, values_only=True)}
    assert list(explained) == headers, "each column explained, in order"
    assert explained["工号"][0] == "必填" and explained["考勤号"][0] == "必填" and explained["姓名"][0] == "选填"
    assert all(form and example is not None for _, form, example, _ in explained.values())
    assert sheet.freeze_panes == "A2"

    row = {"工号": "E0042", "考勤号": "0042", "姓名": "王芳", "部门": "装配二车间", "手机": "13800138042"}
    for column, header in enumerate(headers, start=1):
        if header in row:
            sheet.cell(row=2, column=column, value=row[header])
    filled = io.BytesIO()
    book.save(filled)
    status, answer = upload(hr, filled.getvalue(), "员工-导入模板.xlsx")
    assert status == 200 and 'id="imported"' in answer, visible_text(answer)
    with database.connection_context():
        employee = Employee.get(Employee.employee_no == "E0042")
        assert (employee.name, employee.department, employee.phone) == ("王芳", "装配二车间", "13800138042")
        assert PlantBadge.get(PlantBadge.employee == employee).user_id == "0042", "the leading zero kept"

    # a refused row is explained in Chinese, in the words a cell may hold
    _kind, _disposition, data = download(hr, "/import/template.xlsx?kind=corrections")
    book = load_workbook(io.BytesIO(data))
    sheet = book["补卡"]
    headers = [c.value for c in sheet[1]]
    values = {"单号": "BK-1", "工号": "E404", "时间": "2025-03-03 08:02", "方向": "进门", "原因": "考勤机故障"}
    for column, header in enumerate(headers, start=1):
        sheet.cell(row=2, column=column, value=values.get(header))
    filled = io.BytesIO()
    book.save(filled)
    status, answer = upload(hr, filled.getvalue(), "补卡.xlsx")
    text = visible_text(answer)
    assert status == 422 and "可选：上班、下班、不明" in text and "员工 'E404' 不存在" in text, text
    assert raw_codes(text, {"hr"}) == [], text


@pytest.mark.parametrize("kind", sorted(importer.KINDS))
def test_each_kinds_template_is_read_back_by_the_importer(kind, tmp_path):
    from cloud.web import import_template

    path = tmp_path / "template.xlsx"
    path.write_bytes(import_template.workbook(kind))
    (sheet,) = importer.read(path, "auto")  # the notes sheet is not taken for data
    assert sheet.kind == kind and sheet.rows == []
    book = load_workbook(path)
    required = {row[0] for row in book["填写说明"].iter_rows(min_row=3, values_only=True) if row[1] == "必填"}
    assert required == {importer.COLUMN_ZH[f] for f in importer.REQUIRED[kind]}
