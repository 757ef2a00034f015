"""While live capture runs, a terminal's whole log is transferred rarely; when it drops, at once and often.

Real ZK emulator, real live capture and the worker wired as ``ApplianceDaemon`` wires them.
"""

from datetime import datetime

import pytest

from appliance.capture.groupcommit import GroupCommitter
from appliance.capture.ingest import PunchIngest
from appliance.capture.poller import TerminalWorker
from appliance.capture.punchlog import LogWriter
from appliance.store import Punch, TerminalHealth, open_db
from firmware_bridge.zk.driver import ZKTerminal
from firmware_bridge.zk.emulator import ZKEmulator
from firmware_bridge.zk.live import Backoff, LiveCapture
from ledger import SigningKey
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock
from tests.harness.wait import wait_until

LOG = "punchproof/test/pi-01/1"


class CountedReads:
    """The terminal driver, counting full reads of the log (each one transfers the whole log)."""

    def __init__(self, terminal: ZKTerminal) -> None:
        self._terminal = terminal
        self.reads = 0

    def download(self, since_index=0, *, known_count=None):
        self.reads += 1
        return self._terminal.download(since_index, known_count=known_count)

    def correct_clock(self, policy=None):
        return self._terminal.correct_clock(policy)

    def clear_log(self, acknowledged_count):
        return self._terminal.clear_log(acknowledged_count)


@pytest.fixture
def plant(tmp_path, terminal_state):
    db = open_db(tmp_path / "appliance.sqlite3")
    clock = FrozenClock()
    writer = LogWriter(db, SigningKey.generate(), LOG, clock, boot_id="b")
    writer.start()
    committer = GroupCommitter(writer, clock, window_s=0.02)
    committer.start()
    emulator = ZKEmulator(terminal_state, port=0).start()
    parts = {"clock": clock, "emulator": emulator, "ingest": PunchIngest(writer, clock, "Asia/Shanghai", committer)}
    yield parts
    for running in ("capture", "worker"):
        if running in parts:
            parts[running].stop()
    emulator.stop()
    committer.stop()
    db.close()


def start(plant, *, interval_s: float, live_interval_s: float) -> tuple[TerminalWorker, CountedReads]:
    host, port = plant["emulator"].address
    source = CountedReads(ZKTerminal(host, port, tz=PLANT_TZ))
    ingest = plant["ingest"]
    worker = TerminalWorker(
        "gate-1", source, ingest, plant["clock"], interval_s=interval_s, live_interval_s=live_interval_s
    )
    capture = LiveCapture(
        host,
        port,
        tz=PLANT_TZ,
        sink=lambda live: ingest.accept_live("gate-1", live),
        on_connect=lambda _serial: worker.live_connected(),
        on_disconnect=lambda _serial: worker.live_lost(),
        backoff=Backoff(0.02, 0.2),
    )
    plant["worker"], plant["capture"] = worker, capture
    worker.start()
    capture.start()
    return worker, source


def health() -> TerminalHealth | None:
    return TerminalHealth.get_or_none(TerminalHealth.name == "gate-1")


def test_while_live_capture_runs_the_log_is_read_at_the_live_interval(plant, terminal_state):
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 40))  # made before capture: the catch-up read's
    worker, source = start(plant, interval_s=0.05, live_interval_s=3600)
    # live_since_ms is written at the start of a pass; once the worker sleeps again, that pass's read (the
    # catch-up) is complete, and nothing reads the log again until the live interval
    wait_until(
        lambda: (h := health()) is not None and h.live_since_ms is not None and worker.waiting.is_set(),
        message="live state recorded and the catch-up read done",
    )
    assert Punch.select().count() == 1, "the catch-up read stored the earlier punch"
    assert worker.interval_s == 3600
    reads, watermark = source.reads, health().last_contact_ms
    plant["clock"].advance(seconds=30)
    for n in range(20):  # one at a time: at the short interval, this would span many reads
        terminal_state.punch("1002", when=datetime(2026, 3, 2, 7, 50, n))
        wait_until(lambda n=n: Punch.select().count() == 2 + n, message=f"live punch {n} stored")
    assert source.reads - reads <= 1, "the log was transferred again while every punch arrived live"
    assert health().last_contact_ms == watermark, "a live event is no proof that nothing was missed"
    assert {p.received_ms for p in Punch.select().where(Punch.user_id == "1002")} == {watermark + 30_000}


def test_when_live_capture_drops_the_log_is_read_at_once_and_then_at_the_short_interval(plant, terminal_state):
    worker, source = start(plant, interval_s=30, live_interval_s=3600)
    wait_until(lambda: (h := health()) is not None and h.live_since_ms is not None, message="live state recorded")
    wait_until(lambda: source.reads >= 1 and health().available, message="the catch-up read")
    plant["emulator"].stop()  # the terminal goes away: live capture notices the connection reset
    h = wait_until(
        lambda: (h := health()) is not None and h.live_since_ms is None and not h.available and h,
        message="a read at once (not in 30 s) that found the terminal gone",
    )
    assert "127.0.0.1" in h.last_error
    assert worker.interval_s == 30
