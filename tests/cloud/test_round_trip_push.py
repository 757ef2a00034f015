"""HR's changes reach the plant without a command (issue #20.4): a leave entered on head office's employee page
marks the plant, and the escalation runner's tick publishes the plant's configuration — signed, retained on a real
Mosquitto — once HR has been quiet for ``config_push_quiet_s``, or ``config_push_within_s`` after the first change
while HR keeps typing. Meanwhile head office's front page says the plant's configuration waits to be pushed; a
broker that is down keeps it waiting, with the error on the page, and the push goes out at a later tick."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.security import generate_password_hash

from cloud import witness
from cloud.appliances import registry
from cloud.config import CloudSettings
from cloud.escalation.engine import Engine
from cloud.escalation.sender import RecordingSender
from cloud.hr.models import Employee, PlantBadge, ShiftDef
from cloud.hr.plant_changes import ConfigDue
from cloud.plantconfig.config_push import ConfigVersion
from cloud.store import Account, Plant, database, open_db
from cloud.web import create_app
from cloud.workers.escalate import EscalationService
from ledger import SigningKey, topics
from ledger.config_message import SignedConfig
from tests.cloud.test_config_push import retained
from tests.harness.clock import FrozenClock

PASSWORD = "a long enough password"


@pytest.fixture
def office(tmp_path, broker):  # type: ignore[no-untyped-def]
    clock = FrozenClock(datetime(2025, 3, 3, 1, 0, tzinfo=UTC))
    url = f"sqlite:///{tmp_path}/cloud.sqlite3"
    settings = CloudSettings(database_url=url, state_dir=str(tmp_path), mqtt_port=broker.port)
    witness.create(settings)
    open_db(url)
    registry.register(
        {"plant": "p1", "appliance": "pi-01", "log": "punchproof/p1/pi-01/1", "public_key": _pem()}, clock
    )
    plant = Plant.get_by_id("p1")
    ShiftDef.create(plant=plant, shift_id="D", spans="08:00-17:00")
    for n in ("1001", "1002"):
        PlantBadge.create(plant=plant, user_id=n, employee=Employee.create(employee_no=f"E{n}", name=f"员工{n}"))
    Account.create(username="staff", password_hash=generate_password_hash(PASSWORD), role="hr_staff", created_ms=0)
    app = create_app(settings)
    app.config["CLOCK"] = clock
    service = EscalationService(Engine(clock, RecordingSender(), runner_id="r1"), clock, settings=settings)
    yield app, clock, service, settings
    if not database.is_closed():
        database.close()


def _pem() -> str:
    return SigningKey.generate().verify_key.pem()


def _signed_in(app):  # type: ignore[no-untyped-def]
    browser = app.test_client()
    page = browser.get("/login").get_data(as_text=True)
    browser.post("/login", data={"csrf": _token(page), "username": "staff", "password": PASSWORD})
    return browser


def _token(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _add_leave(browser, employee_no: str, ref: str) -> None:  # type: ignore[no-untyped-def]
    with database.connection_context():
        employee_id = Employee.get(Employee.employee_no == employee_no).id
    page = browser.get(f"/employees/{employee_id}").get_data(as_text=True)
    form = {"csrf": _token(page), "ref": ref, "kind": "病假", "start": "2025-03-04T08:00", "end": "2025-03-05T17:00"}
    assert browser.post(f"/employees/{employee_id}/leave", data=form).status_code == 302


def _leave_on_the_appliance(settings: CloudSettings, port: int) -> list[str]:
    """The leave in the configuration a subscriber gets now (the retained message), its signature checked."""
    signed = SignedConfig.decode(retained(port, topics.config("p1", "pi-01")))
    return sorted(x["id"] for x in signed.verify(witness.load(settings).verify_key).sections["leave"])


def _published() -> int:
    with database.connection_context():
        return ConfigVersion.select().where(ConfigVersion.published_ms.is_null(False)).count()


def _tick(service: EscalationService) -> list[str]:
    with database.connection_context():
        return service.tick().notes


def test_a_leave_entered_on_the_page_reaches_the_appliance_after_a_quiet_moment(office, broker):
    app, clock, service, settings = office
    browser = _signed_in(app)
    _add_leave(browser, "E1001", "QJ-1")
    _tick(service)
    assert _published() == 0, "HR may still be typing: nothing pushed at once"
    front = browser.get("/devices").get_data(as_text=True)
    assert "待推送" in front, "head office's front page says the plant's configuration waits to be pushed"
    clock.advance(seconds=20)
    _add_leave(browser, "E1002", "QJ-2")  # the second change restarts the quiet period
    clock.advance(seconds=20)
    _tick(service)
    assert _published() == 0
    clock.advance(seconds=11)
    notes = _tick(service)
    assert any("HR's changes pushed (pi-01 v1)" in n for n in notes), notes
    assert _leave_on_the_appliance(settings, broker.port) == ["QJ-1", "QJ-2"]
    with database.connection_context():
        assert ConfigDue.select().count() == 0 and ConfigVersion.get().by == "hr-change"
    assert "待推送" not in browser.get("/devices").get_data(as_text=True)
    clock.advance(minutes=5)
    _tick(service)
    assert _published() == 1, "nothing changed since: nothing pushed again"


def test_hr_typing_on_still_reaches_the_plant_within_two_minutes(office, broker):
    app, clock, service, settings = office
    browser = _signed_in(app)
    started = clock.now()
    for n in range(6):  # a change every 25 s: never 30 s quiet
        _add_leave(browser, "E1001", f"QJ-{n}")
        _tick(service)
        if _published():
            break
        clock.advance(seconds=25)
    assert _published() == 1 and clock.now() - started <= timedelta(minutes=2, seconds=5)


def test_a_push_that_fails_waits_on_the_page_with_its_error_and_goes_out_later(office, broker):
    app, clock, service, settings = office
    browser = _signed_in(app)
    _add_leave(browser, "E1001", "QJ-1")
    broker.kill()
    clock.advance(seconds=31)
    notes = _tick(service)  # never raises: the runner goes on
    assert any("HR's changes not pushed" in n and "again in 30 s" in n for n in notes), notes
    front = browser.get("/devices").get_data(as_text=True)
    assert "待推送" in front and "推送失败" in front
    broker.restart()
    clock.advance(seconds=10)
    _tick(service)
    assert _published() == 0, "tried again after the wait, not at every tick"
    clock.advance(seconds=25)
    _tick(service)
    assert _leave_on_the_appliance(settings, broker.port) == ["QJ-1"]
    assert "待推送" not in browser.get("/devices").get_data(as_text=True)
