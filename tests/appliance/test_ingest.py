"""Terminal -> signed log, on a real SQLite file: each punch exactly once, chained and signed."""

import dataclasses
import threading
from datetime import datetime

import peewee as pw
import pytest

from appliance.capture import ingest as ingest_module
from appliance.capture.ingest import PunchIngest
from appliance.capture.poller import TerminalWorker
from appliance.capture.punchlog import Entry, LogWriter
from appliance.store import Checkpoint, LogRecord, Punch, TerminalHealth
from firmware_bridge.zk import wire
from firmware_bridge.zk.driver import ZKTerminal
from firmware_bridge.zk.emulator import TerminalState, ZKEmulator
from firmware_bridge.zk.records import encode_attendance_40
from ledger import GENESIS_PREV, SignedRecord, merkle, note
from ledger.messages import Batch
from ledger.verify import verify_batch
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock

LOG = "punchproof/test/pi-01/1"


@pytest.fixture
def writer(db, key, clock):
    w = LogWriter(db, key, LOG, clock, boot_id="boot-1")
    w.start()
    return w


def stored_chain(key):
    rows = list(LogRecord.select().order_by(LogRecord.seq))
    batch = Batch(LOG, 0, tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows))
    return verify_batch(batch, key=key.verify_key, prev=GENESIS_PREV)


def test_punches_are_stored_once_across_re_downloads(db, writer, key, clock, zk_terminal, terminal_state):
    ingest = PunchIngest(writer, clock, "Asia/Shanghai")
    terminal = ZKTerminal(*zk_terminal.address, tz=PLANT_TZ, encoding="gbk")
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 58))
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 58))  # the same press, recorded twice
    assert len(ingest.accept("gate-1", terminal.download(ingest.read_from("gate-1")))) == 1
    assert ingest.accept("gate-1", terminal.download(0)) == []  # a full re-download adds nothing
    terminal_state.punch("1002", state=1, when=datetime(2026, 3, 2, 17, 30))
    assert len(ingest.accept("gate-1", terminal.download(ingest.read_from("gate-1")))) == 1
    assert [(p.user_id, p.state) for p in Punch.select().order_by(Punch.seq)] == [("1001", 0), ("1002", 1)]
    assert TerminalHealth.get_by_id("gate-1").cursor == 3
    fields = [f for f, _ in stored_chain(key)]
    assert [f["term"]["t"] for f in fields] == ["2026-03-02T07:58:00", "2026-03-02T17:30:00"]
    assert fields[0]["boot_id"] == "boot-1" and fields[0]["t_wall_ms"] == 1772409600000


def test_a_re_read_long_log_stores_only_what_differs_in_any_part_of_the_key(db, writer, clock, terminal_state):
    """More punches than one lookup statement holds; new ones differ from stored ones in one field each."""
    ingest = PunchIngest(writer, clock, "Asia/Shanghai")
    other = TerminalState(serial="ZK-OTHER", tz=PLANT_TZ)
    emulators = [ZKEmulator(terminal_state, port=0).start(), ZKEmulator(other, port=0).start()]
    try:
        main, twin = (ZKTerminal(*e.address, tz=PLANT_TZ) for e in emulators)
        count = 2 * ingest_module.KEYS_PER_QUERY + 7
        for n in range(count):
            terminal_state.punch(f"{n % 90:04d}", when=datetime(2026, 3, 2, 7, n // 60, n % 60))
        assert len(ingest.accept("gate-1", main.download(0))) == count
        base = dict(user_id="0005", state=0, verify=1, when=datetime(2026, 3, 2, 7, 0, 5), workcode=0)
        variants = [{"user_id": "0006"}, {"state": 1}, {"verify": 15}, {"when": datetime(2026, 3, 2, 7, 0, 6)}]
        for change in variants:
            press = {**base, **change}
            terminal_state.punch(press.pop("user_id"), **press)
        other.punch(base.pop("user_id"), **base)  # the same press on another terminal is another punch
        download = main.download(0)
        coded = dataclasses.replace(download.punches[5], workcode=3)  # 40-byte records carry no work code
        assert len(ingest.accept("gate-1", dataclasses.replace(download, punches=(*download.punches, coded)))) == 5
        assert len(ingest.accept("gate-2", twin.download(0))) == 1
        assert ingest.accept("gate-1", main.download(0)) == [] and ingest.accept("gate-2", twin.download(0)) == []
        assert Punch.select().count() == count + 5 + 1
    finally:
        for emulator in emulators:
            emulator.stop()


def test_an_unchanged_log_is_not_transferred_again(db, writer, clock, zk_terminal, terminal_state):
    ingest = PunchIngest(writer, clock, "Asia/Shanghai")
    worker = TerminalWorker("gate-1", ZKTerminal(*zk_terminal.address, tz=PLANT_TZ), ingest, clock, interval_s=1)
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 8, 0))
    assert worker.poll_once() == 1 and terminal_state.log_transfers == 1
    clock.advance(seconds=5)
    assert worker.poll_once() == 0 and terminal_state.log_transfers == 1
    assert TerminalHealth.get_by_id("gate-1").last_contact_ms == 1772409605000, "contact is still recorded"
    terminal_state.punch("1002", when=datetime(2026, 3, 2, 8, 1))
    assert worker.poll_once() == 1 and terminal_state.log_transfers == 2


