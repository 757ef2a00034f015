"""Power cuts during a shift change: the appliance daemon is SIGKILLed again and again while the ZK
emulator announces hundreds of punches a second through live capture, with the cloud ingesting.

After every kill: the database passes ``PRAGMA integrity_check``, every punch the appliance had
committed (read by another connection just before the kill) is still there with the same leaf hash,
and every punch the cloud stored is on the appliance too. At the end: every punch on the terminal is
stored exactly once on both sides, and the appliance's signed log verifies from genesis.

SIGKILL ends the process, not the machine: what the kernel already holds reaches the disk anyway. What
makes a real power cut safe is SQLite's WAL with ``synchronous=FULL`` (an fsync at every commit), which
``test_sqlite_settings_are_what_the_docs_say`` pins. ``PUNCHPROOF_POWER_CUTS`` sets the number of
kills (default 30).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from appliance.capture.logcheck import check_latest_checkpoint
from appliance.config import Settings
from appliance.store import PRAGMAS, open_db
from firmware_bridge.zk.emulator_state import TerminalState
from ledger import GENESIS_PREV, SignedRecord, SigningKey, VerifyKey
from ledger.messages import Batch
from ledger.verify import verify_batch
from tests.e2e.test_first_punch import verify_cloud_chain
from tests.harness.forge import checkpoint_over_other_leaves
from tests.harness.requires import need_tool
from tests.harness.system import System
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CYCLES = int(os.environ.get("PUNCHPROOF_POWER_CUTS", "30"))
WORKERS = 400


class ShiftChange:
    """A thread punching ``rate`` workers a second at the terminal, ``group`` at a time (one TCP segment
    each), every punch at its own device time so each is a distinct punch; ``stop()`` ends it."""

    def __init__(self, state: TerminalState, *, rate: int = 300, group: int = 15) -> None:
        self.state = state
        self.rate = rate
        self.group = group
        self.made = 0
        self._start = datetime(2026, 3, 2, 6, 0)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shift-change", daemon=True)

    def start(self) -> ShiftChange:
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stopping.set()
        self._thread.join(timeout=30)
        return self.made

    def punch(self, count: int) -> None:
        presses = []
        for n in range(self.made, self.made + count):
            user = f"{2000 + n % WORKERS}"
            presses.append((user, n % 2, 1, self._start + timedelta(seconds=n), 0))
        self.state.punch_together(presses)
        self.made += count

    def _run(self) -> None:
        pause = self.group / self.rate  # the pace of the load, not a wait for an outcome
        while not self._stopping.wait(pause):
            self.punch(self.group)


@pytest.fixture
def shift_state(terminal_state: TerminalState) -> TerminalState:
    for n in range(WORKERS):
        terminal_state.add_user(f"{2000 + n}", f"工人{n}")
    return terminal_state


@pytest.fixture
def system(tmp_path, broker, shift_state, zk_terminal):
    chain = System(tmp_path, broker.port, zk_terminal.address).configure(ack_timeout_s=3)
    yield chain
    for name in list(chain.processes):
        chain.stop(name, signal.SIGKILL)


def stored(system: System) -> dict[int, bytes]:
    """The appliance's committed punches, seq -> leaf hash, as another process sees them."""
    sql = "SELECT p.seq, r.leaf FROM punch p JOIN log_record r ON r.seq = p.seq"
    return {seq: bytes(leaf) for seq, leaf in system.appliance_rows(sql)}


def in_cloud(system: System) -> dict[int, bytes]:
    sql = "SELECT p.seq, r.leaf FROM punch p JOIN log_record r ON r.seq = p.seq"
    return {seq: bytes(leaf) for seq, leaf in system.cloud_rows(sql)}


