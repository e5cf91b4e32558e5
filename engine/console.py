"""What the operator sees while a run goes: one line per step, a final summary, or JSON lines.

Reporters only print records that were already redacted and written to the audit log, so the terminal can
never show something the log does not hold.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

ICONS = {
    "succeeded": ("✔", "32"), "failed": ("✘", "31"), "skipped": ("↷", "33"), "planned": ("☐", "36"),
    "refused": ("⛔", "31"), "rolled_back": ("↺", "35"), "rollback_failed": ("✘", "31"),
}


class NullReporter:
    """Prints nothing: for embedding the engine, tests and benchmarks (the audit log still has it all)."""

    def event(self, rec: dict[str, Any]) -> None:
        return None

    def step_begins(self, step_id: str, title: str) -> None:
        return None

    def close(self) -> None:
        return None


class JsonReporter:
    """Every audit record as one JSON line on stdout (``--json``)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def event(self, rec: dict[str, Any]) -> None:
        self.out.write(json.dumps(rec, sort_keys=True, default=str) + "\n")
        self.out.flush()

    def step_begins(self, step_id: str, title: str) -> None:
        return None

    def close(self) -> None:
        return None


class TerminalReporter:
    """Human output: a line per step with its status; colour and a spinner only on a TTY."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self._spinner: _Spinner | None = None
        self.titles: dict[str, str] = {}

    def _paint(self, text: str, colour: str) -> str:
        return f"\x1b[{colour}m{text}\x1b[0m" if self.tty else text

    def _print(self, text: str) -> None:
        self._stop_spinner()
        self.out.write(text + "\n")
        self.out.flush()

    def step_begins(self, step_id: str, title: str) -> None:
        self.titles[step_id] = title
        if self.tty:
            self._stop_spinner()
            self._spinner = _Spinner(self.out, f"{step_id}: {title}")

    def _stop_spinner(self) -> None:
        if self._spinner:
            self._spinner.stop()
            self._spinner = None

    def close(self) -> None:
        self._stop_spinner()

    def event(self, rec: dict[str, Any]) -> None:
        handler = getattr(self, "_on_" + rec["type"].replace(".", "_"), None)
        if handler:
            handler(rec)

    def _step_line(self, rec: dict[str, Any], status: str, detail: str = "") -> None:
        icon, colour = ICONS.get(status, ("•", "0"))
        sid = rec.get("step", "")
        title = self.titles.get(sid) or rec.get("title", "")
        took = f" ({rec['duration_ms'] / 1000:.2f}s)" if rec.get("duration_ms") is not None else ""
        lines = [line for line in detail.strip().splitlines() if line.strip()]
        tail = f" — {lines[0]}" if len(lines) == 1 else ""
        self._print(f"{self._paint(icon, colour)} {sid}: {title}{took}{tail}")
        if len(lines) > 1:  # one line per step stays scannable; longer messages go underneath, indented
            for line in lines:
                self._print(f"    {line}")

    def _on_run_started(self, rec: dict[str, Any]) -> None:
        rb = rec.get("runbook", {})
        banner = " [DRILL]" if rec.get("mode") == "drill" else " [DRY-RUN]" if rec.get("mode") == "dry-run" else ""
        self._print(f"run {rec['run']}{banner}")
        self._print(f"runbook {rb.get('id')}: {rb.get('title')}  (operator {rec.get('operator')})")

    def _on_run_resumed(self, rec: dict[str, Any]) -> None:
        self._print(f"resuming run {rec['run']} at step {rec.get('at_step')}")
        torn = rec.get("torn_tail")
        if torn:
            self._print(f"  line {torn.get('line')} of the log was cut short by a crash; its "
                        f"{torn.get('bytes')} bytes were moved to {torn.get('saved_as')}")

    def _on_step_succeeded(self, rec: dict[str, Any]) -> None:
        self._step_line(rec, "succeeded", str(rec.get("message") or ""))

    def _on_step_failed(self, rec: dict[str, Any]) -> None:
        self._step_line(rec, "failed", str(rec.get("error") or rec.get("message") or ""))

    def _on_step_skipped(self, rec: dict[str, Any]) -> None:
        self._step_line(rec, "skipped", str(rec.get("reason", "")))

    def _on_step_planned(self, rec: dict[str, Any]) -> None:
        if rec.get("final"):
            self._step_line(rec, "planned", f"would: {rec.get('summary')}")

    def _on_step_retried(self, rec: dict[str, Any]) -> None:
        self._print(f"  ↻ {rec.get('step')}: attempt {rec.get('attempt')} — {rec.get('reason')}; "
                    f"next in {rec.get('delay')}s")

    def _on_gate_approved(self, rec: dict[str, Any]) -> None:
        self._print(f"  ✔ gate {rec.get('gate')} approved by {rec.get('by')} ({rec.get('how')})")

    def _on_gate_denied(self, rec: dict[str, Any]) -> None:
        why = {"no-tty": "no terminal and no --approve: fail closed", "eof": "end of input",
               "interrupt": "interrupted at the prompt", "timeout": "no answer in time"}.get(rec.get("how", ""), "")
        self._print(self._paint(f"  ⛔ gate {rec.get('gate')} refused by {rec.get('by')} ({rec.get('how')}"
                                f"{': ' + why if why else ''}); {rec.get('choice')}", "31"))

    def _on_rollback_succeeded(self, rec: dict[str, Any]) -> None:
        self._step_line(rec, "rolled_back", "rolled back")

    def _on_rollback_failed(self, rec: dict[str, Any]) -> None:
        self._step_line(rec, "rollback_failed", f"rollback failed: {rec.get('error')}")

    def _on_note(self, rec: dict[str, Any]) -> None:
        self._print(f"  ✎ note by {rec.get('by')}: {rec.get('text')}")

    def _on_drill_graded(self, rec: dict[str, Any]) -> None:
        self._print(f"drill grade: {rec.get('score')}/{rec.get('total')} as expected")
        for miss in rec.get("deviations", []):
            self._print(f"  ✘ {miss}")

    def _on_run_finished(self, rec: dict[str, Any]) -> None:
        counts = rec.get("counts", {})
        shown = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        colour = "32" if rec.get("status") == "succeeded" else "31"
        self._print("")
        self._print(self._paint(f"run {rec.get('status')}", colour) + (f": {shown}" if shown else ""))
        if rec.get("reason"):
            self._print(f"  {rec['reason']}")
        self._print(f"audit head {rec.get('hash')}  (paste it into the incident channel to pin the log)")


class _Spinner:
    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, out: TextIO, label: str) -> None:
        self.out, self.label = out, label
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        start = time.monotonic()
        i = 0
        if self._stop.wait(0.3):  # fast steps never flash a spinner
            return
        while not self._stop.is_set():
            self.out.write(f"\r{self.FRAMES[i % len(self.FRAMES)]} {self.label} "
                           f"({time.monotonic() - start:.0f}s)\x1b[K")
            self.out.flush()
            i += 1
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.out.write("\r\x1b[K")
        self.out.flush()
