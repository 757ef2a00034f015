"""The direction of imports is part of the design: check it, and check that the check can fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("punchproof", "ledger", "opskit", "firmware_bridge", "appliance", "cloud")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_the_tree_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 kept, 0 broken" in result.stdout


def copy_tree(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("cloud/ingest/verifier.py", "import appliance.store", "cloud imports only ledger and opskit of ours"),
        (
            "cloud/appliances/registry.py",
            "from firmware_bridge import types",
            "cloud imports only ledger and opskit of ours",
        ),
        ("ledger/record.py", "from firmware_bridge import types", "ledger imports nothing of ours"),
        ("firmware_bridge/zk/driver.py", "import ledger", "firmware_bridge imports nothing of ours"),
        ("appliance/sync/uplink.py", "from cloud import store", "appliance never imports the cloud"),
        ("opskit/envconfig.py", "import ledger", "opskit imports nothing of ours"),
        ("opskit/envconfig.py", "from appliance import config", "opskit imports nothing of ours"),
        ("firmware_bridge/zk/driver.py", "import opskit", "firmware_bridge imports nothing of ours"),
        # within a side: a group never imports one above it, nor a group beside it on its line
        ("appliance/capture/punchlog.py", "from appliance.sync import uplink", "appliance groups import downwards"),
        ("appliance/attendance/board.py", "from appliance.sync import uplink", "appliance groups import downwards"),
        ("appliance/rules/model.py", "from appliance.roster import store", "appliance groups import downwards"),
        ("cloud/escalation/engine.py", "from cloud.evidence import log", "cloud groups import downwards"),
        ("cloud/hr/models.py", "from cloud.ingest import verifier", "cloud groups import downwards"),
        ("cloud/channels/base.py", "from cloud.notices import records", "cloud groups import downwards"),
        ("cloud/ingest/verifier.py", "from cloud.workers import ingest", "cloud groups import downwards"),
        ("cloud/notices/render.py", "from cloud.escalation import models", "cloud groups import downwards"),
        # nor through a module every group shares: the ingest group reads the store
        ("cloud/store.py", "from cloud.escalation import models", "cloud groups import downwards"),
        ("appliance/store.py", "from appliance.attendance import board", "appliance groups import downwards"),
    ],
)
def test_a_forbidden_import_breaks_the_build(tmp_path, module, line, contract):
    tree = copy_tree(tmp_path)
    with (tree / module).open("a") as source:
        source.write(f"\n{line}  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout


@pytest.mark.parametrize(
    ("module", "contract"),
    [
        ("appliance/newthing.py", "appliance groups import downwards"),
        ("cloud/newthing.py", "cloud groups import downwards"),
    ],
)
def test_a_module_left_at_a_sides_root_breaks_the_build(tmp_path, module, contract):
    """Every module lives in a group, or is named in the contract as shared by all of them."""
    tree = copy_tree(tmp_path)
    (tree / module).write_text('"""Placed nowhere."""\n', encoding="utf-8")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout
