"""Head office's main pages and the escalation tick on PostgreSQL, as a group runs them (#25 item 5).

The pages' own tests run on SQLite (tests/cloud/web/conftest.py); here the same kind of database is built
on a real PostgreSQL server (tests/harness/postgres.py, the session's): two plants fed through the appliance's
real rules, signed logs and the cloud's ingest (``plantfeed``), every day's ticks run by the engine on
PostgreSQL, then the pages HR opens every day served from it: the work queue, the case list (all, by plant,
by a plant manager), a case's page, employees, an employee, devices and reports; and one more tick, which
sends the 催告函 an approval released.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from werkzeug.security import generate_password_hash

from cloud.config import CloudSettings
from cloud.escalation import cases
from cloud.escalation.models import AbsenceCase, CaseStep, Gate
from cloud.escalation.sender import RecordingSender
from cloud.hr.models import Employee
from cloud.store import Account, database, open_db
from cloud.web import create_app
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local, new_engine
from tests.harness.clock import FrozenClock

PASSWORD = "a long enough password"
START = date(2025, 3, 3)  # Monday: a 10-day sick leave begins; nobody comes back on Thursday 03-13
LAST = date(2025, 3, 17)


@pytest.fixture(scope="module")
def built(postgres_server):
    """The database, built once for the module: the run of days the SQLite pages' conftest builds."""
    url = postgres_server.create_database("pages_on_postgresql")
    clock = FrozenClock()
    clock._now = clock.now().replace(year=2025, month=1, day=1)
    db = open_db(url)
    cases._policies.clear()
    gates = {"approve_cuigao": True, "termination_approvers": 2}
    p1 = PlantFeed(clock).start(gates=gates)
    p2 = PlantFeed(clock, plant_id="p2", name="pi-02").start(gates=gates)
    p1.hire("2001")
    p1.hire("2002")
    p2.hire("3001")
    sender = RecordingSender()
    engine = new_engine(clock, sender)
    p1.leave("2001", "BJ-2025-031", local(START, "00:00"), local(START + timedelta(days=10), "00:00"))
    clock.advance_to(local(START, "06:00"))
    day = START
    while day <= LAST:
        if day.weekday() < 5:
            p1.punch("2002", local(day, "07:55"))
            p1.punch("2002", local(day, "17:05"))
        for feed in (p1, p2):
            day_passes(feed, engine, day)
        day += timedelta(days=1)
    hashed = generate_password_hash(PASSWORD)
    for name, role, plant in (("admin", "hr_admin", ""), ("staff", "hr_staff", ""), ("pm1", "plant_manager", "p1")):
        Account.create(username=name, password_hash=hashed, role=role, plant=plant, created_ms=0)
    db.close()
    return url, clock, engine, sender


@pytest.fixture(scope="module")
def app(built, tmp_path_factory):
    url, clock, _, _ = built
    cases._policies.clear()
    settings = CloudSettings(database_url=url, state_dir=str(tmp_path_factory.mktemp("state")))
    application = create_app(settings)
    application.config["CLOCK"] = clock
    yield application
    if not database.is_closed():
        database.close()


def signed_in(app, username: str):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"csrf": csrf, "username": username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:500])
    return response.get_data(as_text=True)


def case_of(user_id: str) -> AbsenceCase:
    with database.connection_context():
        return AbsenceCase.get(AbsenceCase.user_id == user_id)


def test_the_engine_opened_a_case_per_absent_worker_on_postgresql(built):
    _, _, _, sender = built
    with database.connection_context():
        opened = sorted((c.plant_id, c.user_id) for c in AbsenceCase.select())
    assert opened == [("p1", "2001"), ("p2", "3001")]  # 2002 punched every day: no case
    sent = {(m.plant_id, m.key) for m in sender.sent}
    assert {("p1", "L1"), ("p2", "L1")} <= sent, sent


