"""Enrolment once for every gate (issue #23.5), on the wire: two ZK emulators, each read by its own
TerminalWorker with the real driver, the master tables as head office fills them.

A worker added at head office is on both terminals at their next poll, a rename follows, a finger enrolled
at gate 1 works at gate 2 after gate 2's next poll, a leaver is removed from both with their stored fingers,
and a terminal that was off is caught up when it is back. Each change is one signed ``action`` record, none
signed again on an unchanged poll, and the template's bytes are nowhere but on the terminals and, sealed,
in the appliance's database.
"""

from __future__ import annotations

import base64
import sqlite3
from datetime import UTC, datetime

import pytest

from appliance.capture import enrolment
from appliance.capture.enrolment import KEY_FILE
from appliance.capture.ingest import PunchIngest
from appliance.capture.poller import TerminalWorker
from appliance.capture.punchlog import LogWriter
from appliance.config import Settings
from appliance.identity import load_or_create_key
from appliance.runtime.daemon import ApplianceDaemon
from appliance.store import (
    Employee,
    EnrolmentState,
    LogRecord,
    StoredTemplate,
    TemplateTombstone,
    TerminalFinger,
    open_db,
)
from firmware_bridge.zk.driver import ZKTerminal
from firmware_bridge.zk.emulator import TerminalState, ZKEmulator
from ledger import GENESIS_PREV, SignedRecord, SigningKey, parse
from ledger.messages import Batch
from ledger.verify import verify_batch
from opskit.migrations import schema_version
from punchproof.broker import free_port
from tests.conftest import PLANT_TZ
from tests.harness.wait import wait_until

LOG = "punchproof/test/pi-01/1"


class Plant:
    """Two terminals (gate-1, gate-2), each with its worker; ``poll()`` is one turn of each worker's loop."""

    def __init__(self, db, key, clock) -> None:
        self.key, self.clock = key, clock
        self.writer = LogWriter(db, key, LOG, clock, boot_id="boot-1")
        self.writer.start()
        self.ingest = PunchIngest(self.writer, clock, "Asia/Shanghai")
        self.states: dict[str, TerminalState] = {}
        self.emulators: dict[str, ZKEmulator] = {}
        self.workers: dict[str, TerminalWorker] = {}
        for n, name in enumerate(("gate-1", "gate-2"), start=1):
            state = TerminalState(serial=f"TEST-ZK-0{n}", tz=PLANT_TZ, now=lambda: datetime.now(UTC))
            state.add_user("1001", "张三")  # enrolled at each keypad before the appliance came
            self.states[name] = state
            self.start(name)

    def start(self, name: str, port: int = 0) -> None:
        emulator = ZKEmulator(self.states[name], port=port).start()
        self.emulators[name] = emulator
        terminal = ZKTerminal(*emulator.address, tz=PLANT_TZ, timeout=1, encoding="gbk")
        self.workers[name] = TerminalWorker(name, terminal, self.ingest, self.clock, interval_s=1)

    def poll(self, *names: str) -> int:
        """Each named worker (all by default) reads punches, then makes its enrolment; records signed."""
        signed = 0
        for name in names or self.workers:
            self.workers[name].poll_once()
            signed += self.workers[name].enrol_once()
        return signed

    def stop(self) -> None:
        for emulator in self.emulators.values():
            emulator.stop()

    def users(self, name: str) -> dict[str, str]:
        return {u.user_id: u.name for u in self.states[name].users}

    def actions(self) -> list[dict]:
        """Every action record, after checking the whole log's chain and signatures."""
        return [f for f in self.verified() if f["type"] == "action"]

    def verified(self) -> list[dict]:
        rows = list(LogRecord.select().order_by(LogRecord.seq))
        batch = Batch(LOG, 0, tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows))
        return [f for f, _ in verify_batch(batch, key=self.key.verify_key, prev=GENESIS_PREV)]


@pytest.fixture
def plant(db, key, clock):
    employ("1001", "张三")
    site = Plant(db, key, clock)
    yield site
    site.stop()


def employ(badge: str, name: str, **fields) -> None:
    Employee.replace(user_id=badge, name=name, source="cloud:7", **fields).execute()


def acts(records: list[dict]) -> list[tuple[str, str, str]]:
    return [(r["act"], r["emp"], r.get("term", {}).get("name", "")) for r in records]


