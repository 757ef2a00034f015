"""The plant's pages as the plant manager and the floor use them at 08:10, in a real Chromium (Debian's,
driven by Playwright) over real HTTP, on a real database the evaluator filled at that time (frozen clock).

The day shift began at 08:00 (5 minutes' grace): 张三 punched at 07:58, 李四 has not punched and is
未打卡（进行中）, listed first and counted apart from 王五, whose 09:00 shift has not begun. Screenshots of
the board and the kiosk at 1366x768, 800x480, 1920x1080 and a 390 px phone are saved under
``test-artifacts/browser/``.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from werkzeug.serving import make_server

from appliance.clock import to_ms
from appliance.roster import importer as roster_import
from appliance.store import MODELS, EvaluatorState, SyncState, TerminalHealth
from appliance.web import create_app
from tests.appliance.web.test_attendance_pages import PASSWORD, Plant, local
from tests.conftest import PLANT_TZ
from tests.harness.browser import chromium, shoot, sign_in
from tests.harness.raw_codes import raw_codes, visible_text

SIZES = {"laptop": (1366, 768), "kiosk": (800, 480), "office": (1920, 1080), "phone": (390, 844)}


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def plant(tmp_path):
    from tests.harness.clock import FrozenClock

    p = Plant(tmp_path, FrozenClock(local(2, 8, 10)))  # Monday 2026-03-02, 08:10 in the plant
    roster_import.store(
        {
            "shifts": [
                {"id": "D", "name": "白班", "spans": "08:00-17:00"},
                {"id": "L", "name": "中班", "spans": "09:00-18:00"},
            ],
            "rosters": [
                {"id": "wk", "kind": "weekly", "pattern": "D,D,D,D,D,-,-", "holidays": "observe"},
                {"id": "late", "kind": "weekly", "pattern": "L,L,L,L,L,-,-", "holidays": "observe"},
            ],
            "employees": [
                {"user_id": "1001", "name": "张三", "line": "一线", "roster": "wk", "active": True},
                {"user_id": "1002", "name": "李四", "line": "一线", "roster": "wk", "active": True},
                {"user_id": "1003", "name": "王五", "line": "一线", "roster": "late", "active": True},
            ],
        },
        PLANT_TZ,
        0,
        source="test",
    )
    p.punch("1001", local(2, 7, 58))
    p.read_terminal()
    SyncState.update(connected=True, acked_at_ms=to_ms(p.clock.now())).execute()
    p.evaluator.run_once()
    yield p
    p.db.close()


@pytest.fixture
def served(plant):
    """The plant's pages on a real HTTP server (threaded: the live streams hold a thread each)."""
    app = create_app(plant.settings, clock=plant.clock)
    plant.db.bind(MODELS)  # one process: the writer and the pages share the test's handle
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    from appliance.web import live

    live.stop_all()
    server.shutdown()
    thread.join(timeout=5)


def _signed_in(browser, base):
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(base + "/login")
    sign_in(page, "boss", PASSWORD)
    page.wait_for_selector("#attendance")
    return page


def _no_codes(page, where: str) -> None:
    """What the page shows in Chinese holds none of the program's identifiers (its English halves aside)."""
    found = raw_codes(visible_text(page.content()), data={"boss"})
    assert not found, f"{where} shows internal codes to the plant manager: {found}"


def test_at_0810_the_worker_not_punched_in_is_overdue_first_and_apart_from_the_shift_not_begun(served, browser):
    page = _signed_in(browser, served)
    rows = page.locator("#attendance tr.row")
    assert rows.first.get_attribute("data-board-employee") == "1002", "whoever should be here and is not: first"
    assert rows.first.get_attribute("data-status") == "overdue"
    assert "未打卡（进行中）" in rows.first.inner_text()
    assert "08:20 起记为缺勤（待确认）" in rows.first.inner_text(), "the reason says when it becomes a miss"
    statuses = {r.get_attribute("data-board-employee"): r.get_attribute("data-status") for r in rows.all()}
    assert statuses == {"1001": "present", "1002": "overdue", "1003": "upcoming"}
    assert page.inner_text('.count[data-cat="overdue"] b') == "1"
    assert page.inner_text('.count[data-cat="upcoming"] b') == "1", "王五's 09:00 shift: counted apart"

    punches = page.locator("#punches tr.punch")
    assert punches.count() == 1 and "张三" in punches.first.inner_text(), "recent punches with names"
    punches.first.locator("a").click()
    page.wait_for_selector("#reasoning")
    assert page.url.endswith("/person/1001?date=2026-03-02"), "a recent punch links to the person's day"
    _no_codes(page, "the person's page")
    page.go_back()
    page.wait_for_selector("#attendance")
    _no_codes(page, "the board")

    page.set_viewport_size({"width": 390, "height": 844})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the phone scrolls sideways: the page is {width} px wide"
    page.evaluate("window.scrollTo(0, 0)")
    shoot(page, "plant-board-0810", SIZES)


