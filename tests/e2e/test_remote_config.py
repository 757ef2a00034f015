"""Configuration from head office to an appliance, with real processes and a real Mosquitto:

``punchproof cloud push-config`` -> retained, signed message on down/config -> the appliance daemon
verifies and applies it -> answers on up/config -> the ingest worker records it -> the page shows it.
"""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
import pytest

from ledger import SigningKey, topics
from ledger.config_message import ConfigDocument, SignedConfig
from tests.harness.http import WebClient
from tests.harness.system import APPLIANCE, PLANT, System, cli
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e

V1 = {
    "shifts": [{"id": "D", "name": "白班", "spans": "08:00-17:00"}],
    "rosters": [{"id": "wk", "pattern": "D,D,D,D,D,-,-"}],
    "employees": [{"user_id": "1001", "name": "张三", "roster": "wk"}, {"user_id": "1002", "name": "李四"}],
}
V2 = {**V1, "employees": [{"user_id": "1001", "name": "张三", "roster": "wk"}], "policy": {"version": "v2"}}


@pytest.fixture
def system(tmp_path, broker, zk_terminal):
    chain = System(tmp_path, broker.port, zk_terminal.address).configure()
    yield chain
    chain.stop_all_cleanly()


def push(system: System, sections: dict) -> str:
    path = system.root / "config.json"
    path.write_text(json.dumps(sections, ensure_ascii=False), encoding="utf-8")
    return cli("cloud", "push-config", "-c", system.cloud_conf, "--plant", PLANT, "--appliance", APPLIANCE, path)


def applied_on_appliance(system: System) -> int:
    rows = system.appliance_rows("SELECT version FROM applied_config")
    return rows[0][0] if rows else 0


def applied_in_cloud(system: System) -> tuple:
    rows = system.cloud_rows("SELECT version, applied_ms, rejected_version, error FROM config_applied")
    return rows[0] if rows else (0, None, None, "")


def publish_as_someone_else(port: int, payload: bytes) -> None:
    """Another client on the broker publishes a retained configuration (the ACL of item 3 forbids it in
    production; here the broker is open, so the signature is all that stands in the way)."""
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="intruder", protocol=mqtt.MQTTv5)
    client.on_publish = lambda *_: done.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topics.config(PLANT, APPLIANCE), payload, qos=1, retain=True)
        wait_until(done.is_set, timeout=10, message="the broker to take the forged configuration")
    finally:
        client.disconnect()
        client.loop_stop()


def test_versions_reach_the_appliance_also_after_it_was_offline_and_forgeries_are_refused(system, broker):
    cli("cloud", "create-user", "-c", system.cloud_conf, "hr", "--password-stdin", stdin="correct horse 1\n")
    system.start_ingest()
    system.start_appliance()
    assert "version 1" in push(system, V1)
    wait_until(lambda: applied_on_appliance(system) == 1, timeout=20, message="the appliance to apply v1")
    assert system.appliance_rows("SELECT user_id, name, source FROM employee ORDER BY user_id") == [
        ("1001", "张三", "cloud:v1"),
        ("1002", "李四", "cloud:v1"),
    ]
    version, applied_ms, rejected, _ = wait_until(
        lambda: applied_in_cloud(system)[0] == 1 and applied_in_cloud(system), timeout=20, message="v1 in the cloud"
    )
    assert applied_ms is not None and rejected is None

    # Offline while version 2 is pushed: the retained message brings it at the next start.
    assert system.stop("appliance") == 0
    assert "version 2" in push(system, V2)
    assert applied_on_appliance(system) == 1
    system.start_appliance()
    wait_until(lambda: applied_on_appliance(system) == 2, timeout=30, message="the appliance to get v2 on reconnect")
    assert system.appliance_rows("SELECT user_id, active FROM employee ORDER BY user_id") == [("1001", 1), ("1002", 0)]
    assert system.appliance_rows("SELECT version FROM plant_policy") == [("v2",)]
    wait_until(lambda: applied_in_cloud(system)[0] == 2, timeout=20, message="v2 applied, in the cloud")

    # A configuration signed by anyone but the cloud is refused; the appliance keeps v2, the cloud shows why
    # and publishes its latest version again in the impostor's place.
    intruder = SigningKey.generate()
    forged = ConfigDocument.build(PLANT, APPLIANCE, 3, 1_772_409_600_000, "intruder", {"employees": []})
    publish_as_someone_else(broker.port, SignedConfig.sign(forged, intruder).encode())
    _, _, rejected, error = wait_until(
        lambda: applied_in_cloud(system)[2] == 3 and applied_in_cloud(system), timeout=20, message="the refusal"
    )
    assert error.startswith("forged")
    assert "refused configuration version 3: forged" in system.log("appliance")
    assert applied_on_appliance(system) == 2
    assert system.appliance_rows("SELECT count(*) FROM employee WHERE active") == [(1,)]
    stored_v2 = bytes(system.cloud_rows("SELECT payload FROM config_version WHERE version = 2")[0][0])
    wait_until(lambda: retained(broker.port) == stored_v2, timeout=20, message="the cloud's v2 retained again")

    web = WebClient(f"http://127.0.0.1:{system.start_web('cloud')}")
    wait_until(lambda: web.get("/login")[0] == 200, timeout=20, message="gunicorn to serve")
    status, _ = web.login("hr", "correct horse 1")
    assert status == 200
    page = web.get("/devices")[1]
    row = page.split(f'data-appliance="{PLANT}/{APPLIANCE}"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="config-latest">v2' in row
    assert '<td class="config-applied ok">v2' in row
    assert "设备拒绝 v3: forged" in row


def retained(port: int) -> bytes:
    got: list[bytes] = []
    arrived = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, *_: c.subscribe(topics.config(PLANT, APPLIANCE), qos=1)
    client.on_message = lambda _c, _u, m: (got.append(m.payload), arrived.set())
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_until(arrived.is_set, timeout=10, message="the retained configuration")
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


def test_a_cloud_worker_started_after_the_answer_still_learns_the_applied_version(system):
    system.start_appliance()
    assert "version 1" in push(system, V1)  # no ingest worker subscribed yet: nobody hears the answer live
    wait_until(lambda: applied_on_appliance(system) == 1, timeout=20, message="the appliance to apply v1")
    system.start_ingest()
    wait_until(lambda: applied_in_cloud(system)[0] == 1, timeout=20, message="v1 recorded from the retained answer")
