"""``breakglass drill``: rehearse a runbook against a scenario's simulated world, then grade the path taken."""

# No `from __future__ import annotations`: typer reads these signatures at every start.

from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.app import (
    ApproveOpt,
    GateTimeoutOpt,
    InputOpt,
    OperatorOpt,
    RecordsJsonOpt,
    RunbooksOpt,
    app,
    complete_runbook,
    echo_json,
    options,
    parse_inputs,
    reporter,
    store,
)
from engine.i18n import _


@app.command()
def drill(
    runbook: Annotated[str | None, typer.Argument(
        metavar="[RUNBOOK]", autocompletion=complete_runbook,
        help="Runbook id or file (default: registrar-suspension).")] = None,
    scenario: Annotated[str | None, typer.Option("--scenario", "-s", metavar="NAME",
                                                 help="Scenario name or file.")] = None,
    list_scenarios: Annotated[
        bool, typer.Option("--list-scenarios", help="List the runbook's scenarios.")
    ] = False,
    input_: InputOpt = None,
    approve: ApproveOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Approve every gate (allowed in drills).")] = False,
    operator: OperatorOpt = None,
    gate_timeout: GateTimeoutOpt = None,
    runbooks: RunbooksOpt = None,
    as_json: RecordsJsonOpt = False,
) -> None:
    """Rehearse a runbook against a simulated world (no network), then grade the path taken.

    Exit 0 when the drill took the scenario's expected path (even if that path ends in a failure or a
    refused gate); otherwise as `run`: 1 failed or went elsewhere, 3 stopped at a refused gate, 130
    interrupted; 2 invalid input.

    \b
    Example:
      breakglass drill dns-failover --scenario 01-primary-down
    """
    from engine import i18n
    from engine.drill import (
        DEFAULT_RUNBOOK,
        find_scenario,
        load_scenario,
        run_drill,
        scenario_files,
        scenario_name,
    )
    from engine.loader import load_file
    from engine.locate import find

    loaded = load_file(find(runbook or DEFAULT_RUNBOOK, runbooks or []), lang=i18n.language())
    rb = loaded.runbook
    if list_scenarios:
        said = loaded.translation
        load = load_scenario if said is None else (lambda path: said.scenario(load_scenario(path)))
        rows = [_scenario_row(f, scenario_name(f), load) for f in scenario_files(loaded.path, rb.id)]
        if as_json:
            echo_json(rows)
        else:
            for row in rows:
                typer.echo(f"{row['name']:<28} {row['title']}")
        return
    chosen = load_scenario(find_scenario(loaded.path, rb.id, scenario))
    if loaded.translation is not None:
        chosen = loaded.translation.scenario(chosen)
    opts = options("drill", operator, approve, yes, gate_timeout)
    if not as_json:
        typer.echo(_("DRILL {runbook} — scenario {scenario}: {title}").format(runbook=rb.id, scenario=chosen.name,
                                                                             title=chosen.title))
        from engine.text import visible_line, wrap

        for line in chosen.description.strip().splitlines():  # wrapped here: a terminal breaks before a 。
            typer.echo("\n".join(wrap(visible_line(line), 80)))
        typer.echo("")
    runs_store = store()
    outcome = run_drill(loaded, chosen, parse_inputs(input_, None), opts, reporter(as_json), runs_store)
    raise typer.Exit(_drill_exit_code(runs_store, outcome))


def _drill_exit_code(runs_store: Any, outcome: Any) -> int:
    """A drill is judged by its grade: the run may fail on purpose, as the scenario expects."""
    from engine.events import RecordType

    graded = [r for r in runs_store.records(outcome.run_id) if r.type == RecordType.DRILL_GRADED]
    if graded and not graded[-1].get("deviations"):
        return 0
    return int(outcome.exit_code) or 1


def _scenario_row(path: Path, name: str, load: Any) -> dict[str, Any]:
    return {"name": name, "title": load(path).title, "path": str(path)}
