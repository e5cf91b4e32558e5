"""A drill is judged by its grade: the expected path exits 0 even when that path is a failure."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import BREAKGLASS


def _drill(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BREAKGLASS, "drill", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=120)


def test_expected_failure_path_exits_0(bg_home: Path) -> None:
    proc = _drill("dns-failover", "--scenario", "primary-is-up", "--yes")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "run failed" in proc.stdout and "as expected" in proc.stdout


def test_refused_gates_without_a_terminal_exit_3(bg_home: Path) -> None:
    proc = _drill("dns-failover", "--scenario", "primary-down")
    assert proc.returncode == 3
    assert "expected approved, was denied" in proc.stdout
