"""The short form of bench/fuzz_push.py, in CI: 2,000 malformed ADMS requests against the real
daemon, then a good batch. No 5xx, no dropped connection, every good punch stored once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "fuzz_push.py"


def test_two_thousand_malformed_requests_crash_nothing_and_the_next_batch_is_stored():
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--requests", "2000", "--seed", "23"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = run.stdout
    assert "crashes:        0 " in report, report + run.stderr[-2000:]
    assert "good punches:   100 of 100 stored after it (100 distinct)" in report, report
    assert "errors logged:  0" in report and "dead threads:   none" in report, report
    assert run.returncode == 0, report + run.stderr[-2000:]
