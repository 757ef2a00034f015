"""HR's spreadsheets read alike by both importers (opskit.sheets): CSV in GB18030/GBK or UTF-8 with a BOM,
XLSX sheets named for their kind, the header found below blank rows, a CSV's kind guessed from its headers,
and each cell parser's refusal, as the shared module reports it and as each side words it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook

from appliance.roster import importer as roster_import
from cloud.hr import importer as hr_import
from cloud.store import Plant, open_db
from opskit.sheets import Layout, Refusal, Row, Sheet, Unreadable, read

TZ = ZoneInfo("Asia/Shanghai")
LAYOUT = Layout(
    kinds={"shifts": ("shifts", "班次"), "employees": ("employees", "员工"), "leave": ("leave", "请假")},
    headers={
        "shifts": {"班次": "id", "时段": "spans", "名称": "name"},
        "employees": {"工号": "user_id", "姓名": "name", "班次": "shift"},
        "leave": {"单号": "id", "开始": "start", "结束": "end"},
    },
)


class Cells(Row[tuple[str, Refusal]]):
    """A row that keeps its refusals as they come, where an importer would word them."""

    words = {"已批准": "approved"}

    def __init__(self, values: dict[str, object]) -> None:
        super().__init__(Sheet("leave", "请假"), 2, values, TZ, [])

    def refuse(self, name: str, why: Refusal) -> None:
        self.problems.append((name, why))


def workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=TZ).timestamp() * 1000)


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig", "utf-8"])
def test_a_csv_in_what_excel_writes_is_one_sheet_with_chinese_headers_mapped(tmp_path, encoding):
    path = tmp_path / "班次.csv"
    path.write_bytes(" 班次 ,时段,名称,Remark\nD,08:00-17:00,白班,早\nN,20:00-08:00,夜班\n".encode(encoding))
    (sheet,) = read(path, LAYOUT)
    assert (sheet.kind, sheet.name) == ("shifts", "班次.csv")
    assert sheet.rows == [
        (2, {"id": "D", "spans": "08:00-17:00", "name": "白班", "remark": "早"}),
        (3, {"id": "N", "spans": "20:00-08:00", "name": "夜班"}),  # a short row has no field for the missing cell
    ]


def test_an_xlsx_has_a_sheet_per_kind_named_for_it_and_keeps_the_cells_types(tmp_path):
    path = workbook(
        tmp_path / "hr.xlsx",
        {
            " Shifts ": [["班次", "时段"], ["D", "08:00-17:00"]],
            "Sheet1": [["notes"], ["ignored: not named for a kind"]],
            "请假": [],
            "员工": [["工号", "姓名", None, "在职"], [1001, "王伟", "x", None], [1002.0, "李娜"]],
        },
    )
    shifts, people = read(path, LAYOUT, kind="leave")  # an xlsx names its kinds itself
    assert (shifts.kind, shifts.name, shifts.rows) == ("shifts", " Shifts ", [(2, {"id": "D", "spans": "08:00-17:00"})])
    assert (people.kind, people.name) == ("employees", "员工")
    # a cell under no header is dropped; an empty cell is ""; numbers stay numbers (text() reads them)
    assert people.rows == [
        (2, {"user_id": 1001, "name": "王伟", "在职": ""}),
        (3, {"user_id": 1002.0, "name": "李娜", "在职": ""}),
    ]


def test_the_header_is_the_first_row_with_something_in_it(tmp_path):
    csv_path = tmp_path / "leave.csv"
    csv_path.write_text("\n,,\n单号,开始,结束\nL1,2026-03-02,2026-03-03\n", encoding="utf-8-sig")
    (sheet,) = read(csv_path, LAYOUT)
    assert sheet.kind == "leave" and sheet.rows == [(2, {"id": "L1", "start": "2026-03-02", "end": "2026-03-03"})]
    xlsx_path = workbook(tmp_path / "hr.xlsx", {"请假": [[None, None], ["", None], ["单号", "开始"], ["L2", "x"]]})
    (sheet,) = read(xlsx_path, LAYOUT)
    assert sheet.rows == [(2, {"id": "L2", "start": "x"})]


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("班次,时段", "shifts"),
        ("id,pattern", "rosters"),
        ("单号,reason", "corrections"),
        ("单号,destination,开始", "trips"),
        ("单号,开始,结束", "leave"),
        ("工号,Day", "schedule"),
        ("工号,姓名,班次", "employees"),  # no marker: employees
    ],
)
def test_a_csvs_kind_is_guessed_from_its_headers_in_any_kinds_table(tmp_path, header, kind):
    path = tmp_path / "sheet.csv"
    path.write_text(header + "\n", encoding="utf-8")
    assert [s.kind for s in read(path, LAYOUT)] == [kind]
    assert [s.kind for s in read(path, LAYOUT, kind="shifts")] == ["shifts"]  # a given kind is not second-guessed


def test_a_file_that_is_not_sheets_says_why(tmp_path):
    reasons = {}
    for name, content in {"a.txt": b"x", "blank.csv": b"\n , \n", "broken.xlsx": b"not a zip"}.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(Unreadable) as err:
            read(tmp_path / name, LAYOUT)
        reasons[name] = err.value
    assert [e.reason for e in reasons.values()] == ["suffix", "empty", "workbook"]
    assert reasons["broken.xlsx"].detail and reasons["broken.xlsx"].__cause__ is not None
    path = workbook(tmp_path / "book.xlsx", {"Sheet1": [["a"], [1]], "Empty": [], "员工": []})
    with pytest.raises(Unreadable) as err:
        read(path, LAYOUT)
    assert (err.value.reason, err.value.found) == ("no sheet", ["Sheet1"])


def test_text_reads_numbers_typed_into_excel_and_the_sides_words():
    row = Cells({"id": 1001.0, "ratio": 1.5, "status": " 已批准 ", "empty": ""})
    assert [row.text("id"), row.text("ratio"), row.text("status")] == ["1001", "1.5", "approved"]
    assert (row.text("empty", "请假"), row.text("missing")) == ("请假", "")
    assert row.problems == []


def test_each_cell_parser_refuses_what_it_cannot_read_and_gives_the_default():
    row = Cells({"n": "five", "d": "2026/13/01", "at": "2026/03/02T25:00", "end": "", "status": "pending"})
    assert row.integer("n", 5) == 5
    assert row.day("d") == ""
    assert row.instant("at") == 0 and row.instant("end", end=True) == 0
    assert row.choice("status", ("approved", "cancelled"), "approved") == "pending"
    assert row.problems == [
        ("n", Refusal("number", "five")),
        ("d", Refusal("date", "2026-13-01")),
        ("at", Refusal("instant", "2026-03-02 25:00")),  # as read: / and T taken for - and a space
        ("end", Refusal("instant", "")),
        ("status", Refusal("choice", "pending", ("approved", "cancelled"))),
    ]


def test_the_cell_parsers_read_dates_and_times_in_the_plants_zone():
    row = Cells(
        {
            "n": "12.0",
            "d": "2026/03/02",
            "dt": datetime(2026, 3, 2, 9, 30),
            "date": date(2026, 3, 2),
            "text": "2026-03-02",
            "aware": "2026-03-02T08:00+00:00",
            "status": "",
        }
    )
    assert (row.integer("n", 0), row.integer("missing", 7)) == (12, 7)
    assert (row.day("d"), row.day("dt"), row.day("date"), row.day("missing")) == ("2026-03-02",) * 3 + ("",)
    assert row.instant("dt") == ms(2026, 3, 2, 9, 30)
    assert (row.instant("date"), row.instant("date", end=True)) == (ms(2026, 3, 2), ms(2026, 3, 3))
    assert (row.instant("text"), row.instant("text", end=True)) == (ms(2026, 3, 2), ms(2026, 3, 3))
    assert row.instant("aware") == int(datetime(2026, 3, 2, 8, tzinfo=UTC).timestamp() * 1000)
    assert row.choice("status", ("approved", "cancelled"), "approved") == "approved"
    assert row.problems == []


def test_the_appliance_words_each_refusal_as_before():
    sheets = [
        Sheet("shifts", "班次", [(2, {"id": "D", "spans": "08:00-17:00", "late_grace_min": "five"})]),
        Sheet("rosters", "排班规则", [(2, {"id": "r", "kind": "weird", "pattern": "D", "anchor": "2026/13/01"})]),
        Sheet("leave", "请假", [(2, {"id": "L", "employee": "1", "start": "2026/03/02T25:00", "end": "2026-03-03"})]),
    ]
    with pytest.raises(roster_import.ImportError_) as refused:
        roster_import.check(sheets, TZ, 0, "hr.xlsx")
    assert refused.value.problems == [
        "班次 row 2, late_grace_min: 'five' is not a number",
        "排班规则 row 2, kind: 'weird': one of weekly, rotating",
        "排班规则 row 2, anchor: '2026-13-01' is not a date YYYY-MM-DD",
        "请假 row 2, start: '2026-03-02 25:00' is not a date or a date and time (YYYY-MM-DD HH:MM)",
    ]


def test_head_office_words_each_refusal_in_chinese_then_english_as_before(tmp_path):
    db = open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    try:
        plant = Plant.create(id="p1", name="一厂", timezone="Asia/Shanghai")
        sheets = [
            Sheet("shifts", "班次", [(2, {"shift_id": "D", "spans": "08:00-17:00", "late_grace_min": "five"})]),
            Sheet(
                "rosters",
                "排班规则",
                [(2, {"roster_id": "r", "kind": "weird", "pattern": "-", "anchor": "2026/13/01"})],
            ),
            Sheet(
                "trips",
                "出差",
                [(2, {"ref": "T", "employee_no": "", "start": "2026/03/02T25:00", "end": "2026-03-03"})],
            ),
        ]
        with pytest.raises(hr_import.ImportRefused) as refused:
            hr_import.check(sheets, plant, "hr.xlsx")
    finally:
        db.close()
    assert [(p.sheet, p.column, p.zh, p.en) for p in refused.value.problems] == [
        ("出差", "工号", "必填", "required"),
        ("出差", "开始", "'2026/03/02T25:00' 不是日期或时间（YYYY-MM-DD HH:MM）", "not a date or date and time"),
        ("排班规则", "类型", "'weird' 无效，可选：固定、轮班", "'weird': one of weekly, rotating"),
        ("排班规则", "起始日期", "'2026-13-01' 不是日期（YYYY-MM-DD）", "'2026-13-01' is not a date YYYY-MM-DD"),
        ("班次", "迟到宽限", "'five' 不是数字", "'five' is not a number"),
    ]
