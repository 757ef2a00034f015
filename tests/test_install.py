"""The documented Pi install, followed in a clean root: a new virtualenv under a temporary directory
gets the wheel built from this repository, then the very commands of docs/install-pi.md run with
their paths moved under that root, and systemd checks the units the wheel installed.

Left out, because they need root and change this machine: apt-get, useradd, chown/chgrp, systemctl.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from punchproof import __version__
from tests.harness.debian_root import wheel_of_this_repository
from tests.test_systemd_units import SYSTEM_UNITS, systemd_analyze

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "install-pi.md"
WHEEL = f"./punchproof-{__version__}-py3-none-any.whl"

# The guide's commands this test runs, exactly as written there (checked below).
STEPS = [
    "sudo python3 -m venv /opt/punchproof",
    f"sudo /opt/punchproof/bin/pip install {WHEEL}",
    "/opt/punchproof/bin/punchproof --version",
    "sudo install -d -m 0755 /etc/punchproof",
    "sudo cp cloud-witness.pub /etc/punchproof/cloud-witness.pub",
    "sudo /opt/punchproof/bin/punchproof appliance init -o /etc/punchproof/appliance.toml --plant dongguan-1 "
    '--plant-name "东莞一厂" --appliance pi-01 --state-dir /var/lib/punchproof --mqtt-host mqtt.example.cn '
    "--mqtt-username pi-01 --terminal gate-1=192.168.1.201 "
    "--cloud-key /etc/punchproof/cloud-witness.pub --identity /root/pi-01.json",
    "sudo /opt/punchproof/bin/punchproof appliance check-config -c /etc/punchproof/appliance.toml",
    "sudo cp /opt/punchproof/share/punchproof/systemd/punchproof-appliance.service "
    "/opt/punchproof/share/punchproof/systemd/punchproof-appliance-web.service /etc/systemd/system/",
    "sudo -u punchproof /opt/punchproof/bin/punchproof appliance doctor -c /etc/punchproof/appliance.toml",
]


def rerooted(line: str, root: Path, wheel: Path) -> list[str]:
    argv = shlex.split(line)
    while argv[0] in ("sudo", "-u", "punchproof"):
        argv = argv[1:]
    if argv[0] == "python3":
        argv[0] = sys.executable
    moved = []
    for arg in argv:
        if arg == WHEEL:
            arg = str(wheel)
        for prefix in ("/opt/punchproof", "/etc/punchproof", "/var/lib/punchproof", "/etc/systemd/system", "/root/"):
            if arg.startswith(prefix):
                arg = f"{root}{arg}"
        moved.append(arg)
    return moved


def test_the_guide_holds_every_step_this_test_runs():
    guide = GUIDE.read_text(encoding="utf-8")
    for step in STEPS:
        assert step in guide, f"docs/install-pi.md no longer says: {step}"


@pytest.mark.e2e
def test_the_documented_pi_install_works_in_a_clean_root(tmp_path):
    tool = systemd_analyze()
    root = tmp_path / "root"
    for directory in ("etc/systemd/system", "root", "var/lib"):
        (root / directory).mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    wheel = wheel_of_this_repository(tmp_path / "dist", deps=False)  # one build at a time in the repository
    head_office = tmp_path / "head-office"
    cloud = subprocess.run(
        [
            sys.executable,
            "-m",
            "punchproof",
            "cloud",
            "init",
            "-o",
            head_office / "cloud.toml",
            "--state-dir",
            head_office,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cloud.returncode == 0, cloud.stderr
    shutil.copy(head_office / "cloud-witness.pub", tmp_path / "cloud-witness.pub")

    outputs = []
    for step in STEPS:
        result = subprocess.run(
            rerooted(step, root, wheel),
            cwd=tmp_path,
            input="the password from head office\n" if "appliance init" in step else "",
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        outputs.append(result)
        if "doctor" not in step:  # the doctor finds no broker or terminal here: it must say so, not crash
            assert result.returncode == 0, f"{step}\n{result.stdout}\n{result.stderr}"

    assert outputs[2].stdout.strip() == f"punchproof {__version__}"
    assert "OK" in outputs[6].stdout
    doctor = outputs[-1]
    assert doctor.returncode == 1 and "[ OK ] 数据库 database" in doctor.stdout, doctor.stdout + doctor.stderr
    assert "[ OK ] 密钥 keys" in doctor.stdout and "[FAIL] 消息服务器 broker" in doctor.stdout
    state = root / "var/lib/punchproof"
    assert (state / "keys" / "log-signing.pem").stat().st_mode & 0o777 == 0o600
    assert (root / "root/pi-01.json").exists()
    assert (root / "opt/punchproof/share/doc/punchproof/install-pi.md").read_text() == GUIDE.read_text()

    units = ["punchproof-appliance.service", "punchproof-appliance-web.service"]
    verify = subprocess.run(
        [tool, "verify", f"--root={root}", *units], capture_output=True, text=True, check=False, timeout=120
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
