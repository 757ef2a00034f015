"""When this appliance began recording each terminal (``terminal_health.first_read_ms``): the first
successful read, kept by a trigger whoever writes the health row, and for a database made before it
was kept, the log's start."""

from __future__ import annotations

import sqlite3

from appliance.capture.devicehealth import record_health
from appliance.roster.store import recording_since
from appliance.store import TerminalHealth, open_db


def first_read(name: str) -> int | None:
    return TerminalHealth.get(TerminalHealth.name == name).first_read_ms


def test_the_first_successful_read_is_kept_and_never_moves(db):
    record_health("gate-1", available=False, last_error="connection refused")  # not read yet
    assert first_read("gate-1") is None and recording_since(["gate-1"]) == {}
    record_health("gate-1", available=True, last_contact_ms=1_000, last_error="")
    record_health("gate-1", available=True, last_contact_ms=2_000, last_error="")
    TerminalHealth.update(last_contact_ms=3_000).where(TerminalHealth.name == "gate-1").execute()
    assert first_read("gate-1") == 1_000
    TerminalHealth.insert(name="gate-2", last_contact_ms=5_000).execute()  # created by a successful read
    assert first_read("gate-2") == 5_000
    assert {k: int(v.timestamp() * 1000) for k, v in recording_since(["gate-1", "gate-2", "gate-3"]).items()} == {
        "gate-1": 1_000,
        "gate-2": 5_000,
    }


def test_a_database_from_before_takes_the_log_start_for_terminals_already_read(tmp_path):
    path = tmp_path / "appliance.sqlite3"
    open_db(path).close()
    with sqlite3.connect(path) as conn:  # as 0.1.x left it: no column, no trigger, migration 2 not applied
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%first_read%'"
        ):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("ALTER TABLE terminal_health DROP COLUMN first_read_ms")
        conn.execute("DELETE FROM schema_version WHERE version >= 2")
        conn.execute(
            "INSERT INTO log_record (seq, type, data, sig, leaf, t_wall_ms) VALUES (0, 'boot', x'', x'', x'', 700)"
        )
        conn.execute(
            "INSERT INTO log_record (seq, type, data, sig, leaf, t_wall_ms) VALUES (1, 'seal', x'', x'', x'', 900)"
        )
        conn.execute(
            "INSERT INTO terminal_health (name, serial, cursor, available, last_error, last_contact_ms) "
            "VALUES ('gate-1', 'A', 5, 1, '', 99000), ('gate-9', '', 0, 0, 'never reached', NULL)"
        )
    db = open_db(path)
    with db.connection_context():
        assert first_read("gate-1") == 700  # read for months already: recorded since the log began
        assert first_read("gate-9") is None
    db.close()
