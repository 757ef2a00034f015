"""Every page and every action, per role: what each may read and do is enforced on the server.

A plant manager's view of another plant is a 404 (it does not exist for them); a role without the
right gets 403, and a refused POST changes nothing and is audited.
"""

from __future__ import annotations

import pytest

from cloud.audit import AuditEntry
from cloud.escalation.models import AbsenceCase
from cloud.escalation.policy import PolicyVersion
from cloud.hr.models import EmergencyContact, Employee, Leave, PlantBadge
from cloud.store import database
from tests.cloud.web.conftest import the_case


def ids():
    with database.connection_context():
        p1, p2 = the_case("2001").id, the_case("3001").id
        e1 = Employee.get(Employee.employee_no == "E2001").id
        e2 = Employee.get(Employee.employee_no == "E3001").id
        version = PolicyVersion.select().first().id
    return {"c1": p1, "c2": p2, "e1": e1, "e2": e2, "v": version}


PAGES = {  # path: (admin, staff, pm1, auditor)
    "/": (200, 200, 200, 200),
    "/cases": (200, 200, 200, 200),
    "/cases/{c1}": (200, 200, 200, 200),
    "/cases/{c2}": (200, 200, 404, 200),
    "/employees": (200, 200, 200, 200),
    "/employees/{e1}": (200, 200, 200, 200),
    "/employees/{e2}": (200, 200, 404, 200),
    "/policy": (200, 200, 200, 200),
    "/policy/{v}": (200, 200, 200, 200),
    "/policy/new": (200, 403, 403, 403),
    "/reports": (200, 200, 200, 200),
    "/reports/attendance.xlsx?plant=p1&month=2025-03": (200, 200, 200, 200),
    "/reports/attendance.xlsx?plant=p2&month=2025-03": (200, 200, 404, 200),
    "/evidence": (200, 200, 403, 200),
    "/import": (200, 200, 403, 403),
    "/accounts": (200, 403, 403, 403),
}


@pytest.mark.parametrize("user,column", [("admin", 0), ("staff", 1), ("pm1", 2), ("aud", 3)])
def test_each_page_per_role(login, user, column):
    browser, known = login(user), ids()
    got = {path: browser.get(path.format(**known)).status_code for path in PAGES}
    assert got == {path: codes[column] for path, codes in PAGES.items()}


def test_every_page_needs_a_login(app):
    client, known = app.test_client(), ids()
    for path in PAGES:
        response = client.get(path.format(**known))
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


# (path, form): (admin, staff, pm1, pm2, auditor); 302 = done or refused by the case, back to it. A role that may
# not do something anywhere gets 403 before its plant is looked at; pm2 may acknowledge, but not p1's case (404).
ACTIONS = {
    ("/cases/{c1}/ack", (("reason", "contacted"),)): (302, 302, 302, 404, 403),
    ("/cases/{c1}/calls", (("number", "13800138000"), ("outcome", "CALL_NO_ANSWER"))): (302, 302, 302, 404, 403),
    ("/cases/{c1}/approve/approve_cuigao", ()): (302, 302, 403, 403, 403),
    ("/cases/{c1}/resolve", (("reason", "accepted_reason"), ("note", "x"))): (302, 302, 403, 403, 403),
    ("/cases/{c1}/welfare/close", (("finding", "none_found"), ("note", "x"))): (302, 302, 403, 403, 403),
    ("/cases/{c1}/service", (("document", "cuigao"), ("outcome", "failed"), ("proof", "x"))): (
        302,
        302,
        403,
        403,
        403,
    ),
    ("/employees/{e1}/leave", (("kind", "事假"), ("start", "2025-04-01T08:00"), ("end", "2025-04-02T08:00"))): (
        302,
        302,
        403,
        403,
        403,
    ),
    ("/policy/new", (("scope", "*"), ("body", "{}"), ("note", "x"))): (422, 403, 403, 403, 403),
    ("/accounts", (("username", "newbie"), ("password", "x"), ("role", "auditor"))): (302, 403, 403, 403, 403),
    ("/evidence/export", (("employee", "2001"), ("plant", "p1"), ("first", "2025-03-01"), ("last", "x"))): (
        400,
        400,
        403,
        403,
        400,
    ),
}


