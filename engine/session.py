"""Starting and resuming runs: wires the loaded runbook, the store, gates and the world into a Runner."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from actions.registry import Registry
from engine import audit, calls, i18n, inputs
from engine.errors import AuditError, GateRefused, InputError, RunbookError
from engine.events import REFUSE, RecordType, RunStatus, parent_of
from engine.gates import Gatekeeper, Terminal, answer_word
from engine.handover import resumed_fields, take_over_confirmation
from engine.i18n import _
from engine.loader import LoadedRunbook, load_file, load_text
from engine.machine import RunState, replay
from engine.redact import Redactor
from engine.runner import Runner, RunOutcome
from engine.store import RunStore, default_store
from engine.text import visible_line
from engine.version import __version__
from engine.world import LiveWorld, World

T = RecordType


class InDoubtRefused(GateRefused):
    """A step's outcome is unknown after a crash and nobody decided what to do with it."""


@dataclass
class RunOptions:
    mode: str = "live"  # live | dry-run | drill
    operator: str = ""
    approvals: frozenset[str] = frozenset()
    yes: bool = False
    gate_timeout: float | None = None
    in_doubt: str = "ask"  # ask | rerun | done
    accept_changed: bool = False
    accept_changed_inputs: bool = False
    take_over: bool = False  # resume: break the lease of a driver gone for good (asked at a terminal)
    settings: dict[str, Any] = field(default_factory=dict)
    world: World = field(default_factory=LiveWorld)
    before_finish: Callable[[Runner], None] | None = None
    terminal: Terminal = field(default_factory=Terminal)
    extra_start: dict[str, Any] = field(default_factory=dict)  # e.g. the drill's scenario name
    sign: bool = False  # the operator signs the final chain head with their SSH key (`run --sign`)
    sign_key: Path | None = None  # default: the ssh-agent, then ~/.ssh/id_ed25519


def _gatekeeper(opts: RunOptions) -> Gatekeeper:
    return Gatekeeper(operator=opts.operator, mode=opts.mode, approvals=opts.approvals, yes=opts.yes,
                      timeout=opts.gate_timeout, terminal=opts.terminal)


def _check_approvals(loaded: LoadedRunbook, approvals: frozenset[str]) -> None:
    """A mistyped --approve would silently leave its gate to refuse at 3 a.m.: name it now instead."""
    import difflib

    gates = set(calls.gate_ids(loaded))
    unknown = sorted(approvals - gates)
    if unknown:
        hints = []
        for name in unknown:
            near = difflib.get_close_matches(name, sorted(gates), n=1)
            hints.append(f"--approve {name}: no such step" + (f" (did you mean '{near[0]}'?)" if near else ""))
        raise InputError("; ".join(hints))


def _require_utf8(opts: RunOptions, given: Mapping[str, Any]) -> None:
    """Before the run's directory exists: text the log cannot hold is refused, not found at the first record."""
    audit.require_utf8(opts.operator, "the operator name (--operator)")
    audit.require_utf8(dict(given), "input")


def _settings(opts: RunOptions) -> dict[str, Any]:
    # Manual steps may complete unattended only where --yes is allowed: a dry-run or a drill.
    return {"assume_yes": opts.yes and opts.mode != "live", **opts.settings}


def start(loaded: LoadedRunbook, given: Mapping[str, Any], opts: RunOptions, reporter: Any,
          store: RunStore | None = None, registry: Registry | None = None) -> RunOutcome:
    """Begin a new run of ``loaded``; inputs are checked before anything is written."""
    store = store or default_store()
    rb = loaded.runbook
    _require_utf8(opts, given)
    values = inputs.resolve(rb, given)
    _check_approvals(loaded, opts.approvals)
    gates = _gatekeeper(opts)
    redactor = Redactor(inputs.secret_values(rb, values))
    run_id = store.create(rb.id)
    with store.lock(run_id, opts.operator):
        writer = store.writer(run_id, {"run": run_id, "mode": opts.mode})
        runner = Runner(loaded, writer, RunState(calls.step_ids(loaded)), gates, redactor, values, reporter,
                        registry or Registry(), opts.world, _settings(opts), opts.before_finish)
        runner.follow = partial(store.follow, run_id)
        runner.learn_declared_secrets()
        rec = runner.record(T.RUN_STARTED, {
            "runbook": {"id": rb.id, "title": rb.title, "path": str(Path(loaded.path).resolve()),
                        "sha256": loaded.sha256, "text": loaded.text},
            # Secret inputs are not restored from the log on resume (it holds only ***): they come again
            # from -i or the environment. That includes plain inputs an action declared secret.
            "inputs": values, "secret_inputs": sorted(n for n, s in rb.inputs.items()
                                                      if s.type == "secret" or s.env
                                                      or runner.redactor(values.get(n)) != values.get(n)),
            "operator": opts.operator, "host": socket.gethostname(), "pid": os.getpid(), "version": __version__,
            # The language the operator read: the report's by default; resume shows the same words.
            "lang": i18n.language(),
            **({"calls": calls.called(loaded)} if loaded.children else {}),
            **opts.extra_start,
        })
        runner.started_ts = rec["ts"]
        try:
            return _signed(runner, runner.execute(0), opts)
        finally:
            writer.close()


