"""The live board's script asks a slow appliance less often (appliance/web/static/board.js), in a real Chromium.

At a shift change a room of boards each fetching its rows every second asked a Pi's page worker for more than its
core could give: ten open boards (``bench/plant_burst.py --screens``) took the kiosk's confirmation past its
second. The script now waits, after a fetch, at least as long as that fetch took. The page is the board's script
on a page of its own; its version comes from the fallback poll (no event stream), the fetch of its rows is held
until the test answers it, and the page's clock is Playwright's, moved by the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.harness.browser import chromium
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).parents[2] / "appliance" / "web" / "static" / "board.js"
PAGE = """<!doctype html><html><body>
<div id="live" data-version="v0" data-version-url="/board/version" data-events-url="/board/events"></div>
<script src="/static/board.js"></script></body></html>"""


def test_after_a_slow_answer_the_board_waits_as_long_before_it_asks_again():
    with chromium() as browser:
        page = browser.new_page()
        page.add_init_script("delete window.EventSource")  # the fallback: /board/version polled every 3 s
        page.clock.install(time=0)
        held: list = []
        versions = iter(f"v{n}" for n in range(1, 100))
        page.route("http://board.test/", lambda route: route.fulfill(body=PAGE, content_type="text/html"))
        page.route("http://board.test/static/board.js", lambda route: route.fulfill(path=str(SCRIPT)))
        page.route(
            "http://board.test/board/version",
            lambda route: route.fulfill(json={"version": next(versions)}),
        )
        page.route(re.compile(r"\?partial=1$"), lambda route: held.append(route))
        page.goto("http://board.test/")
        _wait_held(page, held)  # the first poll found v1
        page.clock.run_for(3000)  # the rows take 3 s to come; meanwhile the poll finds a newer version
        held.pop().fulfill(body='<div hidden data-shown-version="v1"></div>', content_type="text/html")
        wait_until(lambda: page.evaluate("document.getElementById('live').dataset.refreshed"), 10, "the rows shown")
        assert page.evaluate("document.getElementById('live').dataset.version") == "v1"
        page.clock.run_for(2500)  # the old script asked again 1 s after that fetch
        assert held == [], "asked again sooner than the last answer took"
        page.clock.run_for(600)
        _wait_held(page, held)
        held.pop().fulfill(body='<div hidden data-shown-version="v2"></div>', content_type="text/html")
        page.close()


def _wait_held(page, held: list) -> None:
    """Until a fetch of the rows is held (its route's handler runs while Playwright reads the page's events)."""
    wait_until(lambda: page.evaluate("1") and held, 10, "the board to fetch its rows")
