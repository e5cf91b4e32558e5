"""mail.rejections: which big receivers reject our mail, read from a mail log excerpt or bounce texts.

A DNS blocklist is one kind of evidence; Gmail, Microsoft and the Japanese mobile carriers (docomo, au/KDDI,
SoftBank) keep their own reputation and say so only in their rejections ("550-5.7.1 ... gsmtp",
"550 5.7.606 Access denied, banned sending IP", "S3150"). The runbook reads the log with a command the
operator chose (``ssh.run`` of a grep) and hands its stdout here; each line is matched against the table in
``data/rejections.yaml``. The text is data: nothing in it is rendered, executed or decides a gate.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from actions.base import Action, ActionContext, ActionResult, Output, Params

# A reply code with its enhanced status code (550 5.7.1, 550-5.7.26), else a bare one where a reply starts
# ("said: 554", "(421"): never any three digits, which an address such as [209.85.1.1] also has.
SMTP_CODE = re.compile(r"\b([45]\d\d)[ -]([45]\.\d{1,3}\.\d{1,3})\b")
BARE_CODE = re.compile(r"(?:said:|\()\s*([45]\d\d)\b")
REFUSAL = re.compile(r"status=(bounced|deferred)|reject|block|denied", re.IGNORECASE)


class Receiver(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    name: str
    patterns: list[str]
    codes: dict[str, str] = Field(default={})
    procedure: str
    url: str


@cache
def receivers() -> tuple[Receiver, ...]:
    import yaml

    text = (Path(__file__).parent / "data" / "rejections.yaml").read_text(encoding="utf-8")
    return tuple(Receiver.model_validate(item) for item in yaml.safe_load(text)["receivers"])


class MailRejectionsParams(Params):
    text: str = Field(description="Mail log lines or bounce texts (usually an ssh.run step's stdout).")
    max_lines: int = Field(500, ge=1, le=100_000, description="Lines read at most (the newest are last).")


class MailRejectionsOutput(Output):
    count: int = Field(description="Lines that are rejections by a known receiver.")
    receivers: list[dict[str, Any]] = Field(
        description="Per receiver that rejected us: id, name, count, codes, meaning, example, procedure, url.")
    findings: list[dict[str, Any]] = Field(description="Each matched line: receiver, code, meaning, line.")
    unmatched: int = Field(description="Lines that named no known receiver.")


def classify(line: str) -> dict[str, Any] | None:
    """The receiver, the SMTP code and its meaning for one log line, or None when it is not a refusal by a
    known receiver (a delivered message to gmail.com is not evidence)."""
    if not (SMTP_CODE.search(line) or BARE_CODE.search(line) or REFUSAL.search(line)):
        return None
    for rx in receivers():
        if any(re.search(p, line, re.IGNORECASE) for p in rx.patterns):
            code = SMTP_CODE.search(line) or BARE_CODE.search(line)
            shown = " ".join(g for g in code.groups() if g) if code else ""
            special = re.search(r"\b(S3150|S3140|SC-00\d)\b", line)
            if special:
                shown = f"{shown} {special.group(1)}".strip()
            meaning = next((m for rx_code, m in rx.codes.items() if re.search(rx_code, line, re.IGNORECASE)), "")
            return {"receiver": rx.id, "code": shown, "meaning": meaning, "line": line.strip()[:400]}
    return None


class MailRejections(Action[MailRejectionsParams]):
    """Name the receivers (Gmail, Microsoft, docomo, au, SoftBank) whose rejections are in a log excerpt."""

    name = "mail.rejections"
    summary = "Classify rejections in a mail log excerpt: Gmail, Microsoft, Japanese carriers"
    Output = MailRejectionsOutput

    def run(self, params: MailRejectionsParams, ctx: ActionContext) -> ActionResult:
        lines = [line for line in params.text.splitlines() if line.strip()][-params.max_lines:]
        findings = [found for line in lines if (found := classify(line)) is not None]
        by_id = {rx.id: rx for rx in receivers()}
        summary: dict[str, dict[str, Any]] = {}
        for f in findings:
            rx = by_id[f["receiver"]]
            row = summary.setdefault(rx.id, {"id": rx.id, "name": rx.name, "count": 0, "codes": [], "meaning": "",
                                             "example": f["line"], "procedure": rx.procedure, "url": rx.url})
            row["count"] += 1
            if f["code"] and f["code"] not in row["codes"]:
                row["codes"].append(f["code"])
            row["meaning"] = row["meaning"] or f["meaning"]
        rows = list(summary.values())
        said = ", ".join(f"{r['name']} {r['count']}" for r in rows) or "no known receiver"
        return ActionResult({"count": len(findings), "receivers": rows, "findings": findings,
                             "unmatched": len(lines) - len(findings)}, True, f"rejections: {said}")
