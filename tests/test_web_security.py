"""Both sets of pages: login required, CSRF on every form, no redirect to another site after login."""

from __future__ import annotations

import re

import pytest
from werkzeug.security import generate_password_hash

from appliance.config import Settings
from appliance.store import Account as PlantAccount
from appliance.store import open_db as open_plant_db
from appliance.web import create_app as plant_app
from cloud.config import CloudSettings
from cloud.store import Account as CloudAccount
from cloud.store import open_db as open_cloud_db
from cloud.web import create_app as cloud_app

PASSWORD = "a long enough password"


def make_plant(tmp_path):
    settings = Settings.from_dict(
        {
            "plant": {"id": "p1"},
            "appliance": {"id": "pi-01", "state_dir": str(tmp_path)},
            "mqtt": {"cloud_key_file": "/nonexistent"},
        }
    )
    db = open_plant_db(settings.db_path)
    PlantAccount.create(username="boss", password_hash=generate_password_hash(PASSWORD), role="admin", created_ms=0)
    db.close()
    return plant_app(settings)


def make_cloud(tmp_path):
    settings = CloudSettings(database_url=f"sqlite:///{tmp_path}/cloud.sqlite3", state_dir=str(tmp_path))
    db = open_cloud_db(settings.database_url)
    CloudAccount.create(username="boss", password_hash=generate_password_hash(PASSWORD), role="hr_admin", created_ms=0)
    db.close()
    return cloud_app(settings)


@pytest.fixture(params=["appliance", "cloud"])
def client(request, tmp_path):
    app = make_plant(tmp_path) if request.param == "appliance" else make_cloud(tmp_path)
    return app.test_client()


def csrf(client):
    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_pages_need_a_login(client):
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_post_without_the_sessions_token_is_refused(client):
    form = {"username": "boss", "password": PASSWORD}
    assert client.post("/login", data=form | {"csrf": "-"}).status_code == 400
    assert client.post("/login", data=form | {"csrf": ""}).status_code == 400
    assert client.post("/login", data=form).status_code == 400
    assert client.post("/login", data=form | {"csrf": csrf(client)}).status_code == 302


@pytest.mark.parametrize(
    "target", ["//evil.example", "/%09/evil.example", "/\\evil.example", "https://evil.example", "/\t/evil.example"]
)
def test_no_redirect_to_another_site_after_login(client, target):
    token = csrf(client)
    response = client.post(f"/login?next={target}", data={"csrf": token, "username": "boss", "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_redirect_back_to_a_local_page_after_login(client):
    token = csrf(client)
    response = client.post("/login?next=/", data={"csrf": token, "username": "boss", "password": PASSWORD})
    assert response.headers["Location"] == "/"


def test_wrong_password_says_so_in_chinese(client):
    response = client.post("/login", data={"csrf": csrf(client), "username": "boss", "password": "wrong"})
    assert response.status_code == 401 and "用户名或密码不正确" in response.get_data(as_text=True)


def test_every_page_forbids_framing_sniffing_and_scripts_from_elsewhere(client):
    """#24.5: no CSP, X-Frame-Options or nosniff before."""
    for response in (client.get("/login"), client.get("/")):
        headers = response.headers
        assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self' 'nonce-" in csp and "unsafe-eval" not in csp
        assert headers["Referrer-Policy"] == "same-origin"
    first, second = (client.get("/login").headers["Content-Security-Policy"] for _ in range(2))
    assert first != second, "a fresh nonce for each response"


def test_a_body_larger_than_the_site_takes_is_refused_before_it_is_read(client):
    """#24.4: no MAX_CONTENT_LENGTH before: an upload of any size was read."""
    response = client.post("/login", data=b"x", environ_overrides={"CONTENT_LENGTH": str(10**9)})
    assert response.status_code == 413


def test_a_csrf_token_of_other_characters_is_a_plain_refusal(client):
    """Found by bench/fuzz_web.py: csrf=🙂 made hmac.compare_digest raise, a 500 on every form of head office."""
    csrf(client)  # the session has its token
    assert client.post("/login", data={"csrf": "🙂", "username": "boss", "password": "x"}).status_code == 400
