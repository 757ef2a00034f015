"""The broker's security against a real Mosquitto: TLS, the password files and ACL cloud.appliances.broker_auth writes.

Mosquitto 2.0's acl_file grants every SUBSCRIBE and checks read access on each message it would deliver
(retained ones too); so "cannot subscribe" is shown as "receives nothing", next to a message it may receive.
"""

from __future__ import annotations

import ssl
from types import SimpleNamespace

import pytest

from cloud.appliances import broker_auth
from cloud.appliances.broker_auth import BrokerFiles
from cloud.store import open_db
from ledger import topics
from punchproof.broker import Mosquitto, Security
from tests.harness.mqtt_probe import NOT_AUTHORIZED, Probe
from tests.harness.tls import TestCA
from tests.harness.wait import wait_until

PLANT = "p1"


@pytest.fixture
def secured(tmp_path, clock):
    ca = TestCA.create(tmp_path / "ca")
    cert = ca.issue(("localhost",))
    files = BrokerFiles(tmp_path / "appliances.passwd", tmp_path / "cloud.passwd", tmp_path / "punchproof.acl")
    db = open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    with db.connection_context():
        a = broker_auth.issue_appliance(PLANT, "a", clock)
        b = broker_auth.issue_appliance(PLANT, "b", clock)
        cloud = broker_auth.issue_cloud("ingest", clock)
        broker_auth.write_files(files)
        security = Security(cert.certfile, cert.keyfile, files.password_file, files.cloud_password_file, files.acl_file)
        broker = Mosquitto(tmp_path / "broker", security=security).start()
        probes: list[Probe] = []

        def probe(issued, *, cloud_listener=False, **kwargs):
            port = broker.cloud_port if cloud_listener else broker.port
            kwargs.setdefault("cafile", ca.cafile)
            made = Probe(port, issued.username, issued.password, **kwargs)
            probes.append(made)
            return made

        def connected(issued, **kwargs):
            made = probe(issued, **kwargs)
            assert made.connect().value == 0
            return made

        yield SimpleNamespace(
            ca=ca, files=files, broker=broker, a=a, b=b, cloud=cloud, probe=probe, connected=connected, clock=clock
        )
        for made in probes:
            made.close()
        broker.kill()


def test_an_appliance_publishes_under_its_own_prefix_and_the_cloud_gets_it(secured):
    cloud = secured.connected(secured.cloud, cloud_listener=True)
    assert cloud.subscribe(topics.all_batches(shared=True)).value == 1  # $share/ingest/...: read ACL applies
    assert cloud.subscribe(f"{topics.PREFIX}/+/+/status").value == 1
    assert cloud.subscribe(f"{topics.PREFIX}/+/+/device/#").value == 1
    a = secured.connected(secured.a)
    for topic in (topics.batch(PLANT, "a"), topics.status(PLANT, "a"), topics.device(PLANT, "a", "gate-1")):
        assert a.publish(topic, b"from a").value == 0, topic
    wait_until(lambda: len(cloud.messages) == 3, timeout=10, message="three messages in the cloud")
    assert {t for t, _, _ in cloud.messages} == {
        topics.batch(PLANT, "a"),
        topics.status(PLANT, "a"),
        topics.device(PLANT, "a", "gate-1"),
    }


def test_an_appliance_cannot_publish_as_another_or_outside_its_topics(secured):
    cloud = secured.connected(secured.cloud, cloud_listener=True)
    cloud.subscribe(f"{topics.PREFIX}/#")
    a = secured.connected(secured.a)
    forbidden = [
        topics.batch(PLANT, "b"),
        topics.live(PLANT, "b"),
        topics.status(PLANT, "b"),
        topics.device(PLANT, "b", "gate-1"),
        topics.ack(PLANT, "a"),  # not even an acknowledgement to itself
        topics.config(PLANT, "a"),
        f"{topics.base(PLANT, 'a')}/other",
        # #24.1: 'up/#' and 'device/#' let one appliance retain messages under as many topics as it liked
        f"{topics.base(PLANT, 'a')}/up/junk-1",
        f"{topics.base(PLANT, 'a')}/device/gate-1/junk",
        "elsewhere",
    ]
    for topic in forbidden:
        assert a.publish(topic, b"forged").value == NOT_AUTHORIZED, topic
    marker = topics.batch(PLANT, "a")
    assert a.publish(marker, b"marker").value == 0
    wait_until(lambda: cloud.received(marker), timeout=10, message="the marker in the cloud")
    assert [t for t, _, _ in cloud.messages] == [marker], "the cloud never saw a forbidden message"


