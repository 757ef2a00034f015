"""The first punch, end to end, with real processes and a real Mosquitto:

emulated ZK terminal -> appliance (pyzk, sign, SQLite) -> MQTT -> cloud (verify, store, acknowledge)
-> appliance marks it synced; and the pages, served by gunicorn, show it behind a login.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime

import paho.mqtt.client as mqtt
import pytest

from ledger import GENESIS_PREV, SignedRecord, SigningKey, VerifyKey, note, topics
from ledger.messages import Ack, Batch
from ledger.verify import verify_batch
from tests.harness.http import WebClient
from tests.harness.system import System, cli
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def system(tmp_path, broker, zk_terminal):
    chain = System(tmp_path, broker.port, zk_terminal.address).configure()
    yield chain
    chain.stop_all_cleanly()


def verify_cloud_chain(system):
    """The cloud's copy verifies as one unbroken chain under the appliance's registered key."""
    identity = json.loads((system.root / "identity.json").read_text())
    rows = system.cloud_rows("SELECT data, sig FROM log_record ORDER BY seq")
    batch = Batch(identity["log"], 0, tuple(SignedRecord(bytes(d), bytes(s)) for d, s in rows))
    verify_batch(batch, key=VerifyKey.from_pem(identity["public_key"]), prev=GENESIS_PREV)
    return len(rows)


def assert_cloud_holds_what_was_acked(system) -> int:
    """Every record the appliance holds as acknowledged is in the cloud's chain, verified from genesis.

    The acknowledged seq is read first: the daemon goes on sealing and syncing while the chain is
    verified (seconds, for 100,000 records), and reading it afterwards compared two moments — a
    seal acknowledged meanwhile failed the test (issue #18)."""
    acked = system.acked_seq()
    verified = verify_cloud_chain(system)
    assert verified >= acked + 1, f"the appliance holds seq {acked} as acknowledged; the cloud's chain has {verified}"
    return verified


def test_a_punch_reaches_the_cloud_and_is_marked_synced(system, terminal_state):
    system.start_ingest()
    system.start_appliance()
    terminal_state.punch("1001", state=0, when=datetime(2026, 3, 2, 7, 58, 0))
    rows = wait_until(lambda: system.cloud_punches(), timeout=20, message="the punch in the cloud")
    assert [(e, t) for e, t, _ in rows] == [("1001", "2026-03-02T07:58:00")]
    seq = rows[0][2]
    wait_until(lambda: system.acked_seq() >= seq, timeout=10, message="the appliance to mark it synced")
    head_hash = system.cloud_rows("SELECT leaf FROM log_head")[0][0]
    local_hash = system.appliance_rows(f"SELECT leaf FROM log_record WHERE seq = {system.acked_seq()}")[0][0]
    assert head_hash == local_hash
    assert_cloud_holds_what_was_acked(system)
    # The checkpoint that ended the batch came back cosigned by the cloud, and the appliance kept it.
    cloud_key = VerifyKey.from_pem((system.root / "cloud" / "cloud-witness.pub").read_text())
    size, line = wait_until(
        lambda: system.appliance_rows("SELECT size, line FROM cosignature"),
        timeout=10,
        message="a cosignature on the appliance",
    )[0]
    (checkpoint,) = system.appliance_rows(f"SELECT note FROM checkpoint WHERE size = {size}")[0]
    assert note.verify_cosignature(checkpoint + line, cloud_key, "punchproof-cloud/witness") > 0
    status = "SELECT status FROM appliance"
    wait_until(lambda: system.cloud_rows(status) == [("online",)], timeout=10, message="the appliance online")
    assert system.stop("appliance") == 0
    wait_until(lambda: system.cloud_rows(status) == [("offline",)], timeout=10, message="the appliance offline")


def test_punches_made_while_the_broker_is_down_arrive_once(system, broker, terminal_state):
    system.start_ingest()
    system.start_appliance()
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 50))
    wait_until(lambda: len(system.cloud_punches()) == 1, timeout=20, message="the first punch")
    broker.kill()
    for minute in range(5):
        terminal_state.punch("1002", when=datetime(2026, 3, 2, 7, 51 + minute))
    wait_until(
        lambda: system.appliance_rows("SELECT count(*) FROM punch")[0][0] == 6,
        timeout=10,
        message="the appliance to store the punches while the broker is down",
    )
    broker.start()
    wait_until(lambda: len(system.cloud_punches()) == 6, timeout=40, message="the backlog in the cloud")
    wait_until(
        lambda: system.acked_seq() == system.appliance_rows("SELECT max(seq) FROM log_record")[0][0],
        timeout=20,
        message="every record acknowledged",
    )
    employees = [e for e, _, _ in system.cloud_punches()]
    assert employees == ["1001"] + ["1002"] * 5
    assert_cloud_holds_what_was_acked(system)


