"""The plant manager's pages and the kiosk, through Flask's test client on a real database that
the evaluator filled (frozen clock, real signed log)."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from werkzeug.security import generate_password_hash

from appliance.attendance import Evaluator, actions
from appliance.capture.punchlog import Entry, LogWriter
from appliance.clock import to_ms
from appliance.config import Settings
from appliance.roster import importer as roster_import
from appliance.store import MODELS, Account, LogRecord, Punch, TerminalHealth, open_db
from appliance.web import create_app
from ledger import SigningKey, parse
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock

PASSWORD = "a long enough password"
DAY = "2026-03-02"


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=PLANT_TZ).astimezone(UTC)


class Plant:
    def __init__(self, tmp_path, clock):
        self.settings = Settings.from_dict(
            {
                "plant": {"id": "p1", "name": "东莞一厂"},
                "appliance": {"id": "pi-01", "state_dir": str(tmp_path)},
                "mqtt": {"cloud_key_file": "/nonexistent"},
                "terminals": [{"name": "gate-1", "host": "127.0.0.1"}],
            }
        )
        self.db = open_db(self.settings.db_path)
        self.clock = clock
        self.writer = LogWriter(self.db, SigningKey.generate(), "punchproof/p1/pi-01/1", clock, "boot")
        self.writer.start()
        self.evaluator = Evaluator(self.writer, PLANT_TZ, ["gate-1"], clock)
        Account.create(username="boss", password_hash=generate_password_hash(PASSWORD), role="admin", created_ms=0)
        rows = {
            "shifts": [{"id": "D", "name": "白班", "spans": "08:00-17:00"}],
            "rosters": [{"id": "wk", "kind": "weekly", "pattern": "D,D,D,D,D,-,-", "holidays": "observe"}],
            "employees": [
                {"user_id": "1001", "name": "张三", "line": "一线", "roster": "wk", "active": True},
                {"user_id": "1002", "name": "李四", "line": "二线", "roster": "wk", "active": True},
            ],
        }
        roster_import.store(rows, PLANT_TZ, 0, source="test")

    def punch(self, user_id: str, at: datetime, state: int = 0, offset_ms: int = 0) -> int:
        device = at.astimezone(PLANT_TZ).replace(tzinfo=None).isoformat()
        body = {
            "emp": user_id,
            "src": "zk",
            "term": {
                "name": "gate-1",
                "sn": "ZK1",
                "t": device,
                "tz": "Asia/Shanghai",
                "state": state,
                "verify": 1,
                "off_ms": offset_ms,
            },
        }

        def derive(seq, now_ms):
            return Punch, {
                "seq": seq,
                "terminal": "gate-1",
                "terminal_sn": "ZK1",
                "user_id": user_id,
                "device_time": device,
                "at_utc_ms": to_ms(at),
                "verify": 1,
                "state": state,
                "workcode": 0,
                "received_ms": now_ms,
            }

        return self.writer.append([Entry("punch", body, derive)])[0]

    def read_terminal(self, offset_ms: int = 0) -> None:
        TerminalHealth.replace(
            name="gate-1",
            serial="ZK1",
            available=True,
            last_contact_ms=to_ms(self.clock.now()),
            first_read_ms=to_ms(self.clock.now() - timedelta(days=30)),  # recorded since a month ago: days covered
            clock_offset_ms=offset_ms,
            capacity=99000,
        ).execute()

    def client(self, login: bool = True):
        client = create_app(self.settings, clock=self.clock).test_client()
        self.db.bind(MODELS)  # one process here: the app bound the models to its own handle; the writer needs ours
        if login:
            page = client.get("/login").get_data(as_text=True)
            token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            assert client.post("/login", data={"csrf": token, "username": "boss", "password": PASSWORD}).status_code
        return client


@pytest.fixture
def plant(tmp_path):
    p = Plant(tmp_path, FrozenClock(local(2, 8, 30)))
    yield p
    p.db.close()


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_the_board_shows_tentative_missing_late_and_present_by_shift_and_line(plant):
    plant.punch("1001", local(2, 7, 58))
    plant.read_terminal()
    plant.evaluator.run_once()
    page = plant.client().get(f"/?date={DAY}").get_data(as_text=True)
    assert re.search(r'data-board-employee="1002" data-status="missing" data-tier="tentative"', page)
    assert re.search(r'data-board-employee="1001" data-status="present"', page)
    assert "白班 · 一线" in page and "白班 · 二线" in page, "grouped by shift and line"
    assert "待确认" in page and "未打卡（暂定）：班次 08:00，宽限 5 分钟，至今无打卡" in page, "Chinese by default"
    english = plant.client().get(f"/?date={DAY}&lang=en").get_data(as_text=True)
    assert "No punch yet (tentative): shift 08:00, grace 5 min, none so far" in english


def test_the_board_searches_and_filters(plant):
    plant.read_terminal()
    plant.evaluator.run_once()
    client = plant.client()
    page = client.get(f"/?date={DAY}&q=张三").get_data(as_text=True)
    assert 'data-board-employee="1001"' in page and 'data-board-employee="1002"' not in page
    page = client.get(f"/?date={DAY}&line=二线").get_data(as_text=True)
    assert 'data-board-employee="1002"' in page and 'data-board-employee="1001"' not in page
    page = client.get(f"/?date={DAY}&cat=present").get_data(as_text=True)
    assert "data-board-employee" not in page
    version = client.get("/board/version").get_json()["version"]
    plant.evaluator.run_once()
    assert client.get("/board/version").get_json()["version"] == version, "a pass that changes nothing: no refresh"
    plant.punch("1002", local(2, 8, 31))
    plant.read_terminal()
    plant.evaluator.run_once()
    assert client.get("/board/version").get_json()["version"] != version, "a pass that changes the board moves it"
    partial = client.get(f"/?date={DAY}&partial=1").get_data(as_text=True)
    assert "<html" not in partial and 'data-board-employee="1002"' in partial


def test_a_terminal_going_live_or_offline_reaches_the_board_with_no_punch_to_carry_it(plant):
    plant.read_terminal()
    client = plant.client()

    def status() -> tuple[str, str]:
        version = client.get("/board/version").get_json()["version"]
        terminals = re.search(
            r'<section id="terminals">.*?</section>', client.get("/?partial=1").get_data(as_text=True), re.S
        )
        return version, terminals.group(0)

    version, shown = status()
    assert 'data-live="no">在线<' in shown
    TerminalHealth.update(live_since_ms=to_ms(plant.clock.now())).execute()  # the daemon: live capture registered
    moved, shown = status()
    assert moved != version and 'data-live="yes">在线 <span class="muted" title="实时推送开始于' in shown
    TerminalHealth.update(available=False, live_since_ms=None, last_error="10.0.0.5:4370: connection refused").execute()
    gone, shown = status()
    assert gone != moved and 'data-live="no">离线<' in shown and "connection refused" in shown
    plant.clock.advance(seconds=5)
    TerminalHealth.update(clock_offset_ms=120).execute()  # a read's figures alone do not refresh every board
    assert status()[0] == gone


def test_the_board_renders_a_page_of_rows_at_a_time_and_keeps_the_filters_across_pages(plant, monkeypatch):
    from appliance.web import board

    monkeypatch.setattr(board, "PAGE_ROWS", 1)  # two employees, one row a page
    plant.read_terminal()
    plant.evaluator.run_once()
    client = plant.client()
    first = client.get(f"/?date={DAY}").get_data(as_text=True)
    assert 'data-board-employee="1001"' in first and 'data-board-employee="1002"' not in first
    assert 'data-page="1" data-pages="2"' in first and "第 1–1 条，共 2 条" in first
    assert f'href="/?date={DAY}&amp;page=2"' in first, "the next page keeps the date"
    second = client.get(f"/?date={DAY}&page=2").get_data(as_text=True)
    assert 'data-board-employee="1002"' in second and 'data-board-employee="1001"' not in second
    assert client.get(f"/?date={DAY}&page=99").get_data(as_text=True).count("data-board-employee") == 1, "past the end"
    refused = client.get(f"/?date={DAY}&page=x")  # not a page number: said so, not guessed (issue #24.8)
    assert refused.status_code == 400 and "page" in refused.get_data(as_text=True)
    partial = client.get(f"/?date={DAY}&page=2&partial=1").get_data(as_text=True)
    assert 'data-board-employee="1002"' in partial, "the live refresh fetches the page being looked at"
    assert "partial" not in re.search(r'<nav class="pager".*?</nav>', partial, re.S).group(0)
    assert 'data-pages="' not in client.get(f"/?date={DAY}&line=二线").get_data(as_text=True), "one page: no pager"
    english = client.get(f"/?date={DAY}&lang=en").get_data(as_text=True)
    assert "Rows 1–1 of 2" in english


def test_the_filters_offer_the_days_shifts_and_lines(plant):
    plant.read_terminal()
    plant.evaluator.run_once()
    page = plant.client().get(f"/?date={DAY}").get_data(as_text=True)
    shifts = re.search(r'<select name="shift">.*?</select>', page, re.S).group(0)
    lines = re.search(r'<select name="line">.*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="(\w+)"[^>]*>([^<]+)</option>', shifts) == [("D", "白班")]
    assert re.findall(r"<option >([^<]+)</option>", lines) == ["一线", "二线"]


def test_the_search_is_on_badge_or_name_and_takes_wildcards_literally(plant):
    plant.read_terminal()
    plant.evaluator.run_once()
    client = plant.client()
    for needle, expect in (("1002", {"1002"}), ("李", {"1002"}), ("100", {"1001", "1002"}), ("%", set()), ("_", set())):
        page = client.get("/", query_string={"date": DAY, "q": needle}).get_data(as_text=True)
        assert set(re.findall(r'data-board-employee="([^"]+)"', page)) == expect, needle


def test_a_persons_day_has_punches_with_offset_and_the_reasoning(plant):
    plant.punch("1001", local(2, 8, 22), offset_ms=-4200)
    plant.read_terminal()
    plant.evaluator.run_once()
    page = plant.client().get(f"/person/1001?date={DAY}").get_data(as_text=True)
    assert "张三" in page and "2026-03-02 08:22:00" in page and "-4.2" in page
    assert "迟到 17 分钟：班次 08:00，宽限 5 分钟，首次打卡 08:22 于 gate-1" in page


def test_an_action_needs_the_csrf_token_and_is_signed_with_the_user(plant):
    client = plant.client()
    form = {"date": DAY, "shift": "D", "kind": "seen_on_line", "reason": "在二线看到他"}
    assert client.post("/person/1002/action", data=form).status_code == 400
    page = client.get(f"/person/1002?date={DAY}").get_data(as_text=True)
    assert client.post("/person/1002/action", data=form | {"csrf": csrf_of(page)}).status_code == 302
    assert "等待签名" in client.get(f"/person/1002?date={DAY}").get_data(as_text=True)
    (seq,) = actions.sign_pending(plant.writer)
    record = parse(bytes(LogRecord.get_by_id(seq).data))
    assert (record["act"], record["user"], record["emp"], record["reason"]) == (
        "seen_on_line",
        "boss",
        "1002",
        "在二线看到他",
    )
    assert f"已签名，日志序号 {seq}" in client.get(f"/person/1002?date={DAY}").get_data(as_text=True)
    empty = form | {"csrf": csrf_of(page), "reason": "  "}
    assert "act_needs_reason" in client.post("/person/1002/action", data=empty).headers["Location"]


def test_export_of_a_day_in_csv_and_xlsx(plant):
    plant.punch("1001", local(2, 8, 22))
    plant.read_terminal()
    plant.evaluator.run_once()
    client = plant.client()
    response = client.get(f"/export?period=day&date={DAY}&format=csv")
    text = response.get_data().decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][:3] == ["日期", "工号", "姓名"]
    assert table[1][:6] == ["2026-03-02", "1001", "张三", "一线", "白班", "迟到"]
    assert table[1][10] == "2026-03-02 08:22:00", "local time of the check-in"
    response = client.get(f"/export?period=month&date={DAY}&format=xlsx")
    assert response.headers["Content-Disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(response.get_data())).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert {row[1] for row in values[1:] if row[0].date().isoformat() == DAY} == {"1001", "1002"}
    assert client.get(f"/export?period=year&date={DAY}").status_code == 400


def test_the_kiosk_needs_no_login_and_shows_only_what_the_floor_sees(tmp_path):
    now = datetime.now(UTC).replace(second=0, microsecond=0)  # the kiosk shows the last minutes of real time
    start = (now - timedelta(minutes=30)).astimezone(PLANT_TZ)
    plant = Plant(tmp_path, FrozenClock(now))
    try:
        every_day = {
            "shifts": [{"id": "D", "name": "白班", "spans": f"{start:%H:%M}-{start + timedelta(hours=8):%H:%M}"}],
            "rosters": [{"id": "wk", "kind": "rotating", "pattern": "D", "anchor": "2026-01-01", "holidays": "ignore"}],
        }
        roster_import.store(every_day, PLANT_TZ, 0, source="test")
        plant.read_terminal(offset_ms=-95_000)
        plant.evaluator.run_once()
        seq = plant.punch("1002", now, state=255)  # no in/out key: the shift says it is a check-in
        kiosk = plant.client(login=False)
        page = kiosk.get("/kiosk")
        assert page.status_code == 200 and "kiosk.js" in page.get_data(as_text=True)
        feed = kiosk.get(f"/kiosk/feed?after={seq - 1}").get_json()
        (shown,) = feed["punches"]
        assert set(shown) == {"seq", "name", "known", "repeat", "time", "dir", "late_min", "clock_off_s"}
        assert shown == {
            "seq": seq,
            "name": "李四",
            "known": True,
            "repeat": False,
            "time": f"{now.astimezone(PLANT_TZ):%H:%M}",
            "dir": "in",
            "late_min": 25,
            "clock_off_s": -95,
        }
        assert "1002" not in kiosk.get(f"/kiosk/feed?after={seq - 1}").get_data(as_text=True), "no badge numbers"
        assert kiosk.get(f"/kiosk/feed?after={seq}").get_json()["punches"] == []
        assert kiosk.post("/kiosk/feed").status_code == 405, "nothing the kiosk can change"
    finally:
        plant.db.close()


def test_every_page_but_the_login_and_the_kiosk_needs_a_login(plant):
    app = create_app(plant.settings)
    client = app.test_client()
    public = {"/login", "/kiosk", "/kiosk/feed", "/kiosk/events", "/static/<path:filename>"}
    public.add("/metrics")  # no login: this machine only, or a bearer token (tests/test_metrics.py)
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.rule in public:
            continue
        path = re.sub(r"<[^>]+>", "1001", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method)
            if rule.rule == "/logout":
                assert response.status_code == 400  # POST without the session's token
            else:
                assert response.status_code == 302 and "/login" in response.headers["Location"], (method, path)
            checked += 1
    assert checked >= 6


def test_an_action_is_checked_before_it_is_queued_for_signing(plant):
    """#24.6: a line leader recorded signed actions for badge NOBODY-9999, for 2099-12-31 and for a
    3,000-character badge; signed records are permanent, so nothing of that kind may reach the queue."""
    Account.create(username="leader", password_hash=generate_password_hash(PASSWORD), role="line_leader", created_ms=0)
    client = plant.client(login=False)
    page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"csrf": csrf_of(page), "username": "leader", "password": PASSWORD})
    page = client.get(f"/person/1002?date={DAY}").get_data(as_text=True)
    assert "已让其回家" not in page, "a line leader is not offered what they may not record"
    token = csrf_of(page)
    good = {"csrf": token, "date": DAY, "shift": "D", "kind": "seen_on_line", "reason": "在二线看到他"}
    refused = {
        "act_refused_role": ("1002", good | {"kind": "sent_home"}),
        "unknown_person": ("NOBODY-9999", good),
        "act_refused_future": ("1002", good | {"date": "2099-12-31"}),
        "act_refused_date": ("1002", good | {"date": "2026-02-30"}),
        "act_refused_old": ("1002", good | {"date": "2026-01-01"}),
        "act_refused_shift": ("1002", good | {"shift": "X" * 65}),
    }
    for key, (badge, form) in refused.items():
        location = client.post(f"/person/{badge}/action", data=form).headers["Location"]
        assert f"error={key}" in location, (key, location)
    long_badge = client.post("/person/" + "9" * 3000 + "/action", data=good)
    assert long_badge.status_code in (302, 404) and "error=unknown_person" in long_badge.headers.get("Location", "")
    assert actions.pending() == [], "nothing refused was queued"
    assert client.post("/person/1002/action", data=good).status_code == 302
    (request,) = actions.pending()
    assert (request.employee, request.kind, request.role) == ("1002", "seen_on_line", "line_leader")
    shown = client.get(f"/person/1002?date={DAY}&error=act_refused_future").get_data(as_text=True)
    assert "不能为尚未到来的日期记录处理" in shown
