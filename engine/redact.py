"""Redaction of secret values, done once where values enter a record or the terminal.

Redaction is of values, never of structure: mapping keys (record fields, output fields that later
templates read) and the record fields below that hold the engine's own vocabulary or the runbook's ids are
left as they are, so a secret that happens to equal ``step`` or ``succeeded`` masks text, not the run.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from engine.errors import InputError

if TYPE_CHECKING:
    from actions.base import Action
    from actions.registry import Registry

MASK = "***"
# A secret shorter than this would mask ordinary text everywhere; such values are refused as secrets.
MIN_SECRET_LENGTH = 3
TOO_SHORT = (f"a secret of fewer than {MIN_SECRET_LENGTH} characters cannot be masked in the log and on the "
             "terminal without masking ordinary text; use a longer one")
# Record fields that hold what the engine writes itself (statuses, ids from the runbook, counts, hashes),
# never a value from an input or the world; the state machine, resume and reports read them back.
STRUCTURE = frozenset({
    "step", "gate", "run", "mode", "status", "previous_status", "at_step", "effect", "action", "digest",
    "final", "gated", "continued", "attempt", "attempts", "duration_ms", "delay", "counts", "type_to_confirm",
    "decision", "choice", "approved", "how", "after", "steps", "secret_inputs",
})


class Redactor:
    """Replaces every known secret value with ``***`` inside strings, dicts and lists."""

    def __init__(self, secrets: set[str] | None = None) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for s in secrets or ():
            self.add(s)

    def add(self, *values: Any) -> None:
        """Learn secret values; raise InputError for one too short to mask (fail closed, never show it)."""
        changed = False
        for value in values:
            if value is None:
                continue
            text = str(value)
            if 0 < len(text) < MIN_SECRET_LENGTH:
                raise InputError(TOO_SHORT)
            if text and text not in self._secrets:
                self._secrets.add(text)
                changed = True
        if changed:
            ordered = sorted(self._secrets, key=len, reverse=True)  # longest first: no partial leftovers
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        return self._pattern.sub(MASK, value) if self._pattern else value

    def __call__(self, value: Any) -> Any:
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value

    def record(self, data: dict[str, Any]) -> dict[str, Any]:
        """A record's data with every value redacted except the fields in STRUCTURE."""
        return {k: v if k in STRUCTURE else self(v) for k, v in data.items()}


def declares_secrets(registry: Registry, name: str) -> bool:
    """Whether an action can carry secrets in its arguments (declared fields, or its own secrets_for)."""
    from actions.base import Action
    from engine.errors import BreakglassError

    try:
        cls = registry.get(name)
    except BreakglassError:
        return False
    overridden = getattr(cls, "secrets_for", None) is not getattr(Action, "secrets_for", None)
    return bool(cls.secret_params) or overridden


def declared_secrets(cls: type[Action[Any]], args: dict[str, Any], ctx: dict[str, Any]) -> tuple[str, ...]:
    """The secrets an action declares in ``args``, rendering each argument on its own (one that needs an
    earlier step's output must not hide a secret in another)."""
    from pydantic import ValidationError

    from engine import templates
    from engine.errors import BreakglassError

    rendered: dict[str, Any] = {}
    for key, value in args.items():
        try:
            rendered[key] = templates.render_value(value, ctx)
        except BreakglassError:
            continue
    try:
        params = cls.Params.model_validate(rendered)
    except ValidationError:
        params = cls.Params.model_construct(**rendered)  # incomplete, but enough to find the secrets
    try:
        found = tuple(cls().secrets_for(params))
    except (AttributeError, TypeError, ValueError):
        return ()
    # One too short to mask is refused when its step prepares, where the failure is recorded, not here
    # before the run has a log.
    return tuple(s for s in found if s is None or len(str(s)) >= MIN_SECRET_LENGTH)
