"""What the CLI says about runbooks: the list, one runbook's description, validation of many files."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import RunbookError
from engine.i18n import _
from engine.locate import runbook_files, search_dirs
from engine.text import joiner, visible_line, width, wrap

if TYPE_CHECKING:
    from engine.loader import LoadedRunbook

WIDTH = 80
LISTED_KEYS = frozenset({"id", "title", "severity", "tags"})


def summaries(extra_dirs: Iterable[str]) -> list[dict[str, Any]]:
    """id, title, severity, tags and path of every runbook found; only parses YAML (fast, no validation)."""
    from engine.yamlsource import SourceError, load_header

    rows = []
    for f in runbook_files(search_dirs(extra_dirs)):
        try:
            data = load_header(f.read_text(encoding="utf-8"), str(f), LISTED_KEYS)
        except (OSError, UnicodeDecodeError, SourceError):
            data = None
        if not isinstance(data, dict):
            rows.append({"id": f.stem, "title": "(unreadable: run `breakglass validate`)", "severity": "?",
                         "tags": [], "path": str(f)})
            continue
        rows.append({"id": str(data.get("id", f.stem)), "title": str(data.get("title", "")),
                     "severity": str(data.get("severity", "high")), "tags": list(data.get("tags") or []),
                     "path": str(f)})
    return rows


def validate_paths(paths: list[str]) -> list[dict[str, Any]]:
    """Validate files (directories are searched for runbooks); the shipped ones when no path is given."""
    files: list[Path] = []
    for p in paths:
        path = Path(p)
        files += runbook_files([path]) if path.is_dir() else [path]
    if not paths:
        files = runbook_files(search_dirs([]))
    from actions.registry import Registry
    from engine import team as team_file
    from engine.checks import warnings
    from engine.loader import checked_file
    from engine.translation import problems_and_gaps

    registry = Registry()  # one for all files: action classes a plugin brings are imported once
    team = team_file.load()  # a broken team file is an InputError: said once, before any runbook
    results = []
    for f in files:
        try:
            src, runbook = checked_file(f, registry)
        except RunbookError as exc:
            results.append({"file": str(f), "ok": False, "problems": [str(p) for p in exc.problems], "warnings": []})
            continue
        lacking, unchecked = team_file.check_runbook(src, team)
        problems = [str(p) for p in lacking]
        found = [str(w) for w in warnings(src) + unchecked]
        # Its translations are part of the runbook: a step renamed here but not there is caught here.
        for _lang, wrong, gaps in problems_and_gaps(str(f), runbook, registry):
            problems += [str(p) for p in wrong]
            found += [str(g) for g in gaps]
        results.append({"file": str(f), "ok": not problems, "problems": problems, "warnings": found})
    return results


def describe(loaded: LoadedRunbook, registry: Any = None, prefix: str = "") -> dict[str, Any]:
    """What ``show`` says about a runbook; the steps of the runbooks it calls under ``call`` (their ids as a
    run records them, ``<call>.<step>``)."""
    from actions.base import Effect
    from actions.registry import Registry
    from engine import calls
    from engine.model import Gate, Group, gate_for, gate_of, repeat_note

    rb = loaded.runbook
    registry = registry or Registry()
    steps = []
    members = [(s, unit) for unit in rb.steps for s in (unit.parallel if isinstance(unit, Group) else [unit])]
    for s, unit in members:
        child = loaded.children.get(s.id) if s.action == calls.CALL else None
        # What the runner will decide, from the same text.
        effect = calls.effect_of(child, registry) if child is not None else registry.get(s.action).effect_of(s.with_)
        mutating = effect is not Effect.READ
        asked = gate_of(s.confirm)
        others = ({"approvals": asked.approvals, "approvers": list(asked.approvers), "timeout": asked.timeout}
                  if asked is not None and asked.approvals else None)
        rollback = s.rollback if isinstance(s.rollback, str) or s.rollback is None else s.rollback.action
        call = None
        if child is not None:
            inner = describe(child, registry, f"{prefix}{s.id}{calls.SEP}")
            call = {"runbook": child.runbook.id, "path": child.path, "steps": inner["steps"],
                    "outputs": list(child.runbook.outputs)}
        steps.append({"id": prefix + s.id, "title": s.title, "action": s.action, "effect": str(effect),
                      "mutating": mutating, "gated": gate_for(s.confirm, mutating) is not None,
                      "approvals": others,
                      "repeats": repeat_note(s) if mutating else None, "when": s.when,
                      "on_failure": s.on_failure, "rollback": rollback, "call": call,
                      "description": s.description, "with": _shown_args(registry, s.action, s.with_),
                      "parallel": {"id": unit.id, "title": unit.title} if unit is not s else None,
                      "for_each": s.for_each, "concurrency": s.concurrency,
                      "confirm_each": isinstance(s.confirm, Gate) and s.confirm.each})
    inputs = [{"name": n, "type": str(i.type), "required": i.is_required, "default": i.default, "env": i.env,
               "description": i.description} for n, i in rb.inputs.items()]
    return {"id": rb.id, "title": rb.title, "severity": rb.severity, "tags": rb.tags, "path": loaded.path,
            "description": rb.description, "inputs": inputs, "steps": steps, "outputs": list(rb.outputs),
            "comms": {"cadence": rb.comms.cadence, "kinds": rb.comms.kinds()} if rb.comms else None}


def _shown_args(registry: Any, action: str, args: dict[str, Any]) -> dict[str, Any]:
    """A step's arguments as it runs them, the runbook's defaults merged in: a secret written as a literal
    (not a template naming an input) is masked, as everywhere the operator looks. What the plan makes of
    (``Action.shown_by_plan``: comms.post's bodies, from `comms:`, named once at the top) is left out."""
    from engine.templates import is_template

    cls = registry.get(action)
    secret = cls.secret_params
    return {k: "***" if k in secret and not (isinstance(v, str) and is_template(v)) else v for k, v in args.items()
            if k not in cls.shown_by_plan}


def _paragraphs(text: str) -> list[str]:
    """Markdown source → paragraphs and list items, each on one line (source line breaks are not meaning)."""
    out: list[str] = []
    for raw in text.strip().splitlines():
        line = raw.strip()
        starts_item = bool(re.match(r"([-*+]|\d+[.)])\s", line))
        if not line:
            out.append("")
        elif out and out[-1] and not starts_item and not raw.startswith("    "):
            out[-1] += joiner(out[-1], line) + line
        else:
            out.append(line)
    return out


def _wrap(text: str, indent: str) -> list[str]:
    out: list[str] = []
    for para in _paragraphs(text):
        hang = indent + "  " if re.match(r"([-*+]|\d+[.)])\s", para) else indent
        out += wrap(para, WIDTH - width(indent), indent, hang) or [""]  # columns, not characters: 再起動 takes 6
    return out


def _yaml_value(value: Any) -> str:
    """A value as it would be written in the runbook (true, [a, b]), not as Python prints it."""
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render_description(info: dict[str, Any], expand: bool = False) -> str:
    """Plain text that fits an 80-column terminal; ``expand``: with the steps of the runbooks it calls."""
    lines = [*_wrap(f"{info['id']} — {info['title']}", ""), _("severity {severity}").format(severity=info["severity"])
             + (" · " + _("tags {tags}").format(tags=", ".join(info["tags"])) if info["tags"] else ""), ""]
    if info["description"].strip():
        lines += [*_wrap(info["description"], ""), ""]
    if info.get("comms"):
        lines += [*_wrap(_("Customer updates every {cadence}: {kinds} (en, ja)").format(
            cadence=info["comms"]["cadence"], kinds=", ".join(info["comms"]["kinds"])), ""), ""]
    lines += [_("Inputs:")]
    for i in info["inputs"]:
        need = (_("required") if i["required"] else _("default {value}").format(value=_yaml_value(i["default"]))
                if i["default"] is not None else _("optional"))
        env = f", env ${i['env']}" if i["env"] else ""
        lines += _wrap(f"{i['name']} ({i['type']}, {need}{env})", "  ")
        lines += _wrap(i["description"], "      ")
    if not info["inputs"]:
        lines.append("  " + _("(none)"))
    lines += ["", _("Steps:  [G] gated   [A] gated, and others must sign approvals"),
              _("        [W] changes the world   [R] has a rollback")]
    lines += _step_lines(info["steps"], "", expand)
    if info.get("outputs"):
        lines += ["", *_wrap(_("Outputs (for a runbook that calls this one): {names}").format(
            names=", ".join(info["outputs"])), "")]
    return "\n".join(lines)


def _step_lines(steps: list[dict[str, Any]], indent: str, expand: bool) -> list[str]:
    lines: list[str] = []
    for n, s in enumerate(steps, 1):
        gate_mark = "A" if s["approvals"] else "G" if s["gated"] else " "
        marks = gate_mark + ("W" if s["mutating"] else " ") + ("R" if s["rollback"] else " ")
        lines.append(f"{indent} {n:>2}. [{marks}] {s['id']} ({s['action']})")
        sub = indent + "          "
        lines += _wrap(s["title"], sub)
        if s.get("parallel"):  # runbook text: shown, never obeyed
            lines += _wrap(visible_line(_("at once with the others of group {id}: {title}").format(
                id=s["parallel"]["id"], title=s["parallel"]["title"])), sub)
        if s.get("for_each") is not None:
            each = (_("asks per item") if s["confirm_each"] else _("one gate for every item's plan")) if s["gated"] \
                else ""
            at_once = (_("{count} at once").format(count=s["concurrency"]) if (s["concurrency"] or 1) > 1
                       else _("one at a time"))
            lines += _wrap(visible_line(_("for each item of: {items} ({how})").format(
                items=_yaml_value(s["for_each"]), how=at_once + ("; " + each if each else ""))), sub)
        if s["when"] is not None:
            lines += _wrap(_("when: {condition}").format(condition=s["when"]), sub)
        for name, value in s["with"].items():  # runbook text: shown, never obeyed (escapes, bidi controls)
            lines += _wrap(visible_line(f"{name}: {_yaml_value(value)}"), sub)
        if s["approvals"]:
            a = s["approvals"]
            said = (_("approvals: {count} of {approvers}, besides the operator within {seconds} s") if a["timeout"]
                    else _("approvals: {count} of {approvers}, besides the operator"))
            lines += _wrap(said.format(count=a["approvals"], approvers=", ".join(a["approvers"]),
                                       seconds=f"{a['timeout']:g}" if a["timeout"] else ""), sub)
        if s["repeats"]:
            lines += _wrap(_("repeats: {note}").format(note=s["repeats"]), sub)
        if s["rollback"] == "auto":
            lines += _wrap(_("rollback: auto ({action} puts back what it recorded)").format(action=s["action"]), sub)
        call = s.get("call")
        if call is not None:
            named = dict(runbook=call["runbook"], count=len(call["steps"]), id=s["id"])
            if expand:
                lines += _wrap(_("runs runbook {runbook} ({count} steps, recorded as {id}.<step>):").format(**named),
                               sub)
                lines += _step_lines(call["steps"], sub, expand)
            else:
                lines += _wrap(_("runs runbook {runbook}: {count} steps, recorded as {id}.<step> (`show --expand` "
                                 "lists them)").format(**named), sub)
    return lines


EFFECTS = {"read": "reads the world: runs in a dry-run, never gated unless the runbook asks",
           "write": "changes the world: only planned in a dry-run, gated in a live run",
           "notify": "tells people: shown, not sent, in a dry-run; gated in a live run"}


def render_action(info: dict[str, Any]) -> str:
    """One action for ``breakglass actions NAME``: what it takes (``with:``), what it gives
    (``steps.<id>.output``) and its effect, fitting an 80-column terminal."""
    lines = [*_wrap(f"{info['name']} — {info['summary']}", ""), ""]
    effect = f"Effect: {info['effect']} ({EFFECTS.get(info['effect'], '')})"
    if info["read_only_flag"]:
        effect += f"; a read when `{info['read_only_flag']}: true` is written"
    lines += _wrap(effect, "")
    lines += ["", *_wrap("Rollback: `rollback: auto` undoes it from what it recorded" if info.get("undo") else
                         "Rollback: write one by hand (`rollback: auto` does not work: it cannot undo itself)", "")]
    lines += ["", "Arguments (with:):"]
    lines += _field_lines(info["arguments"], arguments=True) or ["  (none)"]
    lines += ["", "Output fields (steps.<id>.output, result in expect and until):"]
    if info["output"] is None:
        lines += _wrap("open-ended: this action does not declare its output fields, so reads of them are not "
                       "checked", "  ")
    else:
        lines += _field_lines(info["output"], arguments=False) or ["  (none)"]
    return "\n".join(lines)


def _field_lines(fields: list[dict[str, Any]], arguments: bool) -> list[str]:
    lines: list[str] = []
    for f in fields:
        need = ""
        if arguments:
            need = ", required" if f["required"] else (
                f", default {_yaml_value(f['default'])}" if f["default"] is not None else ", optional")
        lines += _wrap(f"{f['name']} ({f['type']}{need})", "  ")
        if f["description"]:
            lines += _wrap(f["description"], "      ")
    return lines
