"""Head office's dashboard in a real Chromium (Debian's, driven by Playwright), served by gunicorn through
``punchproof cloud web``, on a database the real engine filled (``tests/cloud/web/conftest.build``).

An HR user signs in, opens the case list, opens a case, acknowledges it with a reason and approves the
催告函: after each action the page comes back with the timeline showing the entry under their name.
Screenshots at 1920x1080 and 1366x768 go to ``test-artifacts/browser/`` (or ``$PUNCHPROOF_ARTIFACTS``).
"""

from __future__ import annotations

import signal

import pytest

from tests.cloud.web.conftest import PASSWORD, build
from tests.harness import cloud_web
from tests.harness.browser import chromium, shoot, sign_in
from tests.harness.clock import FrozenClock

pytestmark = pytest.mark.e2e

SIZES = {"desktop": (1920, 1080), "laptop": (1366, 768)}


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def dashboard(tmp_path):
    clock = FrozenClock()
    clock._now = clock.now().replace(year=2025, month=1, day=1)
    state = tmp_path / "cloud"
    state.mkdir()
    build(state / "cloud.sqlite3", clock)
    conf = cloud_web.write_conf(tmp_path / "cloud.toml", database=state / "cloud.sqlite3", state_dir=state, workers=2)
    process, base = cloud_web.start(conf, tmp_path / "web.log")
    yield base
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, (tmp_path / "web.log").read_text()


def _shoot(page, name: str) -> None:
    shoot(page, f"dashboard-{name}", SIZES)


def test_hr_signs_in_opens_a_case_acknowledges_and_approves(dashboard, browser):
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(f"{dashboard}/cases")
    assert "/login" in page.url
    _shoot(page, "login")
    sign_in(page, "staff", PASSWORD)
    page.wait_for_selector("#cases tr.case")
    assert page.locator("#cases tr.case").count() == 2
    assert "待审批：批准发送催告函" in page.inner_text("#cases")
    _shoot(page, "cases")
    page.click('#cases tr.case:has-text("员工2001") td a >> nth=0')
    page.wait_for_selector("#timeline")
    assert page.locator('tr.ev[data-kind="ack"]').count() == 0
    assert "日结论 2025-03-13 D：缺勤" in page.inner_text("#timeline")
    _shoot(page, "case")

    page.select_option("#ack-form select[name=reason]", "family")
    page.fill("#ack-form input[name=note]", "家属称回老家处理急事")
    page.click("#ack-form button")
    page.wait_for_selector('tr.ev[data-kind="ack"]')
    row = page.inner_text('tr.ev[data-kind="ack"]')
    assert "已确认（家庭原因）" in row and "staff" in row
    assert "已确认，自动外发已暂停" in page.inner_text("main")
    assert page.is_visible("#acked")

    page.fill(".gate[data-gate=approve_cuigao] form input[name=note]", "地址已核对")
    page.click(".gate[data-gate=approve_cuigao] form button")
    page.wait_for_selector('.gate[data-gate="approve_cuigao"][data-status="approved"]')
    approval = page.inner_text('tr.ev[data-kind="approval"]')
    assert "staff 审批 批准发送催告函（1/1）" in approval
    assert page.get_attribute('tr.step[data-step="L3"]', "data-status") == "due"
    assert page.is_visible("#chain-ok")
    page.evaluate("window.scrollTo(0, 0)")
    _shoot(page, "case-after")

    page.click("#lang")
    page.wait_for_selector("text=Timeline")
    assert "acknowledged (family matter)" in page.inner_text("#timeline")
    _shoot(page, "case-english")
    page.close()


def test_a_plant_manager_sees_only_their_plant_and_cannot_approve(dashboard, browser):
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(f"{dashboard}/login")
    sign_in(page, "pm2", PASSWORD)
    page.goto(f"{dashboard}/cases")
    assert page.locator("#cases tr.case").count() == 1 and "员工3001" in page.inner_text("#cases")
    page.click("#cases tr.case td a >> nth=0")
    page.wait_for_selector("#ack-form")
    assert page.locator(".gate form.approve").count() == 0  # read-mostly: acknowledge and calls only
    assert page.locator("#resolve-form").count() == 0
    _shoot(page, "plant-manager-case")
    page.close()