def test_pages_need_a_login_and_show_the_punch(system, terminal_state):
    cli("cloud", "create-user", "-c", system.cloud_conf, "hr", "--password-stdin", stdin="correct horse 1\n")
    cli("appliance", "create-user", "-c", system.appliance_conf, "boss", "--password-stdin", stdin="battery staple 2\n")
    system.start_ingest()
    system.start_appliance()
    cloud = WebClient(f"http://127.0.0.1:{system.start_web('cloud')}")
    plant = WebClient(f"http://127.0.0.1:{system.start_web('appliance')}")
    now = terminal_state.device_now()
    terminal_state.punch("1002", state=1, when=now)
    wait_until(lambda: system.cloud_punches(), timeout=60, message="the punch in the cloud")
    sites = ((cloud, "hr", "correct horse 1", "/devices"), (plant, "boss", "battery staple 2", "/"))
    for client, user, password, punches in sites:  # head office opens on HR's queue; its punches are under /devices
        wait_until(lambda c=client: c.get("/login")[0] == 200, timeout=20, message="gunicorn to serve")
        for path in {"/", punches}:
            status, page = client.get(path)
            assert status == 200 and 'name="password"' in page, f"{path} must not show without a login"
        assert client.login(user, "wrong password")[0] == 401
        assert client.login(user, password)[0] == 200
        status, page = client.get(punches)
        assert status == 200 and 'data-employee="1002"' in page
        assert now.strftime("%H:%M:%S") in page, "times are shown in the plant's zone"
        assert "下班" in page, "Chinese is the default language"
        assert "Sign out" in client.get("/?lang=en")[1]
    page = wait_until(lambda: 'data-terminal="gate-1"' in (p := cloud.get("/devices")[1]) and p, timeout=20)
    assert "gate-1 Up" in page or "gate-1 up" in page, "head office sees the plant's terminal is up"


def test_an_unregistered_appliance_is_told_why_backs_off_and_recovers(tmp_path, broker, zk_terminal, terminal_state):
    system = System(tmp_path, broker.port, zk_terminal.address).configure(register=False, ack_timeout_s=0.5)
    try:
        system.start_ingest()
        system.start_appliance()
        terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 58))
        error = wait_until(
            lambda: system.appliance_rows("SELECT last_error FROM sync_state")[0][0],
            timeout=20,
            message="the rejection shown on the appliance",
        )
        assert "not registered" in error and "register-appliance" in error
        quarantined = "SELECT received_ms FROM quarantine ORDER BY received_ms"
        # Pauses of 0.5, 1 and 2 s allow at most 4 attempts of at most 2 batches in 3 s; a loop without
        # backoff would send hundreds.
        times = wait_until(
            lambda: (rows := system.cloud_rows(quarantined)) and rows[-1][0] - rows[0][0] >= 3000 and rows,
            timeout=20,
            message="three seconds of rejected attempts",
        )
        assert len([t for (t,) in times if t - times[0][0] <= 3000]) <= 8, "resends back off instead of spinning"
        system.register()
        wait_until(lambda: system.cloud_punches(), timeout=30, message="the punch after registration")
        assert system.processes["ingest"].poll() is None, "the ingest worker keeps running"
    finally:
        codes = system.stop_all()
    assert set(codes.values()) == {0}


def test_an_appliance_restored_from_an_old_backup_does_not_silently_continue(system, terminal_state):
    system.start_ingest()
    system.start_appliance()
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 50))
    wait_until(lambda: len(system.cloud_punches()) == 1, timeout=60, message="the first punch")
    assert system.stop("appliance") == 0
    database = system.root / "appliance" / "appliance.sqlite3"
    backup = database.read_bytes()  # the database is checkpointed and closed after a clean stop
    system.start_appliance()
    terminal_state.punch("1002", when=datetime(2026, 3, 2, 7, 51))
    wait_until(lambda: len(system.cloud_punches()) == 2, timeout=20, message="the second punch")
    assert system.stop("appliance") == 0
    database.write_bytes(backup)  # restore the old backup: the cloud has seen more than it holds
    cloud_head = system.cloud_rows("SELECT seq FROM log_head")[0][0]
    system.start_appliance()
    error = wait_until(
        lambda: system.appliance_rows("SELECT last_error FROM sync_state")[0][0],
        timeout=20,
        message="the divergence reported on the appliance",
    )
    assert "restored from an old backup" in error
    assert system.cloud_rows("SELECT seq FROM log_head")[0][0] == cloud_head, "the cloud keeps its history"
    assert [e for e, _, _ in system.cloud_punches()] == ["1001", "1002"]


