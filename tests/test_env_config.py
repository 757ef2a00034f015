"""Environment overrides for containers: ``PUNCHPROOF_APPLIANCE__<SECTION>__<KEY>`` and
``PUNCHPROOF_CLOUD__<SECTION>__<KEY>`` over the TOML file, checked like the file, shown masked by
``show-config`` with where each value came from."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from appliance.config import ConfigError, Settings
from cloud.config import CloudSettings
from cloud.config import ConfigError as CloudConfigError

APPLIANCE_TOML = """\
[plant]
id = "dongguan-1"
[appliance]
id = "pi-01"
state_dir = "/var/lib/punchproof"
[mqtt]
host = "file-broker"
password = "from-the-file"
cloud_key_file = "/etc/punchproof/cloud-witness.pub"
[[terminals]]
name = "gate-1"
host = "10.0.0.5"
"""

CLOUD_TOML = """\
[cloud]
state_dir = "/var/lib/punchproof"
[database]
url = "sqlite:////var/lib/punchproof/cloud.sqlite3"
[mqtt]
host = "127.0.0.1"
"""


@pytest.fixture
def appliance_toml(tmp_path):
    path = tmp_path / "appliance.toml"
    path.write_text(APPLIANCE_TOML, encoding="utf-8")
    return path


@pytest.fixture
def cloud_toml(tmp_path):
    path = tmp_path / "cloud.toml"
    path.write_text(CLOUD_TOML, encoding="utf-8")
    return path


def test_appliance_keys_are_overridden_typed_as_in_the_file(appliance_toml):
    env = {
        "PUNCHPROOF_APPLIANCE__MQTT__HOST": "broker.internal",
        "PUNCHPROOF_APPLIANCE__MQTT__PORT": "8883",
        "PUNCHPROOF_APPLIANCE__MQTT__TLS": "true",
        "PUNCHPROOF_APPLIANCE__MQTT__ACK_TIMEOUT_S": "2.5",
        "punchproof_appliance__plant__timezone": "Asia/Urumqi",  # names match whatever their case
        "PUNCHPROOF_APPLIANCE__TERMINALS__0__HOST": "10.0.0.9",
        "PUNCHPROOF_APPLIANCE__WEB__BIND": "127.0.0.1:9000",  # a section the file leaves out
        "PUNCHPROOF_CLOUD__MQTT__HOST": "not for the appliance",
        "PUNCHPROOF_CONFIG": "/elsewhere.toml",  # the CLI's own variables are no overrides
    }
    settings = Settings.load(appliance_toml, environ=env)
    assert (settings.mqtt.host, settings.mqtt.port, settings.mqtt.tls) == ("broker.internal", 8883, True)
    assert settings.mqtt.ack_timeout_s == 2.5 and settings.plant.timezone == "Asia/Urumqi"
    assert settings.terminals[0].host == "10.0.0.9" and settings.web.bind == "127.0.0.1:9000"
    assert Settings.load(appliance_toml, environ={}).mqtt.host == "file-broker", "the file alone, without them"


def test_appliance_overrides_are_checked_like_the_file_and_named(appliance_toml):
    env = {
        "PUNCHPROOF_APPLIANCE__MQTT__PORT": "eighty",
        "PUNCHPROOF_APPLIANCE__MQTT__TLS": "maybe",
        "PUNCHPROOF_APPLIANCE__MQTT__HOTS": "typo",
        "PUNCHPROOF_APPLIANCE__PLANT__TIMEZONE": "Mars/Base",
        "PUNCHPROOF_APPLIANCE__TERMINALS__3__HOST": "10.0.0.7",
        "PUNCHPROOF_APPLIANCE__LOGGING": "debug",
    }
    with pytest.raises(ConfigError) as info:
        Settings.load(appliance_toml, environ=env)
    problems = "\n".join(info.value.problems)
    for expected in (
        "PUNCHPROOF_APPLIANCE__MQTT__PORT: expected int, got 'eighty'",
        "PUNCHPROOF_APPLIANCE__MQTT__TLS: expected bool (true or false), got 'maybe'",
        "PUNCHPROOF_APPLIANCE__MQTT__HOTS: mqtt.hots is not a setting",
        "plant.timezone: unknown time zone 'Mars/Base'",  # the file's own check, on the environment's value
        "PUNCHPROOF_APPLIANCE__TERMINALS__3__HOST: the file has no [[terminals]] number 3",
        "PUNCHPROOF_APPLIANCE__LOGGING: not a setting",
    ):
        assert expected in problems, problems
    assert len(info.value.problems) == 6


def test_cloud_keys_are_overridden_and_checked(cloud_toml):
    env = {
        "PUNCHPROOF_CLOUD__DATABASE__URL": "postgresql://punchproof:pg-secret@db/punchproof",
        "PUNCHPROOF_CLOUD__MQTT__SHARED": "yes",
        "PUNCHPROOF_CLOUD__CLOUD__WORKER_ID": "ingest-7",
        "PUNCHPROOF_CLOUD__BROKER__PORT": "0x22b3",
        "PUNCHPROOF_APPLIANCE__MQTT__HOST": "not for the cloud",
    }
    settings = CloudSettings.load(cloud_toml, environ=env)
    assert settings.database_url.endswith("@db/punchproof") and settings.mqtt_shared is True
    assert settings.worker_id == "ingest-7" and settings.broker_port == 8883
    bad = {"PUNCHPROOF_CLOUD__DATABASE__URL": "mysql://x", "PUNCHPROOF_CLOUD__WEB__WORKERS": "two"}
    bad["PUNCHPROOF_CLOUD__NOPE__KEY"] = "1"
    with pytest.raises(CloudConfigError) as info:
        CloudSettings.load(cloud_toml, environ=bad)
    problems = "\n".join(info.value.problems)
    assert "PUNCHPROOF_CLOUD__WEB__WORKERS: expected int, got 'two'" in problems
    assert "PUNCHPROOF_CLOUD__NOPE__KEY: not a setting" in problems
    assert "database.url: use sqlite:////path/file.sqlite3 or postgresql://" in problems


def show_config(side: str, path, env: dict[str, str], *extra: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "punchproof", side, "show-config", "-c", str(path), *extra],
        capture_output=True,
        text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PUNCHPROOF_")}, **env},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_show_config_masks_secrets_and_says_where_each_value_came_from(appliance_toml, cloud_toml):
    env = {"PUNCHPROOF_APPLIANCE__MQTT__PASSWORD": "env-secret", "PUNCHPROOF_APPLIANCE__MQTT__PORT": "8883"}
    text = show_config("appliance", appliance_toml, env)
    lines = {line.split(" = ")[0]: line for line in text.splitlines()}
    assert lines["mqtt.password"].endswith("# env PUNCHPROOF_APPLIANCE__MQTT__PASSWORD")
    assert '"***"' in lines["mqtt.password"] and "env-secret" not in text and "from-the-file" not in text
    assert lines["mqtt.port"].startswith("mqtt.port = 8883 ") and lines["mqtt.port"].endswith("__MQTT__PORT")
    assert lines["mqtt.host"].endswith("# file") and lines["web.bind"].endswith("# default")
    assert lines["terminals.0.host"].endswith("# file") and lines["terminals.0.poll_seconds"].endswith("# default")
    shown = json.loads(show_config("appliance", appliance_toml, env, "--json"))
    assert shown["mqtt.password"] == {"value": "***", "from": "env PUNCHPROOF_APPLIANCE__MQTT__PASSWORD"}

    env = {"PUNCHPROOF_CLOUD__DATABASE__URL": "postgresql://punchproof:pg-secret@db/punchproof"}
    shown = json.loads(show_config("cloud", cloud_toml, env, "--json"))
    assert shown["database.url"] == {
        "value": "postgresql://punchproof:***@db/punchproof",
        "from": "env PUNCHPROOF_CLOUD__DATABASE__URL",
    }
    assert shown["mqtt.host"]["from"] == "file" and shown["web.bind"]["from"] == "default"
    assert shown["cloud.worker_id"]["from"] == "default"


def test_a_bad_override_stops_the_command_with_the_variable_named(appliance_toml):
    result = subprocess.run(
        [sys.executable, "-m", "punchproof", "appliance", "check-config", "-c", str(appliance_toml)],
        capture_output=True,
        text=True,
        env={**os.environ, "PUNCHPROOF_APPLIANCE__MQTT__PORT": "eighty"},
        check=False,
    )
    assert result.returncode == 2
    assert "PUNCHPROOF_APPLIANCE__MQTT__PORT: expected int, got 'eighty'" in result.stderr
