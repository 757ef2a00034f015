"""Issue #22.1, end to end: a bundle exported from running processes, from which one of the employee's punches was
taken out (its record files, its manifest count and report row; SHA256SUMS recomputed) and kept as an undisclosed
leaf, fails ``punchproof verify``: the leaf's owner tag is the employee's (ledger/FORMAT.md, "Version 2")."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from firmware_bridge.zk.emulator import TerminalState, ZKEmulator
from ledger.evidence import SUMS, sha256sums
from punchproof.broker import Mosquitto
from tests.conftest import PLANT_TZ
from tests.harness.system import System, cli
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e


def _export(root, broker, zk_terminal, terminal_state):
    """As tests/e2e/test_evidence_bundle.py's bundle, with 1001 punching in and out and 1002 in between."""
    system = System(root, broker.port, zk_terminal.address).configure()
    system.start_ingest()
    system.start_appliance()
    for user, state in (("1001", 0), ("1002", 0), ("1001", 1)):
        terminal_state.punch(user, state=state)
    wait_until(
        lambda: (
            len(system.cloud_rows("SELECT seq FROM punch")) == 3
            and system.cloud_rows("SELECT count(*) FROM cloud_checkpoint")[0][0] > 0
        ),
        timeout=60,  # the processes start in a few seconds; more on a loaded machine
        message="three cosigned punches",
    )
    assert set(system.stop_all().values()) == {0}
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    path = root / "evidence.zip"
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
    return path


def _withhold_last_punch(bundle: bytes) -> tuple[bytes, int]:
    """What a hostile exporter does: one of 1001's punches out of the files, the manifest and the report."""
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    punches = sorted(
        int(name.rsplit("/", 1)[1].split(".")[0])
        for name, data in files.items()
        if re.fullmatch(r"logs/0/records/\d+\.json", name) and json.loads(data)["type"] == "punch"
    )
    seq = punches[-1]  # not the first: that one gave 1001's tag key, and a reader must be shown it
    for suffix in (".json", ".sig", ".proof.json"):
        del files[f"logs/0/records/{seq}{suffix}"]
    manifest = json.loads(files["manifest.json"])
    manifest["logs"][0]["disclosed"] -= 1
    files["manifest.json"] = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
    files["report.html"] = re.sub(
        rb"<tr>(?:(?!</tr>).)*records/%d\.json(?:(?!</tr>).)*</tr>" % seq, b"", files["report.html"], flags=re.S
    )
    del files[SUMS]
    files[SUMS] = sha256sums(files)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue(), seq


def test_a_punch_withheld_from_an_exported_bundle_fails_verify(tmp_path):
    terminal_state = TerminalState(serial="TEST-ZK-01", tz=PLANT_TZ, now=lambda: datetime.now(UTC))
    terminal_state.add_user("1001", "张三")
    terminal_state.add_user("1002", "李四")
    broker = Mosquitto(tmp_path / "broker").start()
    try:
        with ZKEmulator(terminal_state, port=0) as zk_terminal:
            path = _export(tmp_path, broker, zk_terminal, terminal_state)
    finally:
        broker.kill()

    def verify(bundle: bytes) -> subprocess.CompletedProcess[str]:
        target = tmp_path / f"{hashlib.sha256(bundle).hexdigest()[:8]}.zip"
        target.write_bytes(bundle)
        return subprocess.run(
            [sys.executable, "-m", "punchproof", "verify", str(target)], capture_output=True, text=True, check=False
        )

    honest = verify(path.read_bytes())
    assert honest.returncode in (4, 5), honest.stdout  # every check passed (no TSA here: never a green result)
    assert re.search(r"owner tags\s+OK\s+已用该员工的归属密钥逐条核对", honest.stdout), honest.stdout
    tampered, seq = _withhold_last_punch(path.read_bytes())
    failed = verify(tampered)
    assert failed.returncode == 1, failed.stdout
    assert f"第 {seq} 条记录属于该员工但未披露" in failed.stdout, failed.stdout
    assert "SHA256SUMS" in failed.stdout and re.search(r"SHA256SUMS\s+OK", failed.stdout)  # the sums were redone
