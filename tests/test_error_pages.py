"""When a page cannot be served, both sites say so in Chinese first (English second), with the right status code,
a way back (the first page, the login page) and no traceback (#21): head office for a wrong address, a page the
role may not open, a form whose token is gone, an upload too large and a crash in a view; the plant's pages for
the same where they can happen. What programs read (the kiosk's feed, the providers' receipts) keeps its plain
answer. Through each site's own app factory on a real SQLite database."""

from __future__ import annotations

import re

import pytest
from werkzeug.security import generate_password_hash

from cloud.config import CloudSettings
from cloud.store import Account, database
from cloud.web import create_app as cloud_app
from tests.appliance.web.test_attendance_pages import Plant, local
from tests.harness.clock import FrozenClock
from tests.harness.raw_codes import raw_codes, visible_text

PASSWORD = "a long enough password"


def crash() -> str:
    raise RuntimeError("database said: no such column employee.secret_column")


def assert_error_page(response, code: int, title: str) -> None:
    html = response.get_data(as_text=True)
    assert response.status_code == code, (code, response.status_code, html[:300])
    assert response.mimetype == "text/html", response.mimetype
    text = visible_text(html)
    assert text.splitlines()[1].startswith(title), text  # after the site's name: what happened, in Chinese
    assert 'href="/"' in html and 'href="/login"' in html, "a way back"
    assert 'lang="en"' in html, "English second"
    assert raw_codes(text) == [], text
    assert "Traceback" not in html and "RuntimeError" not in html and "secret_column" not in html


def signed_in(client, username: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"csrf": csrf, "username": username, "password": PASSWORD}).status_code == 302


@pytest.fixture
def head_office(tmp_path):
    settings = CloudSettings(database_url=f"sqlite:///{tmp_path}/cloud.sqlite3", state_dir=str(tmp_path))
    app = cloud_app(settings)
    app.add_url_rule("/crash", view_func=crash)
    hashed = generate_password_hash(PASSWORD)
    with database.connection_context():
        Account.create(username="aud", password_hash=hashed, role="auditor", plant="", created_ms=0)
    yield app
    if not database.is_closed():
        database.close()


def test_head_office_errors_are_chinese_pages_with_a_way_back(head_office):
    client = head_office.test_client()
    assert_error_page(client.get("/no/such/page"), 404, "页面不存在")
    assert_error_page(client.post("/login", data={"username": "aud"}), 400, "请求无效")  # no form token
    signed_in(client, "aud")
    assert_error_page(client.get("/accounts"), 403, "没有权限")  # an auditor manages no accounts
    assert_error_page(client.get("/crash"), 500, "系统出错")
    assert_error_page(client.get("/cases/1"), 404, "页面不存在")
    head_office.config["MAX_CONTENT_LENGTH"] = 1024
    assert_error_page(client.post("/import", data={"file": "x" * 4096}), 413, "文件太大")
    assert "1 KB" in client.post("/import", data={"file": "x" * 4096}).get_data(as_text=True)
    english = client.get("/no/such/page?lang=en").get_data(as_text=True)
    assert "Page not found" in english and "页面不存在" in english  # English second, on the same page
    # what a program reads stays plain: a JSON job status, an SMS provider's receipt
    for response in (client.get("/evidence/jobs/nope.json"), client.get("/x", headers={"Accept": "application/json"})):
        assert response.status_code == 404 and 'id="error"' not in response.get_data(as_text=True)


def test_the_plants_pages_errors_are_chinese_pages_and_the_kiosk_feed_stays_plain(tmp_path):
    plant = Plant(tmp_path, FrozenClock(local(2, 8, 30)))
    try:
        client = plant.client(login=False)
        client.application.add_url_rule("/crash", view_func=crash)
        assert_error_page(client.get("/no/such/page"), 404, "页面不存在")
        assert_error_page(client.post("/login", data={"username": "boss"}), 400, "请求无效")
        assert_error_page(client.get("/crash"), 500, "系统出错")
        body = client.post("/login", data={"csrf": "x" * 300_000})
        assert_error_page(body, 413, "文件太大")
        feed = client.get("/kiosk/feed?after=x")
        assert feed.status_code == 400 and feed.mimetype == "text/plain", "the kiosk reads it, not a person"
    finally:
        plant.db.close()
