"""A clean Debian 12 root for following an install guide to the letter (tests/test_install_*chroot.py).

debootstrap makes one minbase root per test session (``build``); each test gets its own copy
(``copy_of``), so the Pi guide and the cloud guide both start from the same untouched system without
paying for debootstrap twice. Commands run in it with chroot, as root, with systemctl offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.harness.requires import missing, need_tool

REPO = Path(__file__).resolve().parents[2]
CACHE = Path("/var/cache/punchproof-debootstrap")  # debootstrap's downloaded packages, kept between runs
WHEELS = "var/cache/punchproof-wheels"  # inside the root: where pip finds the wheels (/etc/pip.conf)


def build(root: Path) -> Path:
    """debootstrap a minbase bookworm with sudo and systemd (Raspberry Pi OS and cloud images have both)."""
    if os.geteuid() != 0:
        missing("the chroot install tests need root (CI runs as root)")
    debootstrap = need_tool("debootstrap", "debootstrap")
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
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\t\tlocalhost\n")  # as the installer writes it
    return root


def copy_of(base: Path, root: Path) -> Path:
    """A copy of the session's root with /proc mounted; ``remove`` undoes both."""
    subprocess.run(["cp", "-a", str(base), str(root)], check=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    return root


def remove(root: Path) -> None:
    subprocess.run(["umount", "-l", str(root / "proc")], check=False)
    if not os.path.ismount(root / "proc"):  # never delete through a mounted /proc
        shutil.rmtree(root, ignore_errors=True)


def add_wheels(root: Path, extras: str = "") -> Path:
    """This repository's wheel and its dependencies in a folder of the root that pip uses instead of PyPI,
    as on a machine without internet access; returns the project's wheel."""
    wheels = root / WHEELS
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(wheels), f"{REPO}{extras}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    (root / "etc/pip.conf").write_text(f"[global]\nno-index = true\nfind-links = /{WHEELS}\n")
    return next(wheels.glob("punchproof-*.whl"))


def guide_commands(guide: Path) -> list[str]:
    """Every command of the guide's ``sh`` blocks, one per line; a here-document is one command with its lines."""
    blocks = re.findall(r"```sh\n(.*?)```", guide.read_text(encoding="utf-8"), re.S)
    commands: list[str] = []
    for block in blocks:
        lines = iter(block.splitlines())
        for line in lines:
            if not line.strip():
                continue
            heredoc = re.search(r"<<-?\s*'?(\w+)'?", line)
            if heredoc:
                body = []
                for more in lines:
                    body.append(more)
                    if more == heredoc.group(1):
                        break
                line = "\n".join([line, *body])
            commands.append(line)
    return commands


def in_root(
    root: Path, command: str, stdin: str = "", *, enter: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with bash in the root, as root; ``enter`` prefixes chroot (e.g. nsenter into a namespace)."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        "SYSTEMD_OFFLINE": "1",  # no systemd runs in a chroot: enable the units, start nothing
    }
    return subprocess.run(
        [*enter, "chroot", str(root), "/bin/bash", "-ec", f"cd /root && {command}"],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
