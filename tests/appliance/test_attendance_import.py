"""Master data from the HR office's files: CSV (UTF-8 or GB18030) and XLSX, Chinese headers."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from openpyxl import Workbook

from appliance.roster import store as roster_store
from appliance.roster.demo import demo_rows
from appliance.roster.importer import ImportError_, import_file, store
from appliance.rules import PlanKind, plan_day
from appliance.store import Employee, EvalRequest, LeaveEntry, open_db
from tests.conftest import PLANT_TZ
from tests.harness.system import cli

NOW_MS = int(datetime(2026, 3, 5, 2, 0, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def db(tmp_path):
    database = open_db(tmp_path / "appliance.sqlite3")
    yield database
    database.close()


def write_csv(path, text, encoding="utf-8-sig"):
    path.write_bytes(text.encode(encoding))
    return path


def test_a_gb18030_csv_with_chinese_headers(db, tmp_path):
    shifts = write_csv(
        tmp_path / "shifts.csv", "班次,名称,时段,迟到宽限\nD,白班,08:00-17:00,5\nN,夜班,20:00-08:00,10\n"
    )
    rosters = write_csv(tmp_path / "r.csv", '编号,类型,模式\nwk,固定,"D,D,D,D,D,-,-"\n')
    people = write_csv(
        tmp_path / "people.csv", "工号,姓名,产线,排班,在职\n1001,张三,一线,wk,是\n1002,李四,二线,wk,否\n", "gb18030"
    )
    for path in (shifts, rosters, people):
        import_file(path, PLANT_TZ, NOW_MS)
    assert Employee.get_by_id("1001").name == "张三" and Employee.get_by_id("1002").active is False
    master = roster_store.load(PLANT_TZ, ["gate-1"])
    assert master.problems == ()
    (assignment,) = master.rosters
    assert plan_day(assignment, master.plant.calendar, date(2026, 3, 2)).shift_ids == ("D",)
    assert plan_day(assignment, master.plant.calendar, date(2026, 3, 7)).kind is PlanKind.REST_DAY
    assert master.plant.shifts["N"].crosses_midnight


def test_an_xlsx_workbook_with_a_sheet_per_kind_and_late_leave(db, tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.title = "班次"
    sheet.append(["班次", "时段"])
    sheet.append(["D", "08:00-12:00,13:00-17:00"])
    rosters = book.create_sheet("排班规则")
    rosters.append(["编号", "类型", "模式", "起始日期"])
    rosters.append(["r4", "轮班", "D,D,-,-", datetime(2026, 3, 1)])
    people = book.create_sheet("员工")
    people.append(["工号", "姓名", "排班"])
    people.append([1001, "王伟", "r4"])  # a badge number typed as a number
    leave = book.create_sheet("请假")
    leave.append(["单号", "工号", "假别", "开始", "结束"])
    leave.append(["L1", "1001", "病假", "2026-03-02", "2026-03-03"])
    path = tmp_path / "roster.xlsx"
    book.save(path)
    report = import_file(path, PLANT_TZ, NOW_MS)
    assert report.counts == {"shifts": 1, "rosters": 1, "employees": 1, "leave": 1}
    # the day before (a night shift reaching in) to the day the leave ends (its first shift back is watched)
    assert report.reevaluate == ("2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04")
    assert {r.day for r in EvalRequest.select()} == set(report.reevaluate)
    sick = LeaveEntry.get_by_id("L1")
    # both dates are whole days in the plant's zone: 2 March 00:00 to 4 March 00:00 Shanghai
    assert sick.start_ms == int(datetime(2026, 3, 1, 16, 0, tzinfo=UTC).timestamp() * 1000)
    assert sick.end_ms == int(datetime(2026, 3, 3, 16, 0, tzinfo=UTC).timestamp() * 1000)
    master = roster_store.load(PLANT_TZ, ["gate-1"])
    assert [e.employee for e in master.rosters] == ["1001"] and master.leaves[0].kind == "病假"


def test_a_bad_file_is_refused_whole_with_every_problem(db, tmp_path):
    path = write_csv(
        tmp_path / "leave.csv", "单号,工号,开始,结束\nL1,1001,2026-03-05,2026-03-02\nL2,,tomorrow,2026-03-09\n"
    )
    with pytest.raises(ImportError_) as caught:
        import_file(path, PLANT_TZ, NOW_MS)
    problems = caught.value.problems
    assert any("row 2, end: ends before it starts" in p for p in problems)
    assert any("row 3, employee: required" in p for p in problems)
    assert any("row 3, start" in p for p in problems)
    assert LeaveEntry.select().count() == 0


def test_a_roster_naming_an_unknown_shift_is_reported_not_fatal(db):
    store(
        {
            "rosters": [{"id": "x", "kind": "weekly", "pattern": "Z,Z,Z,Z,Z,-,-", "holidays": "observe"}],
            "employees": [{"user_id": "1", "name": "甲", "roster": "x", "active": True}],
        },
        PLANT_TZ,
        NOW_MS,
        source="test",
    )
    master = roster_store.load(PLANT_TZ, [])
    assert any("roster x" in p and "Z" in p for p in master.problems)
    assert any("employee 1" in p for p in master.problems)


def test_the_demo_roster_is_the_emulators_thirty_workers(db):
    rows = demo_rows(30, datetime(2026, 3, 2, 1, tzinfo=UTC), PLANT_TZ)
    store(rows, PLANT_TZ, NOW_MS, source="demo")
    master = roster_store.load(PLANT_TZ, ["gate-1"])
    assert master.problems == () and len(master.rosters) == 30
    assert Employee.get_by_id("1001").name == "王" + "伟"  # firmware_bridge.cli.demo_roster's first worker


def test_the_cli_imports_a_file(tmp_path):
    (tmp_path / "cloud.pub").write_text("unused by this command")
    conf = tmp_path / "appliance.toml"
    conf.write_text(
        f'[plant]\nid = "p1"\n[appliance]\nid = "pi-01"\nstate_dir = "{tmp_path}"\n'
        f'[mqtt]\ncloud_key_file = "{tmp_path / "cloud.pub"}"\n'
    )
    people = write_csv(tmp_path / "people.csv", "工号,姓名\n1001,张三\n")
    out = cli("appliance", "import-roster", "-c", conf, people)
    assert "imported 1 employees" in out
