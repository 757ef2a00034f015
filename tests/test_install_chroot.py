"""docs/install-pi.md followed to the letter in a clean Debian 12: a minbase root made by debootstrap,
then every command of the guide's shell blocks run in it (chroot) as written, sudo and all.

What stands in for a real Pi: the root starts with sudo and systemd installed (Raspberry Pi OS has
both); pip finds the wheel's dependencies in a local folder (``/etc/pip.conf``, as on a plant
without internet access) instead of PyPI; systemctl runs offline (``SYSTEMD_OFFLINE=1``, kept by
sudo), so ``daemon-reload`` is a no-op and ``enable --now`` enables the units but cannot start them.

About a minute and a half with debootstrap's package cache (``/var/cache/punchproof-debootstrap``)
warm; the root is made once per session and copied for each guide (``debian_root`` in
tests/conftest.py). It needs root and debootstrap (scripts/setup --test installs it) and reaches
Debian's package archive.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from punchproof import __version__
from tests.harness.debian_root import REPO, add_wheels, guide_commands, in_root

GUIDE = REPO / "docs" / "install-pi.md"

pytestmark = pytest.mark.e2e


def test_the_pi_guide_works_to_the_letter_in_a_clean_debian(tmp_path, debian_root):
    root = debian_root
    shutil.copy(add_wheels(root), root / "root")
    office = tmp_path / "office"
    subprocess.run([sys.executable, "-m", "punchproof", "cloud", "init", "-o", office / "cloud.toml",
                    "--state-dir", office], check=True, capture_output=True)  # fmt: skip
    shutil.copy(office / "cloud-witness.pub", root / "root")

    results = {}
    for command in guide_commands(GUIDE):  # from a terminal, as the plant's IT person types them
        stdin = "plant manager's password 1\n" if "create-user" in command else ""
        if "appliance init" in command:
            assert "--mqtt-password" not in command, "a password on the command line is in ps and the history"
            stdin = "the password from head office\n"  # init asks for it
        result = in_root(root, command, stdin, terminal=True)
        results[command] = result
        if "enable --now" in command:  # enabled, but a chroot has no systemd running to start them
            assert "not been booted with systemd" in result.stdout, result.stdout
        elif "doctor" not in command:  # no broker and no time clock here: the doctor must say so, not crash
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    version = next(r for c, r in results.items() if c.endswith("punchproof --version"))
    assert version.stdout.strip() == f"punchproof {__version__}"
    doctor = next(r for c, r in results.items() if "doctor" in c)
    assert doctor.returncode == 1 and "[ OK ] 数据库 database" in doctor.stdout, doctor.stdout
    assert "[ OK ] 签名日志 signed log" in doctor.stdout
    assert "[FAIL] 消息服务器 broker" in doctor.stdout
    enabled = in_root(root, "systemctl is-enabled punchproof-appliance punchproof-appliance-web")
    assert enabled.stdout.split() == ["enabled", "enabled"], enabled.stdout + enabled.stderr
    owner = in_root(root, "stat -c '%U %a' /var/lib/punchproof/keys/log-signing.pem /etc/punchproof/appliance.toml")
    assert owner.stdout.split("\n")[:2] == ["punchproof 600", "root 640"], owner.stdout
    config = in_root(root, "grep -c 'the password from head office' /etc/punchproof/appliance.toml")
    assert config.stdout.strip() == "1", "the password typed at init's question is in the configuration"
    users = in_root(root, "id punchproof")
    assert "dialout" in users.stdout


def test_sudo_runs_in_the_root_from_a_terminal_and_without(debian_root):
    """The guides' commands start with sudo. Run from a terminal, sudo gives its command a new
    pseudo-terminal (Debian's ``use_pty``), which a root without /dev/pts cannot give: the guide tests
    then failed for whoever ran ./scripts/test in a terminal, and passed in CI, which has none."""
    for terminal in (True, False):
        result = in_root(debian_root, "sudo -u nobody id -un && sudo tty || true", terminal=terminal)
        said = result.stdout + result.stderr
        assert result.returncode == 0 and "nobody" in said and "unable to allocate pty" not in said, said
        assert ("/dev/pts/" in said) == terminal, said  # the command had a terminal exactly when run from one
