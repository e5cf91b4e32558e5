"""Redaction of secret values, done once where values enter a record or the terminal."""

from __future__ import annotations

import re
from typing import Any

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