def test_an_appliance_cannot_read_another_appliances_downlink_or_status(secured):
    b = secured.connected(secured.b)
    assert b.subscribe(topics.ack(PLANT, "b")).value == 1
    assert not b.publish(topics.status(PLANT, "b"), b"online", retain=True).is_failure  # 16: no subscriber
    a = secured.connected(secured.a)
    for topic in (topics.ack(PLANT, "b"), f"{topics.PREFIX}/+/+/down/#", topics.status(PLANT, "b"), "#"):
        a.subscribe(topic)  # granted by Mosquitto 2.0; the read check happens at delivery
    a.subscribe(topics.ack(PLANT, "a"))
    cloud = secured.connected(secured.cloud, cloud_listener=True)
    assert cloud.publish(topics.ack(PLANT, "b"), b"for b").value == 0
    assert cloud.publish(topics.ack(PLANT, "a"), b"for a").value == 0
    wait_until(lambda: b.received(topics.ack(PLANT, "b")), timeout=10, message="B's acknowledgement at B")
    wait_until(lambda: a.received(topics.ack(PLANT, "a")), timeout=10, message="A's acknowledgement at A")
    # (once per matching subscription: own ack, pp/+/+/down/# and #)
    assert {(t, p) for t, p, _ in a.messages} == {(topics.ack(PLANT, "a"), b"for a")}


def test_an_appliance_cannot_take_over_another_appliances_session(secured):
    """Without use_username_as_clientid, A connecting as B's client id would inherit and empty B's queue."""
    b = secured.connected(secured.b, client_id="pp-p1-b", persistent=True)
    b.subscribe(topics.ack(PLANT, "b"))
    b.close()
    cloud = secured.connected(secured.cloud, cloud_listener=True)
    assert not cloud.publish(topics.ack(PLANT, "b"), b"queued for b").is_failure
    for client_id in ("pp-p1-b", "p1.b"):
        thief = secured.probe(secured.a, client_id=client_id, persistent=True)
        assert thief.connect().value == 0
        thief.close()
    b_again = secured.connected(secured.b, client_id="pp-p1-b", persistent=True)
    wait_until(lambda: b_again.received(topics.ack(PLANT, "b")), timeout=10, message="B's queued acknowledgement")
    assert b_again.received(topics.ack(PLANT, "b")) == [b"queued for b"]


def test_wrong_logins_are_refused_with_not_authorized(secured):
    wrong = broker_auth.Issued(secured.a.username, secured.b.password)
    unknown = broker_auth.Issued("p1.zz", secured.a.password)
    anonymous = broker_auth.Issued("", "")
    for issued, cloud_listener in (
        (wrong, False),
        (unknown, False),
        (anonymous, False),
        (anonymous, True),
        (secured.cloud, False),  # each listener knows only its own users
        (secured.a, True),
    ):
        assert secured.probe(issued, cloud_listener=cloud_listener).connect().value == NOT_AUTHORIZED


def test_clients_check_the_brokers_certificate_and_name(secured, tmp_path):
    other = TestCA.create(tmp_path / "other-ca")
    for kwargs, why in (
        ({"cafile": None}, "unable to get local issuer certificate"),  # the system CAs do not know our CA
        ({"cafile": other.cafile}, "unable to get local issuer certificate"),
        ({"host": "127.0.0.1"}, "IP address mismatch"),  # the certificate names only localhost
    ):
        with pytest.raises(ssl.SSLCertVerificationError, match=why):
            secured.probe(secured.a, **kwargs).connect()
    plain = secured.probe(secured.a, tls=False)
    plain.client.connect(plain.host, plain.port)
    plain.client.loop_start()
    wait_until(plain.disconnected.is_set, timeout=10, message="the TLS listener to drop a plain MQTT client")
    assert plain.connack is None


def test_the_cloud_login_cannot_publish_uplink_topics(secured):
    cloud = secured.connected(secured.cloud, cloud_listener=True)
    for topic in (topics.batch(PLANT, "a"), topics.status(PLANT, "a"), topics.device(PLANT, "a", "g"), "other"):
        assert cloud.publish(topic, b"forged").value == NOT_AUTHORIZED, topic
    assert not cloud.publish(topics.config(PLANT, "a"), b"v1", retain=True).is_failure


def test_new_logins_and_new_passwords_take_effect_at_reload(secured):
    old = secured.connected(secured.a)
    unchanged = secured.connected(secured.b)
    with open_db(f"sqlite:///{secured.files.acl_file.parent}/cloud.sqlite3").connection_context():
        c = broker_auth.issue_appliance(PLANT, "c", secured.clock)
        renewed = broker_auth.issue_appliance(PLANT, "a", secured.clock, new_password=True)
        broker_auth.write_files(secured.files)
    assert secured.probe(c).connect().value == NOT_AUTHORIZED, "not before the reload"
    assert not old.disconnected.is_set()
    secured.broker.reload()
    # Mosquitto 2.0 checks connected clients again at a reload: the stolen Pi is cut off at once, the rest stay.
    wait_until(old.disconnected.is_set, timeout=10, message="the old password's session to end")
    assert secured.probe(c).connect().value == 0, "C's login after the reload"
    assert secured.probe(secured.a).connect().value == NOT_AUTHORIZED, "A's old password is refused"
    assert not unchanged.disconnected.is_set()
    assert unchanged.publish(topics.batch(PLANT, "b")).value != NOT_AUTHORIZED
    replacement = secured.connected(renewed)
    assert not replacement.publish(topics.batch(PLANT, "a")).is_failure
