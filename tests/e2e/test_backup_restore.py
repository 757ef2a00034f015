"""Backup while the daemon writes, restore only when it is stopped, and a restored old backup does not
fork the signed log: the real daemon, cloud, broker and ZK emulator, through the ``punchproof`` command."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tarfile
import threading
from datetime import datetime, timedelta

import pytest

from ledger import GENESIS_PREV, SignedRecord, VerifyKey
from ledger.messages import Batch
from ledger.verify import verify_batch
from tests.harness.system import System
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e


def punchproof(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "punchproof", *map(str, args)], capture_output=True, text=True, check=False
    )


def verify_log(database, identity) -> int:
    """Every record of the database's log verifies as one chain from genesis under the appliance's key."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT seq, data, sig FROM log_record ORDER BY seq").fetchall()
    assert [seq for seq, _, _ in rows] == list(range(len(rows))), "no gap"
    batch = Batch(identity["log"], 0, tuple(SignedRecord(bytes(d), bytes(s)) for _, d, s in rows))
    verify_batch(batch, key=VerifyKey.from_pem(identity["public_key"]), prev=GENESIS_PREV)
    return len(rows)


def test_backup_under_writes_then_restore_keeps_the_log_and_the_cloud_refuses_the_fork(
    tmp_path, broker, zk_terminal, terminal_state
):
    system = System(tmp_path, broker.port, zk_terminal.address).configure()
    identity = json.loads((tmp_path / "identity.json").read_text())
    database = tmp_path / "appliance" / "appliance.sqlite3"
    stop = threading.Event()
    start = datetime(2026, 3, 2, 7, 0)

    def punch_steadily() -> None:
        for n in range(10_000):
            if stop.wait(0.005):  # pacing the workers' punches, not waiting for an outcome
                return
            terminal_state.punch(str(1001 + n % 2), when=start + timedelta(seconds=n))

    puncher = threading.Thread(target=punch_steadily)
    try:
        system.start_ingest()
        system.start_appliance()
        puncher.start()
        wait_until(lambda: system.appliance_rows("SELECT count(*) FROM punch")[0][0] >= 20, timeout=30)
        archive = tmp_path / "pi-01.backup.tar"
        result = punchproof("appliance", "backup", "-c", system.appliance_conf, archive)
        assert result.returncode == 0, result.stderr
        assert archive.stat().st_mode & 0o777 == 0o600, "the archive holds the signing key"
        with tarfile.open(archive) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))
        written_after = manifest["head_seq"] + 50
        wait_until(
            lambda: system.cloud_rows("SELECT seq FROM log_head")[0][0] > written_after,
            timeout=60,
            message="the cloud to acknowledge well past the backup",
        )
        stop.set()
        puncher.join()

        refused = punchproof("appliance", "restore", "-c", system.appliance_conf, archive)
        assert refused.returncode == 1 and "daemon is running" in refused.stderr
        assert verify_log(database, identity) > manifest["head_seq"] + 1, "nothing was touched"

        assert system.stop("appliance") == 0
        restored = punchproof("appliance", "restore", "-c", system.appliance_conf, archive)
        assert restored.returncode == 0, restored.stderr
        assert verify_log(database, identity) == manifest["head_seq"] + 1, "the backup is one consistent commit"
        assert list((tmp_path / "appliance").glob("appliance.sqlite3.before-restore-*")), "the replaced file is kept"

        cloud_head = system.cloud_rows("SELECT seq FROM log_head")[0][0]
        system.start_appliance()
        error = wait_until(
            lambda: system.appliance_rows("SELECT last_error FROM sync_state")[0][0],
            timeout=30,
            message="the divergence reported on the restored appliance",
        )
        assert "restored from an old backup" in error
        assert system.cloud_rows("SELECT seq FROM log_head")[0][0] == cloud_head, "the cloud keeps its history"
    finally:
        stop.set()
        if puncher.is_alive():
            puncher.join()
        system.stop_all()


def test_restore_refuses_a_file_that_is_not_a_backup_and_changes_nothing(tmp_path, broker, zk_terminal):
    system = System(tmp_path, broker.port, zk_terminal.address).configure(register=False)
    database = tmp_path / "appliance" / "appliance.sqlite3"
    before = database.read_bytes()
    bogus = tmp_path / "bogus.tar"
    with tarfile.open(bogus, "w") as tar:
        tar.add(system.appliance_conf, "../../etc/passwd")
    result = punchproof("appliance", "restore", "-c", system.appliance_conf, bogus)
    assert result.returncode == 1 and "not a punchproof backup" in result.stderr
    assert database.read_bytes() == before
