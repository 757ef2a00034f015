"""Issue 19 item 10 as HR sees it: a worker absent on working days of 2027, a year whose holidays nobody
has published yet. Before, the appliance held those days for ever: no fact, no case, nothing said. Now a
case opens and its page flags each day judged by the provisional calendar, until the year's published
calendar reaches the plant and the appliance's facts for those days are superseded. The real app factory
on the SQLite file the real engine fills."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

from appliance import rules
from cloud.escalation.models import AbsenceCase, CaseDay
from cloud.escalation.sender import RecordingSender
from cloud.store import database
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local, new_engine
from tests.cloud.escalation.test_excused_on_the_page import PASSWORD, _signed_in, site  # noqa: F401

FLAG = "临时日历（2027 年节假日安排尚未发布）"


def test_a_case_on_an_unpublished_year_opens_and_flags_its_days_until_the_year_is_published(site, clock):  # noqa: F811
    feed = PlantFeed(clock).start()
    feed.hire("1001")
    engine = new_engine(clock, RecordingSender())
    monday = date(2027, 1, 4)
    clock.advance_to(local(monday, "06:00"))
    for day in (monday, monday + timedelta(days=1)):
        day_passes(feed, engine, day)
    with database.connection_context():
        case = AbsenceCase.get()  # none at all before: the days were held, never a fact
        assert [d.work_date for d in CaseDay.select().where(CaseDay.case == case)] == ["2027-01-04", "2027-01-05"]

    browser = _signed_in(site)
    page = browser.get(f"/cases/{case.id}").get_data(as_text=True)
    days = page[page.index('id="days-counted"') :]
    assert days.count(FLAG) == 2, days[:2000]
    english = browser.get(f"/cases/{case.id}?lang=en").get_data(as_text=True)
    assert "provisional calendar (2027 holidays not yet published)" in english

    # head office publishes 2027; the plant's appliance evaluates the days again: no longer provisional
    published = rules.parse_overrides('version = "head-office-2027v1"\ncomplete_years = [2027]\n[holidays]\n')
    feed.plant = dataclasses.replace(feed.plant, calendar=rules.with_overrides(feed.plant.calendar, published))
    superseding = feed.evaluate(monday) + feed.evaluate(monday + timedelta(days=1))
    assert [(f["status"], f["cal_provisional"]) for f in superseding] == [("missing", 0), ("missing", 0)]
    engine.tick()
    page = browser.get(f"/cases/{case.id}").get_data(as_text=True)
    assert FLAG not in page
