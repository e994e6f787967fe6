"""Headless Chromium for the browser tests: Debian's chromium and chromium-driver
(/usr/bin/chromium, /usr/bin/chromedriver) driven by selenium. Without them a browser test
is skipped, unless REALSPACE_REQUIRE_BROWSER=1 (set by CI), which makes a missing browser a
failure."""

import os
import shutil
import time
from pathlib import Path

import pytest

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def need_browser():
    missing = [p for p in (CHROMIUM, DRIVER) if not shutil.which(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    if missing:
        if os.environ.get("REALSPACE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required but missing: {missing}")
        pytest.skip(f"missing: {missing}")


def chromium(user_data_dir: Path):
    """A headless Chromium under selenium (the caller quits it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={user_data_dir}",
    ):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def wait_for(driver, *texts, timeout=60):
    """Wait until the rendered page shows every text; return the page text."""
    deadline = time.time() + timeout
    while True:
        body = driver.find_element("tag name", "body").text
        if all(t in body for t in texts):
            return body
        if time.time() > deadline:
            raise AssertionError(f"page never showed {texts}; it showed:\n{body[:3000]}")
        time.sleep(0.5)
