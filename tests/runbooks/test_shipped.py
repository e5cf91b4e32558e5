"""Every shipped runbook: valid, readable on an 80-column terminal, with drill scenarios that drill as written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.runbooks.operator import BREAKGLASS, ROOT, RUNBOOKS, cli_env, run_json

RUNBOOK_FILES = sorted(RUNBOOKS.glob("*.yaml"))
IDS = [f.stem for f in RUNBOOK_FILES]
SCENARIOS = sorted((RUNBOOKS / "scenarios").glob("*/*.yaml"))
MAIN = ["registrar-suspension", "dns-failover", "mail-ip-blacklisted", "shared-host-takedown"]
MORE = ["domain-expiry", "server-compromised", "mail-silently-dropped", "customer-data-mis-sent"]
TLS_DNSSEC = ["tls-certificate-expired", "dnssec-broken"]
HIJACK_SKIM_READY = ["registrar-account-hijack", "site-defaced-or-skimmed", "readiness"]


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BREAKGLASS, *args],
        capture_output=True,
        text=True,
        env=cli_env(home),
        cwd=ROOT,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_the_runbooks_the_issue_asks_for_are_shipped() -> None:
    assert sorted(IDS) == sorted(MAIN + MORE + TLS_DNSSEC + HIJACK_SKIM_READY)


def test_validate_passes(tmp_path: Path) -> None:
    result = cli("validate", "runbooks/", home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok  ") == len(RUNBOOK_FILES)


@pytest.mark.parametrize("runbook", IDS)
def test_show_fits_80_columns(runbook: str, tmp_path: Path) -> None:
    result = cli("show", runbook, home=tmp_path)
    assert result.returncode == 0, result.stderr
    wide = [line for line in result.stdout.splitlines() if len(line) > 80]
    assert wide == []


@pytest.mark.parametrize("runbook", IDS)
def test_every_runbook_ships_in_japanese_with_nothing_left_in_english(runbook: str, tmp_path: Path) -> None:
    """The sidecar exists and fits (validate), and gives every text of the runbook and its scenarios: a step
    added or renamed in the runbook without its Japanese fails here (validate only warns)."""
    sidecar = RUNBOOKS / "i18n" / f"{runbook}.ja.yaml"
    assert sidecar.is_file(), f"write {sidecar.relative_to(ROOT)} (format: engine/translation.py)"
    result = cli("validate", f"runbooks/{runbook}.yaml", home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    gaps = [line for line in result.stderr.splitlines() if str(sidecar) in line or "i18n/" in line]
    assert gaps == []


@pytest.mark.parametrize("runbook", IDS)
def test_show_in_japanese_fits_80_columns(runbook: str, tmp_path: Path) -> None:
    from engine.text import width

    result = cli("--lang", "ja", "show", runbook, home=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    wide = [line for line in lines if width(line) > 80]  # columns on the screen: a kanji takes two
    assert wide == []
    assert any(width(line) > len(line) for line in lines[:1]), lines[:1]  # the title is the Japanese one
    assert "入力:" in lines and "Inputs:" not in lines


@pytest.mark.parametrize("runbook", IDS)
def test_every_runbook_has_at_least_two_scenarios(runbook: str) -> None:
    assert len(list((RUNBOOKS / "scenarios" / runbook).glob("*.yaml"))) >= 2


@pytest.mark.parametrize("runbook", IDS)
def test_every_mutating_step_is_gated_and_secrets_have_no_default(runbook: str, tmp_path: Path) -> None:
    import json

    result = cli("show", runbook, "--json", home=tmp_path)
    info = json.loads(result.stdout)
    assert all(s["gated"] for s in info["steps"] if s["mutating"]), "a runbook must never say confirm: false"
    for spec in info["inputs"]:
        if spec["type"] == "secret":
            assert spec["default"] is None and spec["env"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"{p.parent.name}/{p.stem}" for p in SCENARIOS])
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_scenario_drills_to_its_expected_outcome(scenario: Path, lang: str, bg_home: Path) -> None:
    """In either language: the Japanese text renders where the English does, and changes no decision."""
    runbook = scenario.parent.name
    result = run_json(["--lang", lang, "drill", runbook, "--scenario", scenario.stem, "--yes"], cli_env(bg_home),
                      timeout=120)
    graded = [e for e in result.events if e.get("type") == "drill.graded"]
    assert graded, result.stderr
    assert graded[0]["deviations"] == [], graded[0]["deviations"]
    expected = expected_outcome(scenario)
    assert result.finished["status"] == expected, (result.finished["status"], expected)
    assert graded[0]["outcome"] == expected
    assert result.code in (0, 1), result.stderr


def expected_outcome(scenario: Path) -> str:
    """The outcome the scenario's author wrote down; every shipped scenario must say it."""
    import yaml

    expect = (yaml.safe_load(scenario.read_text(encoding="utf-8")) or {}).get("expect") or {}
    assert expect.get("outcome"), f"{scenario}: expect.outcome is missing"
    return str(expect["outcome"])


def test_expected_outcome_check_can_fail(tmp_path: Path) -> None:
    """The check above compares two independent facts: a scenario that expects another outcome fails it."""
    source = RUNBOOKS / "scenarios" / "dns-failover" / "03-primary-is-up.yaml"
    wrong = tmp_path / "dns-failover" / source.name
    wrong.parent.mkdir()
    wrong.write_text(source.read_text(encoding="utf-8").replace("outcome: failed", "outcome: succeeded"),
                     encoding="utf-8")
    assert expected_outcome(source) == "failed"
    assert expected_outcome(wrong) == "succeeded"
    result = run_json(["drill", "dns-failover", "--scenario", str(wrong), "--yes"], cli_env(tmp_path / "home"),
                      timeout=120)
    graded = [e for e in result.events if e.get("type") == "drill.graded"]
    assert graded and graded[0]["outcome"] == "failed"
    assert result.finished["status"] != expected_outcome(wrong)
