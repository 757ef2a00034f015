"""Live updates as Server-Sent Events: the kiosk's punches, the board's version, resume, the cap.

Through Flask's test client reading the streams chunk by chunk, on a real database the signed
log writer fills; the watcher is the real thread. Reading a stream blocks until its next event
or heartbeat, so each read below is bounded by the heartbeat the test sets.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest

from appliance.store import MODELS, EvaluatorState, TerminalHealth
from appliance.web import create_app, live
from tests.appliance.web.test_attendance_pages import PASSWORD, Plant, csrf_of
from tests.harness.clock import FrozenClock
from tests.harness.wait import wait_until


@pytest.fixture
def plant(tmp_path):
    p = Plant(tmp_path, FrozenClock(datetime.now(UTC)))  # the kiosk shows the last minutes of real time
    yield p
    p.db.close()


@pytest.fixture
def web(plant):
    made = []

    def make(max_streams: int = 8, heartbeat_s: float = 5.0):
        app = create_app(plant.settings, max_streams=max_streams)
        plant.db.bind(MODELS)  # one process here: the writer and the pages share the models
        hub = live.hub_of(app)
        hub.heartbeat_s = heartbeat_s
        made.append(hub)
        return app, hub

    yield make
    for hub in made:
        hub.stop()


def login(client) -> None:
    page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"csrf": csrf_of(page), "username": "boss", "password": PASSWORD})


def events(chunk: bytes) -> list[dict[str, str]]:
    """The events of one chunk, each as its fields (comments as ``comment``)."""
    out = []
    for block in chunk.decode().split("\n\n"):
        if not block:
            continue
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            fields["comment" if name == "" else name] = value.strip()
        out.append(fields)
    return out


def punches(stream) -> list[dict[str, str]]:
    """Read chunks until one holds punch events (the watcher may see a punch before or after a
    stream's first write); bounded by the heartbeat: a chunk of nothing but that ends the wait."""
    for chunk in stream:
        found = [e for e in events(chunk) if e.get("event") == "punch"]
        if found or chunk == b": keep-alive\n\n":
            return found
    return []


def test_the_kiosk_stream_pushes_each_punch_and_resumes_after_the_last_event_id(plant, web):
    app, _hub = web()
    client = app.test_client()
    response = client.get("/kiosk/events", buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-store"
    stream = iter(response.response)
    retry, hello = events(next(stream))
    assert retry == {"retry": "1000"}
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    assert hello["event"] == "hello" and abs(int(re.search(r"\d+", hello["data"])[0]) - now_ms) < 60_000
    seq = plant.punch("1002", datetime.now(UTC), state=0)
    (punch,) = punches(stream)
    assert (punch["id"], punch["event"]) == (str(seq), "punch")
    assert '"name":"李四"' in punch["data"] and '"dir":"in"' in punch["data"] and "1002" not in punch["data"]
    response.close()

    later = plant.punch("1001", datetime.now(UTC), state=1)
    resumed = client.get("/kiosk/events", headers={"Last-Event-ID": str(seq)}, buffered=False)
    stream = iter(resumed.response)
    (missed,) = punches(stream)
    assert missed["id"] == str(later) and "张三" in missed["data"], "only what the kiosk had not shown"
    resumed.close()


def test_a_kiosk_that_saw_everything_gets_heartbeats_until_the_next_punch(plant, web):
    seq = plant.punch("1001", datetime.now(UTC))
    app, _hub = web(heartbeat_s=0.3)
    response = app.test_client().get(f"/kiosk/events?after={seq}", buffered=False)
    stream = iter(response.response)
    next(stream)  # retry, hello
    assert next(stream) == b": keep-alive\n\n", "nothing new: a comment keeps the connection"
    response.close()


def test_a_just_opened_kiosk_gets_only_the_last_few_recent_punches(plant, web):
    old = plant.punch("1001", datetime.now(UTC) - timedelta(minutes=30))  # a backlog read late: not news
    seqs = [plant.punch("1002", datetime.now(UTC) - timedelta(seconds=n)) for n in range(7)]
    app, _hub = web()
    stream = iter(app.test_client().get("/kiosk/events", buffered=False).response)
    shown = [e["id"] for e in events(next(stream)) if e.get("event") == "punch"]
    assert shown == [str(s) for s in seqs[-5:]] and str(old) not in shown


def test_the_board_stream_needs_a_login_and_sends_the_version_when_it_moves(plant, web):
    app, hub = web()
    client = app.test_client()
    refused = client.get("/board/events")
    assert refused.status_code == 302 and "/login" in refused.headers["Location"]
    assert hub.streams == 0, "a refused stream holds no slot"
    login(client)
    response = client.get("/board/events", buffered=False)
    stream = iter(response.response)
    _retry, first = events(next(stream))
    assert first["event"] == "version" and first["id"] == client.get("/board/version").get_json()["version"]
    plant.evaluator.run_once()
    (moved,) = events(next(stream))
    assert moved["id"] != first["id"] and moved["id"] == client.get("/board/version").get_json()["version"]
    TerminalHealth.replace(name="gate-1", available=False, last_error="10.0.0.5:4370: timed out").execute()
    (offline,) = events(next(stream))  # within a second: no punch and no pass needed to carry it
    assert offline["id"] != moved["id"] and offline["id"] == client.get("/board/version").get_json()["version"]
    response.close()

    hub.heartbeat_s = 0.3
    current = client.get("/board/version").get_json()["version"]
    same = iter(client.get("/board/events", headers={"Last-Event-ID": current}, buffered=False).response)
    next(same)
    assert next(same) == b": keep-alive\n\n", "a board that has this version is not told again"


def test_streams_past_the_cap_get_a_503_and_a_closed_stream_frees_its_slot(plant, web):
    app, hub = web(max_streams=2)
    client = app.test_client()
    first = client.get("/kiosk/events", buffered=False)
    second = client.get("/kiosk/events", buffered=False)
    refused = client.get("/kiosk/events")
    assert (first.status_code, second.status_code, refused.status_code) == (200, 200, 503)
    assert refused.headers["Retry-After"] == "30" and "实时连接已满" in refused.get_data(as_text=True)
    assert client.get("/kiosk/feed").status_code == 200, "the fallback still answers"
    first.close()  # before its first event was read: the slot comes back all the same
    assert hub.streams == 1
    third = client.get("/kiosk/events", buffered=False)
    assert third.status_code == 200
    second.close()
    third.close()
    assert hub.streams == 0


def test_one_watcher_per_worker_feeds_every_stream(plant, web):
    app, hub = web()
    client = app.test_client()
    responses = [client.get("/kiosk/events", buffered=False) for _ in range(6)]
    streams = [iter(r.response) for r in responses]
    for s in streams:
        next(s)
    seq = plant.punch("1001", datetime.now(UTC))
    assert all([e["id"] for e in punches(s)] == [str(seq)] for s in streams)
    watchers = [t for t in threading.enumerate() if t.name == "live-pages" and t.is_alive()]
    assert len(watchers) == 1, "one thread asks the database, whatever the number of streams"
    ticks = hub.ticks
    assert ticks > 0
    for r in responses:
        r.close()


def test_stopping_the_worker_ends_every_stream_at_once(plant, web):
    app, hub = web(heartbeat_s=30)
    stream = iter(app.test_client().get("/kiosk/events", buffered=False).response)
    next(stream)
    ended = threading.Event()

    def read() -> None:
        for _chunk in stream:
            pass
        ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    live.stop_all()
    assert ended.wait(2), "the stream ended well before its 30 s heartbeat"


def test_a_room_of_boards_costs_one_render_per_version(plant, web):
    app, _hub = web()
    client = app.test_client()
    login(client)
    cache = app.extensions["punchproof.board_rows"]
    first = [client.get("/?partial=1&cat=missing").get_data(as_text=True) for _ in range(5)]
    assert len(set(first)) == 1 and cache.rendered == 1
    client.get("/?partial=1")
    assert cache.rendered == 2, "other filters are another render"
    plant.read_terminal()
    plant.evaluator.run_once()  # the version moves: the rows are read again
    fresh = client.get("/?partial=1&cat=missing").get_data(as_text=True)
    assert cache.rendered == 3 and fresh != first[0]


def test_a_punch_renders_the_status_again_and_the_rows_only_when_a_pass_changes_them(plant, web):
    app, _hub = web()
    client = app.test_client()
    login(client)
    rows, status = app.extensions["punchproof.board_rows"], app.extensions["punchproof.board_status"]
    plant.read_terminal()
    plant.evaluator.run_once()
    for query in ("/?partial=1", "/?partial=1&cat=missing", "/?partial=1&line=二线"):
        client.get(query)
    assert (rows.rendered, status.rendered) == (3, 1), "three filters, one status for all of them"
    seq = plant.punch("1002", datetime.now(UTC))
    wait_until(  # within the status part's second (rendercache.Throttled): the page fetches again until it shows it
        lambda: f'<td class="muted">{seq}</td>' in client.get("/?partial=1").get_data(as_text=True),
        message="the punch among the recent ones",
    )
    assert (rows.rendered, status.rendered) == (3, 2), "a punch alone: only the status is rendered again"
    EvaluatorState.update(board_version=EvaluatorState.board_version + 1).execute()  # a pass changed rows
    client.get("/?partial=1")
    client.get("/?partial=1&cat=missing")
    assert (rows.rendered, status.rendered) == (5, 3), "the rows again, once per filter; the status once"