@dataclass(frozen=True)
class StoredRun:
    run_id: str
    records: list[dict[str, Any]]
    started: dict[str, Any]


def load_stored(store: RunStore, run_id: str) -> StoredRun:
    run_id = store.resolve(run_id)
    verdict = store.verify(run_id)
    if not verdict.ok and not verdict.only_torn:  # a torn last line is set aside by resume, under the lock
        raise AuditError(f"run {run_id}: the audit log does not verify: " + "; ".join(verdict.problems))
    records = [r.to_dict() for r in store.records(run_id)]
    if not records or records[0]["type"] != T.RUN_STARTED:
        raise AuditError(f"run {run_id}: the log does not begin with run.started")
    return StoredRun(run_id, records, records[0])


def runbook_of(stored: StoredRun, accept_changed: bool, registry: Registry | None = None) -> LoadedRunbook:
    """The runbook the run started with: the file if unchanged, else refuse (or take the new one if told)."""
    meta = stored.started["runbook"]
    path = Path(meta["path"])
    if path.is_file():
        current = load_file(path, registry, str(stored.started.get("lang") or "en"))
        if current.sha256 != meta["sha256"] and not accept_changed:
            raise RunbookError([_changed_problem(str(path))])
    else:
        current = load_text(meta["text"], str(path), registry)
    # The runbooks it calls are read from their files: one that changed is refused the same way.
    changed = calls.changed_since(current, stored.started.get("calls") or {})
    if changed and not accept_changed:
        raise RunbookError([_changed_problem(p) for p in changed])
    return current


def _changed_problem(path: str) -> Any:
    from engine.errors import Problem

    return Problem(path, 1, 1, "the runbook changed since this run started; review the change, then resume "
                   "with --accept-changed to go on with the new version")


def resume(store: RunStore, run_id: str, given: Mapping[str, Any], opts: RunOptions, reporter: Any,
           registry: Registry | None = None,
           setup: Callable[[StoredRun], Mapping[str, Any]] | None = None) -> RunOutcome:
    """Go on with a stopped run from its audit log alone.

    The run lock comes first and the log is read, verified and replayed under it: replayed before the lock,
    two resumes of one run both saw a step still to do, and both applied it. ``setup`` derives more options
    from the log under the same lock (a drill's simulated world); its ``inputs`` fill only what the log
    does not hold (the scenario's fake secrets).
    """
    _require_utf8(opts, given)
    run_id = store.resolve(run_id)
    took_over = None
    if opts.take_over:
        confirm, decided = take_over_confirmation(opts.terminal, run_id, opts.operator)
        if store.take_over(run_id, confirm) is not None:
            took_over = decided
    with store.lock(run_id, opts.operator):
        stored = load_stored(store, run_id)
        extra = dict(setup(stored)) if setup is not None else {}
        fallback = extra.pop("inputs", {})
        opts = replace(opts, **extra, mode=str(stored.started.get("mode", "live")))
        registry = registry or Registry()
        loaded = runbook_of(stored, opts.accept_changed, registry)
        rb = loaded.runbook
        values, changed = _resumed_inputs(rb, stored.started, given, fallback, opts.accept_changed_inputs)
        _check_approvals(loaded, opts.approvals)
        ids = calls.step_ids(loaded)
        gone = sorted({str(r["step"]) for r in stored.records if r.get("step") and parent_of(str(r["step"])) is None}
                      - set(ids))
        if gone:
            raise InputError(f"the runbook no longer has step(s) {', '.join(gone)} that this run already "
                             "recorded; a resume goes on from the log, so those steps must stay (add new ones "
                             "instead)")
        state = replay(ids, stored.records)
        torn = store.set_aside_torn_tail(stored.run_id)
        writer = store.writer(stored.run_id, {"run": stored.run_id, "mode": opts.mode})
        runner = Runner(loaded, writer, state, _gatekeeper(opts), Redactor(inputs.secret_values(rb, values)),
                        values, reporter, registry, opts.world, _settings(opts), opts.before_finish)
        runner.follow = partial(store.follow, stored.run_id)
        runner.started_ts = stored.started["ts"]
        runner.resumed_comms(stored.records)
        runner.learn_declared_secrets()
        try:
            if state.status is RunStatus.SUCCEEDED and state.next_index() == len(ids) and not torn:
                return RunOutcome(stored.run_id, RunStatus.SUCCEEDED, stored.records[-1]["hash"],
                                  note=f"run {stored.run_id} already finished; nothing to resume")
            resumed: dict[str, Any] = {"run": stored.run_id, "previous_status": str(state.status),
                                       "at_step": _at(state), "operator": opts.operator,
                                       **resumed_fields(stored.records, opts.operator, took_over)}
            if torn:
                resumed["torn_tail"] = torn
            runner.record(T.RUN_RESUMED, resumed)
            if changed:
                runner.record(T.RUN_INPUTS_CHANGED, {"changes": changed, "by": opts.operator})
            _settle_in_doubt(runner, opts)
            return _signed(runner, runner.execute(calls.resume_index(loaded, state)), opts)
        finally:
            writer.close()