def test_a_worker_added_at_head_office_is_on_every_terminal_at_its_next_poll_and_signed_once(plant):
    assert plant.poll() == 0, "the roster and the terminals agree: nothing to do"
    employ("1003", "王五")
    assert plant.poll() == 2
    assert plant.users("gate-1") == plant.users("gate-2") == {"1001": "张三", "1003": "王五"}
    records = plant.actions()
    assert acts(records) == [("terminal_user_added", "1003", "gate-1"), ("terminal_user_added", "1003", "gate-2")]
    assert records[0]["term"] == {"name": "gate-1", "sn": "TEST-ZK-01"} and records[0]["uid"] == 2
    assert plant.poll() == 0 and plant.poll() == 0, "an unchanged poll signs nothing again"
    before = {name: e.connections for name, e in plant.emulators.items()}
    transfers = {name: s.template_transfers for name, s in plant.states.items()}
    for worker in plant.workers.values():
        assert worker.enrol_once() == 0
    assert {name: e.connections for name, e in plant.emulators.items()} == {n: c + 1 for n, c in before.items()}
    assert {name: s.template_transfers for name, s in plant.states.items()} == transfers, "counts only"
    plant.states["gate-2"].punch("1003")  # the badge punches at gate 2 (by password or card)
    assert plant.poll("gate-2") == 0


def test_a_rename_at_head_office_renames_the_worker_on_every_terminal(plant):
    employ("1001", "张三丰")
    assert plant.poll() == 2
    assert plant.users("gate-1") == plant.users("gate-2") == {"1001": "张三丰"}
    assert acts(plant.actions()) == [
        ("terminal_user_renamed", "1001", "gate-1"),
        ("terminal_user_renamed", "1001", "gate-2"),
    ]
    assert plant.poll() == 0


def test_a_finger_enrolled_at_gate_1_works_at_gate_2_after_its_next_poll_and_is_nowhere_in_clear(plant, tmp_path):
    gate1, gate2 = plant.states["gate-1"], plant.states["gate-2"]
    plant.poll()
    template = gate1.enrol_finger("1001", 6)  # at gate 1's keypad
    assert gate2.present_finger(template) is None
    assert plant.poll() == 2
    assert gate2.finger("1001", 6) == template
    assert gate2.present_finger(template).user_id == "1001", "the finger works at gate 2"
    stored, copied = plant.actions()
    assert (stored["act"], stored["term"]["name"], stored["finger"], stored["size"]) == (
        "template_stored",
        "gate-1",
        6,
        len(template),
    )
    assert (copied["act"], copied["term"]["name"], copied["from"]["name"], copied["size"]) == (
        "template_copied",
        "gate-2",
        "gate-1",
        len(template),
    )
    assert plant.poll() == 0 and plant.poll() == 0
    # nowhere in clear: not in a record, not in what the uplink sends, not in the database's files
    forms = [template, template.hex().encode(), base64.b64encode(template), template[:64], template[-64:]]
    rows = list(LogRecord.select().order_by(LogRecord.seq))
    batch = Batch(LOG, 0, tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows)).encode()
    for form in forms:
        assert form not in batch
        assert not any(form in bytes(r.data) for r in rows)
    (row,) = StoredTemplate.select()
    assert (row.user_id, row.finger, row.size, row.terminal) == ("1001", 6, len(template), "gate-1")
    assert template[:64] not in bytes(row.sealed)
    files = b"".join(p.read_bytes() for p in tmp_path.glob("appliance.sqlite3*"))
    assert not any(form in files for form in forms), "the database file, its WAL included"
    key_file = tmp_path / KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_bytes()) == 32


def test_a_leaver_is_removed_from_every_terminal_and_their_stored_fingers_deleted(plant, clock):
    employ("1002", "李四", valid_to="2026-03-02")  # the last day: on the roster until midnight
    gate1 = plant.states["gate-1"]
    plant.poll()
    zhang = gate1.enrol_finger("1001", 1)
    li = gate1.enrol_finger("1002", 2)
    plant.poll()
    assert plant.states["gate-2"].fingers("1002") == {2: li}
    employ("1001", "张三", active=False)  # head office ends 张三's badge
    assert plant.poll() == 3
    assert acts(plant.actions()[-3:]) == [
        ("templates_deleted", "1001", ""),
        ("terminal_user_removed", "1001", "gate-1"),
        ("terminal_user_removed", "1001", "gate-2"),
    ]
    assert "1001" not in plant.users("gate-1") and "1001" not in plant.users("gate-2")
    assert plant.states["gate-2"].present_finger(zhang) is None
    assert not StoredTemplate.select().where(StoredTemplate.user_id == "1001").exists(), "no row for the leaver"
    assert not TerminalFinger.select().where(TerminalFinger.user_id == "1001").exists()
    clock.advance(days=1)  # 2026-03-03 in Shanghai: 李四's valid_to has passed
    assert plant.poll() == 3
    removed = plant.actions()[-3:]
    assert acts(removed)[0] == ("templates_deleted", "1002", "")
    assert removed[0]["fingers"] == [2] and removed[1]["reason"] == "valid_to 2026-03-02 passed"
    assert plant.users("gate-1") == plant.users("gate-2") == {}
    assert StoredTemplate.select().count() == 0 and plant.poll() == 0


