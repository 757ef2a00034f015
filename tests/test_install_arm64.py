"""The appliance on arm64, for real: docs/install-pi.md followed in an arm64 Debian 12 (a Pi's Raspberry
Pi OS 64-bit is Debian 12 for arm64), then the daemon run there against a time clock and head office.

The root is made by debootstrap for arm64 and every program in it (apt, dpkg, pip, Python, the daemon)
runs as arm64 code under qemu-user-static (binfmt_misc; ``debian_root.emulate_arm64`` sets it up on a
fresh machine). pip installs the wheels the plant would get: this repository's wheel and the pure-Python
dependencies as built here, the compiled ones (cryptography, cffi, orjson, rfc3161-client, Pillow,
MarkupSafe, fontTools) as their publishers built them for aarch64 (``debian_root.foreign_wheels``).
The guide's commands run as written, but for the two values a plant's IT person types in: the broker
(head office's, here Mosquitto on this machine's loopback) and the time clock's address (the ZK
emulator on loopback). Head office (``cloud ingest``) runs on this machine, as in tests/harness/system.py.
The daemon is started as its systemd unit starts it (the unit's ExecStart and User), since a chroot has
no systemd running.

Debootstrap's second stage under emulation takes minutes, so the root is made once and kept as a
tarball (``debian_root.build_cached``, /var/cache/punchproof-debian-roots, named for its package list);
its packages and the aarch64 wheels are cached too. The root has the packages of the guide's step 1
(python3-venv, chrony) from the start: installing them under emulation took 6.4 minutes on a loaded
2-core machine, so the guide's ``apt-get install`` finds them installed (it still runs, as does
``apt-get update``); tests/test_install_chroot.py installs them on amd64. The virtualenv and pip's
install of the wheels, the part that is ours, run every time (about 3.5 minutes of the test, loaded).
It needs root, debootstrap and qemu-user-static (scripts/setup --test installs them) and reaches
Debian's package archive and PyPI.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path

import pytest

from ledger import GENESIS_PREV, SignedRecord, VerifyKey, note
from ledger.messages import Batch
from ledger.verify import verify_batch
from tests.harness import debian_root as debian
from tests.harness.debian_root import REPO, add_wheels, guide_commands, in_root
from tests.harness.system import System, cli
from tests.harness.wait import wait_until

GUIDE = REPO / "docs" / "install-pi.md"
CONFIG = "/etc/punchproof/appliance.toml"

pytestmark = pytest.mark.e2e


@pytest.fixture
def arm64_root(tmp_path: Path) -> Iterator[Path]:
    debian.emulate_arm64()
    packages = (*debian.PACKAGES, *debian.guide_packages(GUIDE))  # step 1's too: see the module's docstring
    root = debian.mount_in(debian.build_cached(tmp_path / "root", "arm64", packages))
    yield root
    debian.remove(root)


@pytest.fixture
def head_office(tmp_path: Path, broker, zk_terminal) -> Iterator[System]:
    """Head office on this machine (its processes, and the daemon in the root, stopped and checked after)."""
    (tmp_path / "office").mkdir()
    system = System(tmp_path / "office", broker.port, zk_terminal.address)
    cli("cloud", "init", "-o", system.cloud_conf, "--state-dir", system.root / "cloud", "--mqtt-port", broker.port)
    yield system
    system.stop_all_cleanly()


def start_as_the_unit_does(root: Path, system: System) -> subprocess.Popen[bytes]:
    """The daemon in the root, as punchproof-appliance.service's ExecStart, User and UMask say."""
    unit = (root / "etc/systemd/system/punchproof-appliance.service").read_text()
    command = next(line for line in unit.splitlines() if line.startswith("ExecStart=")).removeprefix("ExecStart=")
    assert command == f"/opt/punchproof/bin/punchproof appliance run -c {CONFIG}", command
    log = (system.root / "appliance.log").open("ab")
    process = subprocess.Popen(
        [shutil.which("chroot") or "chroot", "--userspec=punchproof:punchproof", str(root), *command.split()],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin", "HOME": "/var/lib/punchproof", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: os.umask(0o027),  # noqa: PLW1509 - the unit's UMask, before exec
    )
    system.processes["appliance"] = process  # stopped and its exit code checked with the cloud's
    return process


def appliance_rows(root: Path, sql: str) -> list[tuple]:
    """What the daemon in the root wrote (SQLite's file format is the same on every architecture)."""
    path = root / "var/lib/punchproof/appliance.sqlite3"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


