"""The ``breakglass`` command: a thin typer layer. Parse, call the library, map errors to exit codes here.

Heavy modules (pydantic, Jinja2, actions) are imported inside commands so ``--help``, ``list`` and
``validate`` start fast.
"""

# No `from __future__ import annotations`: typer reads these signatures at every start, and real
# annotations spare it evaluating strings (measured: the command tree builds in 4 ms instead of 12).

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from breakglass.engine.errors import (
    ActionError,
    AuditError,
    BreakglassError,
    GateRefused,
    InputError,
    RunbookError,
    RunLocked,
    RunNotFound,
    TemplateError,
)

# pydantic looks for plugins through every installed distribution's entry points on first use (~20 ms);
# breakglass uses none.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

app = typer.Typer(
    name="breakglass",
    help="Incident and outage runbooks: diagnose, decide at gates, change safely, keep a tamper-evident log.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=None,  # plain help: loading rich to format it costs start-up
)
audit_app = typer.Typer(help="Verify and show a run's audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def _show_version(value: bool) -> None:
    if value:
        from breakglass.engine.version import __version__

        typer.echo(f"breakglass {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    store: Annotated[str | None, typer.Option("--store", metavar="URL", help=(
        "Keep runs in this PostgreSQL database (postgresql://user@host:port/db; the password comes from "
        "~/.pgpass) instead of BREAKGLASS_HOME. Default: $BREAKGLASS_STORE."))] = None,
) -> None:
    """Incident and outage runbooks: diagnose, decide at gates, change safely, keep a tamper-evident log."""
    if store is not None:
        os.environ["BREAKGLASS_STORE"] = store  # read by store.default_store, the one place a store is chosen

# One table from the exception tree to exit codes (0 finished, 1 failed, 130 interrupted: see runner).
EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (RunbookError, 2), (InputError, 2), (TemplateError, 2), (GateRefused, 3), (RunNotFound, 4),
    (RunLocked, 5), (AuditError, 6), (ActionError, 1), (BreakglassError, 1),
]

