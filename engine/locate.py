"""Where runbooks are: shipped with breakglass, on $BREAKGLASS_PATH, or in --runbooks directories."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path as FsPath

from engine.errors import InputError


def _shipped() -> FsPath:
    """Installed from a wheel, the data of the breakglass package; in a checkout, runbooks/ beside engine/."""
    top = FsPath(__file__).resolve().parent.parent
    installed = top / "breakglass" / "runbooks"
    return installed if installed.is_dir() else top / "runbooks"


SHIPPED_DIR = _shipped()
SUFFIXES = (".yaml", ".yml")


def search_dirs(extra: Iterable[str] = ()) -> list[FsPath]:
    """Where runbooks are looked up: --runbooks dirs, then $BREAKGLASS_PATH, then the shipped ones."""
    dirs = [FsPath(d) for d in extra]
    dirs += [FsPath(d) for d in os.environ.get("BREAKGLASS_PATH", "").split(os.pathsep) if d]
    dirs.append(SHIPPED_DIR)
    return dirs


def runbook_files(dirs: Iterable[FsPath]) -> list[FsPath]:
    seen: dict[str, FsPath] = {}
    for d in dirs:
        if d.is_dir():
            for f in sorted(d.iterdir()):
                if f.suffix in SUFFIXES and f.is_file():
                    seen.setdefault(f.stem, f)
    return list(seen.values())


def find(name: str, extra: Iterable[str] = ()) -> FsPath:
    """A runbook by path or by id; InputError (exit 2) naming the closest id when there is none."""
    direct = FsPath(name)
    if direct.suffix in SUFFIXES or os.sep in name:
        if direct.is_file():
            return direct
        raise InputError(f"{name}: no such runbook file")
    files = runbook_files(search_dirs(extra))
    for f in files:
        if f.stem == name:
            return f
    near = difflib.get_close_matches(name, [f.stem for f in files], n=1)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    raise InputError(f"no runbook named '{name}'{hint}; `breakglass list` shows them")
