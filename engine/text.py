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
import unicodedata

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


# --- display width: what a terminal gives a character, not what len() counts ---------------------------------

# A Japanese line must not start with these (kinsoku): closing brackets, commas, full stops, small kana, the
# long-vowel mark. Each stays on the line of the character before it.
_NO_LINE_START = frozenset("、。，．,.)）」』】〕〉》〙〗〟’”!！?？:：;；・ー々"
                           "ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ")


def char_width(ch: str) -> int:
    """Columns ``ch`` takes on a terminal: 2 for East Asian Wide and Fullwidth, 0 for combining marks."""
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def joiner(before: str, after: str) -> str:
    """What joins two source lines of one paragraph: a space, except between wide characters, since Japanese
    (like Chinese) writes no space between words and a line break in the source is not one."""
    if before and after and char_width(before[-1]) == 2 and char_width(after[0]) == 2:
        return ""
    return " "


def width(text: str) -> int:
    """Columns ``text`` takes on a terminal (``len`` counts 再起動 as 3; it takes 6)."""
    if text.isascii():  # every ASCII character takes one column: no need to ask unicodedata three times each
        return len(text)
    return sum(char_width(ch) for ch in text)


# A word of narrow text, or one wide character with the punctuation that may not begin the next line, or
# spaces. Japanese has no spaces between words: a line may break between any two wide characters.
_TOKEN = re.compile(r"\s+|[^\s]")
_ASCII_TOKEN = re.compile(r"\s+|\S+")  # ASCII: narrow letters only, so a word is all that is not a space


def _tokens(text: str) -> list[str]:
    if text.isascii():
        return [" " if piece.isspace() else piece for piece in _ASCII_TOKEN.findall(text)]
    return _tokens_by_width(text)


def _tokens_by_width(text: str) -> list[str]:
    out: list[str] = []
    for piece in _TOKEN.findall(text):
        if piece.isspace():
            out.append(" ")
        elif out and out[-1] != " " and (piece in _NO_LINE_START or char_width(piece) == 0
                                         or (char_width(piece) == 1 and char_width(out[-1][-1]) == 1)):
            out[-1] += piece  # narrow letters stay one word; closing marks and combining marks stay attached
        else:
            out.append(piece)
    return out


def wrap(text: str, columns: int, indent: str = "", hang: str | None = None) -> list[str]:
    """``text`` in lines of at most ``columns`` display columns, ``indent`` before the first and ``hang``
    (default ``indent``) before the others. Breaks at spaces, and between wide characters; a word wider than
    a line is cut. Like textwrap.wrap, but measured in columns, so Japanese fits the terminal too."""
    hang = indent if hang is None else hang
    lines: list[str] = []
    line, used = indent, width(indent)
    fresh = True  # nothing but the indent on this line yet
    for token in _tokens(text.strip()):
        if token == " ":  # noqa: S105 - a space, not a password
            if not fresh:
                line, used = line + " ", used + 1
            continue
        size = width(token)
        if not fresh and used + size > columns:
            lines.append(line.rstrip())
            line, used, fresh = hang, width(hang), True
        while used + size > columns and fresh and len(token) > 1:  # a word wider than a whole line: cut it
            cut, taken = "", 0
            for ch in token:
                if used + taken + char_width(ch) > columns and cut:
                    break
                cut, taken = cut + ch, taken + char_width(ch)
            lines.append(line + cut)
            token = token[len(cut):]
            size = width(token)
            line, used = hang, width(hang)
        line, used, fresh = line + token, used + size, False
    if not fresh:
        lines.append(line.rstrip())
    return lines


def fit(line: str, columns: int) -> list[str]:
    """One line of terminal output as the screen should show it. A line of narrow characters is left to the
    terminal to wrap, as always; a line with wide ones (Japanese) is broken here by display width, keeping its
    indentation: left to the terminal it is split anywhere (before a 。) and, where a wide character meets the
    last column, some terminals draw half of it off the screen. No character is dropped: a space where the
    line breaks begins the next line, so the lines put back together (after the indentation) are the text."""
    size = width(line)
    if size <= columns or size == len(line) or "\x1b" in line:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    if width(indent) * 2 > columns:
        indent = ""
    out: list[str] = []
    current, used, bare = line[: len(indent)], width(indent), True
    pieces: list[str] = []
    for token in _tokens(line[len(indent):]):
        # A word wider than a line is cut into characters, as the terminal would.
        pieces += list(token) if width(token) > columns - width(indent) else [token]
    for piece in pieces:
        size = width(piece)
        if not bare and used + size > columns:
            kept = current.rstrip(" ")
            out.append(kept)
            # The space at the break starts the next line: a terminal (and a reader copying the text) drops
            # trailing spaces, and "hash 1a2b" must not come back as "hash1a2b".
            current = indent + current[len(kept):]
            used, bare = width(current), True
        current, used, bare = current + piece, used + size, False
    out.append(current)
    return out