def test_the_appliance_installed_on_arm64_sends_punches_that_head_office_verifies(
    arm64_root, head_office, broker, zk_terminal, terminal_state
):
    root = arm64_root
    machine = in_root(root, "uname -m && dpkg --print-architecture")
    assert machine.stdout.split() == ["aarch64", "arm64"], machine.stdout + machine.stderr
    shutil.copy(add_wheels(root, arch="arm64"), root / "root")
    system, office = head_office, head_office.root
    shutil.copy(office / "cloud" / "cloud-witness.pub", root / "root")

    host, port = zk_terminal.address
    results = {}
    for command in guide_commands(GUIDE):  # from a terminal, as the plant's IT person types them
        stdin = "plant manager's password 1\n" if "create-user" in command else ""
        if "appliance init" in command:  # head office's broker and the time clock, as this plant has them
            assert "mqtt.example.cn" in command and "192.168.1.201" in command, command
            command = command.replace("mqtt.example.cn", f"127.0.0.1 --mqtt-port {broker.port}")
            command = command.replace("192.168.1.201", f"{host}:{port}")
            stdin = "the password from head office\n"
        result = in_root(root, command, stdin, terminal=True)
        results[command] = result
        if "enable --now" in command:  # enabled, but a chroot has no systemd running to start them
            assert "not been booted with systemd" in result.stdout, result.stdout
        elif "doctor" not in command:  # run before head office registered the Pi: judged below
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    version = next(r for c, r in results.items() if c.endswith("punchproof --version"))
    assert version.stdout.strip().startswith("punchproof "), version.stdout
    doctor = next(r for c, r in results.items() if "doctor" in c)
    assert "[ OK ] 签名日志 signed log" in doctor.stdout, doctor.stdout
    assert "[ OK ] 消息服务器 broker" in doctor.stdout, doctor.stdout  # head office's broker, reached from arm64

    cli("cloud", "register-appliance", "-c", system.cloud_conf, root / "root/pi-01.json")
    system.start_ingest()
    daemon = start_as_the_unit_does(root, system)
    # chroot execs the daemon's Python, an arm64 program: the kernel hands it to qemu (binfmt_misc)
    interpreter = wait_until(
        lambda: "chroot" not in (exe := os.readlink(f"/proc/{daemon.pid}/exe")) and exe, timeout=30, message="exec"
    )
    assert "qemu" in interpreter or "aarch64" in interpreter, f"the daemon runs as {interpreter}, not arm64 code"
    terminal_state.punch("1001", state=0, when=datetime(2026, 3, 2, 7, 58, 0))
    terminal_state.punch("1002", state=0, when=datetime(2026, 3, 2, 7, 59, 30))
    rows = wait_until(
        lambda: len(system.cloud_punches()) == 2 and system.cloud_punches(),
        timeout=180,  # the daemon's start under emulation: Python and its imports run 5-10 times slower
        message=f"both punches at head office; the daemon's log:\n{system.log('appliance')[-3000:]}",
    )
    assert [(e, t) for e, t, _ in rows] == [("1001", "2026-03-02T07:58:00"), ("1002", "2026-03-02T07:59:30")]

    # head office's copy verifies from genesis under the key the Pi's identity file gave it
    identity = json.loads((root / "root/pi-01.json").read_text())
    records = system.cloud_rows("SELECT data, sig FROM log_record ORDER BY seq")
    batch = Batch(identity["log"], 0, tuple(SignedRecord(bytes(d), bytes(s)) for d, s in records))
    verify_batch(batch, key=VerifyKey.from_pem(identity["public_key"]), prev=GENESIS_PREV)
    assert max(seq for _e, _t, seq in rows) < len(records)
    # and the Pi holds them as acknowledged, with head office's cosignature on its checkpoint
    wait_until(
        lambda: appliance_rows(root, "SELECT acked_seq FROM sync_state")[0][0] >= rows[-1][2],
        timeout=60,
        message="the Pi to mark both punches synced",
    )
    size, line = wait_until(
        lambda: appliance_rows(root, "SELECT size, line FROM cosignature"), timeout=60, message="a cosignature"
    )[0]
    (checkpoint,) = appliance_rows(root, f"SELECT note FROM checkpoint WHERE size = {size}")[0]
    cloud_key = VerifyKey.from_pem((office / "cloud" / "cloud-witness.pub").read_text())
    assert note.verify_cosignature(checkpoint + line, cloud_key, "punchproof-cloud/witness") > 0
