from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cloud.escalation import cases
from cloud.store import open_db
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
