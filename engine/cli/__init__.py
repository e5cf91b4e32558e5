"""The ``breakglass`` command: a thin typer layer over the library. ``app`` holds the shared options; one
module per command group registers on it; errors become exit codes here, in one table.

    app.py       the typer app, shared options, completion, how commands reach the store and the terminal
    runbooks.py  list, show, validate, schema, actions
    runs.py      run, resume, runs, note
    approvals.py pending, approve, deny (other people at a gate)
    drill.py     drill
    report.py    report
    audit.py     audit verify, audit show
    store.py     store migrate, store copy, watch
    web.py       serve (the live page)
    team.py      contacts (the team file)
"""

# No `from __future__ import annotations`: typer reads these signatures at every start.

import os
import sys

# Each command module registers its commands on `app` when imported, in the order `--help` lists them.
# isort: off
from engine.cli import runbooks, runs, drill, report, audit, approvals, store, web, team  # noqa: F401
# isort: on
from engine.cli.app import app
from engine.errors import (
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

__all__ = ["app", "main"]

# One table from the exception tree to exit codes (a run's own outcome has its codes in engine.events).
EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (RunbookError, 2), (InputError, 2), (TemplateError, 2), (GateRefused, 3), (RunNotFound, 4),
    (RunLocked, 5), (AuditError, 6), (ActionError, 1), (BreakglassError, 1),
]


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

    from engine.store import home, private_dir

    try:
        # Owner-only, never through a symlink: a traceback shows arguments, inputs and paths.
        path = private_dir(home() / "crashes") / f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.txt"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(traceback.format_exc())
        return str(path)
    except OSError:
        return "(could not be saved)"
