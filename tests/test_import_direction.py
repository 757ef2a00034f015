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
    assert "5 kept, 0 broken" in result.stdout


def copy_tree(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("cloud/verifier.py", "import appliance.store", "cloud imports only ledger and opskit of ours"),
        ("cloud/registry.py", "from firmware_bridge import types", "cloud imports only ledger and opskit of ours"),
        ("ledger/record.py", "from firmware_bridge import types", "ledger imports nothing of ours"),
        ("firmware_bridge/zk/driver.py", "import ledger", "firmware_bridge imports nothing of ours"),
        ("appliance/sync/uplink.py", "from cloud import store", "appliance never imports the cloud"),
        ("opskit/envconfig.py", "import ledger", "opskit imports nothing of ours"),
        ("opskit/envconfig.py", "from appliance import config", "opskit imports nothing of ours"),
        ("firmware_bridge/zk/driver.py", "import opskit", "firmware_bridge imports nothing of ours"),
    ],
)
def test_a_forbidden_import_breaks_the_build(tmp_path, module, line, contract):
    tree = copy_tree(tmp_path)
    with (tree / module).open("a") as source:
        source.write(f"\n{line}  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout
