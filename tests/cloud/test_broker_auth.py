"""Broker credentials and files: Mosquitto's own hash format, the ACL as ledger.topics says, atomic files."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from cloud.admin.config_edit import set_keys
from cloud.appliances import broker_auth
from cloud.appliances.broker_auth import BrokerAuthError, BrokerFiles, BrokerUser
from cloud.store import open_db
from tests.harness.requires import need_tool


@pytest.fixture
def db(tmp_path):
    database = open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    with database.connection_context():
        yield database


def test_the_hash_is_mosquittos_7_format_and_checks():
    salt = bytes(range(12))
    hashed = broker_auth.mosquitto_hash("s3cret", salt=salt)
    kind, iterations, salt_b64, digest_b64 = hashed.split("$")[1:]
    assert (kind, iterations, salt_b64) == ("7", "101", "AAECAwQFBgcICQoL")
    assert len(digest_b64) == 88  # 64 bytes of SHA-512, base64
    assert broker_auth.check_hash("s3cret", hashed)
    assert not broker_auth.check_hash("s3cret!", hashed)
    assert broker_auth.mosquitto_hash("s3cret") != broker_auth.mosquitto_hash("s3cret"), "a fresh salt each time"


def test_our_check_agrees_with_the_real_mosquitto_passwd(tmp_path):
    mosquitto_passwd = need_tool("mosquitto_passwd", "mosquitto")
    path = tmp_path / "passwd"
    subprocess.run([mosquitto_passwd, "-c", "-b", str(path), "alice", "correct horse"], check=True)
    username, hashed = path.read_text().strip().split(":", 1)
    assert username == "alice" and hashed.startswith("$7$")
    assert broker_auth.check_hash("correct horse", hashed)
    assert not broker_auth.check_hash("correct horse ", hashed)
    # and the same salt gives mosquitto_passwd's digest exactly
    _, _, iterations, salt, _ = hashed.split("$")
    assert broker_auth.mosquitto_hash("correct horse", salt=__import__("base64").b64decode(salt)) == hashed
    assert iterations == str(broker_auth.PBKDF2_ITERATIONS)


def test_passwords_are_long_random_and_fit_the_file():
    passwords = {broker_auth.new_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) == 32 and ":" not in p and "\n" not in p for p in passwords)


def test_registering_twice_keeps_the_password_unless_asked(db, clock):
    first = broker_auth.issue_appliance("dg-1", "pi-01", clock)
    assert first.new and first.password and first.username == "dg-1.pi-01"
    stored = BrokerUser.get_by_id("dg-1.pi-01").password_hash
    assert broker_auth.check_hash(first.password, stored)
    again = broker_auth.issue_appliance("dg-1", "pi-01", clock)
    assert (again.new, again.password) == (False, "")
    assert BrokerUser.get_by_id("dg-1.pi-01").password_hash == stored
    clock.advance(minutes=5)
    renewed = broker_auth.issue_appliance("dg-1", "pi-01", clock, new_password=True)
    assert renewed.password and renewed.password != first.password and not renewed.new
    row = BrokerUser.get_by_id("dg-1.pi-01")
    assert broker_auth.check_hash(renewed.password, row.password_hash)
    assert not broker_auth.check_hash(first.password, row.password_hash)
    assert row.changed_ms - row.created_ms == 5 * 60_000
    assert "password='***'" in repr(renewed) and renewed.password not in repr(renewed)


def test_names_that_could_escape_their_topics_are_refused(db, clock):
    for plant, appliance in (("dg", "+"), ("dg", "a/b"), ("#", "pi"), ("dg", "pi 1"), ("Dg", "pi"), ("dg", "")):
        with pytest.raises(BrokerAuthError):
            broker_auth.issue_appliance(plant, appliance, clock)
    with pytest.raises(BrokerAuthError):
        broker_auth.issue_cloud("in.gest", clock)
    assert BrokerUser.select().count() == 0


def test_the_acl_is_exactly_the_topic_table(db, clock):
    broker_auth.issue_appliance("dg-1", "pi-02", clock)
    broker_auth.issue_appliance("dg-1", "pi-01", clock)
    broker_auth.issue_cloud("ingest", clock)
    text = broker_auth.acl_text(list(BrokerUser.select()))
    assert text == broker_auth.HEADER + "\n" + "\n".join(
        [
            "user cloud-ingest\n"
            "topic read pp/+/+/up/batch\n"
            "topic read pp/+/+/up/live\n"
            "topic read pp/+/+/up/config\n"
            "topic read pp/+/+/status\n"
            "topic read pp/+/+/device/+\n"
            "topic write pp/+/+/down/#\n",
            "user dg-1.pi-01\n"
            "topic write pp/dg-1/pi-01/up/batch\n"
            "topic write pp/dg-1/pi-01/up/live\n"
            "topic write pp/dg-1/pi-01/up/config\n"
            "topic write pp/dg-1/pi-01/status\n"
            "topic write pp/dg-1/pi-01/device/+\n"
            "topic read pp/dg-1/pi-01/down/#\n",
            "user dg-1.pi-02\n"
            "topic write pp/dg-1/pi-02/up/batch\n"
            "topic write pp/dg-1/pi-02/up/live\n"
            "topic write pp/dg-1/pi-02/up/config\n"
            "topic write pp/dg-1/pi-02/status\n"
            "topic write pp/dg-1/pi-02/device/+\n"
            "topic read pp/dg-1/pi-02/down/#\n",
        ]
    )
    # Nothing before the first 'user' line: those lines would apply to anonymous clients.
    assert all(line.startswith("#") for line in text.split("user ", 1)[0].splitlines() if line)


def test_files_are_written_whole_and_keep_their_mode(db, clock, tmp_path):
    files = BrokerFiles(tmp_path / "appl.passwd", tmp_path / "cloud.passwd", tmp_path / "punchproof.acl")
    broker_auth.issue_appliance("dg-1", "pi-01", clock)
    broker_auth.issue_cloud("ingest", clock)
    assert broker_auth.write_files(files) == 2
    assert files.password_file.read_text().startswith("dg-1.pi-01:$7$101$")
    assert files.cloud_password_file.read_text().startswith("cloud-ingest:$7$101$")
    assert stat.S_IMODE(files.password_file.stat().st_mode) == 0o640
    files.acl_file.chmod(0o600)
    broker_auth.issue_appliance("dg-1", "pi-02", clock)
    broker_auth.write_files(files)
    assert stat.S_IMODE(files.acl_file.stat().st_mode) == 0o600, "an admin's chmod survives a rewrite"
    assert "user dg-1.pi-02" in files.acl_file.read_text()
    assert len(files.password_file.read_text().splitlines()) == 2
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")], "no temporary file left behind"


def test_reload_runs_the_configured_command_or_says_what_to_run(tmp_path):
    from cloud.config import CloudSettings

    marker = tmp_path / "reloaded"
    settings = CloudSettings(broker_reload_command=f"touch {marker}")
    assert "reloaded" in broker_auth.reload(settings) and marker.exists()
    assert "systemctl reload mosquitto" in broker_auth.reload(CloudSettings())
    with pytest.raises(BrokerAuthError, match="reload_command"):
        broker_auth.reload(CloudSettings(broker_reload_command="false"))


def test_config_keys_are_set_in_place_keeping_comments():
    text = '# head office\n[mqtt]\nhost = "broker"  # ours\nusername = ""\n\n[web]\nbind = "0.0.0.0:8000"\n'
    edited = set_keys(text, "mqtt", {"username": "cloud-ingest", "password_file": "/x/p", "tls": True})
    assert edited == (
        '# head office\n[mqtt]\nhost = "broker"  # ours\nusername = "cloud-ingest"\npassword_file = "/x/p"\n'
        'tls = true\n\n[web]\nbind = "0.0.0.0:8000"\n'
    )
    assert "[broker]\nport = 8884\n" in set_keys(text, "broker", {"port": 8884})
    with pytest.raises(ValueError):
        set_keys('[mqtt]\nusername = """\nmulti\n"""\n', "mqtt", {"username": "a"})
