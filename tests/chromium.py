"""Headless Chromium for the browser tests: where it is and how it is started here.

Chromium comes from Debian's package (`.ci/run` installs it). Outside CI a missing browser
skips the test with the reason; under CI it fails, so a green run always saw a browser.
The flags keep it from reaching the network, which this machine does not have.
"""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> str:
    """The browser's path; fails under CI and skips elsewhere when it is not installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is required under CI (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium); not under CI")
    return browser
