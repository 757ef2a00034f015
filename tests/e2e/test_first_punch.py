"""The first punch, end to end, with real processes and a real Mosquitto:

emulated ZK terminal -> appliance (pyzk, sign, SQLite) -> MQTT -> cloud (verify, store, acknowledge)
-> appliance marks it synced; and the pages, served by gunicorn, show it behind a login.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from ledger import GENESIS_PREV, SignedRecord, VerifyKey
from ledger.messages import Batch
from ledger.verify import verify_batch
from tests.harness.http import WebClient
from tests.harness.system import System, cli
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def system(tmp_path, broker, zk_terminal):
    chain = System(tmp_path, broker.port, zk_terminal.address).configure()
    yield chain
    codes = chain.stop_all()
    assert all(code == 0 for code in codes.values()), f"unclean exits {codes}:\n" + "\n".join(
        chain.log(n) for n in codes
    )


def cloud_punches(system):
    return system.cloud_rows("SELECT employee, device_time, seq FROM punch ORDER BY seq")


def acked(system):
    return system.appliance_rows("SELECT acked_seq FROM sync_state")[0][0]


def verify_cloud_chain(system):
    """The cloud's copy verifies as one unbroken chain under the appliance's registered key."""
    identity = json.loads((system.root / "identity.json").read_text())
    rows = system.cloud_rows("SELECT data, sig FROM log_record ORDER BY seq")
    batch = Batch(identity["log"], 0, tuple(SignedRecord(bytes(d), bytes(s)) for d, s in rows))
    verify_batch(batch, key=VerifyKey.from_pem(identity["public_key"]), prev=GENESIS_PREV)
    return len(rows)


def test_a_punch_reaches_the_cloud_and_is_marked_synced(system, terminal_state):
    system.start_ingest()
    system.start_appliance()
    terminal_state.punch("1001", state=0, when=datetime(2026, 3, 2, 7, 58, 0))
    rows = wait_until(lambda: cloud_punches(system), timeout=20, message="the punch in the cloud")
    assert [(e, t) for e, t, _ in rows] == [("1001", "2026-03-02T07:58:00")]
    seq = rows[0][2]
    wait_until(lambda: acked(system) >= seq, timeout=10, message="the appliance to mark it synced")
    head_hash = system.cloud_rows("SELECT leaf FROM log_head")[0][0]
    local_hash = system.appliance_rows(f"SELECT leaf FROM log_record WHERE seq = {acked(system)}")[0][0]
    assert head_hash == local_hash
    assert verify_cloud_chain(system) == acked(system) + 1
    status = "SELECT status FROM appliance"
    wait_until(lambda: system.cloud_rows(status) == [("online",)], timeout=10, message="the appliance online")
    assert system.stop("appliance") == 0
    wait_until(lambda: system.cloud_rows(status) == [("offline",)], timeout=10, message="the appliance offline")


def test_punches_made_while_the_broker_is_down_arrive_once(system, broker, terminal_state):
    system.start_ingest()
    system.start_appliance()
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 50))
    wait_until(lambda: len(cloud_punches(system)) == 1, timeout=20, message="the first punch")
    broker.kill()
    for minute in range(5):
        terminal_state.punch("1002", when=datetime(2026, 3, 2, 7, 51 + minute))
    wait_until(
        lambda: system.appliance_rows("SELECT count(*) FROM punch")[0][0] == 6,
        timeout=10,
        message="the appliance to store the punches while the broker is down",
    )
    broker.start()
    wait_until(lambda: len(cloud_punches(system)) == 6, timeout=40, message="the backlog in the cloud")
    wait_until(
        lambda: acked(system) == system.appliance_rows("SELECT max(seq) FROM log_record")[0][0],
        timeout=20,
        message="every record acknowledged",
    )
    employees = [e for e, _, _ in cloud_punches(system)]
    assert employees == ["1001"] + ["1002"] * 5
    assert verify_cloud_chain(system) == acked(system) + 1


def test_pages_need_a_login_and_show_the_punch(system, terminal_state):
    cli("cloud", "create-user", "-c", system.cloud_conf, "hr", "--password-stdin", stdin="correct horse 1\n")
    cli("appliance", "create-user", "-c", system.appliance_conf, "boss", "--password-stdin", stdin="battery staple 2\n")
    system.start_ingest()
    system.start_appliance()
    cloud = WebClient(f"http://127.0.0.1:{system.start_web('cloud')}")
    plant = WebClient(f"http://127.0.0.1:{system.start_web('appliance')}")
    now = terminal_state.device_now()
    terminal_state.punch("1002", state=1, when=now)
    wait_until(lambda: cloud_punches(system), timeout=20, message="the punch in the cloud")
    for client, user, password in ((cloud, "hr", "correct horse 1"), (plant, "boss", "battery staple 2")):
        wait_until(lambda c=client: c.get("/login")[0] == 200, timeout=20, message="gunicorn to serve")
        status, page = client.get("/")
        assert status == 200 and 'name="password"' in page, "the board must not show without a login"
        assert client.login(user, "wrong password")[0] == 401
        status, page = client.login(user, password)
        assert status == 200 and 'data-employee="1002"' in page
        assert now.strftime("%H:%M:%S") in page, "times are shown in the plant's zone"
        assert "下班" in page, "Chinese is the default language"
        assert "Sign out" in client.get("/?lang=en")[1]


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
        times = wait_until(
            lambda: len(system.cloud_rows(quarantined)) >= 3 and system.cloud_rows(quarantined),
            timeout=20,
            message="three rejected attempts",
        )
        assert times[2][0] - times[0][0] >= 0.9 * (500 + 1000), "resends back off instead of spinning"
        system.register()
        wait_until(lambda: cloud_punches(system), timeout=30, message="the punch after registration")
        assert system.processes["ingest"].poll() is None, "the ingest worker keeps running"
    finally:
        codes = system.stop_all()
    assert set(codes.values()) == {0}
