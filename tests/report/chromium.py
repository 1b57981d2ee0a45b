"""Debian's headless Chromium driven from tests: the DOM after load and a screenshot, with the network cut off."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

# every host resolves to nothing and every connection goes to a closed port: a page that needs the network shows
# it as missing pieces instead of quietly fetching them
OFFLINE_FLAGS = (
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("Debian's chromium is needed for the report tests: apt-get install -y chromium (make setup does)")
    return binary


def _run(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-background-networking",
        f"--user-data-dir={profile}",
        *OFFLINE_FLAGS,
        *flags,
        page.resolve().as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


def dump_dom(page: Path, profile: Path) -> str:
    """The DOM as Chromium serialises it once the page loaded."""
    return _run(page, profile, "--dump-dom").stdout


def screenshot(page: Path, profile: Path, target: Path, *, width: int = 1200, height: int = 2400) -> Path:
    """A PNG of the page's top ``width`` × ``height`` pixels."""
    _run(page, profile, f"--screenshot={target}", f"--window-size={width},{height}")
    return target
