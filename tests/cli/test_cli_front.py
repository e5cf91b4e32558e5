"""The CLI's front door: list, show, validate, schema and actions, driven through typer's CliRunner."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from engine.cli import app
from engine.locate import SHIPPED_DIR

ALPHA = """\
id: alpha-check
title: Check that the web name answers
severity: medium
tags: [dns, web]
description: |
  Use this when the site looks down. It only reads: safe to run at any time, by anyone on call, in any order.
inputs:
  domain:
    type: domain
    description: >-
      The zone that hosts the site; every step below reads records under this name and under no other
      name at all, which a long description wraps.
  attempts:
    type: integer
    default: 3
steps:
  - id: note_start
    title: Record that the check started for {{ inputs.domain }}
    action: log.note
    with:
      text: "checking {{ inputs.domain }} in {{ run.mode }}"
  - id: look
    title: Look at the name with a very long title that goes on and on past the edge of any terminal window
    action: shell.run
    with:
      argv: [echo, "{{ inputs.domain }}"]
      read_only: true
    expect: result.exit_code == 0
    when: "{{ steps.note_start.ok }}"
"""

BETA = """\
id: beta-change
title: Move the web name to the standby
severity: critical
inputs:
  domain: {type: domain}
steps:
  - id: flip
    title: Point www at the standby
    action: shell.run
    with:
      argv: [echo, flip, "{{ inputs.domain }}"]
    confirm:
      message: Flip {{ inputs.domain }}?
      type_to_confirm: "{{ inputs.domain }}"
    on_failure: rollback
    rollback:
      action: shell.run
      with: {argv: [echo, unflip]}
  - id: wait
    title: Let the TTL expire
    action: wait.sleep
    with: {seconds: 1, reason: ttl}
  - id: tell
    title: Tell the team
    action: manual
    with:
      instructions: Post on the status page.
    confirm: false
"""

GAMMA = """\
id: gamma-elsewhere
title: A runbook found through BREAKGLASS_PATH
steps:
  - id: only
    title: Only step
    action: log.note
    with: {text: hi}
