"""docs/install-cloud.md followed to the letter in a clean Debian 12: a copy of the session's minbase
root (debootstrap, ``debian_root``), then every command of the guide's shell blocks run in it (chroot)
as written, sudo, here-documents and all, the optional PostgreSQL block included.

What stands in for a real VM: the root starts with sudo and systemd installed (cloud images have
both); pip finds the wheel's dependencies in a local folder (``/etc/pip.conf``) instead of PyPI;
systemctl runs offline (``SYSTEMD_OFFLINE=1``), so ``enable --now`` enables the units but starts
nothing, and ``restart``/``reload`` of Mosquitto (also the reload ``register-appliance`` runs) are
ignored. Where a running service is needed the test starts it by hand as systemd would have:
PostgreSQL's cluster with ``pg_ctlcluster`` (Unix socket only) where apt would have started it, so
``createuser``/``createdb`` really run and the documented database URL is then used by the
``punchproof`` user; Mosquitto, after the guide, with the guide's configuration, in a network
namespace of its own (``unshare``/``nsenter``, so this machine's ports 8883/8884 stay free), where the
doctor must log in as the ingest worker over TLS and the Pi's login from its registration file must be
accepted. The certificate is also checked for both names with ``openssl verify``, and the root gets
the ``/etc/hosts`` an installer writes (debootstrap writes none). The Pi's identity file is made on
this machine with ``appliance init`` and the cloud's own ``cloud-witness.pub``, as a plant's IT
person would send it.

About as long as the Pi guide (a minute and a half) with debootstrap's cache warm; needs root,
debootstrap and Debian's package archive.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from punchproof import __version__
from tests.harness.debian_root import REPO, add_wheels, guide_commands, in_root
from tests.harness.requires import need_tool
from tests.harness.wait import wait_until

GUIDE = REPO / "docs" / "install-cloud.md"
PG_URL = "postgresql:///punchproof?host=/var/run/postgresql"  # as the guide says to give cloud init

pytestmark = pytest.mark.e2e

PI_LOGIN = """/opt/punchproof/bin/python - <<'EOF'
import json, pathlib
from opskit.mqttprobe import probe_broker
broker = json.loads(pathlib.Path("/var/lib/punchproof/plants/registration-dongguan-1-pi-01.json").read_text())["broker"]
pathlib.Path("/tmp/ca.pem").write_text(broker["ca_certificate"])
print(probe_broker("localhost", broker["port"], username=broker["username"], password=broker["password"], tls=True,
                   ca_file="/tmp/ca.pem", client_id=broker["username"], timeout=5) or "logged in")
EOF"""  # the Pi's login from its registration file, on the appliances' listener (by a name in the certificate)


def pi_identity(tmp_path, root) -> None:
    """``appliance init`` on a Pi (here: this machine), with the cloud's witness key the guide made."""
    plant = tmp_path / "pi"
    subprocess.run(
        [sys.executable, "-m", "punchproof", "appliance", "init", "-o", plant / "appliance.toml",
         "--plant", "dongguan-1", "--plant-name", "东莞一厂", "--appliance", "pi-01", "--state-dir", plant,
         "--mqtt-host", "mqtt.example.cn", "--terminal", "gate-1=192.168.1.201",
         "--cloud-key", root / "var/lib/punchproof/cloud-witness.pub", "--identity", root / "root/pi-01.json"],
        check=True, capture_output=True,
    )  # fmt: skip


def start_postgres(root) -> str:
    """What apt's postinst does on a booted VM: start the new cluster (here on its Unix socket only)."""
    version = in_root(root, "ls /etc/postgresql").stdout.split()[0]
    started = in_root(root, f"pg_ctlcluster {version} main start -- -o \"-c listen_addresses=''\"")
    assert started.returncode == 0, started.stdout + started.stderr
    return version


