"""docs/broker-security.md shows the listener lines the test harness really runs Mosquitto with."""

from __future__ import annotations

import tomllib
from pathlib import Path

from cloud.config import CloudSettings
from punchproof.broker import Security, secure_listeners

DOC = Path(__file__).resolve().parents[2] / "docs" / "broker-security.md"
FILES = Path("/etc/mosquitto/punchproof")


def test_the_documented_mosquitto_conf_is_the_harness_config():
    certs = Path("/etc/mosquitto/certs")
    security = Security(
        certs / "broker.pem",
        certs / "broker.key",
        FILES / "appliances.passwd",
        FILES / "cloud.passwd",
        FILES / "punchproof.acl",
    )
    expected = secure_listeners(security, host="0.0.0.0", port=8883, cloud_port=8884)
    assert f"```\n{expected}```" in DOC.read_text(encoding="utf-8")


def test_the_documented_cloud_config_is_valid():
    text = DOC.read_text(encoding="utf-8")
    snippet = text.split("```toml\n", 1)[1].split("```", 1)[0]
    settings = CloudSettings.from_sections(tomllib.loads(snippet), source="docs/broker-security.md")
    assert settings.broker_password_file == str(FILES / "appliances.passwd")
    assert settings.broker_acl_file == str(FILES / "punchproof.acl")