def integrity(system: System) -> str:
    with sqlite3.connect(system.root / "appliance" / "appliance.sqlite3") as conn:  # writable: replays the WAL
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def verify_appliance_log(system: System) -> int:
    """The whole signed log from genesis: every signature and link, and the latest checkpoint's root.

    The records and the checkpoint are read in one snapshot: the daemon is still running, and a
    seal and its checkpoint committed between two separate reads once made the checkpoint look
    signed over leaves the log did not have (issue #18)."""
    identity = json.loads((system.root / "identity.json").read_text())
    key = VerifyKey.from_pem(identity["public_key"])
    path = system.root / "appliance" / "appliance.sqlite3"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        rows = conn.execute("SELECT data, sig FROM log_record ORDER BY seq").fetchall()
        checked = check_latest_checkpoint(conn, keys=[key])  # raises LogDamaged
        conn.execute("ROLLBACK")
    records = tuple(SignedRecord(bytes(d), bytes(s)) for d, s in rows)
    verified = verify_batch(Batch(identity["log"], 0, records), key=key, prev=GENESIS_PREV)
    assert checked.records == len(verified) and checked.signature == f"verified by {key.kid}"
    return len(verified)


def test_sigkill_during_a_shift_change_loses_no_acknowledged_punch(system, shift_state, zk_terminal):
    rng = random.Random(8)  # the same kill points on every run
    system.start_ingest()
    burst = ShiftChange(shift_state).start()
    before: dict[int, bytes] = {}
    unclean = 0
    try:
        for cycle in range(CYCLES):
            system.start_appliance()
            target = len(before) + rng.randint(20, 400)
            wait_until(lambda t=target: len(stored(system)) >= t, timeout=60, message=f"cycle {cycle}: {target} stored")
            committed, acknowledged = stored(system), in_cloud(system)  # what was reported stored, just before
            system.stop("appliance", signal.SIGKILL)

            assert integrity(system) == "ok", f"cycle {cycle}: the database is damaged"
            after = stored(system)
            lost = {seq for seq, leaf in committed.items() if after.get(seq) != leaf}
            assert not lost, f"cycle {cycle}: committed punches lost or changed: {sorted(lost)[:10]}"
            gone = {seq for seq, leaf in acknowledged.items() if after.get(seq) != leaf}
            assert not gone, f"cycle {cycle}: punches the cloud holds are not on the appliance: {sorted(gone)[:10]}"
            before = after
            unclean += 1
    finally:
        made = burst.stop()

    system.start_appliance()
    total = len(shift_state.punches)
    assert total == made and made > CYCLES * 20
    wait_until(lambda: len(stored(system)) >= total, timeout=300, message=f"all {total} punches on the appliance")
    wait_until(lambda: len(in_cloud(system)) >= total, timeout=180, message=f"all {total} punches in the cloud")
    keys = system.appliance_rows("SELECT user_id, device_time, state FROM punch")
    assert len(keys) == total and len(set(keys)) == total, "a punch is stored twice or missing on the appliance"
    expected = {(p.user_id, p.time.isoformat(), p.state) for p in shift_state.punches}
    assert set(keys) == expected
    cloud_keys = system.cloud_rows("SELECT employee, device_time FROM punch")
    assert len(cloud_keys) == total and len(set(cloud_keys)) == total, "the cloud has a punch twice or misses one"
    assert in_cloud(system) == stored(system), "the cloud's copy differs from the appliance's"
    records = verify_appliance_log(system)
    # at least those records: the daemon, still running, may have sealed and synced more since
    wait_until(lambda: verify_cloud_chain(system) >= records, timeout=60, message="the cloud to hold the whole log")
    boots = system.appliance_rows("SELECT data FROM log_record WHERE type = 'boot' ORDER BY seq")
    said_unclean = sum(1 for (data,) in boots if json.loads(bytes(data))["unclean"])
    assert said_unclean == unclean, "each boot after a kill says the shutdown was unclean"
    print(f"{CYCLES} kills, {total} punches, {records} records: none lost, none twice, the log verifies")


