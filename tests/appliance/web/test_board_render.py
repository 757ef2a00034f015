"""The board's pages at a shift change: each page rendered once per board version, each row once until it
changes, and what a worker serves from what it kept is what a fresh worker renders (Flask's test client on a
real database the evaluator filled, frozen clock, real signed log)."""

from __future__ import annotations

import re

import pytest
from flask import url_for

from appliance.roster import importer as roster_import
from appliance.web import board, present
from tests.appliance.web.test_attendance_pages import DAY, Plant, local
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock

WORKERS = 12  # more pages than a worker kept before (8), one row a page


@pytest.fixture
def plant(tmp_path, monkeypatch):
    monkeypatch.setattr(board, "PAGE_ROWS", 1)
    p = Plant(tmp_path, FrozenClock(local(2, 8, 30)))
    employees = [
        {"user_id": f"{1001 + n}", "name": f"工人{n}", "line": f"{n % 3 + 1}线", "roster": "wk", "active": True}
        for n in range(WORKERS)
    ]
    roster_import.store({"employees": employees}, PLANT_TZ, 0, source="test")
    p.read_terminal()
    p.evaluator.run_once()
    yield p
    p.db.close()


def rows_part(page: str) -> str:
    """The rows of a partial page (its alerts carry this session's CSRF token; its status the time of a read)."""
    return re.search(r'<section id="summary">.*?<section id="attendance">.*?</section>', page, re.S).group(0)


def page_through(client) -> list[str]:
    return [client.get(f"/?date={DAY}&partial=1&page={n}").get_data(as_text=True) for n in range(1, WORKERS + 1)]


def test_paging_through_a_board_renders_each_row_and_each_page_once_per_version(plant):
    client = plant.client()
    pages = page_through(client)
    shown = [re.findall(r'data-board-employee="(\d+)"', p) for p in pages]
    assert sorted(badge for one in shown for badge in one) == [f"{1001 + n}" for n in range(WORKERS)]
    again = page_through(client)
    assert [rows_part(p) for p in again] == [rows_part(p) for p in pages]
    # each row rendered once, each page once: a worker kept 8 pages, and someone paging through ten (or the live
    # board fetching each) found none kept
    assert client.application.extensions["punchproof.board_day_rows"].rendered == WORKERS
    assert client.application.extensions["punchproof.board_rows"].rendered == WORKERS


def test_a_pass_re_renders_only_the_rows_it_changed_and_shows_what_a_fresh_worker_renders(plant):
    warm = plant.client()
    before = page_through(warm)
    texts = warm.application.extensions["punchproof.board_day_rows"]
    rendered = texts.rendered
    assert rendered == WORKERS
    plant.punch("1003", local(2, 8, 2))
    plant.evaluator.run_once()  # the board's version moves: 1003 checked in
    after = page_through(warm)
    changed = [n for n in range(WORKERS) if rows_part(after[n]) != rows_part(before[n])]
    assert changed, "the page of 1003 shows the check-in"
    assert 'data-board-employee="1003" data-status="present"' in "".join(after)
    assert 0 < texts.rendered - rendered < WORKERS, "only the rows that changed are rendered again"
    fresh = page_through(plant.client())
    assert [rows_part(p) for p in after] == [rows_part(p) for p in fresh]
    english_warm = warm.get(f"/?date={DAY}&partial=1&page=3&lang=en").get_data(as_text=True)
    english_fresh = plant.client().get(f"/?date={DAY}&partial=1&page=3&lang=en").get_data(as_text=True)
    assert rows_part(english_warm) == rows_part(english_fresh) and "Present" in rows_part(english_warm)


@pytest.mark.parametrize("badge", ["E00001", "1001", "a b", "工人7", "x/y", "1.2~3-_", "50%", "<b>"])
def test_a_workers_link_is_the_one_flask_builds(plant, badge):
    app = plant.client().application
    with app.test_request_context("/", base_url="http://plant.local/board-root"):
        assert present.person_url(badge, DAY) == url_for("day.person", employee=badge, date=DAY)
        assert present.row_helpers()["person_url"](badge, DAY) == url_for("day.person", employee=badge, date=DAY)


