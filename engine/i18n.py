"""The operator's language: English or Japanese for what a person reads at the terminal.

Only text a person reads is translated: prompts, step status lines, the run summary, drill grading. Audit
records, ``--json`` output, exit codes and ``file:line:column`` positions stay the same in every language, so
a log written in Japanese verifies, diffs and greps like one written in English.

Messages are marked in the code with ``_("...")`` (``N_("...")`` marks a string translated later, where it is
shown) and use named ``{fields}``, so a translation may put them in its own order. The catalogs are standard
gettext ``.po`` files in engine/locale/<lang>/LC_MESSAGES/breakglass.po, read by the small loader below into a
``gettext.NullTranslations``. They are not compiled to ``.mo``: setuptools has no msgfmt step without a custom
build command, an editable install (how this project is developed and tested) would never run one, and a
committed ``.mo`` is a binary copy that drifts from its source. Reading ~100 entries costs about a millisecond,
and only when a language other than English is chosen. tests/engine/test_i18n.py fails when a marked message
has no Japanese entry, or an entry no longer matches a message in the code.
"""

from __future__ import annotations

import ast
import gettext
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path

from engine.errors import InputError

LANGUAGES = ("en", "ja")  # English is the code's own text; the others have a catalog
DOMAIN = "breakglass"
LOCALE_DIR = Path(__file__).with_name("locale")

_current: gettext.NullTranslations = gettext.NullTranslations()
_language = "en"


def _(message: str) -> str:
    """``message`` in the chosen language (itself in English, or when a catalog lacks it)."""
    return _current.gettext(message)


def N_(message: str) -> str:  # noqa: N802 - the name xgettext and every gettext user knows
    """Marks ``message`` for translation where it is defined; it is translated with ``_()`` where shown."""
    return message


def translator(lang: str) -> Callable[[str], str]:
    """``_`` for ``lang`` whatever the CLI speaks: a report is written in its run's language."""
    return gettext.NullTranslations().gettext if lang == "en" else _catalog(lang).gettext


def language() -> str:
    return _language


def use(lang: str) -> None:
    """Speak ``lang`` (one of LANGUAGES) from now on."""
    global _current, _language
    _current = gettext.NullTranslations() if lang == "en" else _catalog(lang)
    _language = lang


def choose(flag: str | None, environ: dict[str, str] | None = None) -> str:
    """The language: ``--lang``, else ``BREAKGLASS_LANG``, else the locale (LC_ALL, LC_MESSAGES, LANG).

    A language asked for by name that has no catalog is an error (the operator meant something); a locale
    without one (fr_FR.UTF-8, C) falls back to English, as every gettext program does.
    """
    env = os.environ if environ is None else environ
    for said, where in ((flag, "--lang"), (env.get("BREAKGLASS_LANG"), "BREAKGLASS_LANG")):
        if said:
            lang = _short(said)
            if lang not in LANGUAGES:
                raise InputError(f"{where} {said!r}: no such language; choose one of {', '.join(LANGUAGES)}")
            return lang
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if env.get(name):  # the first one set decides, as in POSIX: LC_ALL=C means C even with LANG=ja_JP
            lang = _short(env[name])
            return lang if lang in LANGUAGES else "en"
    return "en"


def _short(tag: str) -> str:
    """ja_JP.UTF-8, ja-JP, JA → ja."""
    return tag.strip().split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()


def catalog_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


class _Catalog(gettext.NullTranslations):
    def __init__(self, entries: dict[str, str]) -> None:
        super().__init__()
        self._entries = entries

    def gettext(self, message: str) -> str:
        return self._entries.get(message) or message  # an empty msgstr is untranslated, as in gettext


@cache
def _catalog(lang: str) -> gettext.NullTranslations:
    return _Catalog(read_po(catalog_path(lang)))


def read_po(path: Path) -> dict[str, str]:
    """msgid → msgstr of a .po file: single and multi-line strings, comments; no plurals or contexts (unused).

    The header entry (empty msgid) is left out. The file ships with the package, but it is still read as
    text that may be wrong: a broken entry names its line instead of raising from deep inside a prompt.
    """
    entries: dict[str, str] = {}
    key: str | None = None
    parts: dict[str, list[str]] = {}
    field = ""

    def flush() -> None:
        if "msgid" in parts:
            msgid = "".join(parts["msgid"])
            if msgid:
                entries[msgid] = "".join(parts.get("msgstr", []))
        parts.clear()

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _sep, rest = line.partition(" ")
        if key in ("msgid", "msgstr"):
            if key == "msgid":
                flush()
            field = key
            line = rest.strip()
        elif not line.startswith('"') or not field:
            raise InputError(f"{path}:{number}:1: expected msgid, msgstr or a quoted string")
        try:
            if not line.startswith('"'):
                raise ValueError(line)
            value = ast.literal_eval(line)
        except (ValueError, SyntaxError):
            value = None
        if not isinstance(value, str):
            raise InputError(f"{path}:{number}:1: expected a double-quoted string")
        parts.setdefault(field, []).append(value)
    flush()
    return entries
