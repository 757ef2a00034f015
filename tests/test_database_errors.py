"""Every transaction on either side's SQLite takes the write lock when it begins.

A deferred transaction that reads first cannot upgrade to a write once another process has written
since its read: SQLite answers "database is locked" at once, without waiting out busy_timeout. The cloud's
`import-hr` failed so while the ingest worker stored a batch (CI, stop 28). Taking the lock at BEGIN makes
the other writer wait for this one instead.
"""

import os
import sqlite3
import stat
import subprocess
import sys

import pytest

from appliance.store import open_db as open_appliance_db
from cloud.store import database
from cloud.store import open_db as open_cloud_db


def _another_writer_gets_in(path) -> bool:
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as err:
        assert "locked" in str(err)
        return False
    else:
        other.execute("ROLLBACK")
        return True
    finally:
        other.close()


def test_a_cloud_transaction_that_reads_first_holds_the_write_lock_from_its_start(tmp_path):
    path = tmp_path / "cloud.sqlite3"
    db = open_cloud_db(f"sqlite:///{path}")
    try:
        with db.connection_context():
            assert _another_writer_gets_in(path)
            with database.atomic():
                db.execute_sql("SELECT 1").fetchall()
                assert not _another_writer_gets_in(path)
            assert _another_writer_gets_in(path)
    finally:
        db.close()


@pytest.mark.parametrize("pool", [None, 2])
def test_an_appliance_transaction_that_reads_first_holds_the_write_lock_from_its_start(tmp_path, pool):
    path = tmp_path / "appliance.sqlite3"
    db = open_appliance_db(path, pool=pool)
    try:
        with db.connection_context():
            with db.atomic():
                db.execute_sql("SELECT 1").fetchall()
                assert not _another_writer_gets_in(path)
            assert _another_writer_gets_in(path)
    finally:
        db.close()


def test_a_cloud_command_whose_database_is_down_says_so_without_a_traceback(tmp_path):
    conf = tmp_path / "cloud.toml"
    run = [sys.executable, "-m", "punchproof", "cloud"]
    init = [*run, "init", "-o", conf, "--state-dir", tmp_path / "state"]
    subprocess.run([*init, "--database-url", "postgresql://pp:pw@127.0.0.1:1/none"], check=True, capture_output=True)
    result = subprocess.run([*run, "calendar", "show", "-c", conf], capture_output=True, text=True, check=False)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "数据库错误" in result.stderr and "Connection refused" in result.stderr
    assert "[database] url" in result.stderr


def test_a_database_made_by_hand_is_not_readable_by_every_user(tmp_path):
    """#24.8: databases created from a shell (umask 0022) were 0644: names, badges and punches for anyone."""
    old = os.umask(0o022)
    try:
        open_appliance_db(tmp_path / "appliance.sqlite3").close()
        open_cloud_db(f"sqlite:///{tmp_path / 'cloud.sqlite3'}").close()
    finally:
        os.umask(old)
    for name in ("appliance.sqlite3", "appliance.sqlite3-wal", "cloud.sqlite3"):
        if (tmp_path / name).exists():
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) & 0o007 == 0, name
    loose = tmp_path / "old.sqlite3"
    sqlite3.connect(loose).close()
    loose.chmod(0o644)
    open_appliance_db(loose).close()
    assert stat.S_IMODE(loose.stat().st_mode) == 0o640, "an existing one we own is tightened"
