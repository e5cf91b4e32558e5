"""The live page's HTML: the report's sandboxed, autoescaping environment with the page's own templates, and
the headers every response carries.

Everything a run holds (titles, outputs, notes, operator names) reaches a template only as data: autoescaped,
with control characters shown as text (``report_render.html_finalize``). The browser is told the same twice:
the Content-Security-Policy allows no inline script on the live pages, nothing from another origin, and no
framing, so even a value that slipped past escaping could not run.
"""

from __future__ import annotations

import hashlib
import re
from base64 import b64encode
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from engine.report_model import Event, Report
from engine.report_render import html_env, render
from engine.store import RunSummary

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Same-origin script and style files only; no inline script, no plugin, no frame, no form, no base rewrite.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",  # an incident page is never served stale, nor kept by a shared cache
}
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)
RECENT = 50


class Pages:
    """The templates, compiled once per server."""

    def __init__(self) -> None:
        self.env: SandboxedEnvironment = html_env(TEMPLATES)
        self.env.filters["at"] = at_offset
        self.env.filters["tail"] = tail

    def index(self, runs: Sequence[RunSummary]) -> str:
        open_runs = [r for r in reversed(runs) if r.status == "running"]
        recent = [r for r in reversed(runs) if r.status != "running"][:RECENT]
        return str(self.env.get_template("index.html.j2").render(open_runs=open_runs, recent=recent))

    def run(self, report: Report, rows: Sequence[str], panels: str) -> str:
        last = report.events[-1].seq if report.events else 0
        return str(self.env.get_template("run.html.j2").render(
            r=report, rows=[Markup(row) for row in rows], panels=Markup(panels), last_seq=last))  # noqa: S704

    def panels(self, report: Report) -> str:
        """Where the run stands: status, current step, gates waiting, steps, notes, rollbacks, the chain."""
        waiting = [g for g in report.gates if g.approved is None]
        return str(self.env.get_template("panels.html.j2").render(r=report, waiting=waiting))

    def row(self, event: Event, first_ts: str) -> str:
        return str(self.env.get_template("row.html.j2").render(e=event, first_ts=first_ts))

    def problem(self, title: str, message: str) -> str:
        """A whole page saying what is wrong (no such run, no access) and what to do."""
        return str(self.env.get_template("problem.html.j2").render(title=title, message=message))

    def problem_panel(self, message: str) -> str:
        """In place of the panels when the run cannot be read any more."""
        return str(self.env.get_template("problem_panel.html.j2").render(message=message))


def report_page(report: Report) -> tuple[str, str]:
    """The post-incident report as ``breakglass report --format html`` writes it, and a CSP for it.

    The report is one self-contained file with its own inline style and script; the policy allows exactly
    those blocks by their hashes, so the page stays as strict as the live one.
    """
    html = render(report, "html")
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(html):
        hashes[kind].append(f"'sha256-{b64encode(hashlib.sha256(body.encode()).digest()).decode()}'")
    csp = (f"default-src 'none'; script-src {_sources(hashes['script'])}; style-src {_sources(hashes['style'])}; "
           "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return html, csp


def _sources(allowed: list[str]) -> str:
    return " ".join(allowed) if allowed else "'none'"


def at_offset(first_ts: str, seconds: Any) -> str:
    """The ISO time ``seconds`` after ``first_ts`` (steps keep offsets; the browser wants instants)."""
    try:
        start = datetime.fromisoformat(first_ts.replace("Z", "+00:00"))
        return (start + timedelta(seconds=float(seconds or 0))).isoformat().replace("+00:00", "Z")
    except (ValueError, TypeError):
        return ""


OUTPUT_LINES = 20


def tail(text: Any, lines: int = OUTPUT_LINES) -> str:
    """The last lines of a command's output, as the terminal shows them: the live panels are sent again on every
    change, so a megabyte of output would be too; the report has it whole."""
    kept = str(text).rstrip("\n").splitlines()
    if len(kept) <= lines:
        return str(text)
    return f"… {len(kept) - lines} earlier lines in the report\n" + "\n".join(kept[-lines:])
