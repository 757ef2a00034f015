"""docs/install-pi.md followed to the letter in a clean Debian 12: a minbase root made by debootstrap,
then every command of the guide's shell blocks run in it (chroot) as written, sudo and all.

What stands in for a real Pi: the root starts with sudo and systemd installed (Raspberry Pi OS has
both); pip finds the wheel's dependencies in a local folder (``/etc/pip.conf``, as on a plant
without internet access) instead of PyPI; systemctl runs offline (``SYSTEMD_OFFLINE=1``, kept by
sudo), so ``daemon-reload`` is a no-op and ``enable --now`` enables the units but cannot start them.

About two minutes with debootstrap's package cache (``/var/cache/punchproof-debootstrap``) warm; it
needs root and debootstrap (scripts/setup --test installs it) and reaches Debian's package archive.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from punchproof import __version__
from tests.harness.requires import missing, need_tool

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "install-pi.md"
CACHE = Path("/var/cache/punchproof-debootstrap")  # debootstrap's downloaded packages, kept between runs

pytestmark = pytest.mark.e2e


def guide_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def in_root(root: Path, command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        "SYSTEMD_OFFLINE": "1",  # no systemd runs in a chroot: enable the units, start nothing
    }
    return subprocess.run(
        ["chroot", str(root), "/bin/bash", "-ec", f"cd /root && {command}"],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )


@pytest.fixture
def debian_root(tmp_path):
    if os.geteuid() != 0:
        missing("the chroot install test needs root (CI runs as root)")
    debootstrap = need_tool("debootstrap", "debootstrap")
    root = tmp_path / "root"
    CACHE.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [debootstrap, "--variant=minbase", f"--cache-dir={CACHE}", "--include=sudo,systemd", "bookworm", str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    (root / "etc/sudoers.d/offline").write_text('Defaults env_keep += "SYSTEMD_OFFLINE"\n')
    (root / "etc/sudoers.d/offline").chmod(0o440)
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    yield root
    subprocess.run(["umount", "-l", str(root / "proc")], check=False)


def test_the_pi_guide_works_to_the_letter_in_a_clean_debian(tmp_path, debian_root):
    root = debian_root
    wheels = root / "var/cache/punchproof-wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(wheels), str(REPO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    (root / "etc/pip.conf").write_text("[global]\nno-index = true\nfind-links = /var/cache/punchproof-wheels\n")
    shutil.copy(next(wheels.glob("punchproof-*.whl")), root / "root")
    office = tmp_path / "office"
    subprocess.run([sys.executable, "-m", "punchproof", "cloud", "init", "-o", office / "cloud.toml",
                    "--state-dir", office], check=True, capture_output=True)  # fmt: skip
    shutil.copy(office / "cloud-witness.pub", root / "root")

    results = {}
    for command in guide_commands():
        stdin = "plant manager's password 1\n" if "create-user" in command else ""
        result = in_root(root, command, stdin)
        results[command] = result
        if "enable --now" in command:  # enabled, but a chroot has no systemd running to start them
            assert "not been booted with systemd" in result.stderr, result.stderr
        elif "doctor" not in command:  # no broker and no time clock here: the doctor must say so, not crash
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    version = next(r for c, r in results.items() if c.endswith("punchproof --version"))
    assert version.stdout.strip() == f"punchproof {__version__}"
    doctor = next(r for c, r in results.items() if "doctor" in c)
    assert doctor.returncode == 1 and "[ OK ] 数据库 database" in doctor.stdout, doctor.stdout + doctor.stderr
    assert "[FAIL] 消息服务器 broker" in doctor.stdout
    enabled = in_root(root, "systemctl is-enabled punchproof-appliance punchproof-appliance-web")
    assert enabled.stdout.split() == ["enabled", "enabled"], enabled.stdout + enabled.stderr
    owner = in_root(root, "stat -c '%U %a' /var/lib/punchproof/keys/log-signing.pem /etc/punchproof/appliance.toml")
    assert owner.stdout.split("\n")[:2] == ["punchproof 600", "root 640"], owner.stdout
    users = in_root(root, "id punchproof")
    assert "dialout" in users.stdout
