"""A terminal a person would look at: breakglass in a pseudo-terminal, its bytes fed to a VT100 emulator.

A byte-stream test once passed while every prompt was invisible: the spinner redrew over it ~0.1 s after it
was written. These helpers assert on the rendered screen (pyte), and on what stays on it while waiting.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path

import pexpect
import pyte

BG = shutil.which("breakglass") or "breakglass"
ROWS, COLS = 24, 80


class Screen:
    """``breakglass ARGS`` at an 80x24 xterm; the screen is what pyte renders from everything it printed."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        environ = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLS), "LINES": str(ROWS)}
        environ.pop("NO_COLOR", None)
        environ.update(env or {})
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self._lock = threading.Lock()
        self.child = pexpect.spawn(BG, args, env=environ, timeout=60, dimensions=(ROWS, COLS),
                                   cwd=str(cwd) if cwd else None)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.child.read_nonblocking(4096, timeout=0.05)
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError):
                return
            with self._lock:
                self.raw += data
                self.stream.feed(data)

    def lines(self) -> list[str]:
        with self._lock:
            return [line.rstrip() for line in self.screen.display]

    def text(self) -> str:
        return "\n".join(self.lines())

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) is on the screen; fail with the screen as it is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text(), re.M)
            if found:
                return found
            if not self.child.isalive() and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"never on the screen: {pattern!r}\n--- screen ---\n{self.text()}")

    def stays(self, pattern: str, seconds: float = 1.5) -> None:
        """``pattern`` is on the screen at every look for ``seconds``: a question the operator can read."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            screen = self.text()
            assert re.search(pattern, screen, re.M), f"{pattern!r} left the screen:\n--- screen ---\n{screen}"
            time.sleep(0.05)

    def send(self, line: str) -> None:
        self.child.sendline(line)

    def finish(self, timeout: float = 60) -> int:
        self._reader.join(timeout)  # it ends at the end of output
        assert not self._reader.is_alive(), f"still running after {timeout}s:\n{self.text()}"
        self.child.close()
        status = self.child.exitstatus
        return status if status is not None else -(self.child.signalstatus or 0)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
