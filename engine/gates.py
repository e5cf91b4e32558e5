"""How approval is asked and decided. Fail closed: no terminal and no explicit approval means no.

Approval comes from the operator, never from the runbook file: ``--approve STEP`` on the command line, an
answer typed at a terminal, or ``--yes`` (only in a dry-run or a drill). End of input, Ctrl-C at the prompt
and a gate timeout all mean no.
"""

from __future__ import annotations

import getpass
import os
import select
import shutil
import socket
import sys
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from engine.i18n import _
from engine.text import fit, visible, visible_line


@dataclass(frozen=True)
class GateRequest:
    gate_id: str  # the step id, or "<step>.rollback"
    step_id: str
    title: str
    message: str
    type_to_confirm: str | None
    shown: dict[str, Any]  # what the operator sees: rendered (redacted) arguments, the plan
    digest: str
    mutating: bool
    notify: bool = False  # a message to people: "no" skips it rather than stopping the incident response


@dataclass(frozen=True)
class GateDecision:
    """A decision at a gate: a value, recorded before the step runs, never an exception."""

    approved: bool
    by: str
    how: str  # tty | flag | yes | no-tty | eof | interrupt | timeout | mismatch
    choice: str = "abort"  # when refused: abort the run, or skip this step
    answer: str = ""
    waited_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def default_operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@dataclass
class Terminal:
    """The operator's terminal. Prompts go to stderr so stdout can carry --json events.

    Everything said here may carry runbook or world text, so it is shown with its control characters made
    visible. ``before_prompt`` is called before anything is written: the reporter stops its spinner there,
    so no animation redraws the line a question stands on.
    """

    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    before_prompt: Callable[[], None] | None = None
    timed_out: bool = field(default=False, init=False)  # why the last ask() returned None: timeout, not EOF

    @property
    def interactive(self) -> bool:
        try:
            return self.stdin.isatty()
        except (AttributeError, ValueError):
            return False

    def _quiet(self) -> None:
        if self.before_prompt is not None:
            self.before_prompt()

    def say(self, text: str) -> None:
        self._quiet()
        columns = shutil.get_terminal_size((80, 24)).columns
        self.stderr.write("\n".join(shown for line in text.split("\n")
                                    for shown in fit(visible_line(line), columns)) + "\n")
        self.stderr.flush()

    def ask(self, prompt: str, timeout: float | None = None, echo: bool = True) -> str | None:
        """One line from the operator; None on end of input or timeout. Ctrl-C propagates.

        What was typed before the prompt appeared is discarded: a "y" pressed while an earlier step was still
        printing must not approve a gate, tick a checklist item or settle an in-doubt step nobody has read.
        ``echo=False`` reads a secret without showing it.
        """
        self._quiet()
        self._discard_typeahead()
        self.stderr.write(visible(prompt))
        self.stderr.flush()
        if not echo:
            return self._read_hidden(timeout)
        self.timed_out = False
        if timeout is not None:
            ready = select.select([self.stdin], [], [], timeout)[0]
            if not ready:
                self.say("\n" + _("(no answer before the gate timeout: that means no)"))
                self.timed_out = True
                return None
        line = self.stdin.readline()
        if not line:
            return None
        return line.rstrip("\r\n")

    def tick(self, item: str) -> bool | None:
        """A checklist item of a manual step: True when the operator answers yes (in any width or case)."""
        answer = self.ask("  " + _("[ ] {item} — done? [y/n]: ").format(item=item))
        return None if answer is None else answer_word(answer) in ("y", "yes")

    def note(self) -> str:
        """A manual step's note for the report."""
        return (self.ask("  " + _("Note for the report (Enter for none): ")) or "").strip()

    def _read_hidden(self, timeout: float | None) -> str | None:
        import termios

        fd = self.stdin.fileno()
        saved = termios.tcgetattr(fd)
        quiet = list(saved)
        quiet[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSAFLUSH, quiet)
        try:
            if timeout is not None and not select.select([self.stdin], [], [], timeout)[0]:
                self.timed_out = True
                return None
            line = self.stdin.readline()
        finally:
            termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
            self.stderr.write("\n")
            self.stderr.flush()
        return line.rstrip("\r\n") if line else None

    def _discard_typeahead(self) -> None:
        import termios

        try:
            termios.tcflush(self.stdin.fileno(), termios.TCIFLUSH)
        except (OSError, ValueError, AttributeError, termios.error):
            return  # not a terminal (a test's StringIO, a pipe): nothing buffered by a tty to discard


