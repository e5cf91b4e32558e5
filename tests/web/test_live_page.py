"""The live page in a real headless Chromium while another process drives the run at a pseudo-terminal.

The page is opened once and never reloaded (a marker set on ``window`` at load must survive): every change
below reaches it through the server-sent event stream. Hostile text sits in the runbook's title, a step's
title, a command's output, the operator's name and a note; each must show as text, create no element and run
no script. The console must stay free of errors (a CSP violation is one). Screenshots (desktop, 375 px, dark)
are kept in tests/artifacts/.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pexpect

from engine.store import FileStore
from tests.conftest import BREAKGLASS
from tests.web.live import browser, console_errors, drive, read, screenshot, serving, wait_for

# Each payload flips window.__xss if it ever runs as markup, and leaves an element behind if it is parsed.
TITLE = 'Outage <img src=x id=xss-title onerror="window.__xss=1">'
STEP_TITLE = "probe <script>window.__xss=2</script>"
OUTPUT = '<img src=x id=xss-output onerror="window.__xss=3">'
OPERATOR = "mallory<svg id=xss-operator onload=window.__xss=4>"
NOTE = "</li><img src=x id=xss-note onerror=window.__xss=5> \x1b[31mred\x1b[0m"

RUNBOOK = f"""
id: live-demo
title: '{TITLE}'
inputs:
  out: {{type: string}}
  go: {{type: string}}
steps:
  - id: probe
    title: '{STEP_TITLE}'
    action: shell.run
    # It runs until the test has seen it running: on a loaded machine any fixed sleep can end too soon.
    with: {{argv: [sh, -c, 'until [ -e "$1" ]; do sleep 0.05; done; echo "$0"', '{OUTPUT}', "{{{{ inputs.go }}}}"],
           read_only: true}}
  - id: change
    title: append to the file
    action: shell.run
    confirm: "append a line to the file?"
    with: {{argv: [sh, -c, 'echo changed >> "$0"', "{{{{ inputs.out }}}}"]}}
  - id: after
    title: a note after the change
    action: log.note
    with: {{text: "after the change"}}
"""


def _status(driver: object, step: str) -> str:
    return str(driver.execute_script(  # type: ignore[attr-defined]
        "const e = document.getElementById(arguments[0]); return e ? e.dataset.status : '';", f"step-{step}"))


def test_the_page_follows_a_run_driven_elsewhere(bg_home: Path, tmp_path: Path) -> None:
    book = tmp_path / "live-demo.yaml"
    book.write_text(RUNBOOK)
    store = FileStore()
    with serving(home=bg_home) as url:
        driver = browser(tmp_path)  # started first: the probe must still be running when the page opens
        go = tmp_path / "go"
        operator = drive(["run", str(book), "-i", f"out={tmp_path / 'out.txt'}", "-i", f"go={go}",
                          "--operator", OPERATOR], bg_home)
        try:
            run_id = wait_for("the run to start", lambda: [r.id for r in store.list_runs()])[0]
            try:
                driver.get(f"{url}runs/{run_id}")
                driver.execute_script("window.__loaded = 'once'")
                wait_for("the stream to connect", lambda: driver.find_element("id", "conn").text == "live")
                # The probe is still sleeping: the page shows it running, then done, without a reload.
                wait_for("probe running", lambda: _status(driver, "probe") == "running", timeout=5)
                go.touch()
                wait_for("probe succeeded", lambda: _status(driver, "probe") == "succeeded")
                waiting = "#gates .gate-waiting[data-gate='change']"
                wait_for("the gate to show as waiting", lambda: driver.find_elements("css selector", waiting))
                assert "waiting for" in read(lambda: driver.find_element("css selector", waiting).text)
                assert read(lambda: driver.find_element("css selector", waiting).find_elements(
                    "css selector", "[data-approvals]"))
                assert read(lambda: driver.find_element("id", "current-step").text) == "change"
                screenshot(driver, "live-gate-desktop.png")

                operator.expect(r"Approve\? ")
                operator.sendline("yes")
                wait_for("the run to finish", lambda: driver.execute_script("return document.body.dataset.status")
                         == "succeeded")
                assert _status(driver, "change") == "succeeded" and _status(driver, "after") == "succeeded"
                assert not driver.find_elements("css selector", "#gates .gate-waiting")

                subprocess.run([BREAKGLASS, "note", run_id, NOTE, "--operator", "bob"], check=True,
                               env={"BREAKGLASS_HOME": str(bg_home), "PATH": "/usr/bin:/bin"}, timeout=60)
                wait_for("the note", lambda: "red" in driver.find_element("id", "notes").text, timeout=5)
                assert driver.execute_script("return window.__loaded") == "once", "the page was reloaded"

                text = driver.execute_script("return document.body.textContent")  # closed <details> too
                for shown in (TITLE, STEP_TITLE, OUTPUT, OPERATOR, "^[[31mred^[[0m"):
                    assert shown in text, shown
                assert driver.execute_script("return window.__xss") is None
                assert not driver.find_elements("css selector", "[id^=xss-], svg, script:not([src])")
                assert driver.execute_script("return document.body.dataset.jsError") is None
                assert console_errors(driver) == []

                screenshot(driver, "live-finished-desktop.png")
                driver.set_window_size(375, 812)
                wait_for("the narrow layout", lambda: driver.execute_script("return window.innerWidth") <= 375)
                # Readable at 375 px: nothing forces the reader to scroll sideways.
                assert driver.execute_script("return document.documentElement.scrollWidth") <= 375
                screenshot(driver, "live-finished-375.png")
                driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                       {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
                background = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
                assert background == "rgb(18, 18, 18)", background
                screenshot(driver, "live-finished-375-dark.png")
                assert console_errors(driver) == []
            finally:
                driver.quit()
            operator.expect(pexpect.EOF)
        finally:
            operator.close(force=True)


def test_times_are_local_with_utc_on_hover_and_the_running_step_ticks(bg_home: Path, tmp_path: Path) -> None:
    book = tmp_path / "live-demo.yaml"
    book.write_text(RUNBOOK)
    store = FileStore()
    with serving(home=bg_home) as url:
        driver = browser(tmp_path)
        go = tmp_path / "go"
        operator = drive(["run", str(book), "-i", f"out={tmp_path / 'out.txt'}", "-i", f"go={go}"], bg_home)
        try:
            run_id = wait_for("the run to start", lambda: [r.id for r in store.list_runs()])[0]
            try:
                driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Kolkata"})
                driver.get(f"{url}runs/{run_id}")
                wait_for("probe running", lambda: _status(driver, "probe") == "running")
                clock = "return document.querySelector('#step-probe .dur [data-since]').textContent"
                first = driver.execute_script(clock)
                wait_for("the duration to tick", lambda: driver.execute_script(clock) != first, timeout=3)
                shown, hover = driver.execute_script(
                    "const t = document.querySelector('.now time'); return [t.textContent, t.title];")
                # Kolkata is UTC+05:30: the minutes shown differ from the UTC ones on hover by 30.
                assert hover.endswith("Z UTC"), hover
                utc_minute, local_minute = int(hover[14:16]), int(shown.split(":")[1])
                assert (local_minute - utc_minute) % 60 == 30, (shown, hover)
                assert console_errors(driver) == []
            finally:
                driver.quit()
        finally:
            go.touch()
            operator.close(force=True)
