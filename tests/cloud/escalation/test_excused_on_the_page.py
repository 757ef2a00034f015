"""Issue 19 item 7 as HR does it: the case page's "resolve" form with 理由已接受, then a new spell of
absence. The page of the new case shows totals without the excused days, and no L4; the resolved case's
page shows its days excused. The real app factory on the SQLite file the real engine fills."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from werkzeug.security import generate_password_hash

from cloud.config import CloudSettings
from cloud.escalation import cases, timeline
from cloud.escalation.models import AbsenceCase
from cloud.escalation.policy import DEFAULT_BODY
from cloud.escalation.sender import RecordingSender
from cloud.store import Account, database, open_db
from cloud.web import create_app
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local, new_engine

PASSWORD = "a long enough password"


@pytest.fixture
def site(tmp_path, clock):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/cloud.sqlite3"
    open_db(url)
    cases._policies.clear()
    Account.create(username="staff", password_hash=generate_password_hash(PASSWORD), role="hr_staff", created_ms=0)
    app = create_app(CloudSettings(database_url=url, state_dir=str(tmp_path)))
    app.config["CLOCK"] = clock
    yield app
    if not database.is_closed():
        database.close()


def _token(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _signed_in(app):  # type: ignore[no-untyped-def]
    browser = app.test_client()
    login = browser.get("/login").get_data(as_text=True)
    response = browser.post("/login", data={"csrf": _token(login), "username": "staff", "password": PASSWORD})
    assert response.status_code == 302
    return browser


def _counts(page: str) -> list[int]:
    match = re.search(r'<dd id="days">(.*?)</dd>', page, re.S)
    assert match, "no day counts on the case page"
    return [int(n) for n in re.findall(r"\d+", match.group(1))]


def test_hr_resolves_a_case_on_its_page_and_the_next_case_does_not_count_its_days(site, clock):
    thresholds = {"consecutive_days": 5, "month_days": 4, "year_days": 0}
    ladder = [dict(s, after_days=5) if s["level"] == 4 else s for s in DEFAULT_BODY["ladder"]]
    feed = PlantFeed(clock).start(thresholds=thresholds, ladder=ladder, welfare_check_day=0)
    feed.hire("1001")
    engine = new_engine(clock, RecordingSender())
    first = date(2025, 3, 3)
    clock.advance_to(local(first, "06:00"))
    for day in (first, first + timedelta(days=1)):
        day_passes(feed, engine, day)
    one = AbsenceCase.get()

    browser = _signed_in(site)
    page = browser.get(f"/cases/{one.id}").get_data(as_text=True)
    assert 'id="resolve-form"' in page and 'value="accepted_reason"' in page
    browser.post(
        f"/cases/{one.id}/resolve",
        data={"csrf": _token(page), "reason": "accepted_reason", "note": "医院急诊证明"},
    )
    with database.connection_context():
        one = AbsenceCase.get_by_id(one.id)
        assert one.resolution == "accepted_reason"

    day = first + timedelta(days=2)
    while day <= date(2025, 3, 9):
        if day.weekday() < 5:
            feed.punch("1001", local(day, "07:55"))
            feed.punch("1001", local(day, "17:05"))
        day_passes(feed, engine, day)
        day += timedelta(days=1)
    for day in (date(2025, 3, 10), date(2025, 3, 11), date(2025, 3, 12)):
        day_passes(feed, engine, day)
    two = AbsenceCase.get(AbsenceCase.first_day == "2025-03-10")

    browser = _signed_in(site)  # a week later: signed in again (idle sessions end)
    page = browser.get(f"/cases/{two.id}").get_data(as_text=True)
    assert _counts(page) == [3, 3, 3, 3]  # days · consecutive · this month · this year
    with database.connection_context():
        assert AbsenceCase.get_by_id(two.id).level == 3 and "L4" not in timeline.kinds(two)
    page = browser.get(f"/cases/{one.id}").get_data(as_text=True)
    assert _counts(page) == [0, 0, 0, 0]
    with database.connection_context():
        assert timeline.kinds(one).count("excused") == 2
    rows = dict(re.findall(r"<tr[^>]*><td>(2025-03-0\d)</td><td>D</td><td>(.*?)</td>", page))
    assert rows == dict.fromkeys(("2025-03-03", "2025-03-04"), "不计入（人事认可） · 理由已接受（staff）：医院急诊证明")