def test_an_offline_terminal_and_a_stopped_uplink_are_banners_at_the_top_of_the_board(served, plant, browser):
    EvaluatorState.update(last_error="employee 1009: roster 'night' is not defined").execute()
    page = _signed_in(browser, served)
    assert "部分考勤未能计算" in page.inner_text("#evaluator-error"), "a master-data problem said in Chinese"
    assert page.locator("#banners .banner").count() == 0, "all well: no banner"
    TerminalHealth.update(available=False, last_error="10.0.0.5:4370: connection refused").execute()
    SyncState.update(connected=False, last_error="[Errno 111] Connection refused").execute()
    banners = page.locator("#banners .banner")
    banners.nth(1).wait_for(timeout=10_000)  # pushed to the open board: no reload
    said = banners.all_inner_texts()
    assert (
        said[0].startswith("考勤机“gate-1”离线（最后通信 03-02 08:10）") and "Terminal 'gate-1' is offline" in said[0]
    )
    assert said[1].startswith("与总部的同步已中断") and "Sync with head office has stopped" in said[1]
    top = page.locator("#banners").bounding_box()["y"]
    assert top < page.locator("#summary").bounding_box()["y"], "at the top of the board, above the counts"
    terminals = page.inner_text("#terminals")
    assert "connection refused" not in terminals, "the technical error is folded away for IT"
    _no_codes(page, "the board with its banners")
    shoot(page, "plant-board-offline", {"laptop": SIZES["laptop"], "phone": SIZES["phone"]})


def test_the_kiosk_says_an_unknown_badge_collapses_a_double_press_and_shows_its_terminal_offline(
    served, plant, browser
):
    TerminalHealth.create(name="gate-2", serial="ZK2", available=False, last_contact_ms=to_ms(plant.clock.now()))
    page = browser.new_page(viewport={"width": 800, "height": 480})
    page.goto(served + "/kiosk?terminal=gate-1")  # the screen beside gate-1
    page.wait_for_selector("body[data-live=sse]")
    plant.punch("9999", plant.clock.now())  # a badge the roster does not know
    page.wait_for_selector("#latest.unknown")
    assert page.inner_text("#latest").startswith("✗ 未登记，请联系人事 08:10"), "never a green ✓"
    assert page.locator("#terminal-offline").is_hidden(), "gate-2 is offline, not the terminal beside this screen"

    plant.punch("1002", plant.clock.now(), state=0)
    plant.clock.advance(seconds=20)
    plant.punch("1002", plant.clock.now(), state=0)  # pressed again: the same punch to the worker
    page.wait_for_selector('#recent li[data-presses="2"]')
    lines = page.locator("#recent li").all_inner_texts()
    assert sum("李四" in line for line in lines) == 1, f"a double press is one line: {lines}"
    assert "已记录，按一次即可" in page.inner_text("#latest")
    _no_codes(page, "the kiosk")

    TerminalHealth.update(available=False).where(TerminalHealth.name == "gate-1").execute()
    page.wait_for_selector("#terminal-offline", state="visible", timeout=10_000)
    assert "考勤机暂时离线" in page.inner_text("#terminal-offline")
    assert page.locator("#terminal-offline").bounding_box()["y"] == 0, "at the top of the screen"
    page.set_viewport_size({"width": 1920, "height": 1080})
    columns = page.evaluate("getComputedStyle(document.body).gridTemplateColumns")
    assert len(columns.split()) == 2, "the 1080p screen: the clock and the last punch beside a long list"
    assert float(page.evaluate("getComputedStyle(document.querySelector('#recent')).fontSize")[:-2]) >= 50
    shoot(page, "plant-kiosk-0810", SIZES)


def test_a_full_pass_falls_due_when_a_shift_with_no_punch_turns_overdue(plant):
    from appliance.store import BoardRow

    plant.clock.advance_to(local(2, 8, 4) + timedelta(seconds=30))  # back from the fixture's 08:10
    plant.evaluator.run_once()

    def status() -> str:
        return BoardRow.get(employee="1002", work_date="2026-03-02").status

    assert status() == "upcoming"
    plant.clock.advance_to(local(2, 8, 4) + timedelta(seconds=59))
    assert plant.evaluator.why_full() is None, "08:04:59: still within the grace"
    plant.clock.advance(seconds=1)
    assert plant.evaluator.why_full() == "time", "08:05: the board's status changes with no punch"
    plant.evaluator.run_once()
    assert status() == "overdue"


def test_an_alert_opened_from_its_sms_on_a_phone_shows_every_answer_button_on_screen(plant, browser):
    plant.clock.advance_to(local(2, 8, 21))  # past 08:00 + grace: 李四 has not punched, the alert is raised
    plant.evaluator.run_once()
    app = create_app(plant.settings, clock=plant.clock)
    plant.db.bind(MODELS)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(f"http://127.0.0.1:{server.server_port}/login")
        sign_in(page, "boss", PASSWORD)
        page.goto(f"http://127.0.0.1:{server.server_port}/?date=2026-03-02&line=一线#alerts")
        buttons = page.locator('#alerts tr.alert-worker[data-employee="1002"] button')
        assert buttons.count() == 3, "已在产线看到, 已联系, 请假"
        for n in range(3):
            box = buttons.nth(n).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, f"answer {n} is off the phone's screen"
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shoot(page, "plant-alert-phone", {"phone": (390, 844)})
    finally:
        from appliance.web import live

        live.stop_all()
        server.shutdown()
        thread.join(timeout=5)
