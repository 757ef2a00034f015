"""A terminal's clock, against the ZK emulator: one signed alarm per episode, corrected only by policy."""

import sqlite3
from datetime import datetime, timedelta

import pytest

from appliance.capture.ingest import PunchIngest
from appliance.capture.poller import TerminalWorker
from appliance.capture.punchlog import LogWriter
from appliance.config import ConfigError, Settings
from appliance.store import LogRecord, TerminalHealth, open_db
from firmware_bridge.zk.clock import ClockPolicy
from firmware_bridge.zk.driver import ZKTerminal
from ledger import GENESIS_PREV, SignedRecord
from ledger.messages import Batch
from ledger.verify import verify_batch
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock

LOG = "punchproof/test/pi-01/1"
THREE_HOURS_MS = 3 * 3600 * 1000
NEVER = ClockPolicy(alarm_above_ms=60_000)
CORRECT = ClockPolicy(alarm_above_ms=60_000, correct_above_ms=120_000)


class UnsyncedClock(FrozenClock):
    def sync_status(self) -> dict[str, int | str]:
        return {"sync": 0, "src": "test", "err_us": 16_000_000}


@pytest.fixture
def frozen(terminal_state, clock):
    terminal_state.now = clock.now  # the terminal's clock and ours move only when the test says so
    terminal_state.clock_offset = timedelta(hours=3)
    return clock


def worker_for(db, key, clock, emulator, policy):
    writer = LogWriter(db, key, LOG, clock, boot_id="boot-1")
    writer.start()
    ingest = PunchIngest(writer, clock, "Asia/Shanghai")
    host, port = emulator.address
    terminal = ZKTerminal(host, port, tz=PLANT_TZ, timeout=2, clock_policy=policy, now=clock.now)
    return TerminalWorker("gate-1", terminal, ingest, clock, interval_s=1, clock_policy=policy, tz=PLANT_TZ)


def signed(key):
    """Every record, its signature and chain verified, as (type, fields)."""
    rows = list(LogRecord.select().order_by(LogRecord.seq))
    batch = Batch(LOG, 0, tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows))
    return [(fields["type"], fields) for fields, _ in verify_batch(batch, key=key.verify_key, prev=GENESIS_PREV)]


def incidents(key, kind):
    return [f for t, f in signed(key) if t == "incident" and f["kind"] == kind]


def test_three_hours_off_is_one_alarm_not_one_per_poll_and_no_correction(db, key, frozen, zk_terminal, terminal_state):
    worker = worker_for(db, key, frozen, zk_terminal, NEVER)
    terminal_state.punch("1001")
    for _ in range(3):
        worker.poll_once()
        frozen.advance(seconds=5)
    (alarm,) = incidents(key, "clock_alarm")
    assert (alarm["off_ms"], alarm["threshold_ms"], alarm["term"]) == (
        THREE_HOURS_MS,
        60_000,
        {"name": "gate-1", "sn": "TEST-ZK-01"},
    )
    health = TerminalHealth.get_by_id("gate-1")
    assert (health.clock_alarm_ms, health.clock_alarm_since_ms) == (THREE_HOURS_MS, 1772409600000)
    assert terminal_state.clock_offset == timedelta(hours=3), "no policy: the terminal's clock is left alone"
    assert not [t for t, _ in signed(key) if t == "clock"]
    (punch,) = [f for t, f in signed(key) if t == "punch"]
    assert punch["term"]["off_ms"] == THREE_HOURS_MS  # the offset travels with the punch

    terminal_state.set_device_time(datetime(2026, 3, 2, 8, 0, 15))  # someone sets it right at the terminal
    worker.poll_once()
    worker.poll_once()
    (cleared,) = incidents(key, "clock_alarm_cleared")
    assert (cleared["by"], cleared["alarm_off_ms"], cleared["alarm_since_ms"]) == (
        "poll",
        THREE_HOURS_MS,
        1772409600000,
    )
    assert TerminalHealth.get_by_id("gate-1").clock_alarm_since_ms is None
    assert len(incidents(key, "clock_alarm")) == 1


def test_the_episode_survives_a_restart_of_the_appliance(db, key, frozen, zk_terminal):
    worker_for(db, key, frozen, zk_terminal, NEVER).poll_once()
    worker_for(db, key, frozen, zk_terminal, NEVER).poll_once()  # a new writer, ingest and worker
    assert len(incidents(key, "clock_alarm")) == 1