@contextmanager
def mosquitto_started(root: Path) -> Iterator[list[str]]:
    """What ``systemctl restart mosquitto`` does on a booted VM (the Debian unit's ExecStartPre, then its
    ExecStart), in a network namespace of its own so this machine's ports stay free; yields the nsenter
    prefix that runs a command beside it."""
    ip = need_tool("ip", "iproute2")
    in_root(
        root, "mkdir -m 740 -p /var/log/mosquitto /run/mosquitto && chown mosquitto /var/log/mosquitto /run/mosquitto"
    )
    log = root / "var/log/mosquitto/mosquitto.log"
    command = [
        "unshare",
        "--net",
        "--",
        "chroot",
        str(root),
        "/usr/sbin/mosquitto",
        "-c",
        "/etc/mosquitto/mosquitto.conf",
    ]
    broker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # unshare execs: its pid
    try:
        wait_until(lambda: broker.poll() is not None or (log.exists() and " running" in log.read_text()), 10)
        assert broker.poll() is None, broker.stderr.read() if broker.stderr else ""
        enter = ["nsenter", f"--net=/proc/{broker.pid}/ns/net"]
        subprocess.run([*enter, ip, "link", "set", "lo", "up"], check=True)
        yield enter
    finally:
        broker.terminate()
        broker.wait(timeout=10)


