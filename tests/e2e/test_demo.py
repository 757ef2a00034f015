"""The README's first command: the demo comes up, a punch reaches the cloud page, Ctrl-C stops it all."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import zipfile
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
            assert "Timestamp authority       http://127.0.0.1:" in banner and "the demo's own" in banner
            cloud = WebClient(f"http://127.0.0.1:{ports['cloud']}")
            assert cloud.login("hr", logins["hr"])[0] == 200
            wait_until(
                lambda: 'class="punch"' in cloud.get("/")[1], timeout=30, message="a demo punch on the cloud page"
            )
            plant = WebClient(f"http://127.0.0.1:{ports['appliance']}")
            assert 'class="punch"' in plant.login("manager", logins["manager"])[1]
            check_a_demo_evidence_bundle(tmp_path)
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


def check_a_demo_evidence_bundle(tmp_path: Path) -> None:
    """What the README tells head office to do with the demo: export a worker's bundle, verify it with
    ``punchproof verify`` and by hand with the OpenSSL steps in its MANUAL-CHECKS.md."""
    demo = tmp_path / "demo"
    db = demo / "cloud" / "cloud.sqlite3"
    employee, device_time = wait_until(lambda: _first_cosigned_punch(db), timeout=30, message="a cosigned demo punch")
    bundle = tmp_path / "bundle.zip"
    day = device_time[:10]
    run = [sys.executable, "-m", "punchproof"]
    export = subprocess.run(
        [
            *run,
            "cloud",
            "export-evidence",
            "-c",
            demo / "cloud.toml",
            "--employee",
            employee,
            "--from",
            day,
            "--to",
            day,
            "-o",
            bundle,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert export.returncode == 0, export.stderr
    verify = subprocess.run(
        [*run, "verify", bundle, "--witness-key", demo / "cloud" / "cloud-witness.pub"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0 and "RESULT: every check passed" in verify.stdout, verify.stdout
    # the demo runs its own RFC 3161 TSA and configures the cloud with it: its bundles carry RFC 3161 time
    assert "[[tsa.authority]]" in (demo / "cloud.toml").read_text()
    assert re.search(r"witness log\s+OK\s+.*timestamped by a TSA", verify.stdout), verify.stdout
    folder = tmp_path / "bundle"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(folder)
    manual = (folder / "MANUAL-CHECKS.md").read_text()
    sums, record = [b.replace("    ", "") for b in re.findall(r"\n\n((?:    .*\n)+)", manual)][:2]
    by_hand = subprocess.run(["bash", "-c", "set -e\n" + sums + record], cwd=folder, capture_output=True, text=True)
    assert by_hand.returncode == 0 and "Signature Verified Successfully" in by_hand.stdout, by_hand.stderr


def _first_cosigned_punch(db: Path) -> tuple[str, str] | None:
    query = (
        "SELECT p.employee, p.device_time FROM punch p WHERE p.seq < "
        "(SELECT max(size) FROM cloud_checkpoint) ORDER BY p.seq LIMIT 1"
    )
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(query).fetchone()
    return (row[0], row[1]) if row else None
