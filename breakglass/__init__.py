"""breakglass's public API: load and validate runbooks, run one, read what a run recorded.

    import breakglass

    book = breakglass.load("domain-expiry")            # a runbook id (shipped or on $BREAKGLASS_PATH) or a path
    problems = breakglass.validate("my-runbook.yaml")  # [] when the file is valid, else "file:line:col: ..." lines
    outcome = breakglass.run(book, {"domain": "example.com"}, mode="dry-run")
    for record in breakglass.records(outcome.run_id):
        print(record.seq, record.type, record.data)

A programmatic run never asks anyone anything: a gate without an approval says no (``approve=`` names the
steps approved in advance, as ``run --approve`` does). Everything under ``engine`` and ``actions`` is internal
and may change between releases; what is named here is kept.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from typing import Any

from engine.audit import AuditRecord
from engine.errors import BreakglassError, GateRefused, InputError, RunbookError
from engine.events import RecordType, RunStatus
from engine.loader import LoadedRunbook
from engine.runner import RunOutcome
from engine.store.base import RunStore
from engine.version import __version__

__all__ = [
    "AuditRecord", "BreakglassError", "GateRefused", "InputError", "LoadedRunbook", "RecordType", "RunOutcome",
    "RunStatus", "RunStore", "RunbookError", "__version__", "load", "records", "run", "validate",
]


def load(runbook: str | os.PathLike[str], search: Iterable[str] = ()) -> LoadedRunbook:
    """Load and check a runbook by id or path; raises RunbookError with every problem found."""
    from engine.loader import load_file
    from engine.locate import find

    ref = os.fspath(runbook)
    path = ref if os.path.exists(ref) else find(ref, search)
    return load_file(path)


def validate(runbook: str | os.PathLike[str], search: Iterable[str] = ()) -> list[str]:
    """The problems of a runbook, each ``file:line:col: what is wrong``; an empty list when it is valid."""
    try:
        load(runbook, search)
    except RunbookError as exc:
        return [str(p) for p in exc.problems]
    return []


def run(runbook: LoadedRunbook | str | os.PathLike[str], inputs: Mapping[str, Any] | None = None, *,
        mode: str = "dry-run", operator: str = "", approve: Iterable[str] = (),
        store: RunStore | None = None) -> RunOutcome:
    """Run a runbook without a terminal: ``mode`` is "dry-run" (the default: changes are only planned) or
    "live"; gates not named in ``approve`` refuse. The run is recorded like any other, in ``store`` or the default one
    ($BREAKGLASS_STORE, else the files under $BREAKGLASS_HOME)."""
    from engine.console import NullReporter
    from engine.gates import Terminal
    from engine.session import RunOptions, start
    if mode not in ("dry-run", "live"):
        raise InputError(f"mode {mode!r}: expected 'dry-run' or 'live' (a drill needs a scenario: breakglass drill)")
    loaded = runbook if isinstance(runbook, LoadedRunbook) else load(runbook)
    opts = RunOptions(mode=mode, operator=operator or _operator(), approvals=frozenset(approve),
                      terminal=Terminal(stdin=io.StringIO()))
    return start(loaded, dict(inputs or {}), opts, NullReporter(), store)


def records(run_id: str = "last", store: RunStore | None = None) -> list[AuditRecord]:
    """The audit records of a run (``"last"``, a run id or its unique prefix), oldest first, as written."""
    from engine.store import default_store

    runs = store or default_store()
    return runs.records(runs.resolve(run_id))


def _operator() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