@dataclass
class Gatekeeper:
    operator: str
    mode: str
    approvals: frozenset[str] = frozenset()
    yes: bool = False
    timeout: float | None = None
    terminal: Terminal = field(default_factory=Terminal)

    def __post_init__(self) -> None:
        if self.yes and self.mode == "live":
            raise ValueError("--yes approves gates only in a dry-run or a drill, never in a live run")

    def decide(self, req: GateRequest) -> GateDecision:
        undo = req.gate_id.endswith(".rollback")
        # `--approve touch` answers for its items; `--approve touch.rollback` for each item's undo
        if req.gate_id in self.approvals or (f"{req.step_id}.rollback" if undo else req.step_id) in self.approvals:
            return GateDecision(True, self.operator, "flag", answer=f"--approve {req.gate_id}")
        if self.yes:
            return GateDecision(True, self.operator, "yes", answer="--yes")
        if not self.terminal.interactive:
            return GateDecision(False, self.operator, "no-tty")
        return self._ask(req)

    def _ask(self, req: GateRequest) -> GateDecision:
        started = time.monotonic()
        t = self.terminal
        t.say("")
        t.say(_("GATE {gate}: {message}").format(gate=req.gate_id, message=req.message))
        for line in describe(req.shown):
            t.say(f"  {line}")
        try:
            if req.type_to_confirm:
                answer = t.ask(_("Type '{word}' to approve (anything else refuses): ").format(
                    word=req.type_to_confirm), self.timeout)
                if answer is None:
                    return self._no(started, self._silence())
                if not same_text(answer, req.type_to_confirm):
                    choice = self._refusal_choice()
                    return GateDecision(False, self.operator, "tty", choice, answer, self._since(started))
                return GateDecision(True, self.operator, "tty", answer=answer, waited_s=self._since(started))
            question = (_("Send? [yes / no = skip it / abort]: ") if req.notify
                        else _("Approve? [yes / no = abort / skip]: "))
            answer = t.ask(question, self.timeout)
        except KeyboardInterrupt:
            t.say("")
            return self._no(started, "interrupt")
        if answer is None:
            return self._no(started, self._silence())
        word = answer_word(answer)
        if word in ("y", "yes"):
            return GateDecision(True, self.operator, "tty", answer=answer, waited_s=self._since(started))
        skips = ("s", "skip", "n", "no") if req.notify else ("s", "skip")
        choice = "skip" if word in skips else "abort"
        return GateDecision(False, self.operator, "tty", choice, answer, self._since(started))

    def _refusal_choice(self) -> str:
        try:
            answer = self.terminal.ask(_("Not approved. Skip this step and go on, or abort the run? "
                                         "[skip / abort]: "))
        except KeyboardInterrupt:
            return "abort"
        return "skip" if answer_word(answer or "") in ("s", "skip") else "abort"

    def _silence(self) -> str:
        """Why no answer came: the gate timeout ran out, or the input ended."""
        return "timeout" if getattr(self.terminal, "timed_out", False) else "eof"

    def _no(self, started: float, how: str) -> GateDecision:
        return GateDecision(False, self.operator, how, waited_s=self._since(started))

    @staticmethod
    def _since(started: float) -> float:
        return round(time.monotonic() - started, 3)


def same_text(typed: str, expected: str) -> bool:
    """Whether the operator typed ``expected``, however their input method wrote it.

    A Japanese input method may commit full-width letters (ｓｈｏｐ), half-width katakana (ｻｲｷﾄﾞｳ) or a
    decomposed kana (か + U+3099 for が): the same word to a person, other code points to ``==``. NFKC folds
    these to one form; it folds only forms a person reads as the same text (widths, ligatures, composed kana).
    """
    return unicodedata.normalize("NFKC", typed.strip()) == unicodedata.normalize("NFKC", expected.strip())


def answer_word(typed: str) -> str:
    """A yes/no/skip/abort answer as a lower-case word: ｙｅｓ typed with a Japanese input method on is yes."""
    return unicodedata.normalize("NFKC", typed).strip().lower()


def describe(shown: dict[str, Any]) -> list[str]:
    """What the operator reads before deciding: the plan first, then the arguments as YAML would write them."""
    import json

    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)

    lines: list[str] = []

    def add(line: str) -> None:
        # A text of several lines (a customer update, a message) stays one block: its lines indented under
        # the first, not at the left edge where they read like the gate's own lines.
        first, *rest = line.split("\n")
        lines.extend([first, *(f"    {more}" for more in rest)])

    if shown.get("plan"):
        add(_("plan: {plan}").format(plan=shown["plan"]))
    for change in shown.get("changes") or []:
        add(f"  {text(change)}")
    for key, value in (shown.get("args") or {}).items():
        add(f"{key}: {text(value)}")
    if shown.get("repeats"):
        add(_("repeats: {repeats}").format(repeats=shown["repeats"]))
    return lines
