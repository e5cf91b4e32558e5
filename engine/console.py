"""What the operator sees while a run goes: one line per step, a final summary, or JSON lines.

Reporters only print records that were already redacted and written to the audit log, so the terminal can
never show something the log does not hold. Text in those records came from a runbook or the world, so it is
printed with its control characters made visible (engine.text): no output can move the cursor and redraw a
gate. Nothing animates while a question is on the screen: the terminal pauses the spinner before any prompt.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from typing import Any, ClassVar, Protocol, TextIO

from engine.events import RESUMABLE, RecordType, RunStatus, StepStatus
from engine.i18n import N_, _
from engine.text import fit, visible_line, width, wrap

OUTPUT_TAIL = 8  # lines of a command's output shown under its step; the whole of it is in the log and report

S = StepStatus
ICONS = {
    S.SUCCEEDED: ("✔", "32"), S.FAILED: ("✘", "31"), S.SKIPPED: ("↷", "33"), S.PLANNED: ("☐", "36"),
    S.REFUSED: ("⛔", "31"), S.ROLLED_BACK: ("↺", "35"), S.ROLLBACK_FAILED: ("✘", "31"),
}


# Record values shown translated (through ``_()`` of a variable, which no scan of the code can see): the catalog
# test asks for an entry for each. The records themselves keep the English values.
SHOWN_VALUES: tuple[str, ...] = (*map(str, StepStatus), *map(str, RunStatus), "abort", "skip")


class Reporter(Protocol):
    """What the runner tells whoever watches: records as they are written, and the moments between them."""

    # True when it shows records as the log holds them, numbers and hashes included: the runner then never
    # lets the store hold an outcome back (held, its number changes if another writer's record comes first).
    shows_records: bool

    def event(self, rec: dict[str, Any]) -> None: ...
    def step_begins(self, step_id: str, title: str) -> None: ...
    def progress(self, step_id: str, message: str) -> None: ...
    def pause(self) -> None: ...
    def close(self) -> None: ...


class NullReporter:
    """Prints nothing: for embedding the engine, tests and benchmarks (the audit log still has it all)."""

    shows_records = False

    def event(self, rec: dict[str, Any]) -> None:
        return None

    def step_begins(self, step_id: str, title: str) -> None:
        return None

    def progress(self, step_id: str, message: str) -> None:
        return None  # not a record: --json carries only what the log holds

    def pause(self) -> None:
        return None

    def close(self) -> None:
        return None


class JsonReporter(NullReporter):
    """Every audit record as one JSON line on stdout (``--json``)."""

    shows_records = True

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def event(self, rec: dict[str, Any]) -> None:
        self.out.write(json.dumps(rec, sort_keys=True, default=str) + "\n")
        self.out.flush()


def colour_wanted(out: TextIO) -> bool:
    """Colour only on a terminal that can show it, and never when the user said no (https://no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(out, "isatty", lambda: False)())


class TerminalReporter:
    """Human output: a line per step with its status; colour and a spinner only on a TTY."""

    shows_records = False  # statuses and messages: never a record's number

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.colour = colour_wanted(self.out)
        self.animate = self.tty and os.environ.get("TERM") != "dumb"
        self._spinner: _Spinner | None = None
        self._current: tuple[str, str] | None = None  # the step now working, for a spinner after a prompt
        self.titles: dict[str, str] = {}

    def _paint(self, text: str, colour: str) -> str:
        return f"\x1b[{colour}m{text}\x1b[0m" if self.colour else text

    def _print(self, text: str) -> None:
        self._stop_spinner()
        try:
            columns = shutil.get_terminal_size((80, 24)).columns
            self.out.write("\n".join(shown for line in text.split("\n") for shown in fit(line, columns)) + "\n")
            self.out.flush()
        except BrokenPipeError:
            # Whoever read our output (a pager, `| head`) is gone; the run goes on, its log has it all.
            self.out = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the reporter
            self.tty = self.animate = False

    def step_begins(self, step_id: str, title: str) -> None:
        self.titles[step_id] = title
        self._current = (step_id, title)
        self._start_spinner()

    def _start_spinner(self) -> None:
        if self.animate and self._current is not None:
            self._stop_spinner()
            step_id, title = self._current
            self._spinner = _Spinner(self.out, visible_line(f"{step_id}: {title}"))

    def _stop_spinner(self) -> None:
        if self._spinner:
            self._spinner.stop()
            self._spinner = None

    def pause(self) -> None:
        """A question is about to be asked: nothing may move on the screen until it is answered."""
        self._stop_spinner()

    def progress(self, step_id: str, message: str) -> None:
        """A long step says where it is ("TTL lowered; waiting 300s"): a line, then the spinner again."""
        self._print(f"    … {visible_line(message)}")
        if self._current is not None and self._current[0] == step_id:
            self._start_spinner()

    def close(self) -> None:
        self._current = None
        self._stop_spinner()

    def event(self, rec: dict[str, Any]) -> None:
        handler = self._handlers.get(rec["type"])
        if handler:
            handler(self, rec)

    def _step_line(self, rec: dict[str, Any], status: StepStatus, detail: str = "") -> None:
        icon, colour = ICONS.get(status, ("•", "0"))
        sid = rec.get("step", "")
        if self._current and self._current[0] == sid:
            self._current = None
        title = self.titles.get(sid) or rec.get("title", "")
        took = f" ({rec['duration_ms'] / 1000:.2f}s)" if rec.get("duration_ms") is not None else ""
        # Split on newlines only: str.splitlines() also breaks at \r and friends, which would hide them.
        lines = [visible_line(line) for line in str(detail).strip().split("\n") if line.strip()]
        tail = f" — {lines[0]}" if len(lines) == 1 else ""
        self._print(f"{self._paint(icon, colour)} {visible_line(str(sid))}: {visible_line(str(title))}{took}{tail}")
        if len(lines) > 1:  # one line per step stays scannable; longer messages go underneath, indented
            for line in lines:
                self._print(f"    {line}")

    def _output_tail(self, rec: dict[str, Any]) -> None:
        """The last lines a command printed (shell.run, ssh.run): what the operator ran it to see."""
        output = rec.get("output") or {}
        for stream in ("stdout", "stderr"):
            text = output.get(stream)
            if not isinstance(text, str) or not text.strip():
                continue
            lines = text.rstrip("\n").split("\n")
            if len(lines) > OUTPUT_TAIL:
                self._print("    │ " + _("… {count} earlier line(s) of {stream} in the report").format(
                    count=len(lines) - OUTPUT_TAIL, stream=stream))
            for line in lines[-OUTPUT_TAIL:]:
                self._print(f"    │ {visible_line(line)}")

    def _on_run_started(self, rec: dict[str, Any]) -> None:
        rb = rec.get("runbook", {})
        banner = _(" [DRILL]") if rec.get("mode") == "drill" else _(" [DRY-RUN]") if rec.get("mode") == "dry-run" \
            else ""
        self._print(_("run {run}").format(run=rec["run"]) + banner)
        self._print(visible_line(_("runbook {id}: {title}  (operator {operator})").format(
            id=rb.get("id"), title=rb.get("title"), operator=rec.get("operator"))))

    def _on_run_resumed(self, rec: dict[str, Any]) -> None:
        self._print(visible_line(_("resuming run {run} at step {step}").format(run=rec["run"],
                                                                               step=rec.get("at_step"))))
        torn = rec.get("torn_tail")
        if torn:
            self._print("  " + visible_line(_("line {line} of the log was cut short by a crash; its {bytes} bytes "
                                              "were moved to {saved_as}").format(
                line=torn.get("line"), bytes=torn.get("bytes"), saved_as=torn.get("saved_as"))))

    def _on_step_succeeded(self, rec: dict[str, Any]) -> None:
        self._step_line(rec, S.SUCCEEDED, str(rec.get("message") or ""))
        self._output_tail(rec)

    def _on_step_failed(self, rec: dict[str, Any]) -> None:
        self._step_line(rec, S.FAILED, str(rec.get("error") or rec.get("message") or ""))
        self._output_tail(rec)

    def _on_step_skipped(self, rec: dict[str, Any]) -> None:
        self._step_line(rec, S.SKIPPED, str(rec.get("reason", "")))

    def _on_step_planned(self, rec: dict[str, Any]) -> None:
        if rec.get("final"):
            self._step_line(rec, S.PLANNED, _("would: {summary}").format(summary=rec.get("summary")))

    def _on_step_retried(self, rec: dict[str, Any]) -> None:
        self._print(visible_line("  ↻ " + _("{step}: attempt {attempt} — {reason}; next in {delay}s").format(
            step=rec.get("step"), attempt=rec.get("attempt"), reason=rec.get("reason"), delay=rec.get("delay"))))

    def _on_gate_approved(self, rec: dict[str, Any]) -> None:
        self._print(visible_line("  ✔ " + _("gate {gate} approved by {by} ({how})").format(
            gate=rec.get("gate"), by=rec.get("by"), how=rec.get("how"))))
        self._start_spinner()  # the step goes on working: show that it does

    def _on_gate_denied(self, rec: dict[str, Any]) -> None:
        why = {"no-tty": N_("no terminal and no --approve: fail closed"), "eof": N_("end of input"),
               "interrupt": N_("interrupted at the prompt"), "timeout": N_("no answer in time")}.get(
            rec.get("how", ""), "")
        how = f"{rec.get('how')}: {_(why)}" if why else str(rec.get("how"))
        said = _("gate {gate} refused by {by} ({how}); {choice}").format(
            gate=rec.get("gate"), by=rec.get("by"), how=how, choice=_(str(rec.get("choice"))))
        self._print(self._paint(visible_line(f"  ⛔ {said}"), "31"))

    def _on_rollback_succeeded(self, rec: dict[str, Any]) -> None:
        self._step_line(rec, S.ROLLED_BACK, _("rolled back"))

    def _on_rollback_skipped(self, rec: dict[str, Any]) -> None:
        self._step_line(rec, S.SKIPPED, _("not undone: {reason}").format(reason=rec.get("reason")))

    def _on_rollback_failed(self, rec: dict[str, Any]) -> None:
        self._step_line(rec, S.ROLLBACK_FAILED, _("rollback failed: {error}").format(error=rec.get("error")))
        self._output_tail(rec)

    def _on_note(self, rec: dict[str, Any]) -> None:
        self._print("  ✎ " + _("note by {by}:").format(by=visible_line(str(rec.get("by")))))
        for line in str(rec.get("text", "")).split("\n"):
            self._print(f"    {visible_line(line)}")

    def _on_drill_graded(self, rec: dict[str, Any]) -> None:
        self._print(_("drill grade: {score}/{total} as expected").format(score=rec.get("score"),
                                                                          total=rec.get("total")))
        for miss in rec.get("deviations", []):
            self._print(f"  ✘ {visible_line(str(miss))}")

    def _on_run_finished(self, rec: dict[str, Any]) -> None:
        counts = rec.get("counts", {})
        # Status words are the records' own values, translated only here (the catalog holds every one).
        shown = _(", ").join(_("{count} {status}").format(count=v, status=_(str(k))) for k, v in counts.items() if v)
        colour = "32" if rec.get("status") == RunStatus.SUCCEEDED else "31"
        self._print("")
        self._print(self._paint(_("run {status}").format(status=_(str(rec.get("status")))), colour)
                    + (f": {shown}" if shown else ""))
        if rec.get("reason"):
            self._print(f"  {visible_line(str(rec['reason']))}")
        items = rec.get("open") or []
        self._still_open(items)
        self._print(_("audit head {hash}  (paste it into the incident channel to pin the log)").format(
            hash=rec.get("hash")))
        said = {str(i.get("why")): str(i.get("text")) for i in items if i.get("kind") == "next"}
        if "open" not in rec and rec.get("status") in RESUMABLE:  # a log written before run.finished said it
            said["resume"] = f"breakglass resume {rec.get('run')}"
        if "resume" in said:
            self._print(_("to go on from here: {command}").format(command=visible_line(said["resume"])))
        if "report" in said:
            self._print(_("report for the record: {command}").format(command=visible_line(said["report"])))

    def _still_open(self, items: list[dict[str, Any]]) -> None:
        """The run's open items (engine/followups.py): deadlines first by date, then unticked items, then what
        to type next. Their text came from runbooks and the world: made visible like every other line."""
        due = sorted((i for i in items if i.get("kind") == "due"),
                     key=lambda i: (i.get("due") is None, i.get("due") or ""))
        unchecked = [i for i in items if i.get("kind") == "unchecked"]
        if due or unchecked:
            self._print(_("still open:"))
        for item in due:
            self._wrapped("  ⏰ ", f"{item.get('text')} ({item.get('step')})")
        for item in unchecked:
            self._wrapped("  ☐ ", _("{item}  (not ticked at {step})").format(item=item.get("text"),
                                                                           step=item.get("step")))

    def _wrapped(self, lead: str, text: str) -> None:
        """Long text in lines that fit the terminal, hanging under ``lead`` (display columns, Japanese too)."""
        columns = max(40, shutil.get_terminal_size((80, 24)).columns)
        for line in wrap(visible_line(text), columns, lead, " " * width(lead)):
            self._print(line)

    def _on_head_signed(self, rec: dict[str, Any]) -> None:
        self._print(visible_line(_("audit head {head} signed by {by} ({fingerprint}); `audit verify --signers "
                                   "FILE` checks it").format(head=rec.get("head"), by=rec.get("by"),
                                                              fingerprint=rec.get("fingerprint"))))

    def _on_comms_due(self, rec: dict[str, Any]) -> None:
        # Shown in the operator's own time zone would need theirs; UTC is what the update itself promises.
        due = str(rec.get("due", ""))[11:16]
        self._print(self._paint(visible_line("  ⏰ " + _("customer update due {due} UTC (every {minutes} min): {kinds}")
                                             .format(due=due, minutes=int(rec.get("cadence_s", 0)) // 60,
                                                     kinds=", ".join(rec.get("kinds") or []))), "33"))

    # Which record each method above prints; a record type without one is not shown on the terminal.
    _handlers: ClassVar[dict[str, Any]] = {
        RecordType.RUN_STARTED: _on_run_started, RecordType.RUN_RESUMED: _on_run_resumed,
        RecordType.STEP_SUCCEEDED: _on_step_succeeded, RecordType.STEP_FAILED: _on_step_failed,
        RecordType.STEP_SKIPPED: _on_step_skipped, RecordType.STEP_PLANNED: _on_step_planned,
        RecordType.STEP_RETRIED: _on_step_retried, RecordType.GATE_APPROVED: _on_gate_approved,
        RecordType.GATE_DENIED: _on_gate_denied, RecordType.ROLLBACK_SUCCEEDED: _on_rollback_succeeded,
        RecordType.ROLLBACK_SKIPPED: _on_rollback_skipped, RecordType.ROLLBACK_FAILED: _on_rollback_failed,
        RecordType.NOTE: _on_note, RecordType.DRILL_GRADED: _on_drill_graded,
        RecordType.RUN_FINISHED: _on_run_finished, RecordType.HEAD_SIGNED: _on_head_signed,
        RecordType.COMMS_DUE: _on_comms_due,
    }


class _Spinner:
    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, out: TextIO, label: str) -> None:
        self.out, self.label = out, label
        self._stop = threading.Event()
        self._drawn = False
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        start = time.monotonic()
        i = 0
        if self._stop.wait(0.3):  # fast steps never flash a spinner
            return
        self._drawn = True
        while not self._stop.is_set():
            self.out.write(f"\r{self.FRAMES[i % len(self.FRAMES)]} {self.label} "
                           f"({time.monotonic() - start:.0f}s)\x1b[K")
            self.out.flush()
            i += 1
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._drawn:  # erase only our own line: clearing one we never drew could wipe a question
            self.out.write("\r\x1b[K")
            self.out.flush()
