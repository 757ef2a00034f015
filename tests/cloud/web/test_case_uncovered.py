"""未覆盖 on the case page (issue #19, items 1 and 9): the days before the appliance recorded the shift come from it
as "uncovered" facts; the case page lists them as such, in words, and never counts them."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, timedelta

from cloud.escalation.models import AbsenceCase
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local

UNCOVERED = "未覆盖：设备当时尚未记录，不计缺勤"
MONDAY = date(2025, 3, 3)


def test_days_before_the_appliance_recorded_read_uncovered_and_never_count(site):
    feed = PlantFeed(site.clock).start(gates={"approve_cuigao": True, "termination_approvers": 1})
    # the Pi was installed on Wednesday at 10:00, after that day's 08:00 shift began
    feed.plant = dataclasses.replace(feed.plant, recording_since={"ZK1": local(MONDAY + timedelta(days=2), "10:00")})
    feed.hire("2001")
    engine = site.engine()
    site.clock.advance_to(local(MONDAY, "06:00"))
    sent = []
    for n in range(5):  # Monday to Friday, nobody punches
        sent += day_passes(feed, engine, MONDAY + timedelta(days=n))
    facts = {f["date"]: f["status"] for f in sent if f["emp"] == "2001" and f["status"] != "rest_day"}
    assert list(facts.values()) == ["uncovered"] * 3 + ["missing"] * 2  # as the appliance signs them
    case = AbsenceCase.get(AbsenceCase.user_id == "2001")
    assert (case.first_day, case.days) == ("2025-03-06", 2)

    page = site.login("staff").get(f"/cases/{case.id}").get_data(as_text=True)
    days = page.split('<section id="days-counted">')[1].split("</section>")[0]
    rows = dict(re.findall(r'<tr class="day[^"]*" data-date="([\d-]+)" data-status="(\w+)">', days))
    assert rows == {
        "2025-03-03": "uncovered",
        "2025-03-04": "uncovered",
        "2025-03-05": "uncovered",
        "2025-03-06": "counted",
        "2025-03-07": "counted",
    }
    assert days.count(UNCOVERED) == 3
    summary = re.search(r'<dd id="days">(.*?)</dd>', page, re.S).group(1)
    assert summary.startswith("2 ")  # the case counts the two recorded days only
    timeline = page.split('<section id="timeline">')[1].split("</section>")[0]
    assert f"日结论 2025-03-04 D：{UNCOVERED}" in timeline and "日结论 2025-03-06 D：缺勤" in timeline
    assert "uncovered" not in re.sub(r'data-[\w-]+="[^"]*"', "", page)  # no internal code shown in Chinese
    english = site.login("staff").get(f"/cases/{case.id}?lang=en").get_data(as_text=True)
    assert "day fact 2025-03-04 D: not covered" in english