def shown_version(page: str) -> str:
    return re.search(r'data-shown-version="([^"]+)"', page).group(1)


def test_the_status_part_is_rendered_at_most_once_a_second_and_says_which_version_it_shows(plant):
    client = plant.client()
    status = client.application.extensions["punchproof.board_status"]
    first = client.get(f"/?date={DAY}&partial=1").get_data(as_text=True)
    assert status.rendered == 1
    seq = plant.punch("1002", local(2, 8, 3))  # the version moves with the punch
    second = client.get(f"/?date={DAY}&partial=1").get_data(as_text=True)
    assert shown_version(second) == shown_version(first), "the status part of a moment ago, and it says so"
    assert f'<td class="muted">{seq}</td>' not in second and status.rendered == 1
    version = client.get("/board/version").get_json()["version"]
    assert version != shown_version(second), "the page, told of the newer version, fetches again"
    plant.clock.advance(seconds=1)
    third = client.get(f"/?date={DAY}&partial=1").get_data(as_text=True)
    assert shown_version(third) == version and f'<td class="muted">{seq}</td>' in third
    assert status.rendered == 2


def test_each_groups_rows_are_spliced_under_its_own_heading_even_with_the_slots_text_in_a_name(tmp_path):
    """The rows' kept text is put into the rendered page's slots afterwards (``board.splice``): each line's rows
    under its own heading, on the full page and the live part, and a name holding the slot's text is shown
    escaped, not taken for a slot."""
    p = Plant(tmp_path, FrozenClock(local(2, 8, 30)))
    odd = board.SLOT.decode()
    employees = [
        {"user_id": f"{2001 + n}", "name": odd if n == 4 else f"工人{n}", "line": f"{n % 3 + 1}线", "roster": "wk",
         "active": True}
        for n in range(9)
    ]  # fmt: skip
    roster_import.store({"employees": employees}, PLANT_TZ, 0, source="test")
    p.read_terminal()
    p.evaluator.run_once()
    client = p.client()
    for path in (f"/?date={DAY}", f"/?date={DAY}&partial=1"):
        page = client.get(path).get_data(as_text=True)
        attendance = re.search(r'<section id="attendance">(.*?)</section>', page, re.S).group(1)
        under = {}
        for heading, table in re.findall(
            r"<h3>(.*?)</h3>\s*<div class=\"scroll\"><table>(.*?)</table>", attendance, re.S
        ):
            line = re.search(r"(\d)线", heading)  # not yesterday's open shifts, which follow
            if line:
                under[line.group(1)] = re.findall(r'data-board-employee="(\d+)"', table)
        assert {line: sorted(badges) for line, badges in under.items()} == {
            str(k + 1): sorted(f"{2001 + n}" for n in range(9) if n % 3 == k) for k in range(3)
        }, path
        assert odd not in page and "&lt;!--board-rows--&gt;" in page, path
    p.db.close()


def test_the_live_parts_do_not_read_what_only_a_whole_page_shows(plant, monkeypatch):
    """The removal brake's notice and the disk alarm sit at the top of every whole page (base.html): read when one
    is rendered, not for each of the live part's templates (they were context processors, run for every template:
    three a fetch of the board's live part)."""
    from appliance.capture import enrolment_plan, storage

    reads = {"brake": 0, "disk": 0}
    held, free = enrolment_plan.held_removals, storage.free_mb_if_low

    def count(name, real):
        def counted(*args, **kwargs):
            reads[name] += 1
            return real(*args, **kwargs)

        return counted

    client = plant.client()  # signed in (the login page is a whole page)
    monkeypatch.setattr(enrolment_plan, "held_removals", count("brake", held))
    monkeypatch.setattr(storage, "free_mb_if_low", count("disk", free))
    for n in range(1, 4):
        assert client.get(f"/?date={DAY}&partial=1&page={n}").status_code == 200
    assert reads == {"brake": 0, "disk": 0}
    assert client.get(f"/?date={DAY}").status_code == 200
    assert reads == {"brake": 1, "disk": 1}
