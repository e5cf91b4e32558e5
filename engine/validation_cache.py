"""Remembers runbook files that validated cleanly, so `breakglass validate` in an editor loop or a
pre-commit hook does not pay for pydantic and Jinja2 on every unchanged file.

An entry is the SHA-256 of the file's name and bytes (the id must equal the name) together with a
fingerprint of the code that judged it (every module of breakglass.engine and breakglass.actions, by name,
size and mtime). Any edit to the runbook or
to breakglass makes the entry miss. Only runbooks whose actions are all built in are remembered: a plugin
can change without breakglass noticing. Only successes are stored; a broken file is always re-checked so
its problems are printed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from breakglass.engine.store import home

_CODE_DIRS = (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent / "actions")


def _code_fingerprint() -> str:
    h = hashlib.sha256()
    for d in _CODE_DIRS:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name.endswith(".py") or e.name == "data":
                st = e.stat()
                h.update(f"{d.name}/{e.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


class ValidationCache:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or home() / "cache" / "validated.json"
        self._code = _code_fingerprint()
        self._entries: set[str] | None = None
        self._dirty = False

    def _key(self, name: str, content: bytes) -> str:
        return hashlib.sha256(f"{self._code}\0{name}\0".encode() + content).hexdigest()

    def _load(self) -> set[str]:
        if self._entries is None:
            try:
                self._entries = set(json.loads(self.path.read_text()).get("valid", []))
            except (OSError, ValueError, AttributeError):
                self._entries = set()
        return self._entries

    def known_valid(self, name: str, content: bytes) -> bool:
        return self._key(name, content) in self._load()

    def remember(self, name: str, content: bytes) -> None:
        self._load().add(self._key(name, content))
        self._dirty = True

    def save(self) -> None:
        """Write atomically; a cache that cannot be written is simply not used."""
        if not self._dirty or self._entries is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"valid": sorted(self._entries)[-5000:]}))
            os.replace(tmp, self.path)
        except OSError:
            return
