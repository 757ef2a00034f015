"""A stolen Pi on head office's pages (issue #22 item 6): after ``punchproof cloud revoke-key --compromised-since``,
the punches and day facts that appliance signed from the compromise point on are marked as not evidence on the
employee's page, the case page (its days, its timeline, and a warning at the top when the days it counts rest on
them), the devices page and the monthly report; those signed before stay as they were.

The database is the one the real engine filled for the dashboard's tests (``tests/cloud/web/conftest.build``):
plant p1's worker 2002 punches every working day 03-03..03-17, worker 2001 does not come back after sick leave
on 03-13 (the case). The key is revoked by the ``punchproof`` command in a process of its own, and the pages are
served by ``punchproof cloud web`` (gunicorn) and read over HTTP, then in a real Chromium at 1366 and 390 px.
"""

from __future__ import annotations

import html
import io
import re
import shutil
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import peewee as pw
import pytest

from cloud.escalation.models import AbsenceCase
from cloud.hr.models import PlantBadge
from cloud.store import Appliance, ApplianceKey, LogRecord, Plant, open_db
from tests.cloud.web.conftest import PASSWORD, build
from tests.harness import cloud_web
from tests.harness.browser import chromium, shoot, sign_in
from tests.harness.clock import FrozenClock
from tests.harness.http import WebClient

MARK = "密钥可能泄露后的记录，不作为证据"
SINCE = "2025-03-14 00:00"  # the key may have been copied from Friday on (plant time, Asia/Shanghai)
BEFORE, AFTER = ("2025-03-10", "2025-03-11", "2025-03-12", "2025-03-13"), ("2025-03-14", "2025-03-17")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("untrusted")
    clock = FrozenClock()
    clock._now = clock.now().replace(year=2025, month=1, day=1)
    build(folder / "cloud.sqlite3", clock)
    return folder / "cloud.sqlite3"


