"""One exception tree for breakglass; the CLI maps it to exit codes in one table.

    BreakglassError                 root: anything breakglass raises on purpose
    ├── RunbookError                an invalid runbook file (carries every problem, each with file:line:col)
    ├── InputError                  an input value that fails its type, or a missing required input
    ├── TemplateError               a template that cannot render (undefined name, sandbox refusal)
    ├── ActionError                 the world misbehaved in a way the action could not turn into a finding
    │   └── ActionTimeout           the step ran past its timeout
    ├── GateRefused                 a confirmation gate said no and the run stops there
    ├── AuditError                  the audit chain is broken, or the log cannot be written
    ├── RunNotFound                 no run with that id in the store
    └── RunLocked                   another process is driving this run

Third-party exceptions (dnspython, paramiko, httpx) are translated inside the actions and never cross into
the engine.
"""

from __future__ import annotations

from dataclasses import dataclass


class BreakglassError(Exception):
    """Root of every error breakglass raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a runbook file, located for an editor to jump to."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class RunbookError(BreakglassError):
    """A runbook file is invalid; holds every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column))
        super().__init__("\n".join(str(p) for p in self.problems))


class InputError(BreakglassError):
    """An input value is missing or fails its declared type."""


class TemplateError(BreakglassError):
    """A template failed to render: an undefined name, a syntax error or a sandbox refusal."""

    def __init__(self, message: str, template: str | None = None) -> None:
        super().__init__(message)
        self.template = template  # the runbook text that failed, so the runner can say where it is written


class ActionError(BreakglassError):
    """An action could not do its job; the step fails with this message."""


class ActionTimeout(ActionError):
    """The step ran past its timeout."""


class GateRefused(BreakglassError):
    """A confirmation gate said no."""


class AuditError(BreakglassError):
    """The audit log is broken or cannot be written."""


class RunNotFound(BreakglassError):
    """No run with that id exists in the store."""


class RunLocked(BreakglassError):
    """Another process already drives this run."""
