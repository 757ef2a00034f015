"""A terminal's log cleared or replaced outside the appliance (issue #23.1): no punch lost, none stored twice.

An admin clears the terminal at its menu while the appliance is off or cut off, and workers punch
past the old cursor; before, the read restarted 32 records behind the old cursor and the new log's
first records were never stored. Each test drives the real driver against the ZK emulator.
"""

import sqlite3
from datetime import datetime, timedelta

import pytest

from appliance.capture.ingest import PunchIngest
from appliance.capture.poller import TerminalWorker
from appliance.capture.punchlog import LogWriter
from appliance.store import LogRecord, Punch, TerminalHealth, open_db
from firmware_bridge.zk import wire
from firmware_bridge.zk.driver import ZKTerminal
from firmware_bridge.zk.emulator import TerminalState, ZKEmulator
from firmware_bridge.zk.records import encode_attendance_40
from ledger import GENESIS_PREV, SignedRecord
from ledger.messages import Batch
from ledger.verify import verify_batch
from opskit.migrations import schema_version
from tests.conftest import PLANT_TZ

LOG = "punchproof/test/pi-01/1"


def make_worker(db, key, clock, zk_terminal, boot_id="boot-1"):
    writer = LogWriter(db, key, LOG, clock, boot_id=boot_id)
    writer.start()
    ingest = PunchIngest(writer, clock, "Asia/Shanghai")
    terminal = ZKTerminal(*zk_terminal.address, tz=PLANT_TZ, timeout=2)
    return TerminalWorker("gate-1", terminal, ingest, clock, interval_s=1)


@pytest.fixture
def worker(db, key, clock, zk_terminal):
    return make_worker(db, key, clock, zk_terminal)


def punch_a_day(state, day, count):
    """``count`` punches on 2026-03-``day`` from 06:00, a minute apart, two workers taking turns."""
    start = datetime(2026, 3, day, 6, 0)
    return [state.punch(f"100{1 + n % 2}", when=start + timedelta(minutes=n)) for n in range(count)]


def keys(punches):
    return {(p.user_id, p.time.isoformat()) for p in punches}


def stored():
    rows = list(Punch.select())
    assert len(rows) == len({(p.user_id, p.device_time) for p in rows}), "a punch stored twice"
    return {(p.user_id, p.device_time) for p in rows}


def replaced_incidents(key):
    rows = list(LogRecord.select().order_by(LogRecord.seq))
    batch = Batch(LOG, 0, tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows))
    verified = verify_batch(batch, key=key.verify_key, prev=GENESIS_PREV)
    return [f for f, _ in verified if f["type"] == "incident" and f["kind"] == "log_replaced"]


def test_a_log_cleared_at_the_terminal_and_regrown_past_the_cursor_is_read_from_the_start(
    worker, key, terminal_state, caplog
):
    before = punch_a_day(terminal_state, 2, 100)
    assert worker.poll_once() == 100
    assert terminal_state.clear_log() == 100  # at the terminal's menu: the appliance is not told
    after = punch_a_day(terminal_state, 3, 130)  # past the old cursor before the appliance reads again
    assert worker.poll_once() == 130, "records [0, 68) of the new log were skipped"
    assert [worker.poll_once() for _ in range(3)] == [0, 0, 0]
    assert stored() == keys(before) | keys(after)
    (incident,) = replaced_incidents(key)
    assert (incident["cause"], incident["cursor"], incident["count"]) == ("records_differ", 100, 130)
    assert incident["term"] == {"name": "gate-1", "sn": "TEST-ZK-01", "old_sn": "TEST-ZK-01"}
    assert "the records just before position 100 are not the ones stored from it" in incident["reason"]
    (warning,) = [r.getMessage() for r in caplog.records if "attendance log is not the one" in r.getMessage()]
    assert "cleared or replaced at the terminal" in warning and "Reading the whole log again now" in warning
    assert TerminalHealth.get_by_id("gate-1").cursor == 130


