"""The first punch through a secured broker, set up only with the real commands:

cloud init, broker-credentials, appliance init, register-appliance (key, broker login, ACL, registration
file), appliance join; then emulated terminal -> appliance -> Mosquitto (TLS, passwords, ACL) -> cloud.
"""

from __future__ import annotations

import json
import stat
from datetime import datetime

import pytest

from punchproof.broker import Mosquitto, Security
from tests.harness.system import Secured, System
from tests.harness.tls import TestCA
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def secured_broker(tmp_path):
    ca = TestCA.create(tmp_path / "ca")
    cert = ca.issue(("localhost",))
    etc = tmp_path / "mosquitto"
    etc.mkdir()
    files = [etc / "appliances.passwd", etc / "cloud.passwd", etc / "punchproof.acl"]
    for path in files:
        path.touch(mode=0o640)  # the admin creates them once (root:mosquitto); register-appliance fills them
    broker = Mosquitto(tmp_path / "broker", security=Security(cert.certfile, cert.keyfile, *files)).start()
    yield Secured(broker, ca.cafile)
    broker.kill()


@pytest.fixture
def system(tmp_path, secured_broker, zk_terminal):
    chain = System(tmp_path, secured_broker.broker.port, zk_terminal.address, secure=secured_broker)
    chain.configure()
    yield chain
    chain.stop_all_cleanly()


def test_the_first_punch_through_a_secured_broker(system, terminal_state):
    registration = json.loads(system.registration_file.read_text())
    password = registration["broker"]["password"]
    assert stat.S_IMODE(system.registration_file.stat().st_mode) == 0o600
    assert registration["broker"]["username"] == "e2e-plant.pi-01"
    secret = system.appliance_conf.parent / "broker.password"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.read_text().strip() == password
    assert password not in system.appliance_conf.read_text(), "the password is not in the configuration"
    system.start_ingest()
    system.start_appliance()
    terminal_state.punch("1001", state=0, when=datetime(2026, 3, 2, 7, 58, 0))
    rows = wait_until(lambda: system.cloud_punches(), timeout=30, message="the punch in the cloud")
    assert [(e, t) for e, t, _ in rows] == [("1001", "2026-03-02T07:58:00")]
    wait_until(lambda: system.acked_seq() >= rows[0][2], timeout=10, message="the appliance to mark it synced")
    wait_until(
        lambda: system.cloud_rows("SELECT status FROM appliance") == [("online",)],
        timeout=10,
        message="the appliance online (its retained status read by the cloud's login)",
    )
    for name in ("appliance", "ingest"):
        assert password not in system.log(name), f"the {name} log shows no password"


def test_registering_again_keeps_the_login_and_a_new_password_cuts_the_old_one_off(system, terminal_state):
    system.start_ingest()
    system.start_appliance()
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 50))
    wait_until(lambda: len(system.cloud_punches()) == 1, timeout=30, message="the first punch")
    first = system.registration_file.read_text()
    system.registration_file.unlink()  # the IT person deleted it after 'appliance join', as told
    out = system.register()
    assert "exists already" in out and not system.registration_file.exists(), "no new password unasked"
    terminal_state.punch("1002", when=datetime(2026, 3, 2, 7, 51))
    wait_until(lambda: len(system.cloud_punches()) == 2, timeout=30, message="punches still flow")
    # The Pi was stolen: a new password, and the old login is refused (and its session ended) at the reload.
    out = system.register("--new-password")
    renewed = json.loads(system.registration_file.read_text())["broker"]["password"]
    assert "joined" in out and renewed != json.loads(first)["broker"]["password"]
    assert renewed not in out and json.loads(first)["broker"]["password"] not in out, "passwords are never printed"
    wait_until(
        lambda: "Not authorized" in system.log("appliance"),
        timeout=20,
        message="the running appliance, still holding the old password, to be refused",
    )
    assert system.stop("appliance") == 0
    system.start_appliance()  # reads the new password that 'appliance join' wrote
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 17, 30))
    wait_until(lambda: len(system.cloud_punches()) == 3, timeout=30, message="the punch with the new login")