def test_a_cleared_terminal_log_is_read_from_the_start(db, writer, clock, zk_terminal, terminal_state):
    ingest = PunchIngest(writer, clock, "Asia/Shanghai")
    worker = TerminalWorker("gate-1", ZKTerminal(*zk_terminal.address, tz=PLANT_TZ), ingest, clock, interval_s=1)
    for minute in range(40):
        terminal_state.punch("1001", when=datetime(2026, 3, 2, 8, minute))
    assert worker.poll_once() == 40
    terminal_state.punches.clear()
    terminal_state.punch("1002", when=datetime(2026, 3, 3, 8, 0))
    assert worker.poll_once() == 1
    assert Punch.select().count() == 41 and TerminalHealth.get_by_id("gate-1").cursor == 1


def test_an_unreachable_terminal_is_state_and_recovers(db, writer, clock, zk_terminal, terminal_state, caplog):
    ingest = PunchIngest(writer, clock, "Asia/Shanghai")
    host, port = zk_terminal.address
    worker = TerminalWorker("gate-1", ZKTerminal(host, port, tz=PLANT_TZ, timeout=1), ingest, clock, interval_s=1)
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 8, 0))
    zk_terminal.stop()
    assert worker.poll_once() == 0 and worker.poll_once() == 0
    health = TerminalHealth.get_by_id("gate-1")
    assert not health.available and "no answer" in health.last_error
    assert sum("unavailable" in r.message for r in caplog.records) == 1, "logged once, when it went down"
    with ZKEmulator(terminal_state, host, port):
        assert worker.poll_once() == 1
    assert TerminalHealth.get_by_id("gate-1").available and worker.available


def test_the_log_is_append_only_in_the_database(db, writer):
    writer.append([Entry("boot", {"unclean": False, "sw": "test"})])
    with pytest.raises(pw.IntegrityError, match="append-only"):
        LogRecord.update(type="punch").execute()
    with pytest.raises(pw.IntegrityError, match="append-only"):
        LogRecord.delete().execute()


def test_writer_continues_the_chain_after_a_restart(db, key, clock):
    first = LogWriter(db, key, LOG, clock, boot_id="boot-1")
    first.start()
    first.append([Entry("boot", {"unclean": False, "sw": "test"})])
    second = LogWriter(db, key, LOG, clock, boot_id="boot-2")
    second.start()
    assert second.append([Entry("boot", {"unclean": True, "sw": "test"})]) == [1]
    assert [f["boot_id"] for f, _ in stored_chain(key)] == ["boot-1", "boot-2"]


def test_a_failed_commit_leaves_no_gap_and_no_dangling_link(db, writer, key):
    writer.append([Entry("boot", {"unclean": False, "sw": "t"})])

    def disk_full():
        raise pw.OperationalError("database or disk is full")

    with pytest.raises(pw.OperationalError):
        writer.append([Entry("boot", {"unclean": False, "sw": "t"})], then=disk_full)
    assert writer.append([Entry("boot", {"unclean": False, "sw": "t"})]) == [1]
    assert [f["seq"] for f, _ in stored_chain(key)] == [0, 1]


def test_append_refuses_to_run_inside_someone_elses_transaction(db, writer):
    with db.atomic(), pytest.raises(RuntimeError, match="own its transaction"):
        writer.append([Entry("boot", {"unclean": False, "sw": "t"})])


