"""A real Chromium (Debian's, driven by Playwright) for the browser tests, and their screenshots.

Screenshots go under ``test-artifacts/browser/`` (or ``$PUNCHPROOF_ARTIFACTS``), one per page and size,
so a person can look at what the tests saw.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("PUNCHPROOF_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")) / "browser"


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, launched headless; a missing one fails the test with the packages to install."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's packages 'chromium fonts-noto-cjk' (apt-get install)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


def shoot(page: Any, name: str, sizes: Mapping[str, tuple[int, int]]) -> None:
    """One screenshot of ``page`` at each of ``sizes``: ``NAME-LABEL-WxH.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in sizes.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}-{width}x{height}.png"), full_page=False)


def sign_in(page: Any, username: str, password: str) -> None:
    """Fill in the login page both sides serve and submit it."""
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
