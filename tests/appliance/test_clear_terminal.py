"""Clearing a terminal's log on command: only what the cloud acknowledged, never a punch unstored."""

import subprocess
import sys
from datetime import datetime

import pytest

from appliance.capture import terminal_admin
from appliance.capture.ingest import PunchIngest
from appliance.capture.poller import TerminalWorker
from appliance.capture.punchlog import LogWriter
from appliance.clock import SystemClock, to_ms
from appliance.store import LogClearRecord, LogRecord, Punch, SyncState, TerminalCommand, TerminalHealth, open_db
from firmware_bridge.zk.driver import ZKTerminal
from ledger import GENESIS_PREV, SignedRecord
from ledger.messages import Batch
from ledger.verify import verify_batch
from tests.conftest import PLANT_TZ

LOG = "punchproof/test/pi-01/1"
CAPACITY = 200_000  # the emulator's record capacity


class PunchesBeforeTheClear(ZKTerminal):
    """The real driver; a worker punches after the appliance's checks and just before the clear."""

    def __init__(self, *args, state, **kwargs):
        super().__init__(*args, **kwargs)
        self.state = state

    def clear_log(self, acknowledged_count):
        self.state.punch("1002", when=datetime(2026, 3, 2, 8, 30))
        return super().clear_log(acknowledged_count)


def make_worker(db, key, clock, terminal):
    writer = LogWriter(db, key, LOG, clock, boot_id="boot-1")
    writer.start()
    ingest = PunchIngest(writer, clock, "Asia/Shanghai")
    return TerminalWorker("gate-1", terminal, ingest, clock, interval_s=0.1, tz=PLANT_TZ), writer


@pytest.fixture
def gate(db, key, clock, zk_terminal, terminal_state):
    """Three punches on the terminal, read in by the appliance; nothing acknowledged yet."""
    host, port = zk_terminal.address
    worker, writer = make_worker(db, key, clock, ZKTerminal(host, port, tz=PLANT_TZ, timeout=2, now=clock.now))
    for minute in range(3):
        terminal_state.punch("1001", when=datetime(2026, 3, 2, 8, minute))
    assert worker.poll_once() == 3
    return worker, writer


def clear(worker, clock):
    request = terminal_admin.request_clear("gate-1", "test", to_ms(clock.now()))
    worker.serve_commands()
    return TerminalCommand.get_by_id(request)


def acknowledge(writer):
    SyncState.update(acked_seq=writer.head_seq).execute()  # what the uplink does on the cloud's ack


def cleared_incidents(key):
    rows = list(LogRecord.select().order_by(LogRecord.seq))
    batch = Batch(LOG, 0, tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows))
    verified = verify_batch(batch, key=key.verify_key, prev=GENESIS_PREV)
    return [f for f, _ in verified if f["type"] == "incident" and f["kind"] == "terminal_log_cleared"]


def test_refused_while_punches_are_not_acknowledged(gate, clock, key, terminal_state):
    worker, _writer = gate
    outcome = clear(worker, clock)
    assert outcome.status == "refused"
    assert "3 punch(es) not yet acknowledged by the cloud (oldest 2026-03-02 08:00:00)" in outcome.message
    assert "3 条打卡尚未被云端确认" in outcome.message
    assert len(terminal_state.punches) == 3 and cleared_incidents(key) == []


def test_cleared_after_the_cloud_acknowledged_and_capacity_reported(gate, clock, key, terminal_state):
    worker, writer = gate
    assert TerminalHealth.get_by_id("gate-1").capacity == CAPACITY - 3
    acknowledge(writer)
    outcome = clear(worker, clock)
    assert (outcome.status, outcome.message) == ("done", "gate-1: 已清除 3 条记录 / 3 record(s) cleared")
    assert terminal_state.punches == [] and terminal_state.enabled
    (incident,) = cleared_incidents(key)
    assert (incident["records"], incident["acked_seq"], incident["term"]) == (
        3,
        writer.head_seq - 1,
        {"name": "gate-1", "sn": "TEST-ZK-01"},
    )
    assert LogClearRecord.get(LogClearRecord.request == outcome.id).records == 3
    health = TerminalHealth.get_by_id("gate-1")
    assert (health.cursor, health.capacity) == (0, CAPACITY)

    terminal_state.punch("1002", when=datetime(2026, 3, 2, 9, 0))  # the log fills again from its start
    assert worker.poll_once() == 1 and Punch.select().count() == 4