def test_a_terminal_that_was_off_is_caught_up_when_it_is_back(plant):
    plant.poll()
    host, port = plant.emulators["gate-2"].address
    plant.emulators["gate-2"].stop()
    employ("1003", "王五")
    template = plant.states["gate-1"].enrol_finger("1001", 0)
    assert plant.poll() == 2, "gate 1 only: the user added, the finger stored"
    assert plant.workers["gate-2"].available is False and "1003" not in plant.users("gate-2")
    plant.emulators["gate-2"] = ZKEmulator(plant.states["gate-2"], host, port).start()
    assert plant.poll() == 2
    assert plant.users("gate-2") == {"1001": "张三", "1003": "王五"}
    assert plant.states["gate-2"].present_finger(template).user_id == "1001"


def test_a_finger_deleted_at_one_terminals_menu_is_deleted_everywhere(plant):
    gate1, gate2 = plant.states["gate-1"], plant.states["gate-2"]
    template = gate1.enrol_finger("1001", 4)
    plant.poll()
    plant.poll()
    assert gate2.finger("1001", 4) == template
    gate2.remove_finger("1001", 4)  # the plant's IT deletes it at gate 2's menu
    assert plant.poll("gate-2", "gate-1") == 2  # gate 2 sees it gone, then gate 1 at its next poll
    assert gate1.finger("1001", 4) is None and gate1.present_finger(template) is None
    assert acts(plant.actions()[-2:]) == [
        ("template_removed", "1001", "gate-2"),
        ("template_removed", "1001", "gate-1"),
    ]
    assert plant.actions()[-1]["reason"] == "deleted at gate-2's menu"
    assert StoredTemplate.select().count() == 0 and TemplateTombstone.select().count() == 1
    gate1.serial = "TEST-ZK-09"  # gate 1 swapped for a spare loaded from an old backup: the finger is back
    gate1.enrol_finger("1001", 4, template=template)
    assert plant.poll("gate-1") == 1 and plant.actions()[-1]["act"] == "template_removed"
    assert gate1.finger("1001", 4) is None and StoredTemplate.select().count() == 0, "deleted, not kept again"
    again = gate1.enrol_finger("1001", 4, template=template[::-1])  # enrolled again later: copied again
    assert plant.poll() == 2 and gate2.finger("1001", 4) == again and TemplateTombstone.select().count() == 0


def test_a_database_restored_without_its_template_key_refills_from_the_terminals_and_deletes_nothing(
    plant, db, key, clock, tmp_path
):
    template = plant.states["gate-1"].enrol_finger("1001", 5)
    plant.poll()
    plant.poll()
    before = len(plant.actions())
    (tmp_path / KEY_FILE).unlink()  # a backup restored on a new Pi: the database without the template key
    for emulator in plant.emulators.values():
        emulator.stop()
    restored = Plant(db, key, clock)  # a new daemon: its workers make a new key at the first use
    restored.states = plant.states
    for name in ("gate-1", "gate-2"):
        restored.start(name)
    try:
        restored.poll()
        (again,) = restored.actions()[before:]  # nothing deleted anywhere, nothing copied: kept again, once
        assert (again["act"], again["term"]["name"], again["finger"]) == ("template_stored", "gate-1", 5)
        assert all(s.finger("1001", 5) == template for s in plant.states.values())
        (row,) = StoredTemplate.select()
        assert row.key_id == restored.workers["gate-1"]._enrolment._vault_().key_id
        assert restored.poll() == 0
    finally:
        restored.stop()


def test_a_big_roster_reaches_a_terminal_over_a_few_polls_and_punches_are_read_first(plant):
    for n in range(120):
        employ(str(2000 + n), f"工人{n}")
    plant.states["gate-1"].punch("1001")
    worker = plant.workers["gate-1"]
    assert worker.poll_once() == 1, "the punch is read before any enrolment work"
    assert worker.enrol_once() == 50  # MAX_STEPS: the terminal is disabled for a bounded batch
    assert plant.states["gate-1"].enabled
    assert worker.enrol_once() == 50 and worker.enrol_once() == 20 and worker.enrol_once() == 0
    assert len(plant.users("gate-1")) == 121


