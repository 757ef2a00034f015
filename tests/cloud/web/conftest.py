"""Head office's pages on a database the real engine filled: two plants, a case per plant run through the
appliance's real rules, signed logs and the cloud's ingest (``plantfeed``), then served by the app factory.

The database is built once per module and copied for each test. Accounts: one per role, and two plant
managers (p1, p2), all with the same password.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from werkzeug.security import generate_password_hash

from cloud.config import CloudSettings
from cloud.escalation import actions, cases
from cloud.escalation.engine import Engine
from cloud.escalation.models import AbsenceCase
from cloud.escalation.sender import RecordingSender
from cloud.store import Account, database, open_db
from cloud.web import create_app
from tests.cloud.escalation import wiring
from tests.cloud.escalation.plantfeed import (
    PlantFeed,
    day_passes,
    local,
    ms,
    new_engine,
    pass_deadline,
    serve_cuigao,
)
from tests.harness.clock import FrozenClock

PASSWORD = "a long enough password"
USERS = {
    "admin": ("hr_admin", ""),
    "staff": ("hr_staff", ""),
    "staff2": ("hr_staff", ""),
    "pm1": ("plant_manager", "p1"),
    "pm2": ("plant_manager", "p2"),
    "aud": ("auditor", ""),
}
START = date(2025, 3, 3)  # Monday: a 10-day sick leave begins; nobody comes back on Thursday 03-13


def build(path, clock: FrozenClock) -> None:
    db = open_db(f"sqlite:///{path}")
    cases._policies.clear()
    gates = {"approve_cuigao": True, "termination_approvers": 2}
    p1 = PlantFeed(clock).start(gates=gates)
    p2 = PlantFeed(clock, plant_id="p2", name="pi-02").start(gates=gates)
    p1.hire("2001")
    p1.hire("2002")
    p2.hire("3001")
    engine = new_engine(clock)
    p1.leave("2001", "BJ-2025-031", local(START, "00:00"), local(START + timedelta(days=10), "00:00"))
    clock.advance_to(local(START, "06:00"))
    day = START
    while day <= date(2025, 3, 17):
        if day.weekday() < 5:  # 2002 works every day
            p1.punch("2002", local(day, "07:55"))
            p1.punch("2002", local(day, "17:05"))
        for feed in (p1, p2):
            day_passes(feed, engine, day)
        day += timedelta(days=1)
    clock.advance(hours=9)
    engine.tick()
    hashed = generate_password_hash(PASSWORD)
    for name, (role, plant) in USERS.items():
        Account.create(username=name, password_hash=hashed, role=role, plant=plant, created_ms=0)
    db.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dash")
    clock = FrozenClock()
    clock._now = clock.now().replace(year=2025, month=1, day=1)
    build(folder / "cloud.sqlite3", clock)
    return folder / "cloud.sqlite3", clock.now()


@pytest.fixture
def app(built, tmp_path):
    source, now = built
    shutil.copy(source, tmp_path / "cloud.sqlite3")
    cases._policies.clear()
    settings = CloudSettings(database_url=f"sqlite:///{tmp_path}/cloud.sqlite3", state_dir=str(tmp_path))
    application = create_app(settings)
    application.config["CLOCK"] = FrozenClock(now)
    yield application
    if not database.is_closed():
        database.close()


def token(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


class Browser:
    """A test client logged in as one user, that posts forms with the page's CSRF token."""

    def __init__(self, app, username: str) -> None:
        self.client = app.test_client()
        self.username = username
        page = self.client.get("/login").get_data(as_text=True)
        response = self.client.post("/login", data={"csrf": token(page), "username": username, "password": PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)

    def get(self, path: str):
        return self.client.get(path)

    def post(self, path: str, data: dict | None = None, **kwargs):
        page = self.client.get("/cases").get_data(as_text=True)
        return self.client.post(path, data={"csrf": token(page), **(data or {})}, **kwargs)


@pytest.fixture
def login(app):
    return lambda username: Browser(app, username)


def the_case(user_id: str) -> AbsenceCase:
    with database.connection_context():
        return AbsenceCase.get(AbsenceCase.user_id == user_id)


# -- a case whose notices can be rendered: the wired cloud ([notices], SMTP, SMS, WeCom) behind the pages -------


@dataclasses.dataclass
class Site:
    """The app on the wired cloud's SQLite file, its clock, the channels' local servers and a plant's feed."""

    app: Any
    clock: FrozenClock
    wired: wiring.Wired
    feed: PlantFeed | None = None

    def login(self, username: str) -> Browser:
        return Browser(self.app, username)

    def engine(self, *, real: bool = False) -> Engine:
        """The engine with the tests' recording sender, or (``real``) the sender over the local servers, which
        renders and keeps each notice (seconds each: only the ticks that must send for real use it)."""
        return Engine(self.clock, self.wired.sender(self.clock) if real else RecordingSender(), runner_id="web")

    def at_cuigao_gate(self, **policy: object) -> AbsenceCase:
        """Worker 2001 (张三, complete master data) absent from Monday 03-03; on Thursday 03-06 09:00 the 催告函
        waits for HR's approval, no deadline stated yet. The policy: one approver, the handbook quoted in full."""
        self.feed = PlantFeed(self.clock).start(
            gates={"approve_cuigao": True, "termination_approvers": 1}, handbook=wiring.HANDBOOK, **policy
        )
        self.feed.hire("2001")
        wiring.staff("2001")
        engine = self.engine()
        self.clock.advance_to(local(CUIGAO_WEEK, "06:00"))
        for day in (CUIGAO_WEEK, CUIGAO_WEEK + timedelta(days=1), CUIGAO_WEEK + timedelta(days=2)):
            day_passes(self.feed, engine, day)
        self.clock.advance_to(local(CUIGAO_WEEK + timedelta(days=3), "09:00"))
        engine.tick()
        case = AbsenceCase.get(AbsenceCase.user_id == "2001")
        assert (case.level, case.deadline_ms) == (3, None), (case.level, case.deadline_ms)
        return case

    def at_termination_gate(self, **policy: object) -> AbsenceCase:
        """The same case on: the 催告函 approved and sent, served by EMS on Friday, the welfare check closed
        (nothing found) and the deadline past: the termination draft waits for HR's confirmation."""
        case = self.at_cuigao_gate(**policy)
        engine = self.engine()
        actions.approve(case.id, "approve_cuigao", by="staff", now_ms=ms(self.clock.now()))
        engine.tick()
        serve_cuigao(self.clock, case.id, local(CUIGAO_WEEK + timedelta(days=4), "10:00"))
        if AbsenceCase.get_by_id(case.id).welfare == "open":
            actions.close_welfare(case.id, "none_found", by="staff", now_ms=ms(self.clock.now()), note="无人接听")
        pass_deadline(self.clock, engine, case.id)
        case = AbsenceCase.get_by_id(case.id)
        assert case.level == 5, (case.level, case.blocked)
        return case


CUIGAO_WEEK = date(2025, 3, 3)  # a Monday


@pytest.fixture
def site(tmp_path):
    """A fresh wired cloud for one test: the pages, the engine and the test all on one SQLite file."""
    clock = FrozenClock(datetime(2025, 1, 1, tzinfo=UTC))
    with ExitStack() as stack:
        wired = wiring.start(tmp_path, clock, stack)
        url = f"sqlite:///{tmp_path}/cloud.sqlite3"
        wired.settings = dataclasses.replace(wired.settings, database_url=url)
        open_db(url)
        cases._policies.clear()
        hashed = generate_password_hash(PASSWORD)
        for name, (role, plant) in USERS.items():
            Account.create(username=name, password_hash=hashed, role=role, plant=plant, created_ms=0)
        # as deployed: behind head office's HTTPS reverse proxy on this machine (docs/security.md)
        application = create_app(dataclasses.replace(wired.settings, web_trusted_proxies=1))
        application.config["CLOCK"] = clock
        yield Site(application, clock, wired)
        if not database.is_closed():
            database.close()
