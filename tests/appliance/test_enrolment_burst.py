"""Punches first at a shift change (issue #25 item 1): while live punches flow from a terminal, its enrolment pass
runs at most once every ``ENROL_BUSY_S``, and a roster change still reaches it at its next read.

On the wire: a ZK emulator with live events, the real driver and live capture, group commit and the signed log;
the worker's reads and passes are driven one by one, the clock moved by the test.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from appliance.capture import poller
from appliance.capture.groupcommit import GroupCommitter
from appliance.capture.ingest import PunchIngest
from appliance.capture.poller import TerminalWorker
from appliance.capture.punchlog import LogWriter
from appliance.store import Employee, Punch
from firmware_bridge.zk.driver import ZKTerminal
from firmware_bridge.zk.emulator import TerminalState, ZKEmulator
from firmware_bridge.zk.live import Backoff, LiveCapture
from tests.conftest import PLANT_TZ
from tests.harness.wait import wait_until

NEW = 60  # workers added at head office: a pass makes 50 changes (MAX_STEPS), the next the other 10


def employ(badge: str, name: str) -> None:
    Employee.replace(user_id=badge, name=name, source="cloud:7").execute()


class Terminal:
    """One ZK emulator with live events, its worker and its live capture."""

    def __init__(self, name: str, serial: str, ingest: PunchIngest, clock) -> None:
        self.state = TerminalState(serial=serial, tz=PLANT_TZ, now=lambda: datetime.now(UTC))
        self.state.add_user("1001", "张三")
        self.emulator = ZKEmulator(self.state, port=0).start()
        host, port = self.emulator.address
        self.worker = TerminalWorker(name, ZKTerminal(host, port, tz=PLANT_TZ, timeout=2), ingest, clock, interval_s=1)
        self.capture = LiveCapture(
            host, port, tz=PLANT_TZ, sink=lambda live: ingest.accept_live(name, live), backoff=Backoff(0.02, 0.2)
        )
        self.capture.start()
        wait_until(lambda: self.emulator.live_sessions == 1, message=f"{name}: live capture registered")

    def stop(self) -> None:
        self.capture.stop()
        self.emulator.stop()


class Gate:
    def __init__(self, db, key, clock, names: tuple[str, ...] = ("gate-1",)) -> None:
        self.clock = clock
        self.writer = LogWriter(db, key, "punchproof/test/pi-01/1", clock, boot_id="boot-1")
        self.writer.start()
        self.committer = GroupCommitter(self.writer, clock, window_s=0.02)
        self.committer.start()
        self.ingest = PunchIngest(self.writer, clock, "Asia/Shanghai", self.committer)
        self.terminals = {name: Terminal(name, f"TEST-ZK-{n:02d}", self.ingest, clock) for n, name in enumerate(names)}
        first = self.terminals[names[0]]
        self.state, self.emulator, self.worker = first.state, first.emulator, first.worker

    def live_punch(self, badge: str, state: TerminalState | None = None) -> None:
        """A punch at the terminal (the first by default), announced live and stored through group commit."""
        stored = Punch.select().where(Punch.user_id == badge).count()
        (state or self.state).punch(badge)
        wait_until(lambda: Punch.select().where(Punch.user_id == badge).count() > stored, message=f"{badge} stored")

    def users(self) -> set[str]:
        return {u.user_id for u in self.state.users}

    def stop(self) -> None:
        for terminal in self.terminals.values():
            terminal.stop()
        self.committer.stop()


@pytest.fixture
def gate(db, key, clock):
    employ("1001", "张三")
    for n in range(NEW):
        employ(str(2000 + n), f"工人{n}")
    site = Gate(db, key, clock)
    yield site
    site.stop()


def test_while_punches_flow_a_terminals_enrolment_pass_runs_at_most_once_per_busy_interval(gate):
    worker = gate.worker
    worker.poll_once()
    assert worker.enrol_once() == 50, "the first pass"
    users = gate.users()
    gate.live_punch("1001")
    gate.clock.advance(seconds=60)  # the next read, a minute later (the live interval), punches still flowing
    gate.live_punch("2000")
    connections = gate.emulator.connections
    assert worker.enrol_once() == 0, "held back: the rest of the big roster waits"
    assert gate.emulator.connections == connections, "the terminal was not even asked for its counts"
    assert gate.users() == users
    gate.clock.advance(seconds=poller.ENROL_BUSY_S - 60)  # ENROL_BUSY_S since the first pass
    gate.live_punch("2001")
    assert worker.enrol_once() > 0, "one pass every ENROL_BUSY_S while punches flow"
    assert gate.users() == {"1001", *(str(2000 + n) for n in range(NEW))}


def test_a_roster_change_reaches_the_terminal_at_its_next_read_while_punches_flow(gate):
    worker = gate.worker
    worker.poll_once()
    assert worker.enrol_once() == 50
    gate.clock.advance(seconds=60)
    gate.live_punch("1001")
    employ("3000", "王五")  # head office adds a worker in the middle of the shift change
    assert worker.enrol_once() > 0, "a change since the last pass is not held back"
    assert "3000" in gate.users()


def test_when_punches_stop_flowing_passes_run_at_every_read_again(gate):
    worker = gate.worker
    worker.poll_once()
    assert worker.enrol_once() == 50
    gate.live_punch("1001")
    gate.clock.advance(seconds=30)
    assert worker.enrol_once() == 0, "held back"
    gate.clock.advance(seconds=poller.LIVE_FLOWING_S + 1)  # no live punch since
    assert worker.enrol_once() > 0


def test_while_punches_flow_the_plants_terminals_take_turns(db, key, clock):
    employ("1001", "张三")
    for n in range(NEW):
        employ(str(2000 + n), f"工人{n}")
    gate = Gate(db, key, clock, ("gate-1", "gate-2"))
    try:
        one, two = gate.terminals["gate-1"], gate.terminals["gate-2"]
        for terminal in (one, two):
            terminal.worker.poll_once()
            assert terminal.worker.enrol_once() == 50, "the first passes"
        clock.advance(seconds=poller.ENROL_BUSY_S)
        gate.live_punch("1001", one.state)
        gate.live_punch("2000", two.state)
        assert one.worker.enrol_once() > 0, "gate-1's turn"
        assert two.worker.enrol_once() == 0, "gate-2 waits: another terminal passed less than ENROL_BUSY_GAP_S ago"
        clock.advance(seconds=poller.ENROL_BUSY_GAP_S)
        gate.live_punch("2001", two.state)
        assert two.worker.enrol_once() > 0, "gate-2's turn"
    finally:
        gate.stop()
