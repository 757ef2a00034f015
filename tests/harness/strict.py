"""The pytest hook behind ``PUNCHPROOF_STRICT=1``: there, a skipped test is a failed one.

``tests/harness/requires.py`` gives a missing tool's skip its message; this catches every other
skip too (a ``skipif`` on a tool, a test that needs root), so the README's test command cannot pass
while some of the suite did not run. An expected failure (``xfail``) stays what it is.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tests.harness.requires import STRICT_ENV, strict


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if strict() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{STRICT_ENV}=1 turns every skip into a failure; this test skipped: {reason}"
