"""``punchproof appliance init`` on a terminal without its options walks through the first setup:
driven here on a pseudo-terminal, against the ZK emulator and head office's own commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime

import pytest

from appliance.config import Settings
from tests.harness.pty_session import PtySession
from tests.harness.system import cli

PUNCHPROOF = [sys.executable, "-m", "punchproof"]


@pytest.fixture
def head_office(tmp_path):
    """``cloud init``, with [broker] set from the environment, so register-appliance writes a registration."""
    office = tmp_path / "office"
    cli("cloud", "init", "-o", office / "cloud.toml", "--state-dir", office)
    env = {
        "PUNCHPROOF_CLOUD__BROKER__HOST": "mqtt.example.cn",
        "PUNCHPROOF_CLOUD__BROKER__PORT": "8883",
        "PUNCHPROOF_CLOUD__BROKER__TLS": "false",
        "PUNCHPROOF_CLOUD__BROKER__PASSWORD_FILE": str(office / "appliances.passwd"),
        "PUNCHPROOF_CLOUD__BROKER__CLOUD_PASSWORD_FILE": str(office / "cloud.passwd"),
        "PUNCHPROOF_CLOUD__BROKER__ACL_FILE": str(office / "acl"),
        "PUNCHPROOF_CLOUD__BROKER__RELOAD_COMMAND": "true",
    }
    return office, env


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PUNCHPROOF_")}


def test_the_walk_through_probes_each_terminal_and_takes_the_registration(
    tmp_path, head_office, terminal_state, zk_terminal
):
    office, office_env = head_office
    for minute in range(3):
        terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, minute))
    config = tmp_path / "etc" / "appliance.toml"
    init = PtySession(
        [*PUNCHPROOF, "appliance", "init", "-o", str(config), "--state-dir", str(tmp_path / "state")],
        cwd=tmp_path,
        env=clean_env(),
    ).start()
    init.expect("plant id (e.g. dongguan-1): ")
    init.send("Dong Guan")
    init.expect("use lower-case letters, digits and '-'")
    init.send("dongguan-1")
    init.expect("plant name: ")
    init.send("东莞一厂")
    init.expect("time zone [Asia/Shanghai]: ")
    init.send("Mars/Base")
    init.expect("unknown time zone 'Mars/Base'")
    init.send("")
    init.expect("this appliance's name (e.g. pi-01) [pi-01]: ")
    init.send("")
    host, port = zk_terminal.address
    init.expect("IP[:PORT] (Enter: done): ")
    init.send(f"{host}:{port}")
    shown = init.expect("its name [gate-1]: ")
    assert "TEST-ZK-01" in shown and "Ver 6.60 Apr 28 2015" in shown, shown
    assert "记录 / records" in shown and shown.split("记录 / records")[1].split()[0] == "3", shown
    init.send("")
    init.expect("IP[:PORT] (Enter: done): ")
    init.send("127.0.0.1:1")  # nothing listens there
    init.expect("no answer")
    init.expect("add it anyway? (y/N) [n]: ")
    init.send("")
    init.expect("IP[:PORT] (Enter: done): ")
    init.send("")
    init.expect("cloud-witness.pub")
    init.send(str(tmp_path / "missing.pub"))
    init.expect("cannot read")
    init.send(str(office / "cloud-witness.pub"))
    init.expect("[127.0.0.1]: ")
    init.send("")
    init.expect("identity file to write for head office [pi-01.json]: ")
    init.send("")
    init.expect("registration file")
    init.expect(": ")

    # head office registers the identity file the walk-through just wrote, and sends the registration back
    out = subprocess.run(
        [*PUNCHPROOF, "cloud", "register-appliance", "-c", str(office / "cloud.toml"), str(tmp_path / "pi-01.json")],
        capture_output=True,
        text=True,
        env={**clean_env(), **office_env},
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    registration = tmp_path / "registration-dongguan-1-pi-01.json"
    init.send(str(registration))
    init.expect("joined: mqtt://mqtt.example.cn:8883 as ")
    init.expect("delete")
    assert init.wait() == 0, init.output

    settings = Settings.load(config, environ={})
    plant = settings.plant
    assert (plant.id, plant.name, plant.timezone) == ("dongguan-1", "东莞一厂", "Asia/Shanghai")
    assert settings.appliance.id == "pi-01"
    assert [(t.name, t.host, t.port) for t in settings.terminals] == [("gate-1", host, port)]
    assert (settings.mqtt.host, settings.mqtt.port) == ("mqtt.example.cn", 8883)
    assert settings.mqtt.password == json.loads(registration.read_text())["broker"]["password"]
    assert (config.parent / "broker.password").stat().st_mode & 0o777 == 0o600
    assert settings.key_path.exists() and json.loads((tmp_path / "pi-01.json").read_text())["plant"] == "dongguan-1"


def test_ctrl_d_stops_the_walk_through_and_writes_nothing(tmp_path):
    config = tmp_path / "appliance.toml"
    init = PtySession([*PUNCHPROOF, "appliance", "init", "-o", str(config)], cwd=tmp_path, env=clean_env()).start()
    init.expect("plant id (e.g. dongguan-1): ")
    init.eof()
    init.expect("nothing written")
    assert init.wait() == 1
    assert not config.exists()


def test_without_a_terminal_the_missing_options_are_named(tmp_path):
    result = subprocess.run(
        [*PUNCHPROOF, "appliance", "init", "-o", str(tmp_path / "a.toml"), "--plant", "dongguan-1"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 2
    assert "--appliance, --cloud-key required" in result.stderr
    assert not (tmp_path / "a.toml").exists()


def test_the_mqtt_password_is_asked_for_not_typed_on_the_command_line(tmp_path):
    """#24.8: the guide put the broker password on the command line, where ps and the history keep it."""
    key = tmp_path / "cloud-witness.pub"
    subprocess.run([*PUNCHPROOF, "cloud", "init", "-o", str(tmp_path / "c.toml"), "--state-dir", str(tmp_path)],
                   check=True, capture_output=True, env=clean_env())  # fmt: skip
    base = [*PUNCHPROOF, "appliance", "init", "--plant", "p1", "--appliance", "pi-01", "--cloud-key", str(key)]
    base += ["--mqtt-username", "pi-01"]
    asked = tmp_path / "asked.toml"
    init = PtySession([*base, "-o", str(asked), "--state-dir", str(tmp_path / "a")], cwd=tmp_path, env=clean_env())
    init.start().expect("MQTT password for pi-01: ")
    init.send("s3cret from head office")
    assert init.wait() == 0
    piped = tmp_path / "piped.toml"
    argv = [*base, "-o", str(piped), "--state-dir", str(tmp_path / "b"), "--mqtt-password-stdin"]
    subprocess.run(argv, input="s3cret from head office\n", text=True, check=True, capture_output=True, env=clean_env())
    for config in (asked, piped):
        assert 'password = "s3cret from head office"' in config.read_text(), config.read_text()
