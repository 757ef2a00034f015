"""Every transaction on either side's SQLite takes the write lock when it begins.

A deferred transaction that reads first cannot upgrade to a write once another process has written
since its read: SQLite answers "database is locked" at once, without waiting out busy_timeout. The cloud's
`import-hr` failed so while the ingest worker stored a batch (CI, stop 28). Taking the lock at BEGIN makes
the other writer wait for this one instead.
"""

import sqlite3
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
