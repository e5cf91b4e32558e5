"""A Report (engine.report) → markdown, one self-contained HTML file, or JSON.

The templates in ``templates/`` are ours and trusted; every value in a report came from the world (action
output, operator notes) and is only ever passed to them as data, never rendered as a template. HTML is
autoescaped; markdown values are escaped by the environment's ``finalize`` hook, so a template cannot forget.
Both hooks also show control characters as text (``engine.text``): a report is read in terminals and editors,
where an escape sequence or a bidi override in command output would change what the reader sees.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from engine import i18n
from engine.console import SHOWN_VALUES
from engine.report_model import Chain, Event, GateRow, Report, StepRow, fmt_seconds, fmt_ts, iso_utc
from engine.text import visible, visible_line

TEMPLATES = Path(__file__).resolve().parent / "report_templates"
# CommonMark lets any ASCII punctuation be escaped with a backslash; these are the ones that format.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~&$])")
_MD_PLAIN = re.compile(r"[^\\`*_{}\[\]<>()#+!|~&$\s]*(?: [^\\`*_{}\[\]<>()#+!|~&$\s]+)*")


def md_escape(value: Any) -> str:
    """One line of literal text for a markdown table cell or paragraph."""
    if value is None:
        return ""
    if isinstance(value, Markup):
        return str(value)
    text = visible(str(value))
    if _MD_PLAIN.fullmatch(text):  # the common case, kept cheap: reports can have 10,000 rows
        return text
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def md_code(value: Any) -> Markup:
    """A code span that no value can break out of (the fence is longer than any backtick run inside)."""
    text = " ".join(visible_line(str(value)).split())
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    # Markup here only tells the markdown finalize hook "already escaped": inside a code span nothing formats.
    return Markup(f"{fence}{pad}{text}{pad}{fence}")  # noqa: S704


def md_fence(value: Any) -> Markup:
    """A fenced code block holding ``value`` whole, line for line: the fence is longer than any backtick run
    inside, so no line of the value can close it; control characters are shown as text."""
    text = visible(str(value)).rstrip("\n")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    # Markup only tells the markdown finalize hook "already escaped": inside a fence nothing formats.
    return Markup(f"{fence}\n{text}\n{fence}")  # noqa: S704


def md_tick(ticked: bool) -> Markup:
    """A task-list box (GitHub renders it as a checkbox): ticked only when the operator said so."""
    return Markup("[x]" if ticked else "[ ]")  # noqa: S704


def html_finalize(value: Any) -> Any:
    """Every value in the HTML page with its control characters shown; autoescaping follows. Markup (the
    timeline's JSON) is ours and passes untouched."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value


def line_count(value: Any) -> int:
    return len(str(value).rstrip("\n").splitlines())


def _common(env: SandboxedEnvironment, lang: str) -> SandboxedEnvironment:
    """What every report template may use, in the report's language: ``_()`` for our own text (its entries are
    in the gettext catalog, checked by tests/engine/test_i18n.py like the code's), ``status`` for the status
    words a reader sees, ``ts`` for dates as that reader writes them."""
    translate = i18n.translator(lang)
    env.globals["_"] = translate
    env.globals["lang"] = lang
    env.filters["status"] = lambda word: translate(str(word)) if str(word) in SHOWN_VALUES else word
    env.filters["secs"] = fmt_seconds
    env.filters["ts"] = lambda ts: fmt_ts(str(ts), lang)
    env.filters["short"] = lambda h: str(h)[:16]
    env.filters["value"] = fmt_value
    env.filters["lines"] = line_count
    return env


def fmt_value(value: Any) -> str:
    """An input's value as a reader wants it: lists joined, nothing shown as a dash."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "—"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


class ReportEnvironment(SandboxedEnvironment):
    """Sandboxed, as every template in breakglass is. The report's own dataclasses are known safe, which
    spares the sandbox's per-attribute checks and keeps a 10,000-event report well under a second."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if type(obj) in _MODEL_TYPES and not attr.startswith("_"):
            return True
        return bool(super().is_safe_attribute(obj, attr, value))


_MODEL_TYPES = frozenset({Report, Event, StepRow, GateRow, Chain})


def markdown_env(lang: str = "en") -> SandboxedEnvironment:
    env = ReportEnvironment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=False,  # noqa: S701  (markdown, not HTML: finalize=md_escape escapes every value)
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=md_escape,
    )
    env.filters["code"] = md_code
    env.filters["fence"] = md_fence
    env.filters["tick"] = md_tick
    return _common(env, lang)


def html_env(*folders: Path, lang: str = "en") -> SandboxedEnvironment:
    """The HTML environment; ``folders`` hold more templates (the live page's), looked up before the report's."""
    env = ReportEnvironment(
        loader=FileSystemLoader([*folders, TEMPLATES]),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=html_finalize,
    )
    _common(env, lang)
    env.filters["when"] = lambda ts: Markup('<time datetime="{}">{}</time>').format(iso_utc(str(ts)),
                                                                                   fmt_ts(str(ts), lang))
    return env


def timeline_data(report: Report) -> dict[str, Any]:
    """What the HTML page's script draws: one lane per step that ran, gate waits in the lane of their step."""
    by_step: dict[str, list[dict[str, Any]]] = {}
    for g in report.gates:
        by_step.setdefault(g.step, []).append(
            {
                "gate": g.gate,
                "start": g.asked_s,
                "end": g.decided_s,
                "approved": g.approved,
                "by": g.by,
                "how": g.how,
            }
        )
    lanes = []
    for row in report.steps:
        if row.start_s is None:
            continue
        gates = by_step.get(row.id, [])
        lanes.append(
            {
                "id": row.id,
                "title": row.title,
                "status": row.status,
                "start": row.start_s,
                "end": row.end_s,
                "duration": row.duration_s,
                "gates": gates,
            }
        )
    return {"total": report.total_s, "lanes": lanes, "finished": report.finished}


@cache
def _env(fmt: str, lang: str) -> SandboxedEnvironment:
    # One environment per format and language: its compiled templates are kept for the next report.
    return markdown_env(lang) if fmt == "markdown" else html_env(lang=lang)


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, sort_keys=False, default=str, ensure_ascii=False) + "\n"
    if fmt == "markdown":
        return _env(fmt, report.lang).get_template("report.md.j2").render(r=report)
    if fmt == "html":
        return _env(fmt, report.lang).get_template("report.html.j2").render(r=report, timeline=timeline_data(report))
    raise ValueError(f"unknown report format '{fmt}'")