class World:
    def __init__(self, folder: Path, source: Path) -> None:
        self.folder = folder
        self.database = folder / "cloud.sqlite3"
        shutil.copy(source, self.database)
        self.conf = cloud_web.write_conf(folder / "cloud.toml", database=self.database, state_dir=folder, workers=2)
        with open_db(f"sqlite:///{self.database}").connection_context():
            appliance = Appliance.select().join(Plant).where(Plant.id == "p1").get()
            self.kid = ApplianceKey.get(ApplianceKey.appliance == appliance).kid
            self.employee = {b.user_id: b.employee_id for b in PlantBadge.select().where(PlantBadge.plant == "p1")}
            self.case = AbsenceCase.get(AbsenceCase.user_id == "2001").id
            # the point: the first record of p1's log made or received at or after SINCE (the feed signs a day's
            # punches the evening before, so Friday's punches come before it and stay evidence)
            at = int(datetime.fromisoformat(SINCE).replace(tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
            mine = LogRecord.appliance == appliance
            self.first_after = (
                LogRecord.select(pw.fn.MIN(LogRecord.seq))
                .where(mine & ((LogRecord.received_ms >= at) | (LogRecord.t_wall_ms >= at)))
                .scalar()
            )

    def revoke(self) -> str:
        """``punchproof cloud revoke-key`` as an admin runs it on the head-office host."""
        done = subprocess.run(
            [sys.executable, "-m", "punchproof", "cloud", "revoke-key", "-c", str(self.conf), self.kid]
            + ["--compromised-since", SINCE.replace(" ", "T"), "--by", "it-admin"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


@pytest.fixture
def world(built, tmp_path):
    return World(tmp_path, built)


@pytest.fixture
def served(world):
    process, base = cloud_web.start(world.conf, world.folder / "web.log")
    yield base
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, (world.folder / "web.log").read_text()


def section(page: str, name: str) -> str:
    return page.split(f'<section id="{name}">')[1].split("</section>")[0]


def marked_rows(html: str, tag: str, key: str) -> dict[str, bool]:
    """Each row of class ``tag`` by its ``data-KEY``: whether it carries the mark (any row of that key does)."""
    out: dict[str, bool] = {}
    for attrs, body in re.findall(rf'<tr class="{tag}[^"]*"([^>]*)>(.*?)</tr>', html, re.S):
        value = re.search(rf'data-{key}="([^"]*)"', attrs).group(1)
        out[value] = out.get(value, False) or MARK in body
    return out


def pages(base: str, world: World, lang: str = "") -> dict[str, str]:
    client = WebClient(base)
    assert client.login("staff", PASSWORD)[0] in (200, 302)
    out = {}
    for name, path in {
        "employee": f"/employees/{world.employee['2002']}",
        "absent": f"/employees/{world.employee['2001']}",
        "case": f"/cases/{world.case}",
        "devices": "/devices",
        "cases": "/cases",
    }.items():
        status, out[name] = client.get(path + lang)
        assert status == 200, (path, out[name][:2000])
    return out


def test_records_after_the_compromise_point_are_marked_on_the_pages_and_those_before_are_not(world, served):
    client = WebClient(served)
    client.login("staff", PASSWORD)
    clean = pages(served, world)
    assert MARK not in "".join(clean.values()) and 'id="untrusted-days"' not in clean["case"]

    said = world.revoke()
    assert "已吊销" in said, said
    shown = pages(served, world)

    # the employee page lists 2002's latest punches and day facts: those from Friday 03-14 on are marked
    recent = section(shown["employee"], "recent")
    facts = marked_rows(recent, "fact", "date")
    assert {d: facts[d] for d in BEFORE + AFTER} == {**dict.fromkeys(BEFORE, False), **dict.fromkeys(AFTER, True)}
    punch_rows = {int(seq): marked for seq, marked in marked_rows(recent, "punch", "seq").items()}
    assert punch_rows == {seq: seq >= world.first_after for seq in punch_rows}
    assert len(set(punch_rows.values())) == 2, "punches signed before the point and after it are listed"
    assert f"设备 pi-01 的密钥自 {SINCE} 起可能泄露" in recent  # the point in the plant's zone

    # the case page: a warning at the top naming how many counted days rest on such facts, and the marks
    case = shown["case"]
    warning = re.search(r'<p class="untrusted-alert" id="untrusted-days"[^>]*data-days="(\d+)">(.*?)</p>', case, re.S)
    assert warning is not None and case.index('id="untrusted-days"') < case.index('<section id="summary"')
    untrusted_days = int(warning.group(1))
    days = marked_rows(section(case, "days-counted"), "day", "date")
    assert untrusted_days == sum(days.values()) == len([d for d in days if d >= "2025-03-14"]) >= 2, days
    assert f"本案依据的考勤事实中有 {untrusted_days} 天来自密钥可能泄露后的记录，请核实后再继续" in warning.group(2)
    assert days["2025-03-13"] is False, "the day fact signed on Thursday evening is still evidence"
    timeline = section(case, "timeline")
    lines = re.findall(r'<tr class="ev ev-(day|entry)[^"]*"[^>]*>(.*?)</tr>', timeline, re.S)
    for kind, body in lines:
        fact = re.search(r"(?:日结论|确认缺勤：) ?(2025-03-\d\d)", body)
        if fact is not None:
            assert (MARK in body) == (fact.group(1) >= "2025-03-14"), (kind, body)
    assert sum(MARK in body for _, body in lines) >= 2 * untrusted_days  # the fact and the engine's line for it

    # the devices page's latest punches, and 2001's own page (day facts only)
    devices = {
        int(seq): marked for seq, marked in marked_rows(section(shown["devices"], "punches"), "punch", "seq").items()
    }
    assert devices == {seq: seq >= world.first_after for seq in devices} and len(set(devices.values())) == 2
    absent = marked_rows(section(shown["absent"], "recent"), "fact", "date")
    assert absent["2025-03-17"] and not absent["2025-03-13"]

    # the case list says which cases rest on such days, and how many
    flagged = dict(
        re.findall(r'<tr class="case" data-case="(\d+)".*?(?:data-untrusted-days="(\d+)"|</tr>)', shown["cases"], re.S)
    )
    assert flagged[str(world.case)] == str(untrusted_days) and sum(bool(v) for v in flagged.values()) == 1, flagged
    assert "data-untrusted-days" not in clean["cases"]

    # English second
    english = pages(served, world, "?lang=en")
    assert (
        f"{untrusted_days} of the days this case counts rest on records made after the appliance key"
        in (english["case"])
    )
    assert f"pi-01's key may be compromised since {SINCE}" in html.unescape(english["employee"])
    assert MARK not in english["case"]

    # the monthly report: 疑 before the day's mark, left out of the totals, the point on the second sheet
    sheet = openpyxl.load_workbook(io.BytesIO(report(client, "p1")))
    rows = {row[0]: row for row in sheet.worksheets[0].iter_rows(values_only=True)}
    worker = rows["2002"]
    assert (worker[3 + 12], worker[3 + 13], worker[3 + 16]) == ("√", "疑√", "疑√")  # 03-13, 03-14, 03-17
    present = worker[3 + 31]
    assert present == sum(1 for cell in worker[3 : 3 + 31] if cell == "√")
    legend = [row for row in sheet.worksheets[1].iter_rows(values_only=True)]
    assert any(row[0] == "密钥可能泄露" and f"自 {SINCE} 起" in row[1] for row in legend), legend


def report(client: WebClient, plant: str) -> bytes:
    with client.opener.open(f"{client.base}/reports/attendance.xlsx?plant={plant}&month=2025-03", timeout=30) as r:
        assert r.status == 200
        return r.read()


SIZES = {"laptop": (1366, 768), "phone": (390, 844)}


@pytest.mark.e2e
def test_the_marks_show_in_chromium_at_1366_and_390_px(world, served):
    world.revoke()
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(f"{served}/login")
        sign_in(page, "staff", PASSWORD)
        page.goto(f"{served}/cases/{world.case}")
        page.wait_for_selector("#untrusted-days")
        for width, height in SIZES.values():
            page.set_viewport_size({"width": width, "height": height})
            box = page.locator("#untrusted-days").bounding_box()
            assert box is not None and box["y"] < height and box["x"] >= 0 and box["x"] + box["width"] <= width
            assert page.is_visible("#untrusted-days")
        assert "请核实后再继续" in page.inner_text("#untrusted-days")
        shoot(page, "untrusted-case", SIZES)
        page.locator("#days-counted tr.day.untrusted >> nth=0").scroll_into_view_if_needed()
        shoot(page, "untrusted-case-days", SIZES)
        page.goto(f"{served}/employees/{world.employee['2002']}")
        page.wait_for_selector("#recent tr.punch.untrusted")
        page.locator("#recent").scroll_into_view_if_needed()
        assert MARK in page.inner_text("#recent tr.punch.untrusted >> nth=0")
        shoot(page, "untrusted-employee", SIZES)