def test_with_policy_the_clock_is_corrected_once_and_the_correction_signed(
    db, key, frozen, zk_terminal, terminal_state
):
    worker = worker_for(db, key, frozen, zk_terminal, CORRECT)
    terminal_state.punch("1001")  # on the terminal's wrong clock: 11:00 for 08:00
    worker.poll_once()
    frozen.advance(seconds=5)
    terminal_state.punch("1002")  # after the correction
    worker.poll_once()
    worker.poll_once()

    records = signed(key)
    types = [(t, f.get("kind"), f.get("emp")) for t, f in records]
    assert types == [
        ("incident", "clock_alarm", None),
        ("punch", None, "1001"),
        ("clock", "terminal_set", None),
        ("incident", "clock_alarm_cleared", None),
        ("punch", None, "1002"),
    ], "the correction is signed before any punch read after it"
    clock = next(f for t, f in records if t == "clock")
    assert clock["term"] == {"name": "gate-1", "sn": "TEST-ZK-01"}
    assert (clock["old_off_ms"], clock["old_t"], clock["new_t"], clock["new_off_ms"]) == (
        THREE_HOURS_MS,
        "2026-03-02T11:00:00",
        "2026-03-02T08:00:00",
        0,
    )
    assert clock["policy"] == {"alarm_above_ms": 60_000, "correct_above_ms": 120_000} and clock["tz"] == "Asia/Shanghai"
    punches = {f["emp"]: f["term"] for t, f in records if t == "punch"}
    assert (punches["1001"]["t"], punches["1001"]["off_ms"]) == ("2026-03-02T11:00:00", THREE_HOURS_MS)
    assert (punches["1002"]["t"], punches["1002"]["off_ms"]) == ("2026-03-02T08:00:05", 0)
    assert abs(TerminalHealth.get_by_id("gate-1").clock_offset_ms) < 1000
    assert abs(terminal_state.clock_offset) < timedelta(seconds=1)
    assert incidents(key, "clock_alarm_cleared")[0]["by"] == "correction"


def test_no_correction_while_our_own_clock_is_not_synchronised(db, key, zk_terminal, terminal_state):
    unsynced = UnsyncedClock()
    terminal_state.now = unsynced.now
    terminal_state.clock_offset = timedelta(hours=3)
    worker_for(db, key, unsynced, zk_terminal, CORRECT).poll_once()
    assert terminal_state.clock_offset == timedelta(hours=3)
    assert not [t for t, _ in signed(key) if t == "clock"] and len(incidents(key, "clock_alarm")) == 1


def zk_config(**terminal):
    return {
        "plant": {"id": "dongguan-1"},
        "appliance": {"id": "pi-01"},
        "mqtt": {"cloud_key_file": "/etc/punchproof/cloud-witness.pub"},
        "terminals": [{"name": "gate-1", "host": "192.168.10.20", **terminal}],
    }


def test_the_policy_comes_from_the_terminal_settings():
    (default,) = Settings.from_dict(zk_config()).terminals
    assert default.clock_policy == ClockPolicy(alarm_above_ms=60_000, correct_above_ms=None)
    (set_,) = Settings.from_dict(zk_config(clock_alarm_s=30, clock_correct_above_s=90.5)).terminals
    assert set_.clock_policy == ClockPolicy(alarm_above_ms=30_000, correct_above_ms=90_500)
    with pytest.raises(ConfigError) as err:
        Settings.from_dict(zk_config(clock_alarm_s=0, clock_correct_above_s=0.5))
    assert len(err.value.problems) == 2 and "clock_correct_above_s: at least 2 s" in str(err.value)
    with pytest.raises(ConfigError, match="clock_correct_above_s: expected float, got str"):
        Settings.from_dict(zk_config(clock_correct_above_s="never"))


def test_a_database_from_before_the_clock_alarm_opens_with_its_rows(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE terminal_health (name VARCHAR(255) NOT NULL PRIMARY KEY, serial VARCHAR(255) NOT NULL, "
            "cursor INTEGER NOT NULL, available INTEGER NOT NULL, last_contact_ms INTEGER, last_error TEXT NOT NULL, "
            "clock_offset_ms INTEGER, capacity INTEGER, record_size INTEGER)"
        )
        old.execute("INSERT INTO terminal_health VALUES ('gate-1', 'SN1', 42, 1, NULL, '', 5, 100, 40)")
    database = open_db(path)
    try:
        health = TerminalHealth.get_by_id("gate-1")
        assert (health.cursor, health.clock_alarm_ms, health.clock_alarm_since_ms) == (42, None, None)
    finally:
        database.close()