def test_a_punch_between_the_checks_and_the_clear_is_never_lost(db, key, clock, zk_terminal, terminal_state):
    host, port = zk_terminal.address
    terminal = PunchesBeforeTheClear(host, port, tz=PLANT_TZ, timeout=2, now=clock.now, state=terminal_state)
    worker, writer = make_worker(db, key, clock, terminal)
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 8, 0))
    worker.poll_once()
    acknowledge(writer)
    outcome = clear(worker, clock)
    assert outcome.status == "refused" and "new records arrived before the clear: nothing cleared" in outcome.message
    assert len(terminal_state.punches) == 2 and terminal_state.enabled and cleared_incidents(key) == []
    assert worker.poll_once() == 1  # the late punch is read in as usual
    assert [p.user_id for p in Punch.select().order_by(Punch.seq)] == ["1001", "1002"]


def test_refused_when_the_terminal_is_unreachable(db, key, clock, zk_terminal):
    host, port = zk_terminal.address
    zk_terminal.stop()
    worker, _writer = make_worker(db, key, clock, ZKTerminal(host, port, tz=PLANT_TZ, timeout=0.5, now=clock.now))
    outcome = clear(worker, clock)
    assert outcome.status == "refused" and "terminal unreachable, nothing cleared" in outcome.message


def test_a_request_nobody_waits_for_any_more_is_not_carried_out(gate, clock, terminal_state):
    worker, writer = gate
    acknowledge(writer)
    request = terminal_admin.request_clear("gate-1", "test", to_ms(clock.now()))
    clock.advance(seconds=terminal_admin.REQUEST_TTL_S + 1)
    worker.serve_commands()
    assert TerminalCommand.get_by_id(request).status == "expired" and len(terminal_state.punches) == 3


def test_the_command_line_waits_for_the_daemon(tmp_path, key, zk_terminal, terminal_state):
    """The real CLI in its own process; the terminal's worker running in this one, as in the daemon."""
    state_dir = tmp_path / "state"
    host, port = zk_terminal.address
    config = tmp_path / "appliance.toml"
    config.write_text(
        f'[plant]\nid = "dongguan-1"\n[appliance]\nid = "pi-01"\nstate_dir = "{state_dir}"\n'
        '[mqtt]\ncloud_key_file = "/etc/punchproof/cloud-witness.pub"\n'
        f'[[terminals]]\nname = "gate-1"\nhost = "{host}"\nport = {port}\n',
        encoding="utf-8",
    )

    def cli(*args):
        command = [sys.executable, "-m", "punchproof", "appliance", "clear-terminal", *args, "-c", str(config)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    not_running = cli("gate-1")
    assert not_running.returncode == 1 and "daemon is not running" in not_running.stderr
    db = open_db(state_dir / "appliance.sqlite3")
    (state_dir / "running").write_text("boot\n")  # what the daemon writes at start
    clock = SystemClock()
    worker, writer = make_worker(db, key, clock, ZKTerminal(host, port, tz=PLANT_TZ, timeout=2))
    terminal_state.punch("1001")
    worker.start()
    try:
        unknown = cli("gate-9")
        assert unknown.returncode == 2 and "not a configured 'zk' terminal (known: gate-1)" in unknown.stderr
        refused = cli("gate-1", "--timeout", "30")
        assert refused.returncode == 1 and "1 punch(es) not yet acknowledged" in refused.stderr
        acknowledge(writer)
        done = cli("gate-1", "--timeout", "30")
        assert (done.returncode, done.stdout.strip()) == (0, "gate-1: 已清除 1 条记录 / 1 record(s) cleared")
        assert terminal_state.punches == []
    finally:
        worker.stop()
        db.close()
