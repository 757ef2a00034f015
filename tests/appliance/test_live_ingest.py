"""Live capture into the signed log: each punch once, through group commit, while downloads run beside it."""

from datetime import datetime, timedelta

import pytest

from appliance.capture.groupcommit import GroupCommitter
from appliance.capture.ingest import PunchIngest
from appliance.capture.poller import TerminalWorker
from appliance.capture.punchlog import LogWriter
from appliance.store import LogRecord, Punch, open_db
from firmware_bridge.zk.driver import ZKTerminal
from firmware_bridge.zk.live import Backoff, LiveCapture
from ledger import GENESIS_PREV, SignedRecord, SigningKey
from ledger.messages import Batch
from ledger.verify import verify_batch
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock
from tests.harness.wait import wait_until

LOG = "punchproof/test/pi-01/1"


@pytest.fixture
def appliance(tmp_path, zk_terminal):
    """The daemon's terminal side, wired as ApplianceDaemon wires it, with a 0.1 s poll beside the live feed."""
    db = open_db(tmp_path / "appliance.sqlite3")
    key = SigningKey.generate()
    clock = FrozenClock()
    writer = LogWriter(db, key, LOG, clock, boot_id="b")
    writer.start()
    committer = GroupCommitter(writer, clock, window_s=0.05)
    committer.start()
    ingest = PunchIngest(writer, clock, "Asia/Shanghai", committer)
    host, port = zk_terminal.address
    worker = TerminalWorker("gate-1", ZKTerminal(host, port, tz=PLANT_TZ), ingest, clock, interval_s=0.1)
    futures = []

    def sink(live):
        futures.append(ingest.accept_live("gate-1", live))

    capture = LiveCapture(
        host, port, tz=PLANT_TZ, sink=sink, on_connect=lambda _a: worker.poll_soon(), backoff=Backoff(0.02, 0.2)
    )
    worker.start()
    capture.start()
    wait_until(lambda: zk_terminal.live_sessions == 1, message="live capture registered")
    yield {"key": key, "committer": committer, "futures": futures, "capture": capture}
    capture.stop()
    worker.stop()
    committer.stop()
    db.close()


def chain_verifies(key):
    rows = LogRecord.select().order_by(LogRecord.seq)
    batch = Batch(LOG, 0, tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows))
    return len(verify_batch(batch, key=key.verify_key, prev=GENESIS_PREV))


def test_a_shift_change_burst_is_stored_once_in_few_commits(appliance, terminal_state):
    start = datetime(2026, 3, 2, 7, 50)
    for user in range(100):
        terminal_state.add_user(str(2000 + user), f"工人{user}")
    presses = [(str(2000 + i), 0, 1, start + timedelta(seconds=i), 0) for i in range(100)]
    terminal_state.punch_together(presses[:2])  # two punches in one TCP segment
    for press in presses[2:]:
        terminal_state.punch_together([press])
    wait_until(lambda: Punch.select().count() >= 100, timeout=20, message="the burst stored")
    wait_until(lambda: all(f is None or f.done() for f in appliance["futures"]), message="every commit settled")
    users = [p.user_id for p in Punch.select()]
    assert sorted(users) == sorted(str(2000 + i) for i in range(100)), "each punch exactly once"
    live = [f for f in appliance["futures"] if f is not None]
    assert live, "punches came through the live path too"
    assert appliance["committer"].commits < len(live), "live punches shared commits"
    assert chain_verifies(appliance["key"]) == 100


def test_punches_made_while_live_capture_was_down_are_stored_once_by_the_reads_beside_it(
    appliance, terminal_state, zk_terminal
):
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 58))
    wait_until(lambda: Punch.select().count() == 1, message="the first punch")
    zk_terminal.drop_connections()
    terminal_state.punch("1002", when=datetime(2026, 3, 2, 7, 59))
    wait_until(lambda: Punch.select().count() == 2, timeout=20, message="the punch made during the drop")
    wait_until(lambda: zk_terminal.live_sessions == 1, timeout=20, message="live capture back")
    terminal_state.punch("1001", state=1, when=datetime(2026, 3, 2, 17, 30))
    wait_until(lambda: Punch.select().count() == 3, timeout=20, message="a punch after the reconnection")
    assert sorted((p.user_id, p.state) for p in Punch.select()) == [("1001", 0), ("1001", 1), ("1002", 0)]
