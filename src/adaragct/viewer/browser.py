"""Opening a viewer page in headless Chromium (Selenium), shared by the browser test and ``make bench-viewer``.

Nothing is downloaded: the Debian packages ``chromium`` and ``chromium-driver`` provide the browser and its driver
(Selenium's own driver manager would fetch one from the network).
"""

from __future__ import annotations

import shutil

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL = "apt-get install chromium chromium-driver"


def find_chromium() -> tuple[str, str] | None:
    """(browser binary, chromedriver) on PATH, or None where either is missing."""
    binary = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    return None if binary is None or driver is None else (binary, driver)


def headless_chromium(binary: str, driver: str, page_load_timeout_s: float = 30.0):
    """A Selenium Chrome driver on ``binary`` with ``driver``: headless, no sandbox (containers run as root)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
    ):
        options.add_argument(arg)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_page_load_timeout(page_load_timeout_s)
    return chrome
