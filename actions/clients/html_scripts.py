"""Where a page's scripts come from: the origins of its ``<script src>`` tags, for telling a card skimmer
(a Magecart-style script injected into a checkout) from the shop's own and its payment provider's scripts.

The page is hostile data: it is parsed by the standard library's tolerant HTMLParser, never executed, and
nothing it names is fetched.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit


class _ScriptSources(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            src = dict(attrs).get("src")
            if src and src.strip():
                self.sources.append(src.strip())


def origin(url: str) -> str:
    """scheme://host[:port] of an absolute URL, lower case; "" when it has no host."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return ""
    port = f":{parts.port}" if parts.port and parts.port != {"http": 80, "https": 443}.get(parts.scheme) else ""
    return f"{parts.scheme.lower()}://{parts.hostname.lower()}{port}"


def script_origins(html: str, page_url: str) -> list[str]:
    """The distinct origins the page loads scripts from, in the order they appear (relative ones are the
    page's own origin, as the browser resolves them)."""
    parser = _ScriptSources()
    try:
        parser.feed(html)
        parser.close()
    except AssertionError:  # HTMLParser's reaction to some malformed markup: keep what was read
        pass
    found = (origin(urljoin(page_url, src)) for src in parser.sources)
    return list(dict.fromkeys(o for o in found if o))
