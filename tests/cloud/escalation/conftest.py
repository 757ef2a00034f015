from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime

import pytest

from cloud.escalation import cases
from cloud.store import open_db
from tests.cloud.escalation import wiring
from tests.harness.clock import FrozenClock


@pytest.fixture
def db(tmp_path):
    database = open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    cases._policies.clear()
    yield database
    database.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2025, 1, 1, 0, 0, tzinfo=UTC))


@pytest.fixture
def wired(tmp_path, db, clock):  # type: ignore[no-untyped-def]
    """The channels' local servers (SMTP, Aliyun SMS, WeCom) and the engine wired to them, on this module's ``db``."""
    with ExitStack() as stack:
        yield wiring.start(tmp_path, clock, stack)
