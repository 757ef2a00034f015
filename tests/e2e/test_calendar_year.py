"""Next year's holidays from head office to the plant (issue #19, item 10), with real processes and a
real Mosquitto, in December 2026 with 2027 unpublished:

both doctors warn (what to do in Chinese, then English) -> HR runs ``punchproof cloud calendar set-year
2027 FILE`` -> the plant configuration carries it, signed and retained, to the appliance daemon, which
applies it -> the appliance's doctor no longer warns, and neither does the cloud's.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.harness.requires import need_tool
from tests.harness.system import System, cli
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e

GOV_2027 = """\
[holidays]
2027-01-01 = "元旦"
2027-02-08 = "春节"

[workdays]
2027-02-20 = "春节调休"
"""
LINE = "法定节假日 statutory calendar"


@pytest.fixture
def system(tmp_path, broker, zk_terminal):
    chain = System(tmp_path, broker.port, zk_terminal.address).configure()
    yield chain
    chain.stop_all_cleanly()


# The doctors run on 6 December 2026 whatever the date (faketime, a clock that starts there and runs):
# 2027, the first year chinesecalendar 1.11.0 lacks, then starts within 60 days. A test that skipped
# outside those weeks would fail every strict run from 2027 on.
TODAY = "2026-12-06 12:00:00"


def doctor(side: str, conf) -> str:  # type: ignore[no-untyped-def]
    """The doctor's report as the operator reads it (its exit code depends on the other checks)."""
    faketime = need_tool("faketime", "faketime")
    done = subprocess.run(
        [faketime, TODAY, sys.executable, "-m", "punchproof", side, "doctor", "-c", str(conf)],
        capture_output=True,
        text=True,
        env={**os.environ, "TZ": "Asia/Shanghai", "FAKETIME_DONT_FAKE_MONOTONIC": "1"},
    )
    assert (
        "2026-12-06"
        in subprocess.run(
            [faketime, TODAY, "date", "+%F"], capture_output=True, text=True, env={**os.environ, "TZ": "Asia/Shanghai"}
        ).stdout
    )
    return done.stdout


def calendar_lines(report: str) -> list[str]:
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if LINE in line)
    return lines[start : start + 3]


def test_hr_publishes_next_year_and_the_plant_stops_warning(system, tmp_path):
    system.start_ingest()
    system.start_appliance()

    for side, conf in (("appliance", system.appliance_conf), ("cloud", system.cloud_conf)):
        warned = calendar_lines(doctor(side, conf))
        assert warned[0].startswith(f"[WARN] {LINE}: 2027 not published"), warned
        assert warned[1].strip().startswith("处理：2027 年节假日安排尚未发布") and "set-year 2027" in warned[1]
        assert warned[2].strip().startswith("Fix:"), "Chinese first, then English"

    notice = tmp_path / "2027.toml"
    notice.write_text(GOV_2027, encoding="utf-8")
    out = cli("cloud", "calendar", "set-year", "2027", notice, "-c", system.cloud_conf, "--by", "hr-wang")
    assert "2027 年节假日安排：版本 1" in out and "published version 1" in out, out

    def applied() -> list[tuple]:
        return system.appliance_rows("SELECT source, text FROM calendar_file WHERE id = 2")

    ((source, text),) = wait_until(applied, timeout=30, message="the appliance to apply head office's calendar")
    assert source.startswith("cloud:v") and '2027-01-01 = "元旦"' in text

    settled = calendar_lines(doctor("appliance", system.appliance_conf))[0]
    assert settled.startswith(f"[ OK ] {LINE}: chinesecalendar-1.11.0+head-office-2027v1"), settled
    assert calendar_lines(doctor("cloud", system.cloud_conf))[0].startswith(f"[ OK ] {LINE}")