"""


@pytest.fixture
def runbooks(tmp_path: Path) -> Path:
    d = tmp_path / "runbooks"
    d.mkdir()
    (d / "alpha-check.yaml").write_text(ALPHA, encoding="utf-8")
    (d / "beta-change.yaml").write_text(BETA, encoding="utf-8")
    (d / "notes.txt").write_text("not a runbook", encoding="utf-8")
    return d


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    d = tmp_path / "elsewhere"
    d.mkdir()
    (d / "gamma-elsewhere.yml").write_text(GAMMA, encoding="utf-8")
    return d


def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _console(*args: str) -> tuple[int, str, str]:
    """Through the console entry point, where BreakglassError becomes a message and an exit code."""
    script = shutil.which("breakglass")
    cmd = [script] if script else [sys.executable, "-c", "from engine.cli import main; main()"]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


# --- list ----------------------------------------------------------------------------------------------


def test_list_shows_dir_runbooks_and_shipped(runbooks: Path) -> None:
    code, out, _ = _invoke("list", "--runbooks", str(runbooks), env={"BREAKGLASS_PATH": ""})
    assert code == 0
    ids = [line.split()[0] for line in out.splitlines()]
    assert ids[:2] == ["alpha-check", "beta-change"]
    assert "critical" in out.splitlines()[1] and "Move the web name to the standby" in out
    shipped = sorted(p.stem for p in SHIPPED_DIR.glob("*.y*ml"))
    assert set(shipped) <= set(ids)


def test_list_json_and_breakglass_path(runbooks: Path, elsewhere: Path) -> None:
    code, out, _ = _invoke("list", "--json", "-r", str(runbooks), env={"BREAKGLASS_PATH": str(elsewhere)})
    assert code == 0
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows["alpha-check"]["tags"] == ["dns", "web"]
    assert rows["alpha-check"]["severity"] == "medium"
    assert rows["gamma-elsewhere"]["path"] == str(elsewhere / "gamma-elsewhere.yml")
    assert "notes" not in rows
    code, out, _ = _invoke("list", "--json", env={"BREAKGLASS_PATH": ""})
    assert "gamma-elsewhere" not in {r["id"] for r in json.loads(out)}


def test_list_marks_unreadable_files_without_failing(runbooks: Path) -> None:
    (runbooks / "broken.yaml").write_text("id: [unclosed\n", encoding="utf-8")
    code, out, _ = _invoke("list", "-r", str(runbooks), env={"BREAKGLASS_PATH": ""})
    assert code == 0
    assert "broken" in out and "breakglass validate" in out


# --- show ----------------------------------------------------------------------------------------------


def test_show_text_fits_80_columns(runbooks: Path) -> None:
    code, out, _ = _invoke("show", "alpha-check", "-r", str(runbooks))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("alpha-check")
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert any("domain (domain, required)" in line for line in lines)
    assert any("attempts (integer, default 3)" in line for line in lines)
    assert "when: {{ steps.note_start.ok }}" in out


def test_show_marks_gated_mutating_and_rollback(runbooks: Path) -> None:
    code, out, _ = _invoke("show", str(runbooks / "beta-change.yaml"))
    assert code == 0
    steps = {m.group(2): m.group(1) for m in re.finditer(r"^ +\d+\. \[(...)\] (\w+) ", out, re.M)}
    assert steps == {"flip": "GWR", "wait": "   ", "tell": "   "}


def test_show_json(runbooks: Path) -> None:
    code, out, _ = _invoke("show", "beta-change", "--json", "-r", str(runbooks))
    assert code == 0
    info = json.loads(out)
    assert info["id"] == "beta-change" and info["severity"] == "critical"
    steps = {s["id"]: s for s in info["steps"]}
    assert steps["flip"] | {"description": ""} == steps["flip"] | {
        "action": "shell.run", "effect": "write", "mutating": True, "gated": True, "on_failure": "rollback",
        "rollback": "shell.run", "description": ""}
    assert (steps["wait"]["mutating"], steps["wait"]["gated"]) == (False, False)
    assert info["inputs"] == [{"name": "domain", "type": "domain", "required": True, "default": None,
                               "env": None, "description": ""}]


def test_show_unknown_runbook_suggests(runbooks: Path) -> None:
    code, _, err = _console("show", "alpha-chek", "-r", str(runbooks))
    assert code == 2
    assert "did you mean 'alpha-check'?" in err


def test_show_invalid_runbook_exits_2_with_location(runbooks: Path) -> None:
    text = ALPHA.replace("alpha-check", "bad-one").replace("log.note", "log.nope")
    (runbooks / "bad-one.yaml").write_text(text, encoding="utf-8")
    code, _, err = _console("show", "bad-one", "-r", str(runbooks))
    assert code == 2
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "log.nope" in row)
    assert f"{runbooks / 'bad-one.yaml'}:{line}:13: unknown action 'log.nope'" in err


# --- validate ------------------------------------------------------------------------------------------


def test_validate_directory(runbooks: Path, elsewhere: Path) -> None:
    code, out, err = _invoke("validate", str(runbooks), str(elsewhere / "gamma-elsewhere.yml"))
    assert code == 0, err
    assert sorted(out.split()) == sorted(["ok", str(runbooks / "alpha-check.yaml"), "ok",
                                          str(runbooks / "beta-change.yaml"), "ok",
                                          str(elsewhere / "gamma-elsewhere.yml")])


def test_validate_directory_with_one_broken(runbooks: Path) -> None:
    (runbooks / "zeta.yaml").write_text(GAMMA, encoding="utf-8")  # id does not match the file name
    code, out, err = _invoke("validate", str(runbooks))
    assert code == 2
    assert out.count("ok  ") == 2
    expected = "runbook id 'gamma-elsewhere' must equal the file name 'zeta'"
    assert err.strip() == f"{runbooks / 'zeta.yaml'}:1:5: {expected}"


def test_validate_missing_file(tmp_path: Path) -> None:
    code, _, err = _invoke("validate", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert f"{tmp_path / 'nope.yaml'}:1:1: cannot read runbook" in err


def test_validate_shipped_runbooks() -> None:
    if not list(SHIPPED_DIR.glob("*.yaml")):
        pytest.skip("no shipped runbooks yet")
    code, out, err = _invoke("validate", str(SHIPPED_DIR))
    assert code == 0, err
    assert out.count("ok  ") == len(list(SHIPPED_DIR.glob("*.y*ml")))


# --- schema --------------------------------------------------------------------------------------------


def _schema(tmp_path: Path) -> dict[str, object]:
    target = tmp_path / "runbook.schema.json"
    code, _, _ = _invoke("schema", "-o", str(target))
    assert code == 0
    schema = json.loads(target.read_text())
    code, out, _ = _invoke("schema")
    assert json.loads(out) == schema
    return schema  # type: ignore[no-any-return]


def test_schema_is_valid_and_accepts_good_runbooks(tmp_path: Path) -> None:
    schema = _schema(tmp_path)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for text in (ALPHA, BETA, GAMMA):
        assert list(validator.iter_errors(yaml.safe_load(text))) == []


@pytest.mark.parametrize("change", [
    lambda d: d.pop("steps"),
    lambda d: d.update(sevrity="high"),
    lambda d: d.update(severity="catastrophic"),
    lambda d: d.update(steps="not a list"),
    lambda d: d["steps"][0].update(retry=3),
    lambda d: d["steps"][0].update(on_failure="retry"),
    lambda d: d["steps"][0].update(id="CamelCase"),
    lambda d: d["steps"][0].update(timeout=-1),
    lambda d: d["steps"][0].update(retries={"attempts": "many"}),
    lambda d: d["steps"][0].update(confirm={"mesage": "x"}),
    lambda d: d["inputs"]["domain"].update(type="dommain"),
    lambda d: d["inputs"]["domain"].update(defualt="x"),
    lambda d: d.update(id="Not_Kebab"),
])
def test_schema_rejects_bad_runbooks(tmp_path: Path, change: object) -> None:
    validator = jsonschema.Draft202012Validator(_schema(tmp_path))
    data = yaml.safe_load(ALPHA)
    change(data)  # type: ignore[operator]
    assert list(validator.iter_errors(data)) != []


# --- actions -------------------------------------------------------------------------------------------


def test_actions_json_lists_core_actions_with_effects() -> None:
    code, out, _ = _invoke("actions", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    core = ("shell.run", "wait.sleep", "log.note", "assert", "manual")
    effects = {name: rows[name]["effect"] for name in core}
    assert effects == {"shell.run": "write", "wait.sleep": "read", "log.note": "read", "assert": "read",
                       "manual": "read"}
    args = {a["name"]: a for a in rows["shell.run"]["arguments"]}
    assert args["argv"]["required"] is True and args["read_only"]["required"] is False
    assert args["read_only"]["default"] is False
    assert {a["name"] for a in rows["wait.sleep"]["arguments"]} == {"seconds", "reason"}
    assert all(r["effect"] in ("read", "write", "notify") for r in rows.values())
    assert all(r["summary"] for r in rows.values())


def test_actions_text() -> None:
    code, out, _ = _invoke("actions")
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("shell.run "))
    assert "write" in line
    assert any(line.strip().startswith("argv ") and "required" in line for line in out.splitlines())


def test_actions_say_which_can_undo_themselves() -> None:
    """`rollback: auto` works for exactly the actions `breakglass actions` marks (and its JSON says)."""
    code, out, _ = _invoke("actions", "--json")
    assert code == 0
    undo = sorted(r["name"] for r in json.loads(out) if r["undo"])
    assert undo == ["dns.update", "ssh.upload"]
    code, out, _ = _invoke("actions")
    marked = sorted(line.split()[0] for line in out.splitlines() if line.endswith("[rollback: auto]"))
    assert marked == undo
    code, out, _ = _invoke("actions", "dns.update")
    assert "Rollback: `rollback: auto` undoes it from what it recorded" in out
    code, out, _ = _invoke("actions", "shell.run")
    assert "Rollback: write one by hand (`rollback: auto` does not work" in out
    code, out, _ = _invoke("actions", "runbook.run")
    assert code == 0 and "runbook (string, required)" in out and "inputs (mapping, default {})" in out


def test_console_script_starts_without_the_collector_and_gets_it_back() -> None:
    """engine.main: start-up runs with the garbage collector off; a command that goes on gets it back, with
    what start-up built frozen."""
    code = (
        "import gc, sys, time\n"
        "import engine.main as entry\n"
        "entry.START_UP = 0.3\n"
        "seen = []\n"
        "import engine.cli\n"
        "engine.cli.main = lambda: seen.append(gc.isenabled())\n"
        "entry.main()\n"
        "time.sleep(1.0)\n"
        "print(seen, gc.isenabled(), gc.get_freeze_count() > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["[False]", "True", "True"], out.stdout + out.stderr
