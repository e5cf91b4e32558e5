"""Text from the world or a runbook, made safe to put in front of a person.

Command output, DNS and HTTP answers, notes, titles and arguments can carry terminal control sequences: a
read-only step that prints ``\\r\\x1b[2K\\x1b[1A  plan: run kill 1234`` would otherwise redraw the next gate
so that it shows a harmless plan while the real one runs ``rm``. Bidirectional overrides (U+202E) do the same
to a reader of a report (CVE-2021-42574, "Trojan Source"). Everything such text shows is made visible here:
ESC as ``^[``, other C0/C1 controls as ``\\xNN``, bidi controls as ``<U+202E>``. Newlines and tabs stay,
since multi-line output is legitimate; each line is then shown by the caller.
"""

from __future__ import annotations

import re

# C0 controls but \t and \n, DEL, C1 controls; bidi embeddings/overrides/isolates and the marks that
# steer them; the line and paragraph separators some terminals and editors treat as newlines.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _shown(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if ch == "\x1b":
        return "^["
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"<U+{code:04X}>"


def visible(text: str) -> str:
    """``text`` with every control character that could move the cursor, recolour, retitle or reorder the
    screen shown as printable text instead."""
    return _UNSAFE.sub(_shown, text)


def visible_line(text: str) -> str:
    """As :func:`visible`, for text that must stay on one line: newlines and tabs are shown too."""
    return visible(text).replace("\n", "\\n").replace("\t", "\\t")
