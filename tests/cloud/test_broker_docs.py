"""docs/broker-security.md and docs/install-cloud.md show the listener lines the test harness really runs
Mosquitto with."""

from __future__ import annotations

import tomllib
from pathlib import Path

from cloud.config import CloudSettings
from punchproof.broker import Security, secure_listeners

DOC = Path(__file__).resolve().parents[2] / "docs" / "broker-security.md"
INSTALL = DOC.with_name("install-cloud.md")
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
    assert f"/etc/mosquitto/conf.d/punchproof.conf > /dev/null <<'EOF'\n{expected}EOF\n" in INSTALL.read_text(
        encoding="utf-8"
    ), "the install guide writes the same file"


def test_the_documented_cloud_config_is_valid():
    text = DOC.read_text(encoding="utf-8")
    snippet = text.split("```toml\n", 1)[1].split("```", 1)[0]
    settings = CloudSettings.from_sections(tomllib.loads(snippet), source="docs/broker-security.md")
    assert settings.broker_password_file == str(FILES / "appliances.passwd")
    assert settings.broker_acl_file == str(FILES / "punchproof.acl")


def test_the_install_guide_configures_the_broker_files_the_security_guide_names():
    text = INSTALL.read_text(encoding="utf-8")
    snippet = text.split("<<'EOF'\n\n[broker]\n", 1)[1].split("EOF", 1)[0]
    settings = CloudSettings.from_sections(tomllib.loads("[broker]\n" + snippet), source="docs/install-cloud.md")
    assert settings.broker_password_file == str(FILES / "appliances.passwd")
    assert settings.broker_cloud_password_file == str(FILES / "cloud.passwd")
    assert settings.broker_acl_file == str(FILES / "punchproof.acl")
    assert settings.broker_ca_file == "/etc/punchproof/broker-ca.pem"
