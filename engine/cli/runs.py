"""Commands that drive and follow runs: run, resume, runs, note."""

# No `from __future__ import annotations`: typer reads these signatures at every start.

import contextlib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.app import (
    ApproveOpt,
    GateTimeoutOpt,
    InputOpt,
    InputsFileOpt,
    JsonOpt,
    OperatorOpt,
    RecordsJsonOpt,
    RunArg,
    RunbookArg,
    RunbooksOpt,
    app,
    ask_missing,
    echo_json,
    options,
    parse_inputs,
    reporter,
    store,
)
from engine.errors import InputError


class InDoubt(StrEnum):
    """What to do with a step cut off while it was applying its change."""

    ask = "ask"
    rerun = "rerun"
    done = "done"


@app.command()
def run(
    runbook: RunbookArg,
    input_: InputOpt = None,
    inputs_file: InputsFileOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Run diagnostics; only plan changes.")] = False,
    approve: ApproveOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Approve every gate (dry-run only).")] = False,
    operator: OperatorOpt = None,
    gate_timeout: GateTimeoutOpt = None,
    runbooks: RunbooksOpt = None,
    as_json: RecordsJsonOpt = False,
    sign: Annotated[bool, typer.Option("--sign", help="Sign the final audit head with your SSH key; "
                                                      "`audit verify --signers FILE` checks it.")] = False,
    key: Annotated[Path | None, typer.Option("--key", metavar="FILE",
                                             help="The SSH private key --sign uses (default: the ssh-agent, "
                                                  "then ~/.ssh/id_ed25519).")] = None,
) -> None:
    """Run a runbook. Exit 0 finished, 1 failed or aborted, 2 invalid input, 3 refused gate, 7 rollback
    incomplete, 130 interrupted.

    \b
    Example:
      breakglass run dns-failover --dry-run -i domain=example.com -i standby_ip=198.51.100.7
    """
    from engine import i18n
    from engine.loader import load_file
    from engine.locate import find
    from engine.session import start

    loaded = load_file(find(runbook, runbooks or []), lang=i18n.language())
    if key is not None and not sign:
        raise InputError("--key is the key --sign uses: add --sign, or leave --key out")
    opts = options("dry-run" if dry_run else "live", operator, approve, yes, gate_timeout, sign=sign,
                   sign_key=key)
    if sign:  # a key that cannot sign is found now, not after the incident is over
        from engine.signers import own_keys

        if not own_keys(key):
            raise InputError("--sign: no key to sign with: no ssh-agent key and no ~/.ssh/id_ed25519; "
                             "give one with --key FILE")
    given = ask_missing(loaded.runbook, parse_inputs(input_, inputs_file), opts.terminal)
    outcome = start(loaded, given, opts, reporter(as_json))
    raise typer.Exit(outcome.exit_code)


@app.command()
def resume(
    run_id: RunArg,
    input_: InputOpt = None,
    approve: ApproveOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Approve every gate (dry-runs and drills only).")] = False,
    operator: OperatorOpt = None,
    in_doubt: Annotated[InDoubt, typer.Option("--in-doubt", help="A step cut off while applying its change.")]
    = InDoubt.ask,
    accept_changed: Annotated[bool, typer.Option("--accept-changed", help="Go on with a changed runbook.")] = False,
    accept_changed_inputs: Annotated[bool, typer.Option(
        "--accept-changed-inputs", help="Go on with -i values that differ from the run's recorded inputs.")]
    = False,
    take_over: Annotated[bool, typer.Option(
        "--take-over", help="Break the lease of a driver gone for good (asked at a terminal; recorded).")] = False,
    gate_timeout: GateTimeoutOpt = None,
    as_json: RecordsJsonOpt = False,
) -> None:
    """Resume a stopped run from its audit log: verified, then on from the first step not completed.

    \b
    Example:
      breakglass resume last --approve switch_a
    """
    from engine.session import load_stored
    from engine.session import resume as resume_run

    runs_store = store()
    # Read here only for the mode, which run.started fixes; resume reads the log again under the run lock.
    stored = load_stored(runs_store, run_id)
    mode = str(stored.started.get("mode", "live"))
    extra: dict[str, Any] = {"in_doubt": in_doubt.value, "accept_changed": accept_changed,
                             "accept_changed_inputs": accept_changed_inputs, "take_over": take_over}
    given = parse_inputs(input_, None)
    fence: Any = contextlib.nullcontext()
    setup = None
    if mode == "drill":
        from engine.drill import drill_options_for_resume, no_network

        setup = drill_options_for_resume
        fence = no_network()
    opts = options(mode, operator, approve, yes, gate_timeout, **extra)
    with fence:
        outcome = resume_run(runs_store, stored.run_id, given, opts, reporter(as_json), setup=setup)
    if outcome.note:
        typer.echo(f"{outcome.note} (audit head {outcome.head})", err=True)
    raise typer.Exit(outcome.exit_code)


@app.command()
def runs(as_json: JsonOpt = False) -> None:
    """List runs with id, runbook, mode, status, start time, and who drives an open run (shared store).

    \b
    Example:
      breakglass runs --json
    """
    from engine.text import visible_line

    rows = [r.to_dict() for r in store().list_runs()]
    if as_json:
        echo_json(rows)
        return
    if rows:
        typer.echo(f"{'RUN':<52} {'MODE':<8} {'STATUS':<19} STARTED")
    for r in rows:
        typer.echo(f"{r['id']:<52} {r['mode']:<8} {r['status']:<19} {r['started']}"
                   + (f"  driven by {visible_line(r['driver'])}" if r["driver"] else ""))


@app.command()
def note(
    run_id: RunArg,
    text: Annotated[str, typer.Argument(metavar="TEXT", help="The note.")],
    operator: OperatorOpt = None,
) -> None:
    """Append an operator note to a run's log, even while another terminal drives the run.

    \b
    Example:
      breakglass note last "called the registrar's abuse desk, ticket 4411"
    """
    from engine.gates import default_operator
    from engine.notes import append_note

    rec = append_note(store(), run_id, text, operator or default_operator())
    typer.echo(f"note {rec['seq']} added to {rec['run']}; audit head now {rec['hash']}")
