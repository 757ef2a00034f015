"""The month export streams: the CSV is sent as the database's cursor is read, the XLSX goes through a
temporary file, and neither holds the month in memory (issue #6: 155,000 rows for 5,000 workers).

A real appliance database filled directly with board rows, the real app through Flask's test client.
The expected CSV is computed here from the inserted values with the csv module, not by the export.
"""

from __future__ import annotations

import csv
import html
import io
import re
import resource
import subprocess
import sys
import tempfile
import tracemalloc
from datetime import datetime

import pytest
from openpyxl import load_workbook
from werkzeug.security import generate_password_hash

from appliance.config import Settings
from appliance.store import Account, BoardRow, open_db
from appliance.web import create_app
from tests.conftest import PLANT_TZ

PASSWORD = "a long enough password"
MONTH = "/export?period=month&date=2026-03-17&format="
STATUS = {  # the labels the plant manager reads, (zh, en)
    "present": ("出勤", "present"),
    "late": ("迟到", "late"),
    "left_early": ("早退", "left early"),
    "incomplete": ("缺卡", "punch missing"),
    "missing": ("缺勤", "missing"),
    "on_leave": ("请假", "on leave"),
    "rest_day": ("休息日", "rest day"),
}
TIER = {
    "open": ("进行中", "open"),
    "held": ("等待考勤机数据", "held: terminal behind"),
    "confirmed": ("已确认", "confirmed"),
    "tentative": ("待确认", "tentative"),
}
HEADER_ZH = ["日期", "工号", "姓名", "产线", "班次", "状态", "确认", "迟到分钟", "早退分钟", "缺卡次数"]
HEADER_ZH += ["上班打卡", "下班打卡", "原因", "日结论日志序号"]
HEADER_EN = ["Date", "Badge", "Name", "Line", "Shift", "Status", "Final?", "Minutes late", "Minutes early"]
HEADER_EN += ["Punches missing", "Check-in", "Check-out", "Reason", "Day fact record"]
NAMES = ("张三", "李四", "王小明", "欧阳娜娜", "赵六")


def ms(day: int, hour: int, minute: int, second: int = 0) -> int:
    return int(datetime(2026, 3, day, hour, minute, second, tzinfo=PLANT_TZ).timestamp() * 1000)


def board(workers: int, days: int = 31) -> list[dict]:
    """The month's rows, varied: every status and tier, empty and filled times, reasons with commas and
    quotes, and a split shift whose rows are inserted in the reverse of their order."""
    rows = []
    for d in range(1, days + 1):
        for n in range(workers):
            status = tuple(STATUS)[(n + d) % len(STATUS)]
            tier = ("open", "held", "confirmed")[(n * 7 + d) % 3]
            start = ms(d, 8, 0) if status != "rest_day" else None
            row = {
                "work_date": f"2026-03-{d:02d}",
                "employee": f"{1000 + n}",
                "shift": "D" if start else "",
                "name": NAMES[n % len(NAMES)] + ("" if n < len(NAMES) else str(n)),
                "line": f"{n % 4 + 1}线",
                "shift_name": "白班" if start and n % 5 else "",  # without a name: the shift's id is shown
                "status": status,
                "tier": tier,
                "missing_tier": "tentative" if status == "missing" and d % 2 else "",
                "late_min": (n + d) % 30 if status == "late" else 0,
                "early_min": (n * d) % 20 if status == "left_early" else 0,
                "missed": 1 if status == "incomplete" else 0,
                "start_ms": start,
                "end_ms": start + 9 * 3600_000 if start else None,
                "in_ms": ms(d, 7, 40 + n % 20, n % 60) if status in ("present", "late", "left_early") else None,
                "out_ms": ms(d, 17, n % 50, d) if status in ("present", "left_early") else None,
                "reason_zh": f"迟到 {n % 30} 分钟：班次 08:00，宽限 5 分钟，首次打卡 08:{n % 60:02d} 于 {n % 3} 号机",
                "reason_en": f'Late {n % 30} min: shift 08:00, grace 5 min, first punch at "gate-{n % 3 + 1}"',
                "fact_seq": 10_000 + d * workers + n if tier == "confirmed" else None,
                "as_of_ms": ms(d, 18, 0),
            }
            if n == 3:  # a split shift: the afternoon's row first
                rows.append(row | {"shift": "P", "start_ms": ms(d, 13, 0), "reason_en": "afternoon, second part"})
            rows.append(row)
    return rows


