"""A terminal that holds many records is read a part at a time (issue #25, item 3).

A ZK log is transferred whole (the protocol has no "records since"), into an unnamed file in the state
directory, then parsed and stored ``PART_RECORDS`` at a time, each part with its cursor in its own
transaction: a million records cost a part's memory (bench/zk_memory.py measures it), and a read cut short
by a power cut goes on from the last part stored, with no punch lost and none stored twice.
"""

from __future__ import annotations

import os
import signal
from datetime import datetime, timedelta

import pytest

from firmware_bridge.zk.driver import ZKTerminal
from firmware_bridge.zk.emulator import StoredPunch, ZKEmulator
from firmware_bridge.zk.logread import PART_RECORDS
from tests.conftest import PLANT_TZ
from tests.e2e.test_power_cuts import verify_appliance_log
from tests.harness.system import System
from tests.harness.wait import wait_until

RECORDS = 2 * PART_RECORDS + 2000  # three parts: two whole, one short


def fill(state, count: int) -> None:
    """``count`` punches of the terminal's two workers, 37 s apart, already in its log."""
    start = datetime(2026, 2, 1, 6, 0)
    uid_a, uid_b = ((u.uid, u.user_id) for u in state.users[:2])
    state.punches.extend(
        StoredPunch(*(uid_a if n % 2 else uid_b), start + timedelta(seconds=37 * n), 1, n % 2) for n in range(count)
    )


def test_parts_cover_the_log_from_the_cursor_once_each_with_the_records_behind_them(terminal_state, tmp_path):
    fill(terminal_state, 1200)
    spool_dir = tmp_path / "state"
    spool_dir.mkdir()
    with ZKEmulator(terminal_state, port=0) as emulator:
        terminal = ZKTerminal(*emulator.address, tz=PLANT_TZ, timeout=2)
        whole = terminal.download(100)
        with terminal.download_spooled(100, spool_dir=spool_dir) as spooled:
            assert os.listdir(spool_dir) == [], "the transfer is kept in an unnamed file: nothing left after a crash"
            parts = list(spooled.parts(500, behind=32))
    assert [(p.punches[0].index, p.punches[-1].index + 1, p.record_count) for p in parts] == [
        (100, 600, 600),  # the first part starts at the cursor: nothing behind it was asked for
        (568, 1100, 1100),  # 32 records behind each later part, so that its tail can be checked like a read's
        (1068, 1200, 1200),  # the last part's count is the terminal's
    ]
    seen = {p.index: p for part in parts for p in part.punches}
    assert sorted(seen) == [p.index for p in whole.punches] == list(range(100, 1200))
    assert all(seen[p.index] == p for p in whole.punches)
    assert {(p.terminal_sn, p.capacity, p.record_size) for p in parts} == {
        (whole.terminal_sn, whole.capacity, whole.record_size)
    }
    assert len({p.clock_offset_ms for p in parts}) == 1, "one transfer: one measurement of the clock"


def test_a_read_unchanged_since_the_cursor_transfers_nothing_and_is_one_empty_part(zk_terminal, terminal_state):
    fill(terminal_state, 10)
    terminal = ZKTerminal(*zk_terminal.address, tz=PLANT_TZ, timeout=2)
    with terminal.download_spooled(0, known_count=10) as spooled:
        (part,) = spooled.parts(500)
    assert (part.record_count, part.punches, part.record_size) == (10, (), 0)


@pytest.fixture
def big_terminal_state(terminal_state):
    fill(terminal_state, RECORDS)
    terminal_state.attendance_buffer()  # the terminal's log exists already: encoded once
    return terminal_state


@pytest.fixture
def system(tmp_path, broker, big_terminal_state):
    with ZKEmulator(big_terminal_state, port=0) as emulator:
        chain = System(tmp_path, broker.port, emulator.address).configure(register=False)
        yield chain
        for name in list(chain.processes):
            chain.stop(name, signal.SIGKILL)


def test_a_first_read_killed_between_parts_keeps_the_parts_stored_and_goes_on_from_them(system):
    def count() -> int:
        try:
            return system.appliance_rows("SELECT count(*) FROM punch")[0][0]
        except Exception:  # noqa: BLE001 - the database may not exist yet
            return -1

    system.start_appliance(failpoints="poll.part_stored=2")  # killed once the second part is committed
    assert system.reap("appliance", timeout=120) == -signal.SIGKILL
    assert count() == 2 * PART_RECORDS, "the parts stored before the kill are kept, with their cursor"
    assert system.appliance_rows("SELECT cursor FROM terminal_health")[0][0] == 2 * PART_RECORDS

    system.start_appliance()
    wait_until(lambda: count() == RECORDS, timeout=120, message=f"all {RECORDS} records stored")
    rows = system.appliance_rows(
        "SELECT count(*), count(DISTINCT terminal_sn || user_id || device_time || state) FROM punch"
    )
    assert rows == [(RECORDS, RECORDS)], "no punch lost, none stored twice"
    assert system.appliance_rows("SELECT cursor FROM terminal_health")[0][0] == RECORDS
    assert verify_appliance_log(system) >= RECORDS
