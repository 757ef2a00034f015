"""Fixtures for the channel tests: a cloud database, a sleeper that moves the frozen clock, the callback app."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from cloud.channels.callbacks import receipts_blueprint
from cloud.store import database, open_db
from tests.harness.clock import FrozenClock

CALLBACK_TOKEN = "cb-7f3a9e51c2d84b60"


class Sleeper:
    """Injected instead of time.sleep: records each wait and moves the frozen clock by it."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock, self.waits = clock, []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds=seconds)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[None]:
    open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    yield
    database.close()


@pytest.fixture
def sleeper(clock: FrozenClock) -> Sleeper:
    return Sleeper(clock)


@pytest.fixture
def callback_url(db: None, clock: FrozenClock) -> Iterator[str]:
    """The receipts blueprint, mounted on a Flask app served on loopback as the web app would."""
    app = Flask(__name__)
    app.register_blueprint(receipts_blueprint(CALLBACK_TOKEN, clock=clock))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/channels/receipts/{CALLBACK_TOKEN}"
    server.shutdown()