def test_a_terminal_full_of_fingers_is_stored_a_bounded_batch_a_poll(plant, monkeypatch):
    monkeypatch.setattr(enrolment, "MAX_FOUND", 2)
    for n in range(5):
        employ(str(3000 + n), f"工人{n}")
    plant.poll("gate-1")
    for n in range(5):
        plant.states["gate-1"].enrol_finger(str(3000 + n), 1)
    worker = plant.workers["gate-1"]
    assert [worker.enrol_once() for _ in range(4)] == [2, 2, 1, 0]
    assert StoredTemplate.select().count() == 5


def test_users_the_roster_does_not_know_are_left_alone_and_without_a_roster_nothing_is_done(db, key, clock):
    site = Plant(db, key, clock)
    try:
        site.states["gate-1"].add_user("9", "管理员", privilege=14)  # the installer's admin
        before = site.emulators["gate-1"].connections
        assert site.workers["gate-1"].enrol_once() == 0 and site.emulators["gate-1"].connections == before
        site.poll()
        assert site.emulators["gate-1"].connections == before + 1, "the punch read only: no roster, no enrolment"
        employ("1003", "王五")
        assert site.poll() == 2
        assert site.users("gate-1") == {"1001": "张三", "9": "管理员", "1003": "王五"}
    finally:
        site.stop()


def test_a_database_from_before_enrolment_gains_its_tables(tmp_path):
    path = tmp_path / "appliance.sqlite3"
    open_db(path).close()
    with sqlite3.connect(path) as conn:  # as the release before left it
        for table in ("stored_template", "template_tombstone", "terminal_finger", "enrolment_state"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DELETE FROM schema_version WHERE version >= 4")
    db = open_db(path)
    try:
        assert schema_version(db) >= 4  # and every migration after it
        assert EnrolmentState.select().count() == 0 and StoredTemplate.select().count() == 0
        StoredTemplate.create(
            user_id="1", finger=0, sealed=b"x", mac="m", size=1, key_id="k", terminal="gate-1", stored_ms=1
        )
    finally:
        db.close()


def daemon_with_gates(tmp_path, states, clock) -> tuple[list[ZKEmulator], ApplianceDaemon]:
    """An emulated ZK gate for each of ``states`` (gate-1, gate-2, ...) and the real daemon reading them, started."""
    emulators = [ZKEmulator(state, port=0).start() for state in states]
    cloud_key = tmp_path / "cloud-witness.pub"
    cloud_key.write_text(SigningKey.generate().verify_key.pem())
    terminals = [
        {"name": f"gate-{n}", "host": e.address[0], "port": e.address[1], "poll_seconds": 0.2, "live": False}
        for n, e in enumerate(emulators, start=1)
    ]
    settings = Settings.from_dict(
        {
            "plant": {"id": "test-plant", "timezone": "Asia/Shanghai"},
            "appliance": {"id": "pi-01", "state_dir": str(tmp_path / "state")},
            "mqtt": {"host": "127.0.0.1", "port": free_port(), "cloud_key_file": str(cloud_key)},
            "terminals": terminals,
        },
        source=str(tmp_path / "appliance.toml"),
    )
    daemon = ApplianceDaemon(settings, clock=clock)
    daemon.start()
    return emulators, daemon


def test_the_daemon_puts_a_new_worker_on_both_gates_and_copies_a_finger_within_a_poll(tmp_path, clock):
    states = [TerminalState(serial=f"TEST-ZK-0{n}", tz=PLANT_TZ) for n in (1, 2)]
    emulators, daemon = daemon_with_gates(tmp_path, states, clock)
    try:
        employ("1003", "王五")  # as the cloud's configuration writes it, in the daemon's process
        wait_until(lambda: all(s.user("1003") for s in states), timeout=10, message="1003 on both gates")
        template = states[0].enrol_finger("1003", 2)
        wait_until(lambda: states[1].finger("1003", 2) == template, timeout=10, message="the finger at gate 2")
        assert states[1].present_finger(template).user_id == "1003"
    finally:
        daemon.stop()
        for emulator in emulators:
            emulator.stop()
    rows = list(LogRecord.select().order_by(LogRecord.seq))
    key = load_or_create_key(daemon.settings.key_path)
    batch = Batch(daemon.settings.log_origin, 0, tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows))
    verify_batch(batch, key=key.verify_key, prev=GENESIS_PREV)
    records = [parse(bytes(r.data)) for r in rows if r.type == "action"]
    assert sorted(acts(records)) == [
        ("template_copied", "1003", "gate-2"),
        ("template_stored", "1003", "gate-1"),
        ("terminal_user_added", "1003", "gate-1"),
        ("terminal_user_added", "1003", "gate-2"),
    ]
    assert template.hex().encode() not in batch.encode() and template[:64] not in batch.encode()
    assert (tmp_path / "state" / KEY_FILE).stat().st_mode & 0o777 == 0o600
