"""Tools from outside Python that some tests need, and what a missing one means.

A developer's machine may lack one (the test skips and says which Debian package brings it); the
README's test command (``scripts/test``, which CI runs) sets ``PUNCHPROOF_STRICT=1``, and there a
missing tool fails the test: a green CI run must mean every test ran.
"""

from __future__ import annotations

import os
import shutil

import pytest

STRICT_ENV = "PUNCHPROOF_STRICT"


def strict() -> bool:
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def missing(message: str) -> None:
    """Skip the test, or fail it when strict."""
    if strict():
        pytest.fail(f"{message} ({STRICT_ENV}=1: a missing tool fails instead of skipping)")
    pytest.skip(message)


def need_tool(name: str, package: str) -> str:
    """The path of ``name``; skip (fail when strict) if it is not installed."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (Debian package '{package}'; scripts/setup --test installs it)")
    assert path is not None
    return path