def _signed(runner: Runner, outcome: RunOutcome, opts: RunOptions) -> RunOutcome:
    """With ``--sign``, the operator's signature over the final head, recorded after it: the log is pinned by a
    key, not only by a hash someone must paste somewhere. A key that cannot sign is said, not a new outcome."""
    if not opts.sign:
        return outcome
    from engine import evidence
    from engine.signers import SignatureError

    try:
        data = evidence.sign_head(outcome.run_id, outcome.head, opts.operator, opts.sign_key)
    except SignatureError as exc:
        runner.gates.terminal.say(_("the final head was not signed: {problem}").format(problem=exc))
        return outcome
    runner.record(T.HEAD_SIGNED, data)
    return outcome


def _resumed_inputs(rb: Any, started: Mapping[str, Any], given: Mapping[str, Any], fallback: Mapping[str, Any],
                    accept_changed: bool) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The run's inputs as recorded (``fallback`` where the log has none), with ``given`` on top; and what
    ``given`` changed, as {name: {old, new}}.

    The steps already done were checked against the recorded values: going on with another value (staging
    checked, production changed) happens only when the operator says so, and is then recorded.
    """
    secret = set(started.get("secret_inputs", []))
    recorded = {k: v for k, v in started.get("inputs", {}).items() if k not in secret}
    values = inputs.resolve(rb, {**{k: v for k, v in fallback.items() if k not in recorded}, **recorded, **given})
    changed = {name: {"old": recorded[name], "new": values[name]} for name in given
               if name in recorded and name in values and values[name] != recorded[name]}
    if changed and not accept_changed:
        said = "; ".join(f"input '{visible_line(name)}' was {_shown(c['old'])} when this run started, now "
                         f"{_shown(c['new'])}" for name, c in changed.items())
        raise InputError(f"{said}. The steps done so far were checked with the old value: resume without "
                         "that -i to go on as started, or add --accept-changed-inputs to go on with the new "
                         "value (recorded in the log and the report)")
    return values, changed


def _shown(value: Any) -> str:
    return "empty" if value is None else f"'{visible_line(str(value))}'"


def _at(state: RunState) -> str:
    i = state.next_index()
    return state.step_ids[i] if i < len(state.step_ids) else "(end)"


def _settle_in_doubt(runner: Runner, opts: RunOptions) -> None:
    """A step that began to act and never recorded how it ended: the operator says what happened."""
    for sid in runner.state.in_doubt():
        choice = opts.in_doubt
        if choice == "ask":
            choice = _ask_in_doubt(sid, opts.terminal)
        if choice == "done":
            runner.record(T.STEP_SUCCEEDED, {"step": sid, "output": {"marked_done": True},
                                             "message": f"marked done by {opts.operator} after an interruption",
                                             "marked_by": opts.operator, "attempts": 0})
        elif choice == "rerun":
            runner.record(T.STEP_IN_DOUBT, {"step": sid, "decision": "rerun", "by": opts.operator})
        else:
            # Recorded as it happened: nobody decided, so the run stops here, refused.
            runner.record(T.STEP_IN_DOUBT, {"step": sid, "decision": REFUSE, "by": opts.operator})
            finished = runner.finish(f"step '{sid}' is in doubt and nobody decided; resume at a terminal or "
                                     "pass --in-doubt rerun|done")
            raise InDoubtRefused(f"step '{sid}' may or may not have changed the world before the run stopped; "
                                 f"check it, then resume with --in-doubt done or --in-doubt rerun "
                                 f"(audit head {finished.head})")


def _ask_in_doubt(sid: str, terminal: Terminal) -> str:
    if not terminal.interactive:
        return REFUSE
    terminal.say(_("Step '{step}' was applying its change when the run stopped: it may or may not have "
                   "happened.").format(step=sid))
    try:
        answer = terminal.ask(_("Check the world, then answer: [rerun / done / abort]: "))
    except KeyboardInterrupt:
        return REFUSE
    word = answer_word(answer or "")
    return word if word in ("rerun", "done") else REFUSE
