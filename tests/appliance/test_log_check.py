"""The signed log against its latest checkpoint (appliance.capture.logcheck): a sound log passes however
the daemon is writing meanwhile, a kill at any step of append → checkpoint → commit leaves a log
that still matches, and a checkpoint signed over other leaves is caught, hashed from genesis or
from the last verified size."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from appliance.capture.logcheck import LogDamaged, check_latest_checkpoint, mark_verified, verified_size
from appliance.capture.punchlog import CHECKPOINT_EVERY, Entry, LogWriter
from appliance.identity import load_or_create_key
from appliance.store import open_db
from ledger import SigningKey
from tests.harness.forge import checkpoint_over_other_leaves

LOG = "punchproof/test/pi-01/1"
REPO = Path(__file__).resolve().parents[2]


def seal(writer: LogWriter, count: int = 1) -> list[int]:
    return writer.append([Entry("seal", {"why": "test"}) for _ in range(count)])


def connect(path: Path, **kwargs: object) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, **kwargs)  # type: ignore[arg-type]


def test_a_sound_log_passes_and_says_what_it_checked(db, clock, key, tmp_path):
    writer = LogWriter(db, key, LOG, clock, boot_id="b")
    writer.start()
    seal(writer, CHECKPOINT_EVERY + 10)  # one checkpoint inside the append, one after
    seal(writer, 3)
    writer.checkpoint()
    checked = check_latest_checkpoint(connect(tmp_path / "appliance.sqlite3"), keys=[key.verify_key])
    assert (checked.records, checked.checkpoint, checked.hashed_from) == (269, 269, 0)
    assert checked.signature == f"verified by {key.kid}"
    other = SigningKey.generate()
    assert check_latest_checkpoint(connect(tmp_path / "appliance.sqlite3"), keys=[other.verify_key]).signature == (
        "no key here to check it"
    )


class WriterBetweenReads(sqlite3.Connection):
    """A connection that lets the daemon append a record and sign its checkpoint right after the
    check has read the log's records, before it reads the latest checkpoint: the interleaving that
    made a sound log look damaged (test_power_cuts, issue #18) when the two were read apart."""

    writer: LogWriter | None = None

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:  # type: ignore[override]
        cursor = super().execute(sql, *args)
        if self.writer is not None and "FROM log_record" in sql:
            seal(self.writer)
            self.writer.checkpoint()
            self.writer = None
        return cursor


def test_a_checkpoint_the_daemon_commits_during_the_check_does_not_look_like_damage(db, clock, key, tmp_path):
    writer = LogWriter(db, key, LOG, clock, boot_id="b")
    writer.start()
    seal(writer, 40)
    writer.checkpoint()
    conn = connect(tmp_path / "appliance.sqlite3", factory=WriterBetweenReads)
    conn.writer = writer
    checked = check_latest_checkpoint(conn, keys=[key.verify_key])
    assert conn.writer is None, "the daemon's append did not happen between the two reads"
    assert (checked.records, checked.checkpoint) == (40, 40)  # one snapshot: the records and checkpoint of then
    assert check_latest_checkpoint(connect(tmp_path / "appliance.sqlite3")).checkpoint == 41


# -- a kill at each step of append -> checkpoint -> commit ---------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    from appliance.identity import load_or_create_key
    from appliance.capture.punchlog import Entry, LogWriter
    from appliance.store import open_db
    from tests.harness.clock import FrozenClock

    root = Path(sys.argv[1])
    db = open_db(root / "appliance.sqlite3")
    writer = LogWriter(db, load_or_create_key(root / "key.pem"), "punchproof/test/pi-01/1",
                       FrozenClock(datetime(2026, 3, 2, tzinfo=UTC)), boot_id="kill")
    writer.start()
    for n, size in enumerate([1, 300, 7, 256, 1, 520, 3] * 4):  # backlogs that checkpoint inside the append
        writer.append([Entry("seal", {"why": f"batch {n}"}) for _ in range(size)])
        if n % 3 == 2:
            writer.checkpoint()
    print("the failpoint was never reached")
    """
)

STEPS = [
    "log.signed",
    "log.records_inserted",
    "log.checkpoints_inserted",
    "log.before_commit",
    "log.committed",
    "log.checkpoint_inserted",
    "log.checkpoint_committed",
]


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("nth", [1, 3])
def test_a_kill_at_any_step_of_an_append_leaves_a_log_that_matches_its_checkpoint(tmp_path, clock, step, nth):
    key = load_or_create_key(tmp_path / "key.pem")
    env = {"PUNCHPROOF_FAILPOINTS": f"{step}={nth}", "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    killed = subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == -9, f"not killed at {step}={nth}: {killed.stdout}{killed.stderr}"

    conn = connect(tmp_path / "appliance.sqlite3")
    before = check_latest_checkpoint(conn, keys=[key.verify_key])  # from genesis: raises LogDamaged if not
    assert before.signature.startswith("verified") or before.checkpoint == 0  # killed before the first one
    db = open_db(tmp_path / "appliance.sqlite3")
    restarted = LogWriter(db, key, LOG, clock, boot_id="after")
    restarted.start()
    assert restarted.head_seq == before.records - 1
    seal(restarted, CHECKPOINT_EVERY + 1)
    restarted.checkpoint()
    after = check_latest_checkpoint(conn, keys=[key.verify_key], from_size=before.checkpoint)
    assert after.checkpoint == before.records + CHECKPOINT_EVERY + 1 == after.records
    assert check_latest_checkpoint(conn).checkpoint == after.checkpoint  # and from genesis
    db.close()


# -- a checkpoint over other leaves is caught ----------------------------------------------------


def test_a_checkpoint_signed_over_other_leaves_is_found_from_genesis_and_from_the_last_verified(
    db, clock, key, tmp_path
):
    writer = LogWriter(db, key, LOG, clock, boot_id="b")
    writer.start()
    seal(writer, 30)
    good = writer.checkpoint()
    conn = connect(tmp_path / "appliance.sqlite3")
    mark_verified(conn, good)
    assert verified_size(conn) == 30
    seal(writer, 10)
    checkpoint_over_other_leaves(conn, key, LOG, 40)  # the last leaf is not the log's
    with pytest.raises(LogDamaged, match=r"size 40\) has root .* but the log's first 40 records hash to"):
        check_latest_checkpoint(conn, keys=[key.verify_key])
    with pytest.raises(LogDamaged, match="size 40"):
        check_latest_checkpoint(conn, keys=[key.verify_key], from_size=verified_size(conn))


def test_a_checkpoint_past_the_end_of_the_log_is_damage(db, clock, key, tmp_path):
    writer = LogWriter(db, key, LOG, clock, boot_id="b")
    writer.start()
    seal(writer, 5)
    conn = connect(tmp_path / "appliance.sqlite3")
    checkpoint_over_other_leaves(conn, key, LOG, 8)
    with pytest.raises(LogDamaged, match="covers 8 records, but the log holds only 5"):
        check_latest_checkpoint(conn)
