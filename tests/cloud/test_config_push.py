"""Configuration versions in the cloud's database (SQLite and PostgreSQL), published to a real Mosquitto."""

from __future__ import annotations

import re
import threading

import paho.mqtt.client as mqtt
import pytest
from werkzeug.security import generate_password_hash

from cloud.appliances import registry
from cloud.config import CloudSettings
from cloud.plantconfig.config_push import ConfigApplied, ConfigPushError, ConfigVersion, publish_config, record_status
from cloud.store import Account, open_db
from cloud.web import create_app
from ledger import SigningKey, topics
from ledger.config_message import ConfigStatus, SignedConfig
from tests.harness.clock import FrozenClock
from tests.harness.wait import wait_until

PLANT, NAME = "p1", "pi-01"
WITNESS = SigningKey.generate()
SECTIONS = {"employees": [{"user_id": "1001", "name": "张三"}]}


@pytest.fixture
def clock():
    return FrozenClock()


@pytest.fixture
def settings(tmp_path, broker, cloud_db_url):
    return CloudSettings(database_url=cloud_db_url, state_dir=str(tmp_path), mqtt_port=broker.port)


@pytest.fixture
def db(settings, clock):
    database = open_db(settings.database_url)
    registry.register(
        {"plant": PLANT, "appliance": NAME, "log": "punchproof/p1/pi-01/1", "public_key": WITNESS.verify_key.pem()},
        clock,
    )
    yield database
    database.close()


def retained(port: int, topic: str) -> bytes:
    """What a subscriber arriving now gets on ``topic``: the retained message."""
    got: list[bytes] = []
    arrived = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_message = lambda _c, _u, m: (got.append(m.payload), arrived.set())
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_until(arrived.is_set, timeout=10, message=f"the retained message on {topic}")
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


def push(settings, clock, sections=SECTIONS):
    return publish_config(PLANT, NAME, sections, by="hr-wang", settings=settings, clock=clock, key=WITNESS)


def test_each_push_is_a_new_version_stored_and_retained(db, settings, clock, broker):
    first = push(settings, clock)
    clock.advance(minutes=1)
    second = push(settings, clock, {"employees": []})
    assert (first.version, second.version) == (1, 2) and first.hash != second.hash
    rows = list(ConfigVersion.select().order_by(ConfigVersion.version))
    assert [(r.version, r.by, r.published_ms is not None) for r in rows] == [(1, "hr-wang", True), (2, "hr-wang", True)]
    signed = SignedConfig.decode(retained(broker.port, topics.config(PLANT, NAME)))
    assert signed.verify(WITNESS.verify_key).version == 2, "the broker keeps the latest for an offline appliance"
    assert bytes(rows[1].payload) == signed.encode()


def test_a_bad_document_or_unknown_appliance_is_not_stored(db, settings, clock):
    with pytest.raises(ConfigPushError, match="unknown section"):
        push(settings, clock, {"salaries": []})
    with pytest.raises(ConfigPushError, match="not registered"):
        publish_config(PLANT, "pi-99", SECTIONS, by="x", settings=settings, clock=clock, key=WITNESS)
    assert ConfigVersion.select().count() == 0


def test_a_version_the_broker_does_not_take_is_stored_unpublished(db, settings, clock, broker):
    broker.kill()
    with pytest.raises(ConfigPushError, match="stored but not published"):
        push(settings, clock)
    assert [(r.version, r.published_ms) for r in ConfigVersion.select()] == [(1, None)]


def test_answers_are_recorded_and_a_refused_impostor_is_replaced(db, settings, clock):
    push(settings, clock)
    topic = topics.config_applied(PLANT, NAME)
    latest = ConfigVersion.get()
    ok = ConfigStatus(1, latest.hash, "ok", 1, 1_772_409_700_000)
    assert record_status(topic, ok.encode(), clock) is None
    row = ConfigApplied.get()
    assert (row.version, row.applied_ms, row.error) == (1, 1_772_409_700_000, "")
    # the reconnect's re-announcement does not move "applied at"
    assert record_status(topic, ConfigStatus(1, latest.hash, "ok", 1, 1_772_409_999_000).encode(), clock) is None
    assert ConfigApplied.get().applied_ms == 1_772_409_700_000
    forged = ConfigStatus(7, "f" * 64, "rejected", 1, 1_772_410_000_000, "forged: the signature does not verify")
    again = record_status(topic, forged.encode(), clock)
    assert again is not None and again.version == 1, "the latest version is to be published again"
    row = ConfigApplied.get()
    assert (row.version, row.rejected_version, row.error) == (1, 7, forged.reason)
    refused_ours = ConfigStatus(1, latest.hash, "rejected", 0, 0, "not usable: ...")
    assert record_status(topic, refused_ours.encode(), clock) is None, "our own latest refused: no loop"
    assert record_status(topic, b"garbage", clock) is None


def test_the_overview_page_shows_latest_applied_and_refused(db, settings, clock):
    push(settings, clock)
    push(settings, clock, {"employees": []})
    topic = topics.config_applied(PLANT, NAME)
    record_status(topic, ConfigStatus(1, "h", "ok", 1, 1_772_409_600_000).encode(), clock)
    record_status(topic, ConfigStatus(2, "h2", "rejected", 1, 0, "not usable: 排班 wk").encode(), clock)
    Account.create(username="hr", password_hash=generate_password_hash("correct horse 1"), created_ms=0)
    client = create_app(settings).test_client()
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    client.post("/login", data={"csrf": token, "username": "hr", "password": "correct horse 1"})
    page = client.get("/devices").get_data(as_text=True)
    row = page.split(f'data-appliance="{PLANT}/{NAME}"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="config-latest">v2' in row and '<td class="config-applied ">v1' in row
    assert "设备拒绝 v2: not usable: 排班 wk" in row and "2026-03-02 08:00:00" in row
