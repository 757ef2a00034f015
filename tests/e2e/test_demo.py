"""The README's first command: the demo comes up, a punch reaches the cloud page, Ctrl-C stops it all."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from punchproof.broker import free_port
from tests.harness.http import WebClient
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e


def test_demo_runs_and_stops_cleanly(tmp_path):
    ports = {name: free_port() for name in ("zk", "mqtt", "appliance", "cloud")}
    output = tmp_path / "demo.out"
    with output.open("w") as out:
        demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "punchproof",
                "demo",
                "--dir",
                str(tmp_path / "demo"),
                "--punch-every",
                "0.5",
                "--zk-port",
                str(ports["zk"]),
                "--mqtt-port",
                str(ports["mqtt"]),
                "--appliance-port",
                str(ports["appliance"]),
                "--cloud-port",
                str(ports["cloud"]),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            banner = wait_until(
                lambda: "Press Ctrl-C" in output.read_text() and output.read_text(),
                timeout=60,
                message="the demo banner",
            )
            logins = dict(re.findall(r"login: (\w+) / (\S+)", banner))
            assert set(logins) == {"hr", "manager"}
            cloud = WebClient(f"http://127.0.0.1:{ports['cloud']}")
            assert cloud.login("hr", logins["hr"])[0] == 200
            wait_until(
                lambda: 'class="punch"' in cloud.get("/")[1], timeout=30, message="a demo punch on the cloud page"
            )
            plant = WebClient(f"http://127.0.0.1:{ports['appliance']}")
            assert 'class="punch"' in plant.login("manager", logins["manager"])[1]
        finally:
            demo.send_signal(signal.SIGINT)
            code = demo.wait(timeout=60)
    text = output.read_text()
    assert code == 0, text
    assert "all stopped." in text
    assert processes_mentioning(str(tmp_path / "demo")) == [], "processes left behind"


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended while we looked
            continue
        if text in argv:
            found.append(argv)
    return found
