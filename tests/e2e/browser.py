"""Airflow's UI in Debian's Chromium, driven by Playwright (its own browser download is not reachable here).

Chromium runs headless with every background service off: it must reach nothing but the deployment on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Page

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]


def chromium_path() -> str:
    """Debian's Chromium binary (``make install`` installs the ``chromium`` package)."""
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError("Debian's chromium is not installed (make install installs it)")


@contextlib.contextmanager
def logged_in(url: str, username: str, password: str) -> Iterator[Page]:
    """A page of the UI at ``url``, signed in through the simple auth manager's login form."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(30_000)
            page.goto(f"{url}/")
            page.get_by_label("Username").fill(username)
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{url}/")
            yield page
        finally:
            browser.close()
