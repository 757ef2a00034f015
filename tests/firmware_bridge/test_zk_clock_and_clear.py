"""Clock offset at every contact, alarms, corrections only by policy; the log cleared only when acknowledged."""

from datetime import UTC, datetime, timedelta

import pytest

from firmware_bridge.errors import TerminalLogChanged
from firmware_bridge.zk.clock import ClockPolicy
from firmware_bridge.zk.driver import ZKTerminal
from tests.conftest import PLANT_TZ


def driver(emulator, clock, **kwargs):
    host, port = emulator.address
    return ZKTerminal(host, port, tz=PLANT_TZ, timeout=2, now=clock.now, **kwargs)


@pytest.fixture
def frozen(terminal_state, clock):
    terminal_state.now = clock.now  # the terminal's clock and ours move only when the test says so
    return clock


def test_a_drifting_clock_is_measured_at_every_read(zk_terminal, terminal_state, frozen):
    terminal_state.drift_s_per_day = 2.0
    terminal = driver(zk_terminal, frozen)
    assert terminal.download().clock_offset_ms == 0
    frozen.advance(days=15)
    assert terminal.download().clock_offset_ms == 30_000


def test_three_hours_off_raises_an_alarm_but_does_not_touch_the_clock(zk_terminal, terminal_state, frozen):
    terminal_state.clock_offset = timedelta(hours=3)
    download = driver(zk_terminal, frozen, clock_policy=ClockPolicy(alarm_above_ms=60_000)).download()
    assert download.clock_offset_ms == 3 * 3600 * 1000
    assert download.clock_alarm is not None and download.clock_alarm.offset_ms == download.clock_offset_ms
    assert "terminal clock is +10800 s off" in str(download.clock_alarm)
    assert driver(zk_terminal, frozen).correct_clock() is None  # the default policy never corrects
    assert terminal_state.clock_offset == timedelta(hours=3)


def test_a_small_offset_is_no_alarm(zk_terminal, terminal_state, frozen):
    terminal_state.clock_offset = timedelta(seconds=20)
    assert driver(zk_terminal, frozen).download().clock_alarm is None


def test_correction_under_policy_returns_the_record_to_sign(zk_terminal, terminal_state, frozen):
    terminal_state.clock_offset = timedelta(hours=3)
    policy = ClockPolicy(alarm_above_ms=60_000, correct_above_ms=120_000)
    correction = driver(zk_terminal, frozen).correct_clock(policy)
    assert correction is not None
    assert correction.old_offset_ms == 3 * 3600 * 1000 and correction.new_offset_ms == 0
    assert correction.old_terminal_time == datetime(2026, 3, 2, 11, 0)  # 08:00 in Shanghai, plus 3 h
    assert correction.new_terminal_time == datetime(2026, 3, 2, 8, 0)
    assert correction.terminal_sn == "TEST-ZK-01" and correction.at_utc == datetime(2026, 3, 2, tzinfo=UTC)
    assert driver(zk_terminal, frozen).correct_clock(policy) is None  # now within policy: left alone


def test_clear_only_when_every_record_is_acknowledged(zk_terminal, terminal_state, frozen):
    for _ in range(3):
        terminal_state.punch("1001")
    terminal = driver(zk_terminal, frozen)
    cleared = terminal.clear_log(acknowledged_count=3)
    assert (cleared.terminal_sn, cleared.records_cleared) == ("TEST-ZK-01", 3)
    assert terminal_state.punches == [] and terminal_state.enabled


def test_clear_refuses_when_the_terminal_holds_unacknowledged_records(zk_terminal, terminal_state, frozen):
    for _ in range(3):
        terminal_state.punch("1001")
    terminal = driver(zk_terminal, frozen)
    download = terminal.download()
    terminal_state.punch("1002")  # a worker punches after the last download
    with pytest.raises(TerminalLogChanged, match="holds 4 records but 3 are acknowledged"):
        terminal.clear_log(acknowledged_count=download.record_count)
    assert len(terminal_state.punches) == 4 and terminal_state.enabled
