"""HR master data: onboarding import (CSV/XLSX, every bad row reported), the plant configuration
document, contacts' freshness, and policy versions that are never edited."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from openpyxl import Workbook

from cloud.escalation.policy import DEFAULT_BODY, PolicyError, PolicyVersion, current, publish
from cloud.hr import importer
from cloud.hr.models import EmergencyContact, Employee, Leave, PlantBadge
from cloud.hr.records import contacts_to_reconfirm, record_leave, set_verification
from cloud.plantconfig.config_doc import load_plant_master, plant_config
from cloud.store import Plant, open_db

NOW = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def plant(tmp_path):
    db = open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    yield Plant.create(id="p1", name="一厂", timezone="Asia/Shanghai")
    db.close()


def workbook(path, sheets):
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        ws = book.create_sheet(title)
        for row in rows:
            ws.append(row)
    book.save(path)
    return path


GOOD = {
    "班次": [["班次", "名称", "时段"], ["D", "白班", "08:00-12:00,13:00-17:00"], ["N", "夜班", "20:00-08:00"]],
    "排班规则": [["编号", "类型", "模式"], ["W", "固定", "D,D,D,D,D,-,-"]],
    "员工": [
        [
            "工号",
            "考勤号",
            "姓名",
            "身份证后四位",
            "排班",
            "手机",
            "邮箱",
            "送达地址",
            "送达确认凭证",
            "紧急联系人",
            "紧急联系人电话",
            "主管工号",
        ],
        ["M01", "9001", "王主管", "123X", "W", "13900139000", "wang@example.cn", "", "", "王妻", "13700137000", ""],
        [
            "E01",
            "1001",
            "张三",
            "5678",
            "W",
            "13800138000",
            "",
            "广东省东莞市某镇某路1号",
            "QR-2025-001",
            "张父",
            "13600136000",
            "M01",
        ],
    ],
    "请假": [["单号", "工号", "假别", "开始", "结束"], ["BJ-1", "E01", "病假", "2025-03-03", "2025-03-12"]],
}


def test_an_xlsx_onboards_a_plant_and_builds_its_configuration(plant, tmp_path):
    report = importer.import_file(workbook(tmp_path / "onboard.xlsx", GOOD), plant, NOW)
    assert report.counts == {"shifts": 2, "rosters": 1, "employees": 2, "leave": 1}
    zhang = Employee.get(Employee.employee_no == "E01")
    assert zhang.manager.employee_no == "M01" and zhang.service_confirmation_ref == "QR-2025-001"
    assert PlantBadge.get(PlantBadge.user_id == "1001").employee == zhang
    leave = Leave.get(Leave.ref == "BJ-1")
    assert leave.end_ms - leave.start_ms == 10 * 86_400_000  # a bare end date is the whole day
    config = plant_config(load_plant_master(plant))
    assert config["kind"] == "punchproof/plant-config" and config["timezone"] == "Asia/Shanghai"
    assert [e["user_id"] for e in config["employees"]] == ["1001", "9001"]
    assert config["leave"] == [
        {
            "id": "BJ-1",
            "employee": "1001",
            "kind": "病假",
            "start_ms": leave.start_ms,
            "end_ms": leave.end_ms,
            "status": "approved",
        }
    ]
    assert "13800138000" not in str(config)  # phones and addresses stay at head office
    again = plant_config(load_plant_master(plant))
    assert again["version"] == config["version"]  # pure and stable
    record_leave(zhang, "BJ-2", "事假", leave.end_ms, leave.end_ms + 86_400_000, now_ms=NOW + 1)
    assert plant_config(load_plant_master(plant))["version"] != config["version"]


def test_every_bad_row_is_reported_with_its_number_and_nothing_is_written(plant, tmp_path):
    bad = dict(GOOD)
    bad["员工"] = [
        GOOD["员工"][0],
        ["E02", "1002", "李四", "12", "X", "12345", "not-mail", "某地址", "", "李母", "", "M99"],
        ["E03", "1002", "王五", "", "W", "", "", "", "", "", "", ""],
    ]
    bad["请假"] = [GOOD["请假"][0], ["BJ-9", "E77", "病假", "2025-03-05", "2025-03-01"]]
    path = tmp_path / "bad.csv"
    with pytest.raises(importer.ImportRefused) as refused:
        importer.import_file(workbook(tmp_path / "bad.xlsx", bad), plant, NOW)
    text = str(refused.value)
    for expected in (
        "员工 第2行 手机：'12345' 不是有效的电话号码",
        "员工 第2行 邮箱：'not-mail' 不是有效的邮箱",
        "员工 第2行 排班：排班规则 'X' 不存在",
        "员工 第2行 紧急联系人电话：填写了紧急联系人但没有电话",
        "员工 第2行 主管工号：主管 'M99' 不存在",
        "员工 第3行 考勤号：与第2行重复",
        "请假 第2行 工号：员工 'E77' 不存在",
        "请假 第2行 结束：结束早于开始",
    ):
        assert expected in text, text
    assert all(str(p).index("第") < str(p).index(" / ") for p in refused.value.problems)  # Chinese first
    assert Employee.select().count() == 0 and Leave.select().count() == 0
    path.write_text("工号,考勤号,姓名\nE05,,赵六\n", encoding="gb18030")
    with pytest.raises(importer.ImportRefused, match="第2行 考勤号：必填"):
        importer.import_file(path, plant, NOW)


def test_emergency_contacts_due_for_reconfirmation(plant, tmp_path):
    importer.import_file(workbook(tmp_path / "onboard.xlsx", GOOD), plant, NOW)
    assert {s.employee_no for s in contacts_to_reconfirm(NOW)} == {"E01", "M01"}  # both unverified
    for contact in EmergencyContact.select():
        set_verification(contact, "verified", now_ms=NOW, ref="SMS 回复 确认")
    assert contacts_to_reconfirm(NOW + 86_400_000) == []
    stale = contacts_to_reconfirm(NOW + 200 * 86_400_000)
    assert {s.employee_no for s in stale} == {"E01", "M01"} and stale[0].reason_zh == "超过半年未确认"


def test_a_policy_version_is_never_edited_and_cases_name_theirs(plant):
    first = publish("*", DEFAULT_BODY | {"ack_timeout_hours": 24}, by="hr", now_ms=NOW)
    second = publish("*", DEFAULT_BODY | {"ack_timeout_hours": 48}, by="hr", now_ms=NOW + 1)
    assert (first.number, second.number) == (1, 2) and current("p1").id == second.id
    own = publish("p1", DEFAULT_BODY, by="hr", now_ms=NOW + 2)
    assert current("p1").id == own.id and current("p2").id == second.id
    first.body = "{}"
    with pytest.raises(PolicyError):
        first.save()
    assert PolicyVersion.get_by_id(first.id).parsed().ack_timeout_hours == 24
    with pytest.raises(PolicyError) as bad:
        publish("*", DEFAULT_BODY | {"thresholds": {"consecutive_days": 0}, "ladder": []}, by="hr", now_ms=NOW)
    assert "thresholds.consecutive_days" in str(bad.value) and "level 1 is missing" in str(bad.value)


def test_nobody_is_rostered_at_the_plant_before_their_hire_date(plant):
    """入职日期 (合同开始) bounds the roster pushed to the appliance, as 生效日期 does: the later one wins."""
    hired = Employee.create(employee_no="E1", name="新人", contract_start="2026-11-20")
    moved = Employee.create(employee_no="E2", name="调岗", contract_start="2025-01-01")
    PlantBadge.create(plant=plant, user_id="1001", employee=hired, roster="W")
    PlantBadge.create(plant=plant, user_id="1002", employee=moved, roster="W", valid_from="2026-12-01")
    employees = {e["user_id"]: e for e in plant_config(load_plant_master(plant))["employees"]}
    assert (employees["1001"]["valid_from"], employees["1002"]["valid_from"]) == ("2026-11-20", "2026-12-01")
    assert importer.HEADERS["入职日期"] == "contract_start"