def test_the_main_pages_serve_from_postgresql(app):
    admin = signed_in(app, "admin")
    c1, c2 = case_of("2001"), case_of("3001")
    queue = page(admin, "/")
    assert '<section class="queue" id="approvals"' in queue
    assert f"/cases/{c1.id}" in queue and f"/cases/{c2.id}" in queue  # both gates wait for HR
    listing = page(admin, "/cases")
    assert f"/cases/{c1.id}" in listing and f"/cases/{c2.id}" in listing
    by_plant = page(admin, "/cases?plant=p2")
    assert f"/cases/{c2.id}" in by_plant and f"/cases/{c1.id}" not in by_plant
    case_page = page(admin, f"/cases/{c1.id}")
    assert 'data-gate="approve_cuigao" data-status="open"' in case_page
    assert "员工2001" in case_page
    with database.connection_context():
        employee = Employee.get(Employee.employee_no == "E2001")
    assert employee.employee_no in page(admin, "/employees")
    assert employee.employee_no in page(admin, f"/employees/{employee.id}")
    devices = page(admin, "/devices")
    assert "pi-02" in devices
    page(admin, "/reports")
    manager = page(signed_in(app, "pm1"), "/cases")  # a plant manager sees only their plant's cases
    assert f"/cases/{c1.id}" in manager and f"/cases/{c2.id}" not in manager


def test_a_tick_on_postgresql_sends_the_notice_an_approval_released(app, built):
    _, clock, engine, sender = built
    case_id = case_of("2001").id
    staff = signed_in(app, "staff")
    form = page(staff, f"/cases/{case_id}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    response = staff.post(f"/cases/{case_id}/approve/approve_cuigao", data={"csrf": csrf, "note": "已核对地址"})
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
    with database.connection_context():
        assert Gate.get((Gate.case == case_id) & (Gate.kind == "approve_cuigao")).status == "approved"
        before = len(sender.sent)
        clock.advance_to(local(LAST + timedelta(days=1), "09:00"))  # a working day, inside the sending window
        report = engine.tick()
        cuigao = CaseStep.get((CaseStep.case == case_id) & (CaseStep.notice == "cuigao"))
    assert report.ran and report.sent >= 1, report
    assert cuigao.status == "sent", cuigao.status
    assert any(m.case_id == case_id and m.notice == "cuigao" for m in sender.sent[before:])
    assert "已发出" in page(signed_in(app, "staff"), f"/cases/{case_id}")  # a day later: signed in again


def test_day_facts_go_to_postgresql_by_copy_with_any_text_kept_exactly(postgres_url):
    """The tick stores a day's facts on PostgreSQL by COPY into a scratch table and one INSERT ... SELECT
    (cloud.escalation.facts): text that COPY must escape (quotes, backslashes, tabs, braces, commas, the word
    NULL) arrives as written, a missing time stays NULL, and a later fact of a key supersedes it, counting a
    version."""
    from cloud.escalation import facts
    from cloud.escalation.models import AttendanceDay
    from cloud.store import Appliance, Plant

    db = open_db(postgres_url)
    try:
        Plant.create(id="p1")
        appliance = Appliance.create(plant="p1", name="pi", log_origin="log/p1", registered_ms=0)
        hostile = ['引号"反斜杠\\', "{大括号,逗号}", "NULL", "", 'a\\"b', "tab\there"]

        def row(n: int, text: str, status: str, seq: int) -> dict:
            return {
                "plant": "p1",
                "user_id": f"{n:04d}",
                "fact_key": f"{n:04d}/2025-03-03/D",
                "work_date": "2025-03-03",
                "shift": "D",
                "status": status,
                "start_ms": None if n % 2 else 1741000000000,
                "end_ms": None,
                "watch": text,
                "excusal": text[::-1],
                "fact_id": "f" * 64,
                "appliance": appliance.id,
                "seq": seq,
            }

        first = facts._upsert([row(n, text, "missing", n) for n, text in enumerate(hostile)])
        assert sorted(first) == sorted((f"{n:04d}/2025-03-03/D", f"{n:04d}", 1) for n in range(len(hostile)))
        again = facts._upsert([row(0, "后来的", "present", 99)])
        assert again == [("0000/2025-03-03/D", "0000", 2)]
        stored = {r.user_id: r for r in AttendanceDay.select()}
        for n, text in enumerate(hostile[1:], start=1):
            r = stored[f"{n:04d}"]
            assert (r.watch, r.excusal, r.status) == (text, text[::-1], "missing")
            assert r.start_ms == (None if n % 2 else 1741000000000) and r.end_ms is None
        assert (stored["0000"].watch, stored["0000"].status, stored["0000"].seq) == ("后来的", "present", 99)
        assert stored["0000"].start_ms == 1741000000000
    finally:
        db.close()
