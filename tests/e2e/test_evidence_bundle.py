"""A bundle exported from a running system verifies with `punchproof verify` and with OpenSSL alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from firmware_bridge.zk.emulator import TerminalState, ZKEmulator
from punchproof.broker import Mosquitto
from tests.conftest import PLANT_TZ
from tests.harness.system import System, cli
from tests.harness.tsa import OpenSslTsa
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """One running system's bundle, made once for this module's tests (each reads it, none changes it)."""
    root = tmp_path_factory.mktemp("bundle")
    terminal_state = TerminalState(serial="TEST-ZK-01", tz=PLANT_TZ, now=lambda: datetime.now(UTC))
    terminal_state.add_user("1001", "张三")
    terminal_state.add_user("1002", "李四")
    broker = Mosquitto(root / "broker").start()
    try:
        with ZKEmulator(terminal_state, port=0) as zk_terminal, OpenSslTsa(root / "tsa") as tsa:
            yield _export(root, broker, zk_terminal, terminal_state, tsa)
    finally:
        broker.kill()


def _export(tmp_path, broker, zk_terminal, terminal_state, tsa):
    system = System(tmp_path, broker.port, zk_terminal.address).configure()
    with system.cloud_conf.open("a") as conf:  # a timestamp authority, and the witness log sealed each second
        conf.write(f'\n[tsa]\nurl = "{tsa.url}"\nca_file = "{tsa.ca_path}"\n\n[witness]\nseal_every_s = 1\n')
    system.start_ingest()
    system.start_appliance()
    terminal_state.punch("1001", state=0)
    terminal_state.punch("1002", state=0)
    wait_until(
        lambda: (
            system.cloud_rows("SELECT count(*) FROM cloud_checkpoint")[0][0] > 0
            and len(system.cloud_rows("SELECT seq FROM punch")) == 2
        ),
        timeout=20,
        message="cosigned punches",
    )
    stamped = "SELECT count(*) FROM witness_stamp WHERE reason = 'hourly'"
    wait_until(lambda: system.cloud_rows(stamped)[0][0] > 0, timeout=20, message="the witness log stamped by the TSA")
    codes = system.stop_all()  # the shutdown seal and checkpoint are synced at the next start
    assert set(codes.values()) == {0}
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    path = tmp_path / "evidence.zip"
    cli(
        "cloud",
        "export-evidence",
        "-c",
        system.cloud_conf,
        "--employee",
        "1001",
        "--from",
        today,
        "--to",
        today,
        "-o",
        path,
    )
    return path, system, tsa.ca_path


def test_punchproof_verify_passes_and_fails_on_a_changed_byte(bundle, tmp_path):
    path, system, tsa_ca = bundle
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "punchproof",
            "verify",
            str(path),
            "--witness-key",
            str(system.root / "cloud" / "cloud-witness.pub"),
            "--tsa-ca",
            str(tsa_ca),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "RESULT: every check passed" in ok.stdout
    assert re.search(r"witness log\s+OK\s+\d+ checkpoints in the cloud's signed log; timestamped by a TSA", ok.stdout)
    as_json = subprocess.run(
        [sys.executable, "-m", "punchproof", "verify", str(path), "--json"], capture_output=True, text=True, check=False
    )
    report = json.loads(as_json.stdout)
    assert report["ok"] and [d["fields"]["emp"] for d in report["disclosed"]] == ["1001"]
    # the keys came from the bundle itself: never a full pass (issue #22.5); the appliance's key was registered,
    # dated, in the cloud's signed evidence log when head office registered it, and the report shows it
    assert as_json.returncode == 5 and report["result"] == "unpinned" and not report["keys_pinned"], as_json.stdout
    (registered,) = [r for r in report["key_records"] if r["type"] == "keyreg"]
    html = zipfile.ZipFile(path).read("report.html").decode()
    assert "设备公钥登记" in html and registered["key_kid"] in html
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, data.replace(b'"emp":"1001"', b'"emp":"1009"') if b'"emp":"1001"' in data else data)
    bad = subprocess.run(
        [sys.executable, "-m", "punchproof", "verify", str(broken)], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1 and "FAIL" in bad.stdout


def unpacked_manual(path, folder):
    """Unzip the bundle as the reader would, and return the shell blocks of its MANUAL-CHECKS.md."""
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    manual = (folder / "MANUAL-CHECKS.md").read_text()
    return [block.replace("    ", "") for block in re.findall(r"\n\n((?:    .*\n)+)", manual)]


def run_in(folder, script):
    return subprocess.run(["bash", "-c", "set -e\n" + script], cwd=folder, capture_output=True, text=True, check=False)


def test_the_manual_openssl_checks_work_as_written(bundle, tmp_path):
    path, _system, _tsa_ca = bundle
    folder = tmp_path / "unzipped"
    blocks = unpacked_manual(path, folder)
    sums, record = blocks[0], blocks[1]

    result = run_in(folder, sums)
    assert result.returncode == 0 and "FAILED" not in result.stdout, result.stdout + result.stderr
    result = run_in(folder, record)
    assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout, result.stdout + result.stderr
    leaf_hex, listed = [line for line in result.stdout.splitlines() if re.fullmatch(r"[0-9a-f]{64}", line)]
    assert leaf_hex == listed, "the recomputed leaf hash is the one listed for the record's position"


def test_the_manual_checkpoint_and_cosignature_checks_work_as_written(bundle, tmp_path):
    path, _system, _tsa_ca = bundle
    folder = tmp_path / "unzipped"
    blocks = unpacked_manual(path, folder)
    checkpoint_block, cosignature_block = blocks[3], blocks[4]
    # What the reader is told to do by hand: take a note, write its first three lines to body.txt,
    # and copy the base64 of the appliance's and the cloud's signature lines.
    entry = json.loads((folder / "logs/0/checkpoints.jsonl").read_text().splitlines()[0])
    body, _, signatures = entry["note"].rpartition("\n\n")
    (folder / "body.txt").write_text(body + "\n")
    appliance_line, cloud_line = signatures.splitlines()
    script = checkpoint_block.replace(
        "BASE64-OF-THE-APPLIANCE-LINE", appliance_line.rsplit(" ", 1)[1]
    ) + cosignature_block.replace("BASE64-OF-THE-CLOUD-LINE", cloud_line.rsplit(" ", 1)[1])
    result = run_in(folder, script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("Signature Verified Successfully") == 2
    assert str(datetime.now().year) in result.stdout, "the cloud's witness time is printed"


def test_the_manual_timestamp_check_works_as_written(bundle, tmp_path):
    path, _system, _tsa_ca = bundle
    folder = tmp_path / "unzipped"
    blocks = unpacked_manual(path, folder)
    result = run_in(folder, blocks[-1])
    assert result.returncode == 0 and "Verification: OK" in result.stdout, result.stdout + result.stderr
