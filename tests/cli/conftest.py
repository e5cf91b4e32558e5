"""Fixtures of the CLI tests: runbooks written into the test's folder, and screens that are closed afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.screen import Screen


@pytest.fixture
def book(tmp_path: Path, bg_home: Path) -> Callable[[str], Path]:
    """Write a runbook's text to ``<tmp>/<its id>.yaml`` (with a private BREAKGLASS_HOME) and return the path."""

    def write(text: str) -> Path:
        name = text.split("id: ", 1)[1].split()[0]
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def screens() -> Iterator[Callable[..., Screen]]:
    """Open ``breakglass ARGS`` on an emulated 80x24 terminal; every one opened is closed after the test."""
    opened: list[Screen] = []

    def open_(*args: str, **kw: Any) -> Screen:
        opened.append(Screen(list(args), **kw))
        return opened[-1]

    yield open_
    for s in opened:
        s.close()
