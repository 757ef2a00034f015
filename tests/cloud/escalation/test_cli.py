"""``punchproof cloud escalate`` as a real subprocess against a real configuration and database."""

from __future__ import annotations

import json
import subprocess
import sys


def test_escalate_runs_one_tick_and_reports_it(tmp_path):
    config = tmp_path / "cloud.toml"
    init = subprocess.run(
        [
            sys.executable,
            "-m",
            "punchproof",
            "cloud",
            "init",
            "-o",
            str(config),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    run = subprocess.run(
        [sys.executable, "-m", "punchproof", "cloud", "escalate", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["ran"] is True and report["sent"] == 0