def expected_csv(rows: list[dict], lang: int) -> bytes:
    """What the export must send: the rows by date, badge and shift start, as the list-based export wrote them."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER_EN if lang else HEADER_ZH)
    for r in sorted(rows, key=lambda r: (r["work_date"], r["employee"], r["start_ms"] or -1)):
        writer.writerow(cells(r, lang))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def cells(r: dict, lang: int) -> list:
    def local(at: int | None) -> str:
        return datetime.fromtimestamp(at / 1000, PLANT_TZ).strftime("%Y-%m-%d %H:%M:%S") if at else ""

    return [
        r["work_date"],
        r["employee"],
        r["name"],
        r["line"],
        r["shift_name"] or r["shift"],
        STATUS[r["status"]][lang],
        TIER[r["missing_tier"] or r["tier"]][lang],
        r["late_min"],
        r["early_min"],
        r["missed"],
        local(r["in_ms"]),
        local(r["out_ms"]),
        r["reason_en"] if lang else r["reason_zh"],
        "" if r["fact_seq"] is None else r["fact_seq"],
    ]


class Month:
    """An appliance's state directory whose database holds ``rows``; the app binds the models to its own handle."""

    def __init__(self, tmp_path, rows: list[dict]) -> None:
        self.rows = rows
        self.settings = Settings.from_dict(
            {
                "plant": {"id": "p1", "name": "东莞一厂"},
                "appliance": {"id": "pi-01", "state_dir": str(tmp_path)},
                "mqtt": {"cloud_key_file": "/nonexistent"},
            }
        )
        db = open_db(self.settings.db_path)
        with db.atomic():
            Account.create(username="boss", password_hash=generate_password_hash(PASSWORD), role="admin", created_ms=0)
            for at in range(0, len(rows), 500):
                BoardRow.insert_many(rows[at : at + 500]).execute()
        db.close()
        self.app = create_app(self.settings)
        self.db = BoardRow._meta.database  # the app's handle, which the pages' queries use

    def client(self):
        client = self.app.test_client()
        client.get("/login")
        with client.session_transaction() as session:
            token = session["csrf"]
        assert client.post("/login", data={"csrf": token, "username": "boss", "password": PASSWORD}).status_code == 302
        return client


@pytest.fixture
def month(tmp_path):
    return Month(tmp_path, board(workers=97))  # 97 x 31 + 31 split-shift rows = 3,038 rows


def test_the_month_csv_is_byte_for_byte_what_the_rows_make_in_both_languages(month):
    client = month.client()
    assert len(month.rows) > 3000
    response = client.get(MONTH + "csv", buffered=False)
    assert response.is_streamed and response.content_length is None, "sent while it is read, not built first"
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="attendance-2026-03-01-to-2026-03-31.csv"'
    assert response.get_data() == expected_csv(month.rows, lang=0)
    assert client.get(MONTH + "csv&lang=en").get_data() == expected_csv(month.rows, lang=1)
    day = [r for r in month.rows if r["work_date"] == "2026-03-05"]
    assert client.get("/export?period=day&date=2026-03-05&format=csv").get_data() == expected_csv(day, lang=1), (
        "the language chosen is remembered"
    )


def test_the_month_xlsx_reads_back_row_for_row(month):
    response = month.client().get(MONTH + "xlsx")
    assert response.status_code == 200 and response.content_length == len(response.get_data())
    assert response.headers["Content-Disposition"].endswith('attendance-2026-03-01-to-2026-03-31.xlsx"')
    sheet = load_workbook(io.BytesIO(response.get_data()), read_only=True)["考勤"]
    got = [[("" if v is None else v) for v in row] for row in sheet.iter_rows(values_only=True)]
    expected = list(csv.reader(io.StringIO(expected_csv(month.rows, lang=0).decode("utf-8-sig"))))
    assert len(got) == len(expected) == len(month.rows) + 1
    assert all(isinstance(row[0], datetime) for row in got[1:]), "the date is an Excel date, not text"
    as_text = [[*row[:1], *row[1:], *[""] * (len(expected[0]) - len(row))] for row in got]  # empty cells at the end
    for row in as_text[1:]:
        row[0] = row[0].date().isoformat()
    assert [[str(v) for v in row] for row in as_text] == expected
    assert isinstance(got[1][7], int), "minutes are numbers, not text"


def test_the_connection_a_streamed_csv_reads_on_is_closed_at_its_end_and_when_the_client_leaves(month):
    client = month.client()
    response = client.get(MONTH + "csv", buffered=False)  # the test client, as a server, reads the first piece
    next(iter(response.response))
    assert not month.db.is_closed(), "the rest is still to be read from the cursor"
    response.close()  # as gunicorn does when the client goes away midway
    assert month.db.is_closed()

    response = client.get(MONTH + "csv", buffered=False)
    assert len(response.get_data()) > 500_000
    response.close()
    assert month.db.is_closed()


