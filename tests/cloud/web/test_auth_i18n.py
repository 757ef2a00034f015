"""Login throttle, session expiry, role changes taking effect at once, CSRF, hashed passwords, the two languages."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from cloud.store import Account, database
from cloud.web import create_app
from tests.cloud.web.conftest import PASSWORD, token

TEMPLATES = Path(__file__).parents[3] / "cloud" / "web" / "templates"


def attempt(client, username: str, password: str):
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"csrf": token(page), "username": username, "password": password})


def test_guessing_is_slowed_down_but_the_real_user_is_not_locked_out(app):
    """#24.3: 5 wrong passwords locked the real user out for 15 minutes from anywhere."""
    client = app.test_client()
    assert [attempt(client, "staff", f"guess {n}").status_code for n in range(7)] == [401] * 6 + [429]
    refused = attempt(client, "staff", PASSWORD)
    assert refused.status_code == 429 and "登录失败次数过多，请 1 秒后再试" in refused.get_data(as_text=True)
    assert attempt(client, "admin", PASSWORD).status_code == 302  # another user from the same address still may
    elsewhere = app.test_client()
    page = elsewhere.get("/login").get_data(as_text=True)
    form = {"csrf": token(page), "username": "staff", "password": PASSWORD}
    assert elsewhere.post("/login", data=form, environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 302
    app.config["CLOCK"].advance(seconds=2)
    assert attempt(app.test_client(), "staff", PASSWORD).status_code == 302


def test_many_names_from_one_address_are_slowed_too(app):
    client = app.test_client()
    codes = [attempt(client, f"nobody{n}", "x").status_code for n in range(12)]
    assert codes[:11] == [401] * 11 and codes[11] == 429


def test_logout_ends_every_copy_of_the_session(app, login):
    """#24.5: a cookie copied before logout still worked after it."""
    staff = login("staff")
    copy = app.test_client()
    copy.set_cookie("session", staff.client.get_cookie("session").value)
    assert copy.get("/cases").status_code == 200
    staff.post("/logout")
    assert copy.get("/cases").status_code == 302


def test_an_idle_session_expires(app, login):
    browser = login("staff")
    assert browser.get("/cases").status_code == 200
    app.config["CLOCK"].advance(minutes=20)
    assert browser.get("/cases").status_code == 200  # in use: still signed in
    app.config["CLOCK"].advance(minutes=31)
    response = browser.get("/cases")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_role_change_takes_effect_at_the_next_request(app, login):
    staff = login("staff")
    assert staff.get("/import").status_code == 200
    login("admin").post("/accounts/staff/role", {"role": "auditor", "plant": ""})
    assert staff.get("/import").status_code == 403
    with database.connection_context():
        Account.delete().where(Account.username == "staff").execute()
    assert staff.get("/cases").status_code == 302  # a removed account is signed out


def test_forms_without_the_sessions_token_are_refused(login):
    staff = login("staff")
    assert staff.client.post("/cases/1/ack", data={"reason": "sick"}).status_code == 400
    assert staff.client.post("/cases/1/ack", data={"reason": "sick", "csrf": "forged"}).status_code == 400


def test_passwords_are_stored_hashed_and_accounts_are_made_with_a_role(login):
    admin = login("admin")
    admin.post("/accounts", {"username": "pm9", "password": "long enough pass", "role": "plant_manager", "plant": ""})
    admin.post("/accounts", {"username": "pm9", "password": "long enough pass", "role": "plant_manager", "plant": "p2"})
    with database.connection_context():
        account = Account.get(Account.username == "pm9")
        assert (account.role, account.plant) == ("plant_manager", "p2")
        assert account.password_hash.startswith("scrypt:") and "long enough" not in account.password_hash


def test_every_text_key_in_the_templates_is_translated_both_ways(app):
    from cloud.web.i18n import MESSAGES

    used = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"\bt\('([a-z_.]+)'\)", template.read_text(encoding="utf-8")))
    missing = sorted(k for k in used if k not in MESSAGES)
    assert missing == []
    assert all(zh and en and zh != en or k in ("app",) for k, (zh, en) in MESSAGES.items() if k in used)


def test_chinese_by_default_english_when_asked(login):
    staff = login("staff")
    page = staff.get("/cases").get_data(as_text=True)
    assert "缺勤案件" in page and 'lang="zh-CN"' in page
    english = staff.get("/cases?lang=en")
    assert "Absence cases" in english.get_data(as_text=True) and "lang=en" in english.headers["Set-Cookie"]
    assert "Employee directory" in staff.get("/employees").get_data(as_text=True)  # the cookie keeps English


def test_behind_the_configured_proxy_one_guesser_does_not_slow_everyone(app, tmp_path):
    """#24.3: behind the documented reverse proxy every visitor had the proxy's address, so 21 bad logins with
    random names locked every user out. With ``[web] trusted_proxies = 1`` the address is the one it forwards,
    and the session cookie is sent over HTTPS only."""
    settings = dataclasses.replace(app.config["SETTINGS"], web_trusted_proxies=1)
    proxied = create_app(settings)
    proxied.config["CLOCK"] = app.config["CLOCK"]
    via = {"REMOTE_ADDR": "127.0.0.1"}

    def attempt_from(client, address: str, username: str, password: str):
        page = client.get("/login", environ_base=via).get_data(as_text=True)
        form = {"csrf": token(page), "username": username, "password": password}
        headers = {"X-Forwarded-For": address, "X-Forwarded-Proto": "https"}
        return client.post("/login", data=form, headers=headers, environ_base=via)

    guesser = proxied.test_client()
    codes = [attempt_from(guesser, "198.51.100.66", f"nobody{n}", "x").status_code for n in range(12)]
    assert codes[-1] == 429, codes
    signed_in = attempt_from(proxied.test_client(), "203.0.113.5", "staff", PASSWORD)
    assert signed_in.status_code == 302
    assert "Secure" in signed_in.headers["Set-Cookie"]
