"""The direction of imports is part of the design: check it, and check that the check can fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("punchproof", "ledger", "firmware_bridge", "appliance", "cloud")


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
    assert "4 kept, 0 broken" in result.stdout


def copy_tree(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_a_cloud_import_of_the_appliance_breaks_the_build(tmp_path):
    tree = copy_tree(tmp_path)
    with (tree / "cloud" / "verifier.py").open("a") as module:
        module.write("\nimport appliance.store  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "cloud imports only ledger of ours BROKEN" in result.stdout


def test_a_ledger_import_of_our_packages_breaks_the_build(tmp_path):
    tree = copy_tree(tmp_path)
    with (tree / "ledger" / "record.py").open("a") as module:
        module.write("\nfrom firmware_bridge import types  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "ledger imports nothing of ours BROKEN" in result.stdout
