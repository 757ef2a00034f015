"""HR on a phone (390 px wide): every head-office page fits the screen's width, and a wide table scrolls inside
its own section instead of pushing the whole page sideways. Found in the demo: the case page was 674 px wide at
390 px, its timeline (an SMS's provider id, its words with the notice's link) widening the grid's one column, so
the case's other sections were cut off at the right."""

from __future__ import annotations

import threading

from werkzeug.serving import make_server

from tests.cloud.web.conftest import PASSWORD, the_case
from tests.harness.browser import chromium, shoot, sign_in

PHONE = (390, 844)
PAGES = ["/", "/cases", "/employees", "/policy", "/reports", "/devices", "/evidence"]


def test_every_page_and_the_case_page_fit_a_phone(app):
    case = the_case("2001")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": PHONE[0], "height": PHONE[1]}, locale="zh-CN")
            page.goto(f"{base}/login")
            sign_in(page, "admin", PASSWORD)
            page.wait_for_url(f"{base}/", timeout=15_000)
            wide = {}
            for path in [*PAGES, f"/cases/{case.id}", f"/cases/{case.id}?lang=en"]:
                response = page.goto(base + path)
                assert response is not None and response.status == 200, path
                width = page.evaluate("document.documentElement.scrollWidth")
                if width > PHONE[0]:
                    wide[path] = width
            assert not wide, f"pages wider than a {PHONE[0]} px phone (sideways scroll): {wide}"
            page.goto(f"{base}/cases/{case.id}")
            for section in ("summary", "timeline", "steps", "actions"):
                box = page.locator(f"section#{section}").bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE[0], (section, box)
            shoot(page, "case-phone", {"phone": PHONE})
    finally:
        server.shutdown()
