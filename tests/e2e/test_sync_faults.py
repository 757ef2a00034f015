"""Sync faults against real processes, a real Mosquitto and the ZK emulator.

Each test injects one fault, then checks the outcome the issue asks for: every punch in the cloud
exactly once, the cloud's copy verifies as one chain, the appliance's cursor at its head, and
nothing needed by hand beyond restarting what died (as systemd would).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from firmware_bridge.zk.emulator_state import StoredPunch
from ledger import SigningKey, make_record, topics
from ledger.messages import Batch
from tests.e2e.test_first_punch import assert_cloud_holds_what_was_acked
from tests.harness.http import WebClient
from tests.harness.requires import missing
from tests.harness.system import PLANT, System, cli
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def system(tmp_path, broker, zk_terminal):
    chain = System(tmp_path, broker.port, zk_terminal.address).configure(ack_timeout_s=3)
    yield chain
    chain.stop_all()


def head(system):
    return system.appliance_rows("SELECT max(seq) FROM log_record")[0][0]


def assert_exactly_once(system, expected: int, timeout: float = 60):
    """Every punch the terminal holds is in the cloud once, the chain verifies, the cursor is at the head."""
    wait_until(lambda: len(system.cloud_punches()) >= expected, timeout=timeout, message=f"{expected} punches")
    wait_until(lambda: system.acked_seq() == head(system), timeout=timeout, message="the cursor at the head")
    rows = system.cloud_punches()
    seqs = [seq for _, _, seq in rows]
    assert len(rows) == expected and len(set(seqs)) == expected, "a punch is missing or counted twice"
    assert len(set(system.cloud_rows("SELECT employee, device_time FROM punch"))) == expected
    assert_cloud_holds_what_was_acked(system)


def punch_minutes(state, count: int, start: datetime = datetime(2026, 3, 2, 7, 0)):
    for minute in range(count):
        state.punch("1001" if minute % 2 else "1002", when=start + timedelta(minutes=minute))


def test_appliance_killed_between_its_commit_and_the_publish(system, terminal_state):
    system.start_ingest()
    system.start_appliance(failpoints="sync.before_publish=1")
    punch_minutes(terminal_state, 3)
    assert system.reap("appliance") == -signal.SIGKILL
    assert len(system.cloud_punches()) == 0
    system.start_appliance()
    punch_minutes(terminal_state, 2, datetime(2026, 3, 2, 8, 0))
    assert_exactly_once(system, 5)


def test_appliance_killed_between_the_publish_and_the_acknowledgement(system, terminal_state):
    system.start_ingest()
    system.start_appliance(failpoints="sync.after_puback=1")
    punch_minutes(terminal_state, 3)
    assert system.reap("appliance") == -signal.SIGKILL
    system.start_appliance()
    punch_minutes(terminal_state, 2, datetime(2026, 3, 2, 8, 0))
    assert_exactly_once(system, 5)


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def test_cloud_worker_killed_after_its_commit_and_before_its_acknowledgement(system, terminal_state):
    worker = system.start_ingest(failpoints="ingest.before_ack=1")
    system.start_appliance()
    punch_minutes(terminal_state, 3)
    parsers = wait_until(lambda: children(worker.pid), timeout=20, message="the worker's parser processes")
    assert system.reap("ingest") == -signal.SIGKILL
    wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in parsers), timeout=20, message="parsers gone")
    stored = system.cloud_rows("SELECT seq FROM log_head")[0][0]
    assert stored >= 0, "the worker committed before it died"
    assert system.acked_seq() < stored, "the appliance moved its cursor without an acknowledgement"
    system.start_ingest()
    assert_exactly_once(system, 3)


def test_broker_down_with_100000_punches_queued_then_killed_mid_drain(system, broker, terminal_state):
    system.start_ingest()
    system.start_appliance()
    punch_minutes(terminal_state, 1)
    assert_exactly_once(system, 1)
    broker.kill()
    start = datetime(2026, 3, 3, 0, 0)
    with terminal_state.lock:  # straight into the terminal's log: 100,000 punches taken while the link was down
        terminal_state.punches.extend(
            StoredPunch(1, "1001", start + timedelta(seconds=3 * i), 1, i % 2) for i in range(100_000)
        )
    wait_until(
        lambda: system.appliance_rows("SELECT count(*) FROM punch")[0][0] == 100_001,
        timeout=300,
        message="the appliance to read and sign the backlog",
    )
    broker.start()
    wait_until(lambda: system.cloud_rows("SELECT seq FROM log_head")[0][0] > 2_000, timeout=60, message="drain")
    broker.kill()  # mid-drain: batches in flight at the broker are lost with it
    broker.start()
    assert_exactly_once(system, 100_001, timeout=300)


def capture(broker, topic_filter: str):
    """A client that records every message on ``topic_filter``, as an eavesdropper on the broker would."""
    seen: list[tuple[str, bytes]] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, m: seen.append((m.topic, m.payload))
    client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client, seen


def publish(client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)


def quarantined(system):
    return [reason for (reason,) in system.cloud_rows("SELECT reason FROM quarantine ORDER BY id")]


def test_duplicate_out_of_order_and_replayed_ranges_are_stored_once(system, broker, terminal_state):
    spy, seen = capture(broker, topics.batch(PLANT, "+"))
    wait_until(lambda: spy.is_connected(), timeout=10, message="the spy connected")
    system.start_ingest()
    system.start_appliance()
    for hour in range(4):  # separate batches: one punch each, acknowledged before the next
        terminal_state.punch("1001", when=datetime(2026, 3, 2, 7 + hour, 0))
        assert_exactly_once(system, hour + 1)
    batches = [payload for _, payload in seen]
    assert len(batches) >= 4
    for payload in [*reversed(batches), *batches, batches[0]]:  # twice, backwards, then the first again
        publish(spy, topics.batch(PLANT, "pi-01"), payload)
    terminal_state.punch("1002", when=datetime(2026, 3, 2, 12, 0))  # later, a day's replay in spirit: still once
    for payload in batches:
        publish(spy, topics.batch(PLANT, "pi-01"), payload)
    assert_exactly_once(system, 5)
    assert quarantined(system) == [], "a repeated range is answered as a duplicate, not treated as an attack"
    spy.loop_stop()


def test_forged_unknown_malformed_and_oversized_messages_are_quarantined_and_ingest_goes_on(
    system, broker, terminal_state
):
    system.start_ingest()
    system.start_appliance()
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 0))
    assert_exactly_once(system, 1)
    identity = json.loads((system.root / "identity.json").read_text())
    (next_seq, prev) = system.cloud_rows("SELECT seq + 1, leaf FROM log_head")[0]
    thief = SigningKey.generate()
    term = {"sn": "TEST-ZK-01", "name": "gate-1", "t": "2026-03-02T07:30:00", "tz": "Asia/Shanghai", "state": 0}
    term |= {"verify": 1, "uid": 1, "wc": 0, "idx": 0, "off_ms": 0, "raw": ""}
    forged = make_record(
        key=thief,
        log=identity["log"],
        seq=next_seq,
        type="punch",
        prev=bytes(prev),
        t_wall_ms=0,
        emp="1001",
        src="zk",
        term=term,
    )
    attacker = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    attacker.connect(broker.host, broker.port)
    attacker.loop_start()
    mine = topics.batch(PLANT, "pi-01")
    publish(attacker, mine, Batch(identity["log"], next_seq, (forged,)).encode())
    publish(attacker, topics.live(PLANT, "pi-01"), Batch(identity["log"], next_seq, (forged,)).encode())
    publish(attacker, topics.batch(PLANT, "pi-99"), Batch("punchproof/x/pi-99/1", 0, (forged,)).encode())
    publish(attacker, mine, b"\xff not a batch")
    publish(attacker, mine, b"{" + b" " * (600 * 1024) + b"}")
    attacker.loop_stop()
    reasons = wait_until(lambda: len(quarantined(system)) >= 5 and quarantined(system), timeout=20, message="5 alarms")
    assert any("not registered for this appliance" in r for r in reasons), reasons  # the thief's key
    assert any(r.startswith("live lane:") and "not registered" in r for r in reasons), reasons
    assert any("pi-99 is not registered" in r for r in reasons), reasons
    assert any("not JSON" in r for r in reasons), reasons
    assert any("exceeds" in r for r in reasons), reasons
    terminal_state.punch("1002", when=datetime(2026, 3, 2, 8, 0))  # the worker kept going
    assert_exactly_once(system, 2)
    assert system.cloud_rows("SELECT count(*) FROM provisional_record") == [(0,)]


def test_a_revoked_key_stops_its_records_and_says_so(system, terminal_state):
    system.start_ingest()
    system.start_appliance()
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 0))
    assert_exactly_once(system, 1)
    kid = json.loads((system.root / "identity.json").read_text())["kid"]
    cli("cloud", "revoke-key", "-c", system.cloud_conf, kid)
    terminal_state.punch("1002", when=datetime(2026, 3, 2, 8, 0))
    reasons = wait_until(lambda: quarantined(system), timeout=20, message="the revoked key's batch quarantined")
    assert any("revoked" in r for r in reasons), reasons
    assert len(system.cloud_punches()) == 1
    wait_until(
        lambda: "revoked" in system.appliance_rows("SELECT last_error FROM sync_state")[0][0],
        timeout=20,
        message="the appliance to show why",
    )


def test_new_punches_overtake_a_backlog_on_the_live_lane(tmp_path, broker, zk_terminal, terminal_state):
    # A slow backlog lane (small batches, one in flight) so that the backlog is still draining when the new punch comes.
    system = System(tmp_path, broker.port, zk_terminal.address).configure()
    text = system.appliance_conf.read_text().replace("[mqtt]\n", "[mqtt]\nbatch_records = 8\ninflight = 1\n")
    system.appliance_conf.write_text(text)
    try:
        system.start_appliance()
        with terminal_state.lock:
            terminal_state.punches.extend(
                StoredPunch(1, "1001", datetime(2026, 3, 1, 0, 0) + timedelta(seconds=i), 1, 0) for i in range(5_000)
            )
        wait_until(lambda: system.appliance_rows("SELECT count(*) FROM punch")[0][0] == 5_000, timeout=60)
        system.start_ingest()
        wait_until(lambda: system.cloud_rows("SELECT seq FROM log_head")[0][0] > 0, timeout=30, message="drain")
        terminal_state.punch("1002", when=datetime(2026, 3, 2, 8, 0))
        live = "SELECT employee, seq FROM provisional_record WHERE type = 'punch'"
        (employee, seq) = wait_until(lambda: system.cloud_rows(live), timeout=10, message="the live lane")[0]
        assert employee == "1002"
        assert system.cloud_rows("SELECT seq FROM log_head")[0][0] < seq, "it overtook the backlog"
        assert_exactly_once(system, 5_001, timeout=300)
        assert system.cloud_rows("SELECT count(*) FROM provisional_record") == [(0,)], "settled into the chain"
    finally:
        system.stop_all()


def test_a_terminal_that_goes_dark_is_shown_in_the_cloud(system, zk_terminal, terminal_state):
    system.start_ingest()
    system.start_appliance()
    devices = "SELECT terminal, available FROM device_status"
    wait_until(lambda: system.cloud_rows(devices) == [("gate-1", 1)], timeout=30, message="the terminal up")
    zk_terminal.stop()
    wait_until(lambda: system.cloud_rows(devices) == [("gate-1", 0)], timeout=60, message="the terminal down")
    (error,) = system.cloud_rows("SELECT error FROM device_status")[0]
    assert error, "the reason travels with it"


def test_two_workers_on_postgresql_share_the_stream_and_one_is_killed_mid_stream(
    tmp_path, broker, zk_terminal, terminal_state, postgres_url
):
    punches = 8_000  # 125 batches of 64: both workers take batches well before and after the kill
    system = System(tmp_path, broker.port, zk_terminal.address).configure(
        ack_timeout_s=3, database_url=postgres_url, shared=True
    )
    text = system.appliance_conf.read_text().replace("[mqtt]\n", "[mqtt]\nbatch_records = 64\n")
    system.appliance_conf.write_text(text)
    try:
        system.start_appliance()
        with terminal_state.lock:
            terminal_state.punches.extend(
                StoredPunch(1, "1001", datetime(2026, 3, 1, 0, 0) + timedelta(seconds=i), 1, 0) for i in range(punches)
            )
        wait_until(lambda: system.appliance_rows("SELECT count(*) FROM punch")[0][0] == punches, timeout=60)
        system.start_ingest("ingest-a", worker_id="a")
        system.start_ingest("ingest-b", worker_id="b")
        drained = lambda: system.cloud_rows("SELECT seq FROM log_head")[0][0] > punches // 5  # noqa: E731
        wait_until(drained, timeout=60, message="drain")
        system.processes["ingest-a"].send_signal(signal.SIGKILL)
        assert system.reap("ingest-a") == -signal.SIGKILL
        assert_exactly_once(system, punches, timeout=300)
        both = system.log("ingest-a") + system.log("ingest-b")
        assert "ingest worker a connected" in both and "ingest worker b connected" in both
        assert "stored seq" in system.log("ingest-a") and "stored seq" in system.log("ingest-b"), "the work was shared"
    finally:
        system.stop_all()


@pytest.fixture
def small_disk(tmp_path):
    """A real 96 MB filesystem for the appliance's state (tmpfs), so the disk really fills: ENOSPC."""
    if os.geteuid() != 0:
        missing("mounting a small filesystem needs root (CI runs as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Take every free block, as a runaway log file would."""
    fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 65536):
            pass
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_appliance_disk_full_alarms_keeps_punches_on_the_terminal_and_recovers(
    tmp_path, broker, zk_terminal, terminal_state, small_disk
):
    system = System(tmp_path, broker.port, zk_terminal.address)
    system.configure(register=False)
    text = system.appliance_conf.read_text().replace(str(tmp_path / "appliance"), str(small_disk))
    system.appliance_conf.write_text(text)
    shutil.copytree(tmp_path / "appliance", small_disk, dirs_exist_ok=True)  # its key, as init wrote it
    system.appliance_rows = lambda sql: _rows(small_disk / "appliance.sqlite3", sql)  # type: ignore[method-assign]
    system.register()
    try:
        system.start_ingest()
        system.start_appliance()
        punch_minutes(terminal_state, 2)
        assert_exactly_once(system, 2)
        cli("appliance", "create-user", "-c", system.appliance_conf, "it", "--password-stdin", stdin="pw 1234 5678\n")
        page = WebClient(f"http://127.0.0.1:{system.start_web('appliance')}")
        wait_until(lambda: page.get("/login")[0] == 200, timeout=20, message="the plant pages")
        fill(small_disk)
        punch_minutes(terminal_state, 5, datetime(2026, 3, 2, 9, 0))
        wait_until(lambda: "存储空间已满" in system.log("appliance"), timeout=30, message="the alarm in the journal")
        assert "Traceback" not in system.log("appliance"), "the alarm says what to do, without a stack trace"
        assert len(system.cloud_punches()) == 2
        assert len(terminal_state.punches) == 7, "the punches stay on the terminal"
        assert 'id="disk-alarm"' in page.login("it", "pw 1234 5678")[1], "the plant manager sees it"
        (small_disk / "filler").unlink()
        assert_exactly_once(system, 7)
        assert "存储空间已恢复" in system.log("appliance")
        assert 'id="disk-alarm"' not in page.get("/")[1]
        assert system.appliance_rows("PRAGMA integrity_check") == [("ok",)]
    finally:
        system.stop_all()


def _rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()
