"""#24.3 and #24.5 on the plant pages: guessing is slowed down without locking the real user out, and a
session ends at logout (a copied cookie too), with its account, on a new password or role, and when idle."""

from __future__ import annotations

from appliance.store import Account
from appliance.web import accounts
from tests.appliance.web import test_attendance_pages
from tests.appliance.web.test_attendance_pages import PASSWORD, csrf_of

plant = test_attendance_pages.plant


def sign_in(client, password=PASSWORD, address="10.0.0.5"):
    token = csrf_of(client.get("/login").get_data(as_text=True))
    form = {"csrf": token, "username": "boss", "password": password}
    return client.post("/login", data=form, environ_base={"REMOTE_ADDR": address})


def test_guessing_is_slowed_down_and_the_real_user_elsewhere_is_not(plant):
    guesser = plant.client(login=False)
    answers = [sign_in(guesser, f"guess number {i}").status_code for i in range(7)]
    assert answers == [401] * 6 + [429], "5 free failures, a wait of 1 s after the 6th"
    slowed = sign_in(guesser, PASSWORD)
    assert slowed.status_code == 429 and "登录失败次数过多，请" in slowed.get_data(as_text=True)
    assert "/login" in plant.client(login=False).get("/").headers["Location"], "not signed in by the right one"

    elsewhere = plant.client(login=False)
    assert sign_in(elsewhere, PASSWORD, address="10.0.0.77").status_code == 302, "the real user is not locked out"

    plant.clock.advance(seconds=2)  # the wait after the 6th failure (1 s) has passed
    assert sign_in(guesser, PASSWORD).status_code == 302

    for i in range(14):  # a guesser keeps on: each wait doubles, up to 15 minutes
        plant.clock.advance(seconds=accounts.wait_s("boss", "10.0.0.9", int(plant.clock.now().timestamp() * 1000)))
        sign_in(guesser, f"again {i}", address="10.0.0.9")
    now_ms = int(plant.clock.now().timestamp() * 1000)
    assert accounts.wait_s("boss", "10.0.0.9", now_ms) > 60
    assert accounts.wait_s("boss", "10.0.0.10", now_ms) <= 60, "from another address at most a minute"


def test_logout_ends_every_copy_of_the_session(plant):
    client = plant.client()
    assert client.get("/").status_code == 200
    copied = plant.client(login=False)
    cookie = client.get_cookie("session")
    copied.set_cookie("session", cookie.value)
    assert copied.get("/").status_code == 200, "the copy works while the session does"
    page = client.get("/").get_data(as_text=True)
    client.post("/logout", data={"csrf": csrf_of(page)})
    assert copied.get("/").status_code == 302, "the copy made before the logout ends with it"


def test_a_new_password_a_new_role_a_deleted_account_or_idleness_end_a_session(plant):
    client = plant.client()
    accounts.set_password("boss", "another long password")
    assert client.get("/").status_code == 302

    client = plant.client(login=False)
    token = csrf_of(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"csrf": token, "username": "boss", "password": "another long password"})
    assert client.get("/").status_code == 200
    accounts.set_role("boss", "line_leader")
    assert client.get("/").status_code == 302

    client = plant.client(login=False)
    token = csrf_of(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"csrf": token, "username": "boss", "password": "another long password"})
    plant.clock.advance(minutes=119)
    assert client.get("/").status_code == 200, "a request within the idle time keeps it"
    plant.clock.advance(minutes=119)
    assert client.get("/").status_code == 200
    plant.clock.advance(minutes=121)
    assert client.get("/").status_code == 302, "idle for over two hours"

    client = plant.client(login=False)
    token = csrf_of(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"csrf": token, "username": "boss", "password": "another long password"})
    Account.delete().where(Account.username == "boss").execute()
    assert client.get("/").status_code == 302