RunbooksOpt = Annotated[list[str] | None, typer.Option("--runbooks", "-r", help="Extra runbook directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _echo_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def _store() -> Any:
    from breakglass.engine.store import default_store

    return default_store()


# --- runbooks --------------------------------------------------------------------------------------------


@app.command("list")
def list_cmd(runbooks: RunbooksOpt = None, as_json: JsonOpt = False) -> None:
    """List runbooks: shipped ones, $BREAKGLASS_PATH and --runbooks directories."""
    from breakglass.engine.catalog import summaries

    rows = summaries(runbooks or [])
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['id']:<28} {row['severity']:<9} {row['title']}")


@app.command()
def show(runbook: str, runbooks: RunbooksOpt = None, as_json: JsonOpt = False) -> None:
    """Show a runbook: its inputs and steps, which are gated and which change the world."""
    from breakglass.engine.catalog import describe, render_description
    from breakglass.engine.loader import load_file
    from breakglass.engine.locate import find

    loaded = load_file(find(runbook, runbooks or []))
    info = describe(loaded)
    if as_json:
        _echo_json(info)
    else:
        typer.echo(render_description(info))


@app.command()
def validate(
    paths: Annotated[list[str] | None, typer.Argument(help="Runbook files or directories.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate runbook files; every problem as file:line:col. Exit 2 when any is invalid."""
    from breakglass.engine.catalog import validate_paths

    results = validate_paths(paths or [])
    if as_json:
        _echo_json(results)
    else:
        for r in results:
            if r["ok"]:
                typer.echo(f"ok  {r['file']}")
            for p in r["problems"] + r["warnings"]:
                typer.echo(p, err=True)
    if not all(r["ok"] for r in results):
        raise typer.Exit(2)


@app.command()
def schema(output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to this file.")] = None) -> None:
    """Print the JSON Schema of runbook files (for yaml-language-server and other editors)."""
    from breakglass.engine.model import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if output:
        try:
            output.write_text(text)
        except OSError as exc:
            raise InputError(f"cannot write the schema to {output}: {exc.strerror}") from None
    else:
        sys.stdout.write(text)


@app.command()
def actions(as_json: JsonOpt = False) -> None:
    """List every action: its arguments, and whether it reads, writes or notifies."""
    from breakglass.actions.registry import Registry

    rows = Registry().describe()
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['name']:<22} {row['effect']:<7} {row['summary']}")
        for arg in row["arguments"]:
            need = "required" if arg["required"] else f"default {arg['default']!r}"
            typer.echo(f"    {arg['name']:<20} {arg['type']:<18} {need}")


# --- runs ------------------------------------------------------------------------------------------------


def _parse_inputs(pairs: list[str] | None, file: Path | None) -> dict[str, Any]:
    from breakglass.engine.audit import require_utf8

    values: dict[str, Any] = _inputs_file(file) if file is not None else {}
    for pair in pairs or []:
        name, eq, value = pair.partition("=")
        require_utf8(name, "an -i input name")
        if not eq or not name:
            raise InputError(f"-i {pair!r}: write inputs as name=value")
        require_utf8(value, f"input '{name.strip()}'")
        values[name.strip()] = value
    return values


def _inputs_file(file: Path) -> dict[str, Any]:
    """An --inputs file, read as warily as a runbook: bounded size, no device or FIFO, no alias bomb."""
    from breakglass.engine.yamlsource import SourceError, parse, read_document

    try:
        loaded = parse(read_document(file, "inputs file"), str(file), "inputs file").data
    except SourceError as exc:
        raise InputError("\n".join(str(p) for p in exc.problems)) from None
    if not isinstance(loaded, dict):
        raise InputError(f"{file}: inputs must be a mapping of name: value")
    return loaded


def _reporter(as_json: bool) -> Any:
    from breakglass.engine.console import JsonReporter, TerminalReporter

    return JsonReporter() if as_json else TerminalReporter()


def _options(mode: str, operator: str | None, approve: list[str] | None, yes: bool,
             gate_timeout: float | None, **extra: Any) -> Any:
    from breakglass.engine.gates import default_operator
    from breakglass.engine.session import RunOptions

    if yes and mode == "live":
        raise InputError("--yes approves gates only with --dry-run or in a drill, never in a live run; "
                         "use --approve STEP for the gates you have reviewed")
    return RunOptions(mode=mode, operator=operator or default_operator(), approvals=frozenset(approve or []),
                      yes=yes, gate_timeout=gate_timeout, **extra)


InputOpt = Annotated[list[str] | None, typer.Option("-i", "--input", help="An input as name=value (repeatable).")]
InputsFileOpt = Annotated[Path | None, typer.Option("--inputs", help="A YAML or JSON file of inputs.")]
ApproveOpt = Annotated[list[str] | None, typer.Option("--approve", help="Pre-approve the gate of STEP (repeatable).")]
OperatorOpt = Annotated[str | None, typer.Option("--operator", help="Who is running this (default user@host).")]
GateTimeoutOpt = Annotated[float | None, typer.Option("--gate-timeout", help="Seconds a gate waits; then no.")]


@app.command()
def run(
    runbook: str,
    input_: InputOpt = None,
    inputs_file: InputsFileOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Run diagnostics; only plan changes.")] = False,
    approve: ApproveOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Approve every gate (dry-run only).")] = False,
    operator: OperatorOpt = None,
    gate_timeout: GateTimeoutOpt = None,
    runbooks: RunbooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a runbook. Exit 0 finished, 1 failed or aborted, 2 invalid input, 3 refused gate, 130 interrupted."""
    from breakglass.engine.loader import load_file
    from breakglass.engine.locate import find
    from breakglass.engine.session import start

    loaded = load_file(find(runbook, runbooks or []))
    opts = _options("dry-run" if dry_run else "live", operator, approve, yes, gate_timeout)
    given = _ask_missing(loaded.runbook, _parse_inputs(input_, inputs_file), opts.terminal)
    outcome = start(loaded, given, opts, _reporter(as_json))
    raise typer.Exit(outcome.exit_code)


def _ask_missing(rb: Any, given: dict[str, Any], terminal: Any) -> dict[str, Any]:
    """At a terminal, a required input left out is asked for (a secret without echo) instead of stopping the
    run at 3 a.m. for a forgotten -i; without one, the run refuses as before and names what is missing."""
    if not terminal.interactive:
        return given
    values = dict(given)
    for name, spec in rb.inputs.items():
        if name in values or (spec.env and spec.env in os.environ) or spec.default is not None \
                or not spec.is_required:
            continue
        secret = str(spec.type) == "secret"
        about = f" ({spec.description.strip().splitlines()[0]})" if spec.description.strip() else ""
        answer = terminal.ask(f"input '{name}'{about}, {spec.type}{', not shown' if secret else ''}: ",
                              echo=not secret)
        if answer is None:
            break  # end of input: resolve() names what is still missing
        if answer.strip():
            values[name] = answer if secret else answer.strip()
    return values


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run id (a unique prefix, or 'last').")],
    input_: InputOpt = None,
    approve: ApproveOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Approve every gate (dry-runs and drills only).")] = False,
    operator: OperatorOpt = None,
    in_doubt: Annotated[str, typer.Option("--in-doubt", help="A step cut off while applying: ask, rerun or done.")]
    = "ask",
    accept_changed: Annotated[bool, typer.Option("--accept-changed", help="Go on with a changed runbook.")] = False,
    accept_changed_inputs: Annotated[bool, typer.Option(
        "--accept-changed-inputs", help="Go on with -i values that differ from the run's recorded inputs.")]
    = False,
    take_over: Annotated[bool, typer.Option(
        "--take-over", help="Break the lease of a driver gone for good (asked at a terminal; recorded).")] = False,
    gate_timeout: GateTimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Resume a stopped run from its audit log: verified, then on from the first step not completed."""
    from breakglass.engine.session import load_stored
    from breakglass.engine.session import resume as resume_run

    if in_doubt not in ("ask", "rerun", "done"):
        raise InputError("--in-doubt takes ask, rerun or done")
    store = _store()
    # Read here only for the mode, which run.started fixes; resume reads the log again under the run lock.
    stored = load_stored(store, run_id)
    mode = str(stored.started.get("mode", "live"))
    extra: dict[str, Any] = {"in_doubt": in_doubt, "accept_changed": accept_changed,
                             "accept_changed_inputs": accept_changed_inputs, "take_over": take_over}
    given = _parse_inputs(input_, None)
    fence: Any = contextlib.nullcontext()
    setup = None
    if mode == "drill":
        from breakglass.engine.drill import drill_options_for_resume, no_network

        setup = drill_options_for_resume
        fence = no_network()
    opts = _options(mode, operator, approve, yes, gate_timeout, **extra)
    with fence:
        outcome = resume_run(store, stored.run_id, given, opts, _reporter(as_json), setup=setup)
    if outcome.note:
        typer.echo(f"{outcome.note} (audit head {outcome.head})", err=True)
    raise typer.Exit(outcome.exit_code)


@app.command()
def runs(as_json: JsonOpt = False) -> None:
    """List runs with id, runbook, mode, status, start time, and who drives an open run (shared store)."""
    from breakglass.engine.text import visible_line

    rows = [r.to_dict() for r in _store().list_runs()]
    if as_json:
        _echo_json(rows)
        return
    if rows:
        typer.echo(f"{'RUN':<52} {'MODE':<8} {'STATUS':<19} STARTED")
    for r in rows:
        typer.echo(f"{r['id']:<52} {r['mode']:<8} {r['status']:<19} {r['started']}"
                   + (f"  driven by {visible_line(r['driver'])}" if r["driver"] else ""))


@app.command()
def note(
    run_id: Annotated[str, typer.Argument(help="The run id (a unique prefix, or 'last').")],
    text: Annotated[str, typer.Argument(help="The note.")],
    operator: OperatorOpt = None,
) -> None:
    """Append an operator note to a run's log, even while another terminal drives the run."""
    from breakglass.engine.gates import default_operator
    from breakglass.engine.notes import append_note

    rec = append_note(_store(), run_id, text, operator or default_operator())
    typer.echo(f"note {rec['seq']} added to {rec['run']}; audit head now {rec['hash']}")


@audit_app.command("verify")
def audit_verify(
    run_id: str,
    head: Annotated[str | None, typer.Option("--head", help="The chain head published at the end of the run.")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the hash chain; name every edited, deleted or reordered line. Exit 6 when it does not verify."""
    store = _store()
    run_id = store.resolve(run_id)
    verdict = store.verify(run_id, head)
    if as_json:
        _echo_json({"run": run_id, "ok": verdict.ok, "records": verdict.records, "head": verdict.head,
                    "problems": verdict.problems, "after_head": verdict.after_head})
    else:
        for p in verdict.problems:
            typer.echo(f"{store.where(run_id)}: {p}", err=True)
        if verdict.ok:
            typer.echo(f"ok: {verdict.records} records, head {verdict.head}")
            if head and verdict.after_head:
                typer.echo(f"the head you gave is pinned; {len(verdict.after_head)} record(s) were added after it: "
                           f"{', '.join(verdict.after_head)}")
    if not verdict.ok:
        raise typer.Exit(6)


@audit_app.command("show")
def audit_show(run_id: str, as_json: JsonOpt = False) -> None:
    """Print a run's timeline from its audit log."""
    from breakglass.engine.timeline import timeline_lines

    store = _store()
    records = [r.to_dict() for r in store.records(store.resolve(run_id))]
    if as_json:
        _echo_json(records)
        return
    for line in timeline_lines(records):
        typer.echo(line)


# Commands that live in their own modules register on `app` when imported.
from breakglass.engine import cli_drill, cli_store  # noqa: E402,F401  (drill, report; store, watch)


def _exit_code(exc: BaseException) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))


def main() -> None:
    """Console entry point: errors become one clear message and a distinct exit code, never a traceback."""
    try:
        app()
    except BreakglassError as exc:
        sys.stderr.write(f"breakglass: {exc}\n" if not isinstance(exc, RunbookError) else f"{exc}\n")
        sys.exit(_exit_code(exc))
    except KeyboardInterrupt:
        sys.stderr.write("breakglass: interrupted\n")
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, keep the details for the bug report
        where = _save_crash_report()
        sys.stderr.write(f"breakglass: internal error: {type(exc).__name__}: {exc}\n"
                         f"  the run's audit log is intact; details for a bug report: {where}\n")
        sys.exit(70)


def _save_crash_report() -> str:
    import traceback
    from datetime import UTC, datetime

    from breakglass.engine.store import home, private_dir

    try:
        # Owner-only, never through a symlink: a traceback shows arguments, inputs and paths.
        path = private_dir(home() / "crashes") / f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.txt"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(traceback.format_exc())
        return str(path)
    except OSError:
        return "(could not be saved)"
