"""The README's first command: the demo comes up with a plant that tells the story, and Ctrl-C stops it all.

With the real demo processes (``punchproof demo --fast``: a one-minute shift starting within a minute): the
kiosk and the board name the roster's workers, head office holds HR's employees and the published policy,
an evidence bundle verifies (also by tests/independent/verifier.py, written from ledger/FORMAT.md alone), and
the worker who never punches becomes an absence case at head office whose reminder reaches the demo's SMS and
mail stand-ins.
"""

from __future__ import annotations

import json
import os
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
INDEPENDENT = Path(__file__).parents[1] / "independent" / "verifier.py"


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
                "--fast",
                "--dir",
                str(tmp_path / "demo"),
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
                timeout=90,
                message="the demo banner",
            )
            logins = dict(re.findall(r"login: (\w+) / (\S+)", banner))
            assert set(logins) == {"hr", "manager"}
            assert re.search(r"时间戳机构 +http://127\.0\.0\.1:\d+/tsa", banner) and "the demo's own" in banner
            # the banner names the worker who will be missing and where the messages land
            assert "赵杰（1008）" in banner and str(tmp_path / "demo" / "messages" / "index.txt") in banner
            cloud = WebClient(f"http://127.0.0.1:{ports['cloud']}")
            assert cloud.login("hr", logins["hr"])[0] == 200
            check_the_plant_is_loaded(ports["appliance"], logins["manager"], cloud)
            wait_until(
                lambda: 'class="punch"' in cloud.get("/devices")[1],
                timeout=30,
                message="a demo punch on the cloud page",
            )
            check_a_demo_evidence_bundle(tmp_path)
            if os.environ.get("PUNCHPROOF_DEMO_CASE"):  # 2-4 minutes more: on demand, not in CI's half hour
                check_the_line_leader_is_alerted_within_two_minutes(tmp_path, banner)
                check_the_absent_worker_becomes_a_case(tmp_path, cloud)
        finally:
            demo.send_signal(signal.SIGINT)
            code = demo.wait(timeout=60)
    text = output.read_text()
    assert code == 0, text
    assert "all stopped." in text
    assert processes_mentioning(str(tmp_path / "demo")) == [], "processes left behind"


def check_the_plant_is_loaded(appliance_port: int, password: str, cloud: WebClient) -> None:
    """The roster came from HR's workbook through head office: the kiosk names who punched, the board lists the
    workers by line; head office has the employees and the policy HR published."""
    plant = WebClient(f"http://127.0.0.1:{appliance_port}")

    def named_punch() -> bool:
        punches = json.loads(plant.get("/kiosk/feed")[1])["punches"]
        return any(p.get("name") and p["name"] != "未登记人员" for p in punches)

    wait_until(named_punch, timeout=30, message="a punch with the worker's name on the kiosk")
    assert 'class="punch"' in plant.login("manager", password)[1]
    wait_until(
        lambda: all(word in plant.get("/")[1] for word in ("王伟", "赵杰", "马艳", "一线", "二线")),
        timeout=30,
        message="the roster's workers by line on the board",
    )
    employees = cloud.get("/employees")[1]
    assert all(name in employees for name in ("王伟", "赵杰", "马艳", "周静")), employees
    policies = cloud.get("/policy")[1]
    assert 'data-version="*/v1"' in policies, policies
    version = re.search(r'href="(/policy/\d+)"', policies)
    assert version is not None and "第六章第十二条" in cloud.get(version.group(1))[1]


def check_the_line_leader_is_alerted_within_two_minutes(tmp_path: Path, banner: str) -> None:
    """#20.1: at the shift's start (grace 0) the workers not checked in are an alert per line, sent by SMS to the
    line's leader (the demo's SMS stand-in) within 2 minutes. The end-to-end test is tests/e2e/test_alerts.py."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    start_hhmm = re.search(r"(\d\d:\d\d)  白班开始", banner).group(1)
    plant = ZoneInfo("Asia/Shanghai")
    today = datetime.now(plant).date()
    start = datetime.combine(today, datetime.strptime(start_hhmm, "%H:%M").time(), plant)
    if start < datetime.now(plant) - timedelta(hours=12):  # the banner's time is tomorrow's (a demo near midnight)
        start += timedelta(days=1)
    folder = tmp_path / "demo" / "messages" / "sms"
    alerts = wait_until(
        lambda: [s for p in folder.glob("*.json") if (s := json.loads(p.read_text()))["template"] == "SMS_DEMO_ALERT"],
        timeout=(start - datetime.now(plant)).total_seconds() + 150,
        message="the missed check-in alert by SMS",
    )
    received = datetime.fromisoformat(alerts[0]["received"]).astimezone(UTC)
    assert (received - start).total_seconds() <= 120, f"{received - start} after the shift's start"
    assert alerts[0]["variables"]["count"] != "0" and alerts[0]["variables"]["link"].startswith("http://127.0.0.1:")


def check_the_absent_worker_becomes_a_case(tmp_path: Path, cloud: WebClient) -> None:
    """赵杰 never punches: once the day is confirmed head office opens his case, and its reminder reaches the
    demo's SMS provider and SMTP sink (messages/). Run with PUNCHPROOF_DEMO_CASE=1: the demo's day must start
    after the appliance's first read and end before a case can open, which takes 2-4 minutes; CI runs the rest
    of the demo, and tests/e2e/test_coverage.py and the escalation tests cover a case opening from a miss."""
    # the shift starts on the first whole minute after the first read and lasts one: up to ~2.5 min from the banner
    wait_until(lambda: "赵杰" in cloud.get("/cases")[1], timeout=240, message="an absence case for 赵杰")
    index = tmp_path / "demo" / "messages" / "index.txt"
    wait_until(
        lambda: "name=赵杰" in index.read_text(encoding="utf-8") and "1008@staff.example.cn" in index.read_text(),
        timeout=30,
        message="赵杰's reminder by SMS and e-mail",
    )
    mails = [p.read_bytes() for p in (tmp_path / "demo" / "messages" / "mail").glob("*.eml")]
    assert any(b"1008@staff.example.cn" in mail for mail in mails)


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
    # and by a verifier written from ledger/FORMAT.md alone (standard library and openssl, none of our code)
    independent = subprocess.run(
        [sys.executable, INDEPENDENT, bundle, "--witness-key", demo / "cloud" / "cloud-witness.pub"],
        capture_output=True,
        text=True,
        check=False,
    )
    if os.environ.get("PUNCHPROOF_KEEP_DEMO_BUNDLE"):
        Path(os.environ["PUNCHPROOF_KEEP_DEMO_BUNDLE"]).write_bytes(bundle.read_bytes())
    assert independent.returncode == 0 and independent.stdout.startswith("OK"), independent.stdout


def _first_cosigned_punch(db: Path) -> tuple[str, str] | None:
    query = (
        "SELECT p.employee, p.device_time FROM punch p WHERE p.seq < "
        "(SELECT max(size) FROM cloud_checkpoint) ORDER BY p.seq LIMIT 1"
    )
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(query).fetchone()
    return (row[0], row[1]) if row else None
