"""The board's rows kept by a worker (appliance.web.dayrows): at a new version it reads and renders only the rows
written since, whoever wrote them (the evaluator's passes, the log writer pointing a row at its signed fact), drops
the rows deleted, and serves what a fresh worker renders. Flask's test client on a real database the evaluator
filled, frozen clock, real signed log."""

from __future__ import annotations

import re

import pytest

from appliance.attendance import board as board_rows
from appliance.attendance import handoff
from appliance.attendance.evaluator import Evaluator
from appliance.clock import to_ms
from appliance.roster import importer as roster_import
from appliance.store import BoardRow, EvaluatorState
from appliance.web import board
from tests.appliance.web.test_attendance_pages import DAY, Plant, local
from tests.appliance.web.test_board_render import rows_part
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock

WORKERS = 9


def employees(count: int = WORKERS) -> list[dict[str, object]]:
    return [
        {"user_id": f"{1001 + n}", "name": f"工人{n}", "line": f"{n % 3 + 1}线", "roster": "wk", "active": True}
        for n in range(count)
    ]


@pytest.fixture
def plant(tmp_path, monkeypatch):
    monkeypatch.setattr(board, "PAGE_ROWS", 4)  # three pages
    p = Plant(tmp_path, FrozenClock(local(2, 8, 30)))
    roster_import.store({"employees": employees()}, PLANT_TZ, 0, source="test")
    p.read_terminal()
    p.evaluator.run_once()
    yield p
    p.db.close()


def pages(client, path: str = f"/?date={DAY}&partial=1") -> list[str]:
    return [rows_part(client.get(f"{path}&page={n}").get_data(as_text=True)) for n in (1, 2, 3)]


def kept(client):
    return client.application.extensions["punchproof.board_day_rows"]


def test_a_new_version_reads_and_renders_only_the_rows_written_since(plant):
    warm = plant.client()
    pages(warm)
    assert kept(warm).rendered == WORKERS
    plant.punch("1003", local(2, 8, 2))
    plant.punch("1007", local(2, 8, 20))
    plant.evaluator.run_new_punches()  # the version moves: 1003 present, 1007 late
    after = pages(warm)
    assert kept(warm).rendered == WORKERS + 2, "the two rows written, nothing else"
    shown = "".join(after)
    assert 'data-board-employee="1003" data-status="present"' in shown
    assert 'data-board-employee="1007" data-status="late"' in shown
    assert after == pages(plant.client()), "what a fresh worker renders"
    assert pages(warm) == after and kept(warm).rendered == WORKERS + 2, "the same version: nothing read again"


def test_the_filters_and_the_counts_are_those_of_the_rows_kept(plant):
    warm = plant.client()
    pages(warm)
    plant.punch("1004", local(2, 8, 1))
    plant.evaluator.run_new_punches()
    for query in ("line=2线", "cat=present", "cat=missing", "q=工人3", "q=1004", "q=%", "shift=D"):
        path = f"/?date={DAY}&partial=1&{query}"
        assert pages(warm, path) == pages(plant.client(), path), query
    summary = re.search(r'<section id="summary">.*?</section>', pages(warm)[0], re.S).group(0)
    assert re.search(r'data-cat="present"><b>1</b>', summary), summary


def test_a_page_kept_holds_references_to_its_rows_texts_not_a_copy_of_them(plant):
    """A worker keeps each row's text (``dayrows``) and a dozen pages (``rendercache``): a page kept as one joined
    copy of its rows' texts made a 5,000-worker board's ten pages some 3.5 MB more."""
    warm = plant.client()
    shown = pages(warm)
    app = warm.application
    with app.test_request_context():
        texts = {id(row.text) for day in app.extensions["punchproof.board_day_rows"]._days.values() for row in
                 day.view(lambda rows: [], None).rows}  # fmt: skip
    kept = app.extensions["punchproof.board_rows"].kept()
    assert len(kept) == 3 and len(texts) == WORKERS
    for page in kept:
        assert page.slots and all(id(text) in texts for slot in page.slots for text in slot)
    assert "".join(shown) == "".join(pages(warm)), "and sends them joined"


def test_a_row_deleted_leaves_the_board_of_a_worker_that_kept_it(plant):
    warm = plant.client()
    assert 'data-board-employee="1009"' in "".join(pages(warm))
    gone = [*employees(WORKERS - 1), {**employees()[-1], "active": False}]
    roster_import.store({"employees": gone}, PLANT_TZ, 0, source="test")  # 1009 left
    plant.evaluator.run_once()
    after = pages(warm)
    assert 'data-board-employee="1009"' not in "".join(after)
    assert after == pages(plant.client())


def test_rows_a_pass_writes_before_its_version_moves_are_all_read_when_it_moves(plant):
    """A full pass writes its slices one after another and moves the version at its end; a page read between two
    slices sees the first one's row early, and must still read the second's when the version moves."""
    warm = plant.client()
    pages(warm)
    version = EvaluatorState.get_by_id(1).board_version
    one, two = (BoardRow.get((BoardRow.work_date == DAY) & (BoardRow.employee == b)) for b in ("1002", "1006"))
    db = BoardRow._meta.database

    def write(row) -> None:  # as board.replace_day writes a changed row: its version to come in the statement
        values = {name: getattr(row, name) for name in board_rows.CONTENT}
        values["reason_zh"] = values["reason_en"] = "changed"
        db.cursor().execute(board_rows._REPLACE, (*values.values(), row.as_of_ms))

    def bump() -> None:
        EvaluatorState.update(board_version=EvaluatorState.board_version + 1).execute()

    bump()  # the log writer's, say: the page reads the rows at it
    write(one)  # the next pass's first slice
    assert "changed" in "".join(pages(warm)), "read early, with the version before"
    write(two)  # its second
    bump()  # its end
    assert EvaluatorState.get_by_id(1).board_version == version + 2
    shown = "".join(pages(warm))
    for badge in ("1002", "1006"):
        row = re.search(rf'<tr class="row[^>]*data-board-employee="{badge}".*?</tr>', shown, re.S).group(0)
        assert 'class="reason">changed<' in row, badge
    assert pages(warm) == pages(plant.client())


def test_a_fact_the_log_writer_signs_shows_its_tick_on_a_board_that_kept_the_row(tmp_path):
    """In the daemon the evaluator's process queues a day's facts and the log writer signs them, pointing each
    board row at its fact (``handoff``): that write, too, is read by a worker that kept the row."""
    p = Plant(tmp_path, FrozenClock(local(3, 9, 0)))  # Monday decided on Tuesday morning
    roster_import.store({"employees": employees(3)}, PLANT_TZ, 0, source="test")
    p.punch("1001", local(2, 7, 55))
    p.punch("1001", local(2, 17, 5), state=1)
    p.read_terminal()
    evaluator = Evaluator(handoff.Outbox(p.clock), PLANT_TZ, ["gate-1"], p.clock)
    evaluator.run_once()
    warm = p.client()
    before = pages(warm)
    assert "✔" not in "".join(before), "decided, not yet signed"
    assert handoff.drain(p.writer, to_ms(p.clock.now())), "the day's facts signed"
    after = pages(warm)
    assert "✔" in "".join(after)
    assert after == pages(p.client())
    p.db.close()
