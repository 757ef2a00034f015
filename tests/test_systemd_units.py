"""Every unit runs a command that exists, as the right user, hardened, and systemd itself accepts it.

``systemd-analyze verify`` runs against a throwaway root holding the units, systemd's own units
and an executable at /opt/punchproof/bin/punchproof, so it checks what an installed system would
have, on any machine. In CI (``CI`` set) a missing ``systemd-analyze`` fails the test: scripts/setup
--test installs it (Debian package ``systemd``).
"""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from punchproof.cli import build_parser
from tests.harness.requires import missing, need_tool

UNITS = sorted((Path(__file__).resolve().parents[1] / "systemd").glob("*.service"))
LONG_RUNNING = {
    "punchproof-appliance.service",
    "punchproof-ingest@.service",
    "punchproof-escalate.service",
}  # our own loops: a watchdog
GUNICORN = {"punchproof-appliance-web.service", "punchproof-cloud-web.service"}  # gunicorn notifies itself
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def read_unit(unit: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd's keys are case-sensitive
    parser.read_string(unit.read_text())
    return parser


def values(unit: Path, key: str) -> list[str]:
    """Every value of ``key`` in [Service] (configparser keeps only the last of repeated keys)."""
    return [line.split("=", 1)[1] for line in unit.read_text().splitlines() if line.startswith(f"{key}=")]


def test_there_is_a_unit_per_long_running_process():
    assert {u.name for u in UNITS} >= {
        "punchproof-appliance.service",
        "punchproof-appliance-web.service",
        "punchproof-ingest@.service",
        "punchproof-cloud-web.service",
        "punchproof-escalate.service",
    }


def _subcommand_exists(argv: list[str]) -> bool:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[argv[0]]  # type: ignore[union-attr]
    commands = sub._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    return argv[1] in commands


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_runs_a_real_subcommand(unit):
    text = unit.read_text()
    assert text.startswith("#"), "each unit starts with a comment saying what it runs"
    service = read_unit(unit)["Service"]
    assert service["User"] == "punchproof" and service["StateDirectory"] == "punchproof"
    argv = shlex.split(service["ExecStart"].replace("%i", "1"))
    assert argv[0] == "/opt/punchproof/bin/punchproof"
    if unit.name == "punchproof-escalate.service" and not _subcommand_exists(argv[1:3]):
        pytest.skip("'punchproof cloud escalate' is not merged yet")
    args = build_parser().parse_args(argv[1:])  # exits (fails the test) on an unknown subcommand or option
    assert callable(args.func)


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_is_hardened_with_a_reason_on_each_line(unit):
    service = read_unit(unit)["Service"]
    for key, value in {
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "CapabilityBoundingSet": "",
        "SystemCallArchitectures": "native",
        "ConfigurationDirectory": "punchproof",
    }.items():
        assert service.get(key) == value, f"{unit.name}: {key}={value}"
    assert "@system-service" in values(unit, "SystemCallFilter")
    assert set(service["RestrictAddressFamilies"].split()) <= {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert service["Restart"] == "always"
    lines = unit.read_text().splitlines()
    hardening = lines.index(next(line for line in lines if line.startswith("# -- hardening")))
    for number, line in enumerate(lines[hardening:], start=hardening):
        if line.startswith("[Install]"):
            break
        if line and not line.startswith("#"):
            block_start = number
            while block_start > 0 and lines[block_start - 1] and not lines[block_start - 1].startswith("#"):
                block_start -= 1
            assert lines[block_start - 1].startswith("#"), f"{unit.name}: no comment says why {line!r}"


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_long_running_processes_tell_systemd_they_are_ready_and_alive(unit):
    service = read_unit(unit)["Service"]
    if unit.name in LONG_RUNNING:
        assert service["Type"] == "notify" and int(service["WatchdogSec"]) >= 30
    elif unit.name in GUNICORN:
        assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
        assert service["KillMode"] == "mixed", "gunicorn's master stops its own workers"
        assert service["RuntimeDirectory"], "gunicorn's worker heartbeat files go to a tmpfs"
    if unit.name == "punchproof-appliance.service":
        assert service["SupplementaryGroups"] == "dialout", "serial card and fingerprint readers"
        assert "PrivateDevices" not in service, "readers are devices"


def test_the_appliance_unit_lets_the_daemon_stop_the_evaluator_it_started():
    """The daemon starts the attendance evaluator as a second process of its unit (#25 item 1): SIGTERM goes to the
    daemon alone, which stops the evaluator after its pass and signs what it queued; the unit says so."""
    unit = next(u for u in UNITS if u.name == "punchproof-appliance.service")
    service = read_unit(unit)["Service"]
    assert service["KillMode"] == "mixed" and service["KillSignal"] == "SIGTERM"
    header = unit.read_text().split("[Unit]")[0]
    assert "appliance.runtime.evaluator_process" in header, "the comment names the second process"
    from appliance.runtime import evaluator_process

    assert evaluator_process.MODULE == "appliance.runtime.evaluator_process"


def _verify_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, units / unit.name)
    executable = root / "opt/punchproof/bin/punchproof"
    executable.parent.mkdir(parents=True)
    executable.write_text(f"#!{sys.executable}\nfrom punchproof.cli import main\nraise SystemExit(main())\n")
    executable.chmod(0o755)
    return root


def systemd_analyze() -> str:
    tool = need_tool("systemd-analyze", "systemd")
    if not SYSTEM_UNITS.is_dir():
        missing(f"{SYSTEM_UNITS} is missing: systemd-analyze needs the system's own units (Debian package 'systemd')")
    return tool


def verify(tool: str, root: Path, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool, "verify", f"--root={root}", *names], capture_output=True, text=True, check=False, timeout=120
    )


def test_systemd_analyze_verify_accepts_every_unit(tmp_path):
    tool = systemd_analyze()
    root = _verify_root(tmp_path)
    names = [u.name.replace("@.service", "@1.service") for u in UNITS]
    result = verify(tool, root, *names)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_systemd_analyze_verify_would_catch_a_typo(tmp_path):
    """The check above can fail: a misspelt key is reported (systemd only warns, so we read its output)."""
    tool = systemd_analyze()
    root = _verify_root(tmp_path)
    unit = root / "etc/systemd/system/punchproof-appliance.service"
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    result = verify(tool, root, unit.name)
    assert "ProtectSytem" in result.stderr
