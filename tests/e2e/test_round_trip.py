"""Head office and the plant, both ways, without a command (issue #20.4), on real processes: the appliance daemon
reading an emulated terminal, Mosquitto, the ingest worker, head office's pages and the escalation runner
(``punchproof cloud escalate --interval 1``).

A leave HR enters on the employee's page reaches the appliance's board by itself (the runner pushes the plant's
configuration after a quiet moment); "已在产线看到", recorded on the Pi for a day the cloud's case counts as
absent, is signed into the appliance's log, synced, and filed by the runner on the case, which pauses."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook

from cloud.escalation.policy import publish
from cloud.store import open_db
from tests.cloud.escalation.plantfeed import policy_body
from tests.harness.http import WebClient
from tests.harness.system import PLANT, System, cli
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e

TZ = ZoneInfo("Asia/Shanghai")
PASSWORD = "head office hr 9"


@pytest.fixture
def system(tmp_path, broker, zk_terminal):
    chain = System(tmp_path, broker.port, zk_terminal.address).configure()
    text = chain.cloud_conf.read_text(encoding="utf-8")
    quick = "config_push_quiet_s = 1\nconfig_push_within_s = 3\n"  # HR's quiet moment, shortened for the test
    chain.cloud_conf.write_text(
        text.replace("[cloud]\n", "[cloud]\n" + quick, 1) if "[cloud]\n" in text else text + "\n[cloud]\n" + quick,
        encoding="utf-8",
    )
    yield chain
    chain.stop_all_cleanly()


def _workbook(path, hired: str) -> None:
    book = Workbook()
    book.remove(book.active)
    for title, rows in {
        "班次": [["班次", "名称", "时段"], ["D", "白班", "08:00-17:00"]],
        "排班规则": [["编号", "类型", "模式", "节假日"], ["W", "固定", "D,D,D,D,D,D,D", "照常"]],
        "员工": [
            ["工号", "考勤号", "姓名", "排班", "入职日期"],
            ["E1001", "1001", "张三", "W", hired],
            ["E1002", "1002", "李四", "W", hired],
        ],
    }.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)


def _board(system: System, day: str, who: str) -> str:
    rows = system.appliance_rows(f"SELECT status, tier FROM board_row WHERE work_date = '{day}' AND employee = '{who}'")
    return "/".join(rows[0]) if rows else ""


def test_a_leave_reaches_the_board_and_seen_on_the_line_reaches_the_case(system, tmp_path):
    today = datetime.now(TZ).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    system.recording_since(datetime.combine(today - timedelta(days=1), time(0, 0), TZ))
    system.start_ingest()
    system.start_appliance()
    db = open_db(f"sqlite:///{system.root / 'cloud' / 'cloud.sqlite3'}")
    with db.connection_context():
        publish("*", policy_body(), by="hr-admin", now_ms=int(datetime.now(UTC).timestamp() * 1000))
    db.close()
    book = tmp_path / "花名册.xlsx"
    _workbook(book, (today - timedelta(days=60)).isoformat())
    cli("cloud", "import-hr", "-c", system.cloud_conf, "--plant", PLANT, book)
    cli("cloud", "create-user", "-c", system.cloud_conf, "hr", "--password-stdin", stdin=PASSWORD + "\n")
    web = WebClient(f"http://127.0.0.1:{system.start_web('cloud')}")  # starts while the appliance evaluates
    wait_until(lambda: _board(system, yesterday, "1001") == "missing/confirmed", timeout=60, message="1001 missing")
    system.spawn("escalate", "cloud", "escalate", "-c", system.cloud_conf, "--interval", "1")
    case = wait_until(
        lambda: system.cloud_rows("SELECT id FROM absence_case WHERE user_id = '1001'"), timeout=60, message="a case"
    )[0][0]

    # head office → plant: a leave on the employee's page, no command
    wait_until(lambda: web.get("/login")[0] == 200, timeout=20, message="head office's pages to serve")
    web.login("hr", PASSWORD)
    (employee,) = system.cloud_rows("SELECT id FROM employee WHERE employee_no = 'E1002'")[0]
    _, page = web.get(f"/employees/{employee}")
    form = {"csrf": web.csrf(page), "ref": "QJ-E2E", "kind": "病假"}
    form |= {"start": f"{today}T00:00", "end": f"{today}T23:59"}
    web.post(f"/employees/{employee}/leave", form)
    wait_until(
        lambda: system.appliance_rows("SELECT id FROM leave_entry") == [("QJ-E2E",)],
        timeout=20,
        message="the leave in the appliance's configuration",
    )
    wait_until(lambda: _board(system, today.isoformat(), "1002").startswith("on_leave"), timeout=20, message="board")
    assert system.cloud_rows("SELECT by FROM config_version ORDER BY version DESC LIMIT 1") == [("hr-change",)]

    # plant → head office: "已在产线看到" on the Pi (queued as the plant's page queues it; the daemon signs it)
    with closing(sqlite3.connect(system.root / "appliance" / "appliance.sqlite3")) as conn, conn:
        conn.execute(
            "INSERT INTO action_request (employee, work_date, shift, kind, reason, user, role, requested_ms, error) "
            "VALUES ('1001', ?, 'D', 'seen_on_line', '在二号线看到他，工卡忘带', 'wang', 'line_leader', ?, '')",
            (yesterday, int(datetime.now(UTC).timestamp() * 1000)),
        )
    entry = wait_until(
        lambda: system.cloud_rows(
            f"SELECT actor, text_zh FROM case_entry WHERE case_id = {case} AND kind = 'plant_action'"
        ),
        timeout=30,
        message="the plant's action on the case",
    )
    assert entry[0][0].startswith("wang（线长") and "已在产线看到" in entry[0][1]
    assert system.cloud_rows(f"SELECT ack_reason FROM absence_case WHERE id = {case}") == [("contacted",)]
    _, page = web.get(f"/cases/{case}")
    assert 'id="plant-actions"' in page and "在二号线看到他，工卡忘带" in page
