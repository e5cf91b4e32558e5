"""The CLI follows its ecosystem's conventions: -h, real metavars, an example in every command's help, listed
choices, completion of what the user would otherwise copy by hand, one JSON Lines shape for streams."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from engine.cli import app
from engine.cli.app import complete_run, complete_runbook, complete_step
from tests.cli.screen import BG

COMMANDS = [["list"], ["show"], ["validate"], ["schema"], ["actions"], ["run"], ["resume"], ["runs"], ["note"],
            ["drill"], ["report"], ["audit", "verify"], ["audit", "show"], ["serve"], ["watch"], ["store", "migrate"],
            ["store", "copy"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_takes_dash_h_and_shows_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "-h"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and "Example:" in result.output, result.output
    assert "breakglass " + " ".join(command) in result.output.split("Example:", 1)[1]


def test_metavars_say_what_to_type() -> None:
    run = CliRunner().invoke(app, ["run", "-h"]).output
    assert "RUNBOOK" in run and "-i, --input NAME=VALUE" in run and "--approve STEP" in run
    assert "RUN " in CliRunner().invoke(app, ["resume", "-h"]).output
    assert "[markdown|html|json]" in CliRunner().invoke(app, ["report", "-h"]).output.replace("<", "[").replace(
        ">", "]")
    assert "[ask|rerun|done]" in CliRunner().invoke(app, ["resume", "-h"]).output.replace("<", "[").replace(
        ">", "]")


def test_a_wrong_choice_is_refused_with_the_choices() -> None:
    result = CliRunner().invoke(app, ["report", "last", "--format", "pdf"])
    assert result.exit_code == 2
    assert "markdown" in result.output and "html" in result.output


def test_completion_offers_runbooks_runs_and_gates(tmp_path: Path, bg_home: Path) -> None:
    assert "dns-failover" in complete_runbook("dns")
    assert all(name.startswith("dns") for name in complete_runbook("dns"))
    ctx = typer.Context(typer.main.get_command(app))
    ctx.params = {"runbook": "dns-failover"}
    gates = complete_step(ctx, "switch")
    assert "switch_a" in gates and "switch_a.rollback" in gates
    assert complete_run("") == ["last"]
    drilled = subprocess.run([BG, "drill", "--yes"], capture_output=True, text=True, timeout=120)
    assert drilled.returncode == 0, drilled.stdout + drilled.stderr
    runs = complete_run("2")
    assert len(runs) == 1 and "registrar-suspension" in runs[0]


def test_audit_show_json_is_the_same_stream_as_run_json(tmp_path: Path, bg_home: Path) -> None:
    live = subprocess.run([BG, "drill", "--yes", "--json"], capture_output=True, text=True, timeout=120)
    streamed = [json.loads(line) for line in live.stdout.splitlines() if line.startswith("{")]
    shown = subprocess.run([BG, "audit", "show", "last", "--json"], capture_output=True, text=True, timeout=60)
    lines = shown.stdout.splitlines()
    assert [json.loads(line) for line in lines] == streamed
    assert len(lines) == len(streamed) > 10
