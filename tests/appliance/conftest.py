"""What the appliance's tests share: a real SQLite database file and a log-signing key."""

import pytest

from appliance.store import open_db
from ledger import SigningKey


@pytest.fixture
def db(tmp_path):
    database = open_db(tmp_path / "appliance.sqlite3")
    yield database
    database.close()


@pytest.fixture
def key():
    return SigningKey.generate()
