"""``PUNCHPROOF_STRICT=1`` (set by scripts/test, so by CI) makes a skipped test fail; unset, it skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SUITE = """
import pytest
from tests.harness.requires import need_tool

def test_needs_a_tool_nobody_has():
    need_tool("punchproof-no-such-tool", "no-such-package")

@pytest.mark.skipif(True, reason="needs root")
def test_skipped_by_a_marker():
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_to_fail():
    assert False
"""


def run_suite(tmp_path: Path, strict: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text("from tests.harness.strict import pytest_runtest_makereport  # noqa: F401\n")
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if k != "PUNCHPROOF_STRICT"}
    env["PYTHONPATH"] = str(REPO)
    if strict is not None:
        env["PUNCHPROOF_STRICT"] = strict
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )


@pytest.mark.parametrize("unset", [None, "0"])
def test_without_strict_a_missing_tool_skips(tmp_path, unset):
    result = run_suite(tmp_path, unset)
    assert result.returncode == 0, result.stdout
    assert "2 skipped, 1 xfailed" in result.stdout


def test_with_strict_every_skip_fails_and_says_why(tmp_path):
    result = run_suite(tmp_path, "1")
    assert result.returncode == 1, result.stdout
    assert "1 failed" in result.stdout and "1 error" in result.stdout and "1 xfailed" in result.stdout, result.stdout
    assert "Debian package 'no-such-package'" in result.stdout
    assert "PUNCHPROOF_STRICT=1 turns every skip into a failure" in result.stdout and "needs root" in result.stdout


def test_the_readme_test_command_is_strict():
    script = (REPO / "scripts" / "test").read_text()
    assert "export PUNCHPROOF_STRICT=1" in script
    assert "exec ./scripts/test" in (REPO / ".ci" / "run").read_text()