def test_the_cloud_guide_works_to_the_letter_in_a_clean_debian(tmp_path, debian_root):
    root = debian_root
    shutil.copy(add_wheels(root, "[postgres]"), root / "root")
    postgres = ""
    results = {}
    try:
        for command in guide_commands(GUIDE):
            if command.startswith("sudo -u postgres") and not postgres:
                postgres = start_postgres(root)
            if "pi-01.json" in command and not (root / "root/pi-01.json").exists():
                pi_identity(tmp_path, root)
            stdin = "head office's password 1\n" if "create-user" in command else ""
            result = in_root(root, command, stdin)
            results[command] = result
            if "enable --now" in command:  # enabled, but a chroot has no systemd running to start them
                assert "not been booted with systemd" in result.stderr, result.stderr
            elif "doctor" not in command:  # no broker runs here: the doctor must say so, not crash
                assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        # the database the optional block made, used as the punchproof user with the documented URL: the
        # doctor finds it empty, a first write (as a service's first start would) makes the tables
        as_punchproof = (
            f"sudo -u punchproof env PUNCHPROOF_CLOUD__DATABASE__URL='{PG_URL}' /opt/punchproof/bin/punchproof"
        )
        on_postgres = [
            in_root(root, f"{as_punchproof} cloud doctor -c /etc/punchproof/cloud.toml"),
            in_root(root, f"{as_punchproof} cloud create-user -c /etc/punchproof/cloud.toml audit --role auditor "
                          "--password-stdin", "auditor's password 1\n"),
            in_root(root, f"{as_punchproof} cloud doctor -c /etc/punchproof/cloud.toml"),
        ]  # fmt: skip
        with mosquitto_started(root) as beside_broker:  # the broker the guide configured, really running
            broker_up = in_root(
                root,
                "sudo -u punchproof /opt/punchproof/bin/punchproof cloud doctor -c /etc/punchproof/cloud.toml",
                enter=beside_broker,
            )
            pi_login = in_root(root, PI_LOGIN, enter=beside_broker)
    finally:
        if postgres:
            in_root(root, f"pg_ctlcluster {postgres} main stop -m immediate")

    def result_of(part: str) -> subprocess.CompletedProcess[str]:
        return next(r for c, r in results.items() if part in c)

    assert result_of("punchproof --version").stdout.strip() == f"punchproof {__version__}"
    checked = result_of("check-config").stdout
    assert checked.splitlines()[0] == "/etc/punchproof/cloud.toml: OK", checked
    # the guide's init configures no timestamp authority, and says what check-config then warns (#22.2)
    assert "未配置第三方时间戳 / no third-party timestamp authority" in checked, checked
    doctor = result_of("cloud doctor")
    assert doctor.returncode == 1 and "[ OK ] 数据库 database" in doctor.stdout, doctor.stdout + doctor.stderr
    assert "[FAIL] 消息服务器 broker" in doctor.stdout, doctor.stdout
    assert "[ OK ] 消息服务器 broker" in broker_up.stdout, broker_up.stdout + broker_up.stderr
    assert pi_login.stdout.strip() == "logged in", pi_login.stdout + pi_login.stderr
    empty, created, filled = on_postgres
    assert "[FAIL] 数据库 database" in empty.stdout and "no Punchproof tables yet" in empty.stdout, empty.stdout
    assert created.returncode == 0, created.stdout + created.stderr
    assert "[ OK ] 数据库 database: PostgreSQL" in filled.stdout, filled.stdout + filled.stderr

    enabled = in_root(
        root, "systemctl is-enabled punchproof-ingest@1 punchproof-cloud-web punchproof-escalate mosquitto"
    )
    assert enabled.stdout.split() == ["enabled"] * 4, enabled.stdout + enabled.stderr
    modes = in_root(
        root,
        "stat -c '%n %U:%G %a' /etc/punchproof/cloud.toml /var/lib/punchproof/keys/cloud-witness.pem "
        "/var/lib/punchproof/broker-cloud-ingest.password /etc/mosquitto/certs/broker.key "
        "/etc/mosquitto/punchproof/appliances.passwd /etc/mosquitto/punchproof/punchproof.acl "
        "/var/lib/punchproof/plants/registration-dongguan-1-pi-01.json",
    )
    assert modes.stdout.splitlines() == [
        "/etc/punchproof/cloud.toml root:punchproof 640",
        "/var/lib/punchproof/keys/cloud-witness.pem punchproof:punchproof 600",
        "/var/lib/punchproof/broker-cloud-ingest.password punchproof:punchproof 600",
        "/etc/mosquitto/certs/broker.key root:mosquitto 640",
        "/etc/mosquitto/punchproof/appliances.passwd punchproof:mosquitto 640",
        "/etc/mosquitto/punchproof/punchproof.acl punchproof:mosquitto 640",
        "/var/lib/punchproof/plants/registration-dongguan-1-pi-01.json punchproof:punchproof 600",
    ], modes.stdout + modes.stderr

    # what Mosquitto would read at its restart: the certificate for both names, a login per Pi, the ACL
    for name in ("mqtt.example.cn", "localhost"):
        verified = in_root(
            root,
            f"openssl verify -CAfile /etc/punchproof/broker-ca.pem -verify_hostname {name} "
            "/etc/mosquitto/certs/broker.pem",
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
    etc = root / "etc/mosquitto"
    assert "include_dir /etc/mosquitto/conf.d" in (etc / "mosquitto.conf").read_text()
    assert "listener 8883 0.0.0.0" in (etc / "conf.d/punchproof.conf").read_text()
    assert (etc / "punchproof/appliances.passwd").read_text().startswith("dongguan-1.pi-01:$7$")
    assert (etc / "punchproof/cloud.passwd").read_text().startswith("cloud-ingest:$7$")
    acl = (etc / "punchproof/punchproof.acl").read_text()
    assert "user dongguan-1.pi-01" in acl and "user cloud-ingest" in acl, acl

    registration = json.loads((root / "var/lib/punchproof/plants/registration-dongguan-1-pi-01.json").read_text())
    broker = registration["broker"]
    assert (registration["plant"], registration["appliance"]) == ("dongguan-1", "pi-01")
    assert (broker["host"], broker["port"], broker["tls"], broker["username"]) == (
        "mqtt.example.cn",
        8883,
        True,
        "dongguan-1.pi-01",
    )
    assert broker["ca_certificate"] == (root / "etc/punchproof/broker-ca.pem").read_text() and broker["password"]
    assert registration["cloud_key"] == (root / "var/lib/punchproof/cloud-witness.pub").read_text()
    shown = in_root(root, "sudo /opt/punchproof/bin/punchproof cloud show-config -c /etc/punchproof/cloud.toml --json")
    config = {key: entry["value"] for key, entry in json.loads(shown.stdout).items()}
    assert (config["mqtt.host"], config["mqtt.port"], config["mqtt.tls"], config["mqtt.username"]) == (
        "localhost",
        8884,
        True,
        "cloud-ingest",
    ), config