def test_an_xlsx_that_cannot_be_written_is_a_clear_503_and_the_csv_still_works(month, tmp_path, monkeypatch):
    not_a_directory = tmp_path / "tmp-is-a-file"
    not_a_directory.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_directory))  # where the process's temporary files go
    client = month.client()
    response = client.get(MONTH + "xlsx")
    page = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "设备存储空间已满" in page and "请改为导出 CSV" in page and "Traceback" not in page
    english = html.unescape(client.get(MONTH + "xlsx&lang=en").get_data(as_text=True))
    assert "the appliance's storage is full" in english and "Export CSV instead" in english
    assert client.get(MONTH + "csv").status_code == 200, "the CSV needs no temporary file"


def test_a_disk_that_fills_up_during_the_xlsx_leaves_nothing_behind(month, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    client = month.client()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # No file of this process may grow past 256 kB (Python ignores SIGXFSZ: the write fails with EFBIG),
    # as a disk with that much room left: openpyxl's sheet XML for 3,000 rows is about 2 MB.
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, hard))
    try:
        response = client.get(MONTH + "xlsx")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert response.status_code == 503 and "File too large" in response.get_data(as_text=True)
    assert list(scratch.iterdir()) == [], "openpyxl's partial sheet is removed, not left to fill the disk"
    assert month.db.is_closed()


def peak(run) -> int:  # noqa: ANN001
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


XLSX_IN_A_PROCESS = """
import re, resource, sys
from appliance.config import Settings
from appliance.web import create_app

settings = Settings.from_dict({"plant": {"id": "p1"}, "appliance": {"id": "pi-01", "state_dir": sys.argv[1]},
                               "mqtt": {"cloud_key_file": "/nonexistent"}})
client = create_app(settings).test_client()
token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
client.post("/login", data={"csrf": token, "username": "boss", "password": sys.argv[2]})
for period in ("day", "month"):  # the day first: openpyxl imported, the pages' caches warm
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    response = client.get(f"/export?period={period}&date=2026-03-17&format=xlsx", buffered=False)
    size = sum(len(piece) for piece in response.response)
    response.close()
print(size, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_exporting_60000_rows_takes_a_fraction_of_the_memory_of_holding_them(tmp_path):
    month = Month(tmp_path, board(workers=1935))  # 1,935 x 31 + 31 = 60,016 rows
    client = month.client()

    def held() -> None:  # what the list-based export held before writing a byte: every row's cells
        with month.db.connection_context():
            query = BoardRow.select().where(BoardRow.work_date.between("2026-03-01", "2026-03-31"))
            rows = [
                [r.work_date, r.employee, r.name, r.line, r.shift_name or r.shift, r.status, r.tier, r.late_min]
                + [r.early_min, r.missed, str(r.in_ms), str(r.out_ms), r.reason_zh, r.fact_seq]
                for r in query
            ]
            assert len(rows) == 60_016

    def csv_export() -> None:
        response = client.get(MONTH + "csv", buffered=False)
        assert sum(len(piece) for piece in response.response) > 10_000_000
        response.close()

    mb = 1024 * 1024
    old, streamed = peak(held), peak(csv_export)
    assert old > 40 * mb, f"holding the rows took {old / mb:.1f} MB"
    assert streamed < 4 * mb, f"the CSV export peaked at {streamed / mb:.1f} MB (holding the rows: {old / mb:.1f})"
    # openpyxl under tracemalloc takes a minute: the XLSX's memory is the resident size of a process of its own
    done = subprocess.run(
        [sys.executable, "-c", XLSX_IN_A_PROCESS, str(tmp_path), PASSWORD], capture_output=True, text=True, check=True
    )
    size, grown = map(int, done.stdout.split())
    assert size > 3_000_000
    assert grown < 16 * mb, (
        f"the XLSX export grew the process by {grown / mb:.1f} MB (holding the rows: {old / mb:.1f})"
    )


def test_an_xlsx_that_would_leave_the_daemon_too_little_disk_is_refused_before_it_starts(month, tmp_path, monkeypatch):
    from appliance.capture import storage

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    client = month.client()
    assert client.get(MONTH + "xlsx").status_code == 200, "room enough on this disk"
    # the disk's real free space, and a reserve for the daemon bigger than it (other writers may move it a little)
    monkeypatch.setattr(storage, "LOW_MB", storage.free_mb(scratch) + 100)
    response = client.get(MONTH + "xlsx")
    page = response.get_data(as_text=True)
    assert response.status_code == 503 and "设备存储空间已满" in page
    assert re.search(r"\d+ rows need about \d+ MB free, \d+ MB left", page), page
    assert list(scratch.iterdir()) == [], "refused before writing anything"
    assert client.get(MONTH + "csv").status_code == 200, "the CSV needs no temporary disk"
