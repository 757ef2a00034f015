"""No absence where nothing was recording (issue #19, item 1), with real processes.

A plant's Pi is installed today; head office then imports its HR workbook, whose people were hired
two months ago on a roster that works every day. Before this, the appliance confirmed every one of
them absent for the days it had looked back over (nothing of theirs was in its log: it was not
there), the cloud opened a case for each, and the month's export showed 缺勤. A day counts as an
absence only when the appliance was recording every terminal serving the shift from the shift's
start; the days before are 未覆盖 on the board, in the exports and in the cloud, and open no case.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook

from cloud.escalation.policy import publish
from cloud.store import open_db
from tests.cloud.escalation.plantfeed import policy_body
from tests.harness.browser import chromium, shoot, sign_in
from tests.harness.http import WebClient
from tests.harness.system import PLANT, System, cli
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e

TZ = ZoneInfo("Asia/Shanghai")
PASSWORD = "plant manager 7"


@pytest.fixture
def system(tmp_path, broker, zk_terminal):
    chain = System(tmp_path, broker.port, zk_terminal.address).configure()
    yield chain
    chain.stop_all_cleanly()


def hr_workbook(path, hired: date) -> None:
    """Two people hired (and rostered) on ``hired``, on a day shift every day of the week, holidays too."""
    book = Workbook()
    book.remove(book.active)
    for title, rows in {
        "班次": [["班次", "名称", "时段"], ["D", "白班", "08:00-17:00"]],
        "排班规则": [["编号", "类型", "模式", "节假日"], ["W", "固定", "D,D,D,D,D,D,D", "照常"]],
        "员工": [
            ["工号", "考勤号", "姓名", "排班", "入职日期", "生效日期"],
            ["E1001", "1001", "张三", "W", hired.isoformat(), hired.isoformat()],
            ["E1002", "1002", "李四", "W", hired.isoformat(), ""],
        ],
    }.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)


def board(system: System, day: str) -> dict[str, tuple[str, str]]:
    rows = system.appliance_rows(f"SELECT employee, status, tier FROM board_row WHERE work_date = '{day}'")
    return {employee: (status, tier) for employee, status, tier in rows}


def test_an_hr_import_with_past_hire_dates_shows_no_absence_before_the_appliance_recorded(system, tmp_path):
    system.start_ingest()
    system.start_appliance()
    wait_until(
        lambda: system.appliance_rows("SELECT first_read_ms FROM terminal_health WHERE name = 'gate-1'")[0][0],
        timeout=60,
        message="the appliance's first read of its terminal",
    )
    db = open_db(f"sqlite:///{system.root / 'cloud' / 'cloud.sqlite3'}")
    with db.connection_context():
        publish("*", policy_body(), by="hr-admin", now_ms=int(datetime.now(UTC).timestamp() * 1000))
    db.close()

    today = datetime.now(TZ).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    book = tmp_path / "入职名单.xlsx"
    hr_workbook(book, today - timedelta(days=60))
    cli("cloud", "import-hr", "-c", system.cloud_conf, "--plant", PLANT, book)

    # the appliance: yesterday is evaluated after the import, final, and not an absence
    uncovered = {"1001": ("uncovered", "confirmed"), "1002": ("uncovered", "confirmed")}
    wait_until(lambda: board(system, yesterday) == uncovered, timeout=120, message=f"yesterday ({yesterday}) 未覆盖")
    reasons = system.appliance_rows(f"SELECT reason_zh FROM board_row WHERE work_date = '{yesterday}'")
    assert all(r.startswith("未覆盖：") and "不能据此认定缺勤" in r for (r,) in reasons), reasons
    missing = system.appliance_rows(
        f"SELECT work_date FROM board_row WHERE status = 'missing' AND work_date < '{today}'"
    )
    assert missing == [], f"an absence before the appliance was there: {missing}"

    # the cloud: once it holds the signed facts, the escalation runner reads them, and opens no case
    # the board shows the evaluator's decision at once; the daemon, the one log writer, signs the facts it hands over
    facts = wait_until(
        lambda: system.appliance_rows(f"SELECT max(seq) FROM day_fact_index WHERE work_date = '{yesterday}'")[0][0],
        timeout=60,
        message="yesterday's facts signed",
    )
    wait_until(lambda: system.acked_seq() >= facts, timeout=120, message="the cloud to acknowledge the facts")
    cli("cloud", "escalate", "-c", system.cloud_conf)
    days = system.cloud_rows(f"SELECT user_id, status FROM attendance_day WHERE work_date = '{yesterday}'")
    assert sorted(days) == [("1001", "uncovered"), ("1002", "uncovered")]
    assert system.cloud_rows("SELECT count(*) FROM absence_case") == [(0,)]
    absent = f"SELECT work_date FROM attendance_day WHERE status = 'missing' AND work_date < '{today}'"
    assert system.cloud_rows(absent) == []

    # the plant manager's month export: 未覆盖, never 缺勤, for the days before
    cli("appliance", "create-user", "-c", system.appliance_conf, "boss", "--password-stdin", stdin=PASSWORD + "\n")
    web = WebClient(f"http://127.0.0.1:{system.start_web('appliance')}")
    wait_until(lambda: web.get("/login")[0] == 200, timeout=20, message="the plant pages to serve")
    assert web.login("boss", PASSWORD)[0] in (200, 302)
    status, text = web.get(f"/export?period=month&date={yesterday}&format=csv")
    assert status == 200, text[:500]
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    before = [row for row in rows[1:] if row and row[0] < today.isoformat()]
    assert before, rows[:3]
    shown = {cell for row in before for cell in row}
    assert "缺勤" not in shown and "未覆盖" in shown, before[:3]

    # and as the plant manager sees yesterday's board, on the office screen and on a phone
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(f"{web.base}/login")
        sign_in(page, "boss", PASSWORD)
        page.goto(f"{web.base}/?date={yesterday}")
        badges = page.locator("#attendance .badge").all_inner_texts()
        assert badges == ["未覆盖", "未覆盖"], badges
        counts = page.inner_text("#summary")
        assert "2 未覆盖（设备尚未记录）" in counts and "0 缺勤" in counts, counts
        shoot(page, "board-uncovered", {"laptop": (1366, 768), "phone": (390, 844)})
