"""Headless Debian Chromium for the browser tests (never a downloaded one), offline whatever
the machine's network: every host but this one fails at once, as without internet, so a page
never waits on an outside basemap that neither loads nor fails."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import in_ci

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]


@contextmanager
def chromium() -> Iterator[Any]:
    """The browser, closed on leaving; skipped where Chromium is missing (a failure in CI)."""
    if not CHROMIUM.exists():
        if in_ci():
            pytest.fail("Chromium is missing: 'make test' installs the Debian chromium package")
        pytest.skip("Chromium is not installed ('make test' installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
