"""``appliance join``: head office's registration file into the config, the password only in a 0600 file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from appliance.config import ConfigError, Settings
from appliance.sync.join import JoinError, join
from ledger import SigningKey
from tests.harness.tls import TestCA

CONFIG = """\
# installed by hand
[plant]
id = "dg-1"

[appliance]
id = "pi-01"
state_dir = "{state}"

[mqtt]
host = "127.0.0.1"   # before joining
port = 1883
cloud_key_file = "{cloud_key}"

[web]
bind = "127.0.0.1:8080"
"""


@pytest.fixture
def installed(tmp_path):
    cloud = SigningKey.generate()
    key_file = tmp_path / "cloud-witness.pub"
    key_file.write_text(cloud.verify_key.pem())
    config = tmp_path / "appliance.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state", cloud_key=key_file))
    config.chmod(0o640)
    return config, cloud


def registration(cloud, ca_pem="", **changes):
    content = {
        "format": "punchproof-registration/1",
        "plant": "dg-1",
        "appliance": "pi-01",
        "broker": {
            "host": "mqtt.example.cn",
            "port": 8883,
            "tls": True,
            "ca_certificate": ca_pem,
            "username": "dg-1.pi-01",
            "password": "s3cret-from-head-office",
        },
        "cloud_key": cloud.verify_key.pem(),
    }
    content.update(changes)
    return content


def test_join_writes_the_login_beside_the_config_and_points_mqtt_at_it(installed, tmp_path):
    config, cloud = installed
    ca = TestCA.create(tmp_path / "ca")
    message = join(Settings.load(config), registration(cloud, ca.cafile.read_text()))
    assert "mqtts://mqtt.example.cn:8883 as dg-1.pi-01" in message and "s3cret" not in message
    settings = Settings.load(config)
    assert (settings.mqtt.host, settings.mqtt.port, settings.mqtt.tls) == ("mqtt.example.cn", 8883, True)
    assert (settings.mqtt.username, settings.mqtt.password) == ("dg-1.pi-01", "s3cret-from-head-office")
    assert settings.masked()["mqtt"]["password"] == "***"
    text = config.read_text()
    assert "s3cret" not in text and "# installed by hand" in text and "# before joining" not in text
    secret = tmp_path / "broker.password"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o640, "the config keeps its mode"
    assert (tmp_path / "broker-ca.pem").read_text() == ca.cafile.read_text() == Path(settings.mqtt.ca_file).read_text()


def test_join_refuses_a_file_for_another_appliance_or_from_another_cloud(installed):
    config, cloud = installed
    before = config.read_text()
    settings = Settings.load(config)
    with pytest.raises(JoinError, match="this file is for dg-1/pi-02"):
        join(settings, registration(cloud, appliance="pi-02"))
    with pytest.raises(JoinError, match="another cloud"):
        join(settings, registration(SigningKey.generate()))
    with pytest.raises(JoinError, match="not a registration file"):
        join(settings, registration(cloud, format="punchproof-identity/1"))
    with pytest.raises(JoinError, match="CA certificate"):
        join(settings, registration(cloud, "-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n"))
    assert config.read_text() == before
    assert not (config.parent / "broker.password").exists()


def test_a_missing_cloud_key_is_taken_from_the_registration(installed):
    config, cloud = installed
    (config.parent / "cloud-witness.pub").unlink()
    join(Settings.load(config), registration(cloud))
    assert Settings.load(config).cloud_key().kid == cloud.verify_key.kid


def test_password_and_password_file_together_are_refused(installed):
    config, cloud = installed
    join(Settings.load(config), registration(cloud))
    config.write_text(config.read_text().replace('password = ""', 'password = "typed"'))
    with pytest.raises(ConfigError, match="not both"):
        Settings.load(config)
    (config.parent / "broker.password").unlink()
    config.write_text(config.read_text().replace('password = "typed"', 'password = ""'))
    with pytest.raises(ConfigError, match="password_file: cannot read"):
        Settings.load(config)