def test_terminals_polled_at_the_same_moment_all_store(db, writer, key, clock, terminal_state):
    ingest = PunchIngest(writer, clock, "Asia/Shanghai")
    emulators, workers = [], []
    for n in range(4):
        state = TerminalState(serial=f"ZK-{n}", tz=PLANT_TZ)
        for minute in range(30):
            state.punch(f"{n}{minute:03d}", when=datetime(2026, 3, 2, 8, minute))
        emulator = ZKEmulator(state, port=0).start()
        emulators.append(emulator)
        workers.append(
            TerminalWorker(f"gate-{n}", ZKTerminal(*emulator.address, tz=PLANT_TZ), ingest, clock, interval_s=1)
        )
    barrier = threading.Barrier(len(workers))
    results: dict[str, int | BaseException] = {}

    def poll(worker):
        barrier.wait()
        try:
            results[worker.name] = worker.poll_once()
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            results[worker.name] = err

    threads = [threading.Thread(target=poll, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for emulator in emulators:
        emulator.stop()
    assert results == {f"gate-{n}": 30 for n in range(4)}
    assert len(stored_chain(key)) == 120


def test_an_impossible_record_is_kept_once_as_an_incident(db, writer, key, clock, zk_terminal, terminal_state, caplog):
    ingest = PunchIngest(writer, clock, "Asia/Shanghai")
    worker = TerminalWorker("gate-1", ZKTerminal(*zk_terminal.address, tz=PLANT_TZ), ingest, clock, interval_s=1)
    bad = bytearray(encode_attendance_40(1, "1001", datetime(2026, 2, 28, 8, 0), 1, 0))
    bad[27:31] = (wire.encode_time(datetime(2026, 2, 28, 8, 0)) + 2 * 86400).to_bytes(4, "little")  # 30 February
    terminal_state.store_raw(bytes(bad))
    terminal_state.punch("1002", when=datetime(2026, 3, 1, 8, 0))
    assert worker.poll_once() == 1
    assert worker.poll_once() == 0
    incidents = [f for f, _ in stored_chain(key) if f["type"] == "incident"]
    assert len(incidents) == 1 and incidents[0]["term"]["raw"] == bytes(bad).hex()
    assert sum("kept as an incident" in r.message for r in caplog.records) == 1


def test_a_failed_derive_rolls_back_the_record(db, writer):
    def explode(_seq, _ms):
        raise RuntimeError("disk trouble")

    with pytest.raises(RuntimeError):
        writer.append(
            [Entry("boot", {"unclean": False, "sw": "t"}), Entry("boot", {"unclean": False, "sw": "t"}, explode)]
        )
    assert LogRecord.select().count() == 0
    assert writer.append([Entry("boot", {"unclean": False, "sw": "t"})]) == [0]


def test_checkpoints_every_256_records_and_on_demand_verify(db, writer, key):
    writer.append([Entry("seal", {"why": "test"}) for _ in range(600)])  # one burst, one commit
    # every 256 records even inside one commit (a terminal's backlog): sync batches end at checkpoints
    assert [c.size for c in Checkpoint.select().order_by(Checkpoint.size)] == [256, 512]
    writer.append([Entry("seal", {"why": "test"}) for _ in range(10)])
    assert writer.checkpoint() == 610
    assert writer.checkpoint() == 610, "nothing new, no new checkpoint"
    writer.append([Entry("seal", {"why": "test"}) for _ in range(300)])
    assert [c.size for c in Checkpoint.select().order_by(Checkpoint.size)][-1] == 866
    leaves = [bytes(r.leaf) for r in LogRecord.select().order_by(LogRecord.seq)]
    for row in Checkpoint.select():
        checkpoint = note.verify(row.note, key.verify_key)
        assert checkpoint.origin == LOG and checkpoint.root == merkle.root(leaves[: row.size]) == bytes(row.root)


def test_a_restarted_writer_continues_the_tree_from_its_last_checkpoint(db, key, clock):
    first = LogWriter(db, key, LOG, clock, boot_id="boot-1")
    first.start()
    first.append([Entry("seal", {"why": "t"}) for _ in range(5)])
    first.checkpoint()
    first.append([Entry("seal", {"why": "t"}) for _ in range(3)])  # not checkpointed when the power went
    second = LogWriter(db, key, LOG, clock, boot_id="boot-2")
    second.start()
    second.append([Entry("boot", {"unclean": True, "sw": "t"})])
    assert second.checkpoint() == 9
    leaves = [bytes(r.leaf) for r in LogRecord.select().order_by(LogRecord.seq)]
    assert bytes(Checkpoint.get_by_id(9).root) == merkle.root(leaves)


def test_every_record_carries_the_clock_state_and_the_anchor_once_known(db, writer, key):
    writer.append([Entry("seal", {"why": "t"})])
    writer.set_anchor("Y29zaWduYXR1cmUgaGFzaA==")
    writer.append([Entry("seal", {"why": "t"})])
    fields = [f for f, _ in stored_chain(key)]
    assert fields[0]["clk"] == {"sync": 1, "src": "test", "err_us": 1000} and "anchor" not in fields[0]
    assert fields[1]["anchor"] == "Y29zaWduYXR1cmUgaGFzaA=="


def test_an_appliance_up_for_a_year_still_signs_records(db, key):
    """CLOCK_BOOTTIME in nanoseconds passes 2^53 (the format's integer limit) after 104 days up."""
    clock = FrozenClock()
    clock.advance(days=365)
    writer = LogWriter(db, key, LOG, clock, boot_id="boot-1")
    writer.start()
    (seq,) = writer.append([Entry("seal", {"why": "minute"})])
    assert stored_chain(key)[seq][0]["t_boot_us"] > 365 * 86400 * 10**6