def test_a_log_whose_checkpoint_is_not_its_own_is_never_extended(system, shift_state, zk_terminal):
    """A checkpoint signed over leaves that are not the log's (what the defect issue #18 suspected
    would leave): the daemon refuses to start on it, with the reason and what to do, appends
    nothing, systemd is told not to restart it (exit 3), and the doctor names it."""
    ShiftChange(shift_state).punch(30)
    system.start_appliance()
    wait_until(lambda: len(stored(system)) >= 30, timeout=60, message="the punches stored")
    assert system.stop("appliance") == 0
    assert "records agree with its latest checkpoint" in system.log("appliance")  # the start-up check ran
    settings = Settings.load(system.appliance_conf)
    size = system.appliance_rows("SELECT count(*) FROM log_record")[0][0]
    with closing(sqlite3.connect(settings.db_path, isolation_level=None)) as conn:
        checkpoint_over_other_leaves(conn, SigningKey.load(settings.key_path), settings.log_origin, size)

    assert system.start_appliance().wait(timeout=60) == 3
    said = system.log("appliance")
    assert "签名日志与其最新检查点不符" in said and f"the latest checkpoint (size {size}) has root" in said
    assert "Traceback" not in said
    assert system.appliance_rows("SELECT count(*) FROM log_record")[0][0] == size, "the daemon extended the log"
    system.processes.pop("appliance")
    unit = (REPO / "systemd" / "punchproof-appliance.service").read_text()
    assert re.search(r"^RestartPreventExitStatus=3$", unit, re.M)

    doctor = subprocess.run(
        [sys.executable, "-m", "punchproof", "appliance", "doctor", "-c", str(system.appliance_conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert doctor.returncode != 0
    line = next(line for line in doctor.stdout.splitlines() if "签名日志 signed log" in line)
    assert "FAIL" in line, doctor.stdout
    assert "守护进程不会再追加记录" in doctor.stdout


def test_sqlite_settings_are_what_the_docs_say(tmp_path):
    """docs/operations.md promises WAL with synchronous=FULL; the daemon's connections must have them."""
    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    promised = re.search(r"SQLite in WAL mode with `synchronous=(\w+)`", text)
    assert promised, "docs/operations.md no longer says which synchronous setting the appliance uses"
    assert PRAGMAS["synchronous"] == promised.group(1).lower()
    db = open_db(tmp_path / "appliance.sqlite3")
    with db.connection_context():
        assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute_sql("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with sqlite3.connect(tmp_path / "appliance.sqlite3") as other:  # WAL is kept in the file itself
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def syncs_while(pid: int, action) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Count fsync/fdatasync calls of every thread of ``pid`` while ``action()`` runs (strace -c)."""
    strace = need_tool("strace", "strace")
    tracer = subprocess.Popen(  # -p attaches to every thread of the process, -f to any it starts
        [strace, "-f", "-c", "-e", "trace=fsync,fdatasync", "-p", str(pid)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: Path(f"/proc/{pid}/status").read_text().count("TracerPid:\t0") == 0, timeout=10)
        action()
    finally:
        tracer.send_signal(signal.SIGINT)
        _, summary = tracer.communicate(timeout=30)
    counted = re.search(r"^-+.*\n\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?total", summary, re.M)
    return (int(counted.group(1)) if counted else 0), summary


def test_a_burst_of_punches_is_not_one_fsync_per_punch(system, shift_state, zk_terminal):
    """Group commit: 3,000 punches at 300 a second cost a small fraction of an fsync each (SD-card wear)."""
    system.start_ingest()
    daemon = system.start_appliance()
    burst = ShiftChange(shift_state, rate=300)
    burst.punch(1)
    wait_until(lambda: len(stored(system)) == 1 and zk_terminal.live_sessions, timeout=30, message="the daemon up")
    wait_until(lambda: system.appliance_rows("SELECT acked_seq FROM sync_state")[0][0] >= 1, timeout=30)
    count = 3000

    def burst_of_punches() -> None:
        burst.start()
        wait_until(lambda: burst.made >= count, timeout=60, message="the burst")
        burst.stop()
        wait_until(lambda: len(stored(system)) >= burst.made, timeout=60, message="the burst stored")

    syncs, summary = syncs_while(daemon.pid, burst_of_punches)
    ratio = syncs / burst.made
    print(f"{burst.made} punches, {syncs} fsync/fdatasync calls: {ratio:.3f} per punch\n{summary}")
    assert syncs > 0, f"strace saw no fsync at all: it did not trace the daemon\n{summary}"
    assert ratio < 0.25, f"{syncs} syncs for {burst.made} punches: group commit is not grouping"
