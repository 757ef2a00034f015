import pytest

from appliance.config import ConfigError, Settings

GOOD = {
    "plant": {"id": "dongguan-1", "name": "东莞一厂", "timezone": "Asia/Shanghai"},
    "appliance": {"id": "pi-01", "state_dir": "/tmp/x"},
    "mqtt": {"host": "broker", "password": "s3cret", "cloud_key_file": "/etc/punchproof/cloud-witness.pub"},
    "terminals": [{"name": "gate-1", "host": "10.0.0.5", "comm_key": 1234}],
}


def test_good_config_loads_with_defaults():
    settings = Settings.from_dict(GOOD)
    assert settings.terminals[0].port == 4370
    assert (settings.terminals[0].poll_seconds, settings.terminals[0].live_poll_seconds) == (5, 60)
    assert settings.log_origin == "punchproof/dongguan-1/pi-01/1"


def test_every_problem_is_listed_at_once():
    bad = {
        "plant": {"id": "Dong Guan", "timezone": "Mars/Base", "colour": "red"},
        "appliance": {},
        "mqtt": {"port": "1883"},
        "terminals": [
            {"name": "a", "host": "h", "kind": "hanvon"},
            {"name": "a", "host": "h", "live_poll_seconds": 0, "poll_seconds": -1},
        ],
        "extra": {},
    }
    with pytest.raises(ConfigError) as info:
        Settings.from_dict(bad, source="appliance.toml")
    problems = "\n".join(info.value.problems)
    for expected in (
        "[extra]: unknown section",
        "plant.colour: unknown key",
        "appliance.id: required",
        "mqtt.port: expected int, got str",
        "mqtt.cloud_key_file: required",
        "name 'a' is used twice",
        "'hanvon' is not supported; use one of zk, adms, card, r30x",
        "terminals[1] (a).poll_seconds: must be positive",
        "terminals[1] (a).live_poll_seconds: must be positive",
    ):
        assert expected in problems


def test_secrets_are_masked():
    shown = Settings.from_dict(GOOD).masked()
    assert shown["mqtt"]["password"] == "***"
    assert shown["terminals"][0]["comm_key"] == "***"
    assert "s3cret" not in str(shown)


def test_missing_file_says_how_to_create_it(tmp_path):
    with pytest.raises(ConfigError, match="punchproof appliance init"):
        Settings.load(tmp_path / "nope.toml")