def last_error(system):
    return system.appliance_rows("SELECT last_error FROM sync_state")[0][0]


def test_only_acknowledgements_signed_by_the_cloud_count(system, broker, terminal_state):
    system.start_appliance()  # no cloud yet: whatever acknowledges here is not the cloud
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 50))
    wait_until(
        lambda: system.appliance_rows("SELECT count(*) FROM punch")[0][0] == 1,
        timeout=20,
        message="the punch stored on the appliance",
    )
    wait_until(
        lambda: system.appliance_rows("SELECT connected FROM sync_state")[0][0],
        timeout=10,
        message="the appliance on the broker",
    )
    log_name = json.loads((system.root / "identity.json").read_text())["log"]
    head_seq, head_leaf = system.appliance_rows("SELECT seq, leaf FROM log_record ORDER BY seq DESC LIMIT 1")[0]
    # Anyone on the broker can read the hashes: an ack with the right hash but no cloud signature...
    true_hash = base64.b64encode(head_leaf).decode()
    unsigned = Ack(log_name, "ok", head_seq, true_hash, 0, head_seq)
    # ... or signed by some other key, must not move the cursor.
    stranger = Ack(log_name, "ok", head_seq, true_hash, 0, head_seq).signed(SigningKey.generate())
    cloud_key = SigningKey.load(system.root / "cloud" / "keys" / "cloud-witness.pem")
    diverged = Ack(log_name, "duplicate", head_seq, base64.b64encode(b"\x07" * 32).decode(), 0, head_seq)
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    ack_topic = topics.ack("e2e-plant", "pi-01")
    try:
        for n, forged in enumerate((unsigned, stranger), start=1):
            publisher.publish(ack_topic, forged.encode(), qos=1).wait_for_publish(5)
            wait_until(
                lambda n=n: f"ignored {n} acknowledgement(s) not signed by the cloud" in last_error(system),
                timeout=10,
                message=f"forged acknowledgement {n} refused",
            )
            assert system.acked_seq() == -1
        # The cloud itself saying it holds another history at that position halts the sync.
        publisher.publish(ack_topic, diverged.signed(cloud_key).encode(), qos=1).wait_for_publish(5)
        wait_until(
            lambda: f"different record at seq {head_seq}" in last_error(system),
            timeout=10,
            message="the divergence reported",
        )
    finally:
        publisher.loop_stop()
        publisher.disconnect()
    assert system.acked_seq() == -1


def test_an_old_gap_or_rejection_sent_again_does_not_rewind_or_stop_the_sync(system, broker, terminal_state):
    """#24.8: anyone with the cloud's broker login could replay a signed 'gap' (the appliance then resent its
    whole log) or 'rejected' (it stopped sending). Each answers a batch; one for no batch in flight is ignored."""
    system.start_ingest()
    system.start_appliance()
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 50))
    wait_until(lambda: system.acked_seq() >= 0, timeout=60, message="the punch acknowledged")
    acked = system.acked_seq()
    log_name = json.loads((system.root / "identity.json").read_text())["log"]
    cloud_key = SigningKey.load(system.root / "cloud" / "keys" / "cloud-witness.pem")
    replayed = [  # what the cloud really signed once, for batches long answered
        Ack(log_name, "gap", -1, "", 0, 0).signed(cloud_key),
        Ack(log_name, "rejected", -1, "", 0, acked, reason="seq 0: bad signature").signed(cloud_key),
    ]
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    try:
        for ack in replayed:
            publisher.publish(topics.ack("e2e-plant", "pi-01"), ack.encode(), qos=1).wait_for_publish(5)
            wait_until(
                lambda ack=ack: f"ignoring a '{ack.status}' acknowledgement" in system.log("appliance"),
                timeout=10,
                message=f"the replayed {ack.status} ignored",
            )
    finally:
        publisher.loop_stop()
        publisher.disconnect()
    assert "resending from there" not in system.log("appliance")
    assert "the cloud rejected" not in system.log("appliance")
    # not rewound and not stopped: the acknowledged seq never goes back (it may go on: the evaluator signs its own
    # records meanwhile, such as a missed check-in alert for today's shift), and no error is shown
    assert system.acked_seq() >= acked and last_error(system) == ""
    terminal_state.punch("1002", when=datetime(2026, 3, 2, 7, 51))
    wait_until(
        lambda: len(system.cloud_rows("SELECT seq FROM punch")) == 2,
        timeout=30,
        message="the sync goes on: 1002 stored",
    )