@pytest.mark.parametrize("user,column", [("admin", 0), ("staff", 1), ("pm1", 2), ("pm2", 3), ("aud", 4)])
def test_each_action_per_role(login, user, column):
    known = ids()
    got, expected = {}, {}
    for (path, form), codes in ACTIONS.items():
        browser = login(user)  # each action on a fresh session, from the same starting data
        got[path] = browser.post(path.format(**known), dict(form)).status_code
        expected[path] = codes[column]
    assert got == expected


def test_a_refused_action_changes_nothing_and_is_audited(login):
    known = ids()
    auditor = login("aud")
    before = _state(known["c1"])
    assert auditor.post(f"/cases/{known['c1']}/approve/approve_cuigao").status_code == 403
    assert auditor.post(f"/cases/{known['c1']}/ack", {"reason": "contacted"}).status_code == 403
    assert auditor.post(f"/employees/{known['e1']}/leave", {"kind": "事假"}).status_code == 403
    assert _state(known["c1"]) == before
    with database.connection_context():
        assert Leave.select().where(Leave.kind == "事假").count() == 0
        refused = list(AuditEntry.select().where(AuditEntry.username == "aud").order_by(AuditEntry.id))
    assert [(r.outcome, r.role) for r in refused] == [("refused", "auditor")] * 3


def test_a_plant_manager_lists_only_their_plant(login):
    page = login("pm1").get("/cases").get_data(as_text=True)
    assert 'data-case="' in page and "员工2001" in page and "员工3001" not in page
    page = login("admin").get("/cases").get_data(as_text=True)
    assert "员工2001" in page and "员工3001" in page
    page = login("pm2").get("/employees").get_data(as_text=True)
    assert "E3001" in page and "E2001" not in page


def _state(case_id: int) -> tuple:
    with database.connection_context():
        c = AbsenceCase.get_by_id(case_id)
        return (c.state, c.level, c.acked_until_ms, c.welfare, c.open_key)


def test_a_plant_manager_sees_an_employees_records_only_for_the_time_at_their_plant(login):
    """#24.8: once an employee had badges in both plants, each plant's manager saw the other plant's leave and
    the employee's emergency contacts."""
    with database.connection_context():
        badge = PlantBadge.get(PlantBadge.user_id == "2001")
        employee = badge.employee
        PlantBadge.update(valid_to="2025-02-28").where(PlantBadge.id == badge.id).execute()  # moved to p2 in March
        PlantBadge.create(plant="p2", user_id="3999", employee=employee, valid_from="2025-03-01")
        day = 86_400_000
        feb, mar = 1_739_145_600_000, 1_741_132_800_000  # 2025-02-10 and 2025-03-05, 08:00 in Shanghai
        Leave.create(ref="L-FEB", employee=employee, kind="病假", start_ms=feb, end_ms=feb + day)
        Leave.create(ref="L-MAR", employee=employee, kind="事假", start_ms=mar, end_ms=mar + day)
        EmergencyContact.create(employee=employee, name="王母亲", phone="+8613900000000")
        employee_id = employee.id
    pm2 = login("pm2").get(f"/employees/{employee_id}").get_data(as_text=True)
    assert 'data-ref="L-MAR"' in pm2 and 'data-ref="L-FEB"' not in pm2 and "王母亲" in pm2
    assert "· 3999" in pm2 and "· 2001" not in pm2, "only p2's badge"
    pm1 = login("pm1").get(f"/employees/{employee_id}").get_data(as_text=True)
    assert 'data-ref="L-FEB"' in pm1 and 'data-ref="L-MAR"' not in pm1
    assert "王母亲" not in pm1, "no longer at p1: the family's number is head office's"
    admin = login("admin").get(f"/employees/{employee_id}").get_data(as_text=True)
    assert all(x in admin for x in ('data-ref="L-FEB"', 'data-ref="L-MAR"', "王母亲", "· 3999", "· 2001"))