def test_a_log_cleared_and_smaller_than_the_cursor_is_read_from_the_start_once(worker, key, terminal_state):
    before = punch_a_day(terminal_state, 2, 100)
    assert worker.poll_once() == 100
    terminal_state.clear_log()
    after = punch_a_day(terminal_state, 3, 10)
    assert worker.poll_once() == 10
    after += punch_a_day(terminal_state, 4, 30)  # the new log grows on: read from its own cursor
    assert worker.poll_once() == 30 and worker.poll_once() == 0
    assert stored() == keys(before) | keys(after)
    (incident,) = replaced_incidents(key)
    assert (incident["cause"], incident["cursor"], incident["count"]) == ("count_fell", 100, 10)


def test_a_replaced_terminal_holding_as_many_records_is_read_at_once(worker, key, zk_terminal, terminal_state):
    """The count alone says "nothing new", so the old log's cursor would have skipped all of it."""
    before = punch_a_day(terminal_state, 2, 40)
    assert worker.poll_once() == 40
    host, port = zk_terminal.address
    zk_terminal.stop()
    replacement = TerminalState(serial="TEST-ZK-02", tz=PLANT_TZ)
    after = punch_a_day(replacement, 3, 40)
    with ZKEmulator(replacement, host, port):
        assert worker.poll_once() == 40
        assert worker.poll_once() == 0
    assert stored() == keys(before) | keys(after)
    (incident,) = replaced_incidents(key)
    assert (incident["cause"], incident["cursor"], incident["count"]) == ("serial_changed", 40, 40)
    assert incident["term"] == {"name": "gate-1", "sn": "TEST-ZK-02", "old_sn": "TEST-ZK-01"}


def test_an_unchanged_log_polled_many_times_is_never_read_from_the_start(worker, key, terminal_state):
    """Its tail holds a double press (one punch, two records) and a bad record: still the same log."""
    punch_a_day(terminal_state, 2, 40)
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 8, 0))  # pressed twice in one second:
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 8, 0))  # two records, one punch
    bad = bytearray(encode_attendance_40(1, "1001", datetime(2026, 2, 28, 8, 0), 1, 0))
    bad[27:31] = (wire.encode_time(datetime(2026, 2, 28, 8, 0)) + 2 * 86400).to_bytes(4, "little")  # 30 February
    terminal_state.store_raw(bytes(bad))
    assert worker.poll_once() == 41 and terminal_state.log_transfers == 1
    for minute in range(12):
        assert worker.poll_once() == 0  # unchanged: not even transferred
        terminal_state.punch("1002", when=datetime(2026, 3, 2, 9, minute))
        assert worker.poll_once() == 1
    assert terminal_state.log_transfers == 13, "one transfer for each new record: none from the start"
    assert TerminalHealth.get_by_id("gate-1").cursor == 55 and Punch.select().count() == 53
    assert replaced_incidents(key) == []


def test_a_database_from_before_the_digest_gains_it_and_still_notices_a_cleared_log(
    tmp_path, key, clock, zk_terminal, terminal_state
):
    path = tmp_path / "appliance.sqlite3"
    db = open_db(path)
    before = punch_a_day(terminal_state, 2, 100)
    assert make_worker(db, key, clock, zk_terminal).poll_once() == 100
    db.close()
    with sqlite3.connect(path) as conn:  # as the release before left it: no column, migration 3 not applied
        conn.execute("ALTER TABLE terminal_health DROP COLUMN tail_digest")
        conn.execute("DELETE FROM schema_version WHERE version >= 3")
    db = open_db(path)
    try:
        assert schema_version(db) >= 3  # and every migration after it
        health = TerminalHealth.get_by_id("gate-1")
        assert (health.cursor, health.tail_digest) == (100, None)
        terminal_state.clear_log()
        after = punch_a_day(terminal_state, 3, 130)
        worker = make_worker(db, key, clock, zk_terminal, boot_id="boot-2")
        assert worker.poll_once() == 130, "no digest yet: the records before the cursor must be known punches"
        assert stored() == keys(before) | keys(after)
        assert len(replaced_incidents(key)) == 1 and TerminalHealth.get_by_id("gate-1").tail_digest is not None
    finally:
        db.close()
