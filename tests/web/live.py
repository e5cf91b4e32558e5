"""What the live-page tests share: ``breakglass serve`` as a user starts it, a headless Chromium driven through
Debian's chromedriver, and a run driven by another process at a pseudo-terminal."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.conftest import BREAKGLASS

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@contextmanager
def serving(*args: str, home: Path | None = None, listen: str = "127.0.0.1:0") -> Iterator[str]:
    """``breakglass serve ARGS`` on a free port of ``listen``'s address; yields its address, stops it at the end."""
    env = dict(os.environ)
    if home is not None:
        env["BREAKGLASS_HOME"] = str(home)
    proc = subprocess.Popen([BREAKGLASS, "serve", "--listen", listen, *args], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"http://\S+/", line)
        assert found, line + proc.stderr.read() if proc.poll() is not None else line
        yield found.group(0)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def browser(tmp_path: Path, width: int = 1280, height: int = 1000) -> Any:
    """Headless Chromium through chromedriver, its console kept for the test to read."""
    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        pytest.skip("chromium and chromium-driver are not installed (Debian packages; .ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium comes with the test extras")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    profile.mkdir()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-quic", f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver


def console_errors(driver: Any) -> list[str]:
    """Console messages at error level: script errors, CSP violations, failed loads."""
    return [f"{e['level']}: {e['message']}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def read(look: Callable[[], Any], tries: int = 40) -> Any:
    """What ``look`` reads now, looked up again (not waited for) when the page replaced an element between
    finding it and reading it."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(tries - 1):
        try:
            return look()
        except StaleElementReferenceException:
            time.sleep(0.02)
    return look()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    """Poll ``check`` until it is true. The live page replaces its panels as records arrive, so an element
    found a moment ago may be gone when it is read: that look counts as not yet."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return shot


def drive(args: list[str], home: Path, timeout: float = 60) -> pexpect.spawn:
    """``breakglass ARGS`` at a pseudo-terminal, as an operator would drive a run."""
    env = {**os.environ, "BREAKGLASS_HOME": str(home), "NO_COLOR": "1"}
    return pexpect.spawn(BREAKGLASS, args, env=env, encoding="utf-8", timeout=timeout, dimensions=(40, 160))
