"""Headless Chromium (Debian's) driven by Selenium and chromedriver, for the browser tests.

A test that needs it skips with a reason when Chromium, chromedriver or selenium is missing;
`.ci/run` installs them and sets MCP_IDFWD_REQUIRE_BROWSER=1, which turns that skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = os.environ.get("MCP_IDFWD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MCP_IDFWD_CHROMEDRIVER", "/usr/bin/chromedriver")


def _browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@contextmanager
def headless_chromium(window_size: str) -> Iterator[Any]:
    """A Selenium driver of headless Chromium with a `WIDTH,HEIGHT` window; quit on exit."""
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("MCP_IDFWD_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the browser test must run here: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={window_size}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
