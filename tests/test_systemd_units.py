"""Every unit runs a command that exists, as the right user, with its state and config directories."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from punchproof.cli import build_parser

UNITS = sorted((Path(__file__).resolve().parents[1] / "systemd").glob("*.service"))


def test_there_is_a_unit_per_long_running_process():
    assert {u.name for u in UNITS} >= {
        "punchproof-appliance.service",
        "punchproof-appliance-web.service",
        "punchproof-ingest@.service",
        "punchproof-cloud-web.service",
    }


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_runs_a_real_subcommand(unit):
    text = unit.read_text()
    assert text.startswith("#"), "each unit starts with a comment saying what it runs"
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(text)
    service = parser["Service"]
    assert service["User"] == "punchproof" and service["StateDirectory"] == "punchproof"
    argv = shlex.split(service["ExecStart"].replace("%i", "1"))
    assert argv[0] == "/opt/punchproof/bin/punchproof"
    args = build_parser().parse_args(argv[1:])  # exits (fails the test) on an unknown subcommand or option
    assert callable(args.func)
