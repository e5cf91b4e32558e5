"""A four-eyes gate on the live page: how many approvals are needed and given, who gave them, and the exact
`breakglass approve` command (with the plan digest `pending` shows), updated live as approvals arrive."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.lab.team import BG, make_team
from tests.web.live import browser, console_errors, read, screenshot, serving, wait_for


def test_the_page_counts_approvals_as_they_arrive_and_shows_the_command(tmp_path: Path) -> None:
    team = make_team(tmp_path)
    with serving(home=team.store_home) as url:
        driver = browser(tmp_path)
        proc = subprocess.Popen([BG, "run", str(team.runbook), "--approve", "change", "--operator", "oscar@bastion"],
                                env=team.env("oscar"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            rows = wait_for("the gate in `pending`",
                            lambda: json.loads(team.bg("alice", "pending", "--json").stdout or "[]"), timeout=30)
            run_id, digest = rows[0]["run"], rows[0]["digest"]
            driver.get(f"{url}runs/{run_id}")
            wait_for("the stream to connect", lambda: driver.find_element("id", "conn").text == "live")
            gate = "#gates .gate-waiting[data-gate='change'] [data-approvals]"
            wait_for("0 of 2", lambda: driver.find_element("css selector", gate).get_attribute(
                "data-approvals") == "0/2")
            command = read(lambda: driver.find_element("css selector", f"{gate} .approve-command").text)
            assert command == f"breakglass approve {run_id} change --digest {digest}"
            assert "@oncall" in read(lambda: driver.find_element("css selector", gate).text)
            driver.execute_script("window.__loaded = 'once'")
            approved = team.bg("alice", *command.split()[1:], "--key", str(team.key("alice")))
            assert approved.returncode == 0, approved.stderr
            wait_for("1 of 2", lambda: driver.find_element("css selector", gate).get_attribute(
                "data-approvals") == "1/2", timeout=10)
            assert "alice: signature verified (SHA256:" in read(lambda: driver.find_element("css selector", gate).text)
            screenshot(driver, "live-four-eyes-desktop.png")
            approved = team.bg("bob", *command.split()[1:], "--key", str(team.key("bob")))
            assert approved.returncode == 0, approved.stderr
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            wait_for("the gate closed", lambda: not driver.find_elements("css selector", "#gates .gate-waiting"),
                     timeout=10)
            assert driver.execute_script("return window.__loaded") == "once"  # never reloaded
            assert console_errors(driver) == []
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            driver.quit()
