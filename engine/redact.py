"""Redaction of secret values, done once where values enter a record or the terminal."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from breakglass.actions.base import Action
    from breakglass.actions.registry import Registry

MASK = "***"
# A secret shorter than this would mask ordinary text everywhere; such values are refused as secrets.
MIN_SECRET_LENGTH = 3


class Redactor:
    """Replaces every known secret value with ``***`` inside strings, dicts and lists."""

    def __init__(self, secrets: set[str] | None = None) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for s in secrets or ():
            self.add(s)

    def add(self, *values: Any) -> None:
        changed = False
        for value in values:
            if value is None:
                continue
            text = str(value)
            if len(text) >= MIN_SECRET_LENGTH and text not in self._secrets:
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
            return {self.text(str(k)): self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value


def declares_secrets(registry: Registry, name: str) -> bool:
    """Whether an action can carry secrets in its arguments (declared fields, or its own secrets_for)."""
    from breakglass.actions.base import Action
    from breakglass.engine.errors import BreakglassError

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

    from breakglass.engine import templates
    from breakglass.engine.errors import BreakglassError

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
        return tuple(cls().secrets_for(params))
    except (AttributeError, TypeError, ValueError):
        return ()
