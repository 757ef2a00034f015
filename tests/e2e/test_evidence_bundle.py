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
from tests.cloud.test_manual_checks import SHELLS, assert_kept, run, shell_blocks
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
    assert re.search(r"witness log\s+OK\s+.*\d+ checkpoints in the cloud's signed log; timestamped by a TSA", ok.stdout)
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
    """Unzip the bundle as the reader would, and return the shell blocks of its MANUAL-CHECKS.md by the name each
    block's first line gives (``# record: …``)."""
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    return shell_blocks((folder / "MANUAL-CHECKS.md").read_text())


def test_every_manual_check_works_as_written_under_dash_and_bash(bundle, tmp_path):
    """Every block of MANUAL-CHECKS.md, in order, in the unzipped bundle, under Debian's /bin/sh (dash) and bash:
    each prints what the text promises (tests.cloud.test_manual_checks.assert_kept)."""
    path, _system, _tsa_ca = bundle
    for shell in SHELLS:
        folder = tmp_path / shell
        blocks = unpacked_manual(path, folder)
        assert {"files", "record", "checkpoint", "cosignature", "inclusion", "timestamp", "anchors"} <= set(blocks)
        for name, script in blocks.items():
            assert_kept(f"{shell}: {name}", script, run(folder, shell, script))


def test_the_manual_record_check_recomputes_the_listed_leaf_and_fails_on_a_changed_byte(bundle, tmp_path):
    path, _system, _tsa_ca = bundle
    folder = tmp_path / "unzipped"
    blocks = unpacked_manual(path, folder)
    done = run(folder, "dash", blocks["files"] + blocks["record"])
    assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout, done.stdout + done.stderr
    assert re.search(r"^SHA-256 = line \d+ of leaves.txt: OK$|^leaf = line \d+ of leaves.txt: OK$", done.stdout, re.M)
    record = re.search(r"# record: (\S+) signed by", blocks["record"])[1]
    (folder / record).write_bytes((folder / record).read_bytes().replace(b'"emp":"1001"', b'"emp":"1009"'))
    done = run(folder, "dash", blocks["record"], errexit=False)
    assert "Signature Verification Failure" in done.stdout + done.stderr and "differ" in done.stdout
    assert "SHA-256 = line" not in done.stdout and "leaf = line" not in done.stdout


def test_the_manual_checkpoint_and_cosignature_checks_work_as_written(bundle, tmp_path):
    path, _system, _tsa_ca = bundle
    folder = tmp_path / "unzipped"
    blocks = unpacked_manual(path, folder)
    result = run(folder, "dash", blocks["checkpoint"] + blocks["cosignature"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("Signature Verified Successfully") == 2
    assert str(datetime.now().year) in result.stdout, "the cloud's witness time is printed"


def test_the_manual_timestamp_check_works_as_written(bundle, tmp_path):
    path, _system, _tsa_ca = bundle
    folder = tmp_path / "unzipped"
    blocks = unpacked_manual(path, folder)
    result = run(folder, "dash", blocks["timestamp"])
    assert result.returncode == 0 and "Verification: OK" in result.stdout, result.stdout + result.stderr
