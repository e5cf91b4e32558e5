"""What the HTTP actions send when a redirect leads to another origin: none of the runbook's headers.

httpx strips only ``Authorization`` on a cross-origin redirect (and keeps it for an http → https upgrade),
so an ``X-Api-Key`` followed a 302 to whatever host the answer named. A hijacked, parked or suspended domain
redirects; that is this tool's daily case, so every header the runbook set stays with the origin the runbook
named (scheme, host and port, RFC 6454), and the output says which were withheld. Once withheld they stay
withheld for the rest of the chain, even if it leads back: the hop that leads back was chosen by a stranger.

A redirect whose target URL itself carries one of the runbook's secrets (a server copying ``?api_key=`` into
``Location``) is not followed at all: the request would hand the secret to the other origin in its own line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    import httpx

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RedirectRefused(Exception):
    """A redirect was not followed because following it would send a secret to another origin."""


def origin_of(url: str) -> Origin:
    """(scheme, host, port) with the scheme's default port filled in, as RFC 6454 compares origins."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def show_origin(origin: Origin) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if _DEFAULT_PORTS.get(scheme) == port else f"{scheme}://{host}:{port}"


@dataclass
class RedirectGuard:
    """An httpx request hook: on a request to another origin than ``url``'s, drop the runbook's headers."""

    url: str
    headers: Mapping[str, str]
    secrets: tuple[str, ...] = ()
    withheld: list[str] = field(default_factory=list)
    withheld_from: str | None = None

    def __call__(self, request: httpx.Request) -> None:
        target = origin_of(str(request.url))
        if target == origin_of(self.url):
            return
        shown = show_origin(target)
        url = str(request.url)
        if any(s in url or quote(s, safe="") in url for s in self.secrets if s):
            raise RedirectRefused(
                f"not following the redirect to {shown}: its URL carries a secret of this step; "
                "check where the server sends you before trusting it"
            )
        # Host is rewritten by httpx for the new origin and is needed on the wire.
        names = [name for name in self.headers if name.lower() != "host"]
        for name in names:
            request.headers.pop(name, None)
        if names and self.withheld_from is None:
            self.withheld, self.withheld_from = names, shown

    def fields(self) -> dict[str, Any]:
        """What the output says about it: the header names withheld and the origin they were withheld from."""
        return {"headers_withheld": self.withheld, "headers_withheld_from": self.withheld_from}

    def note(self) -> str:
        """One clause for the step's message, empty when nothing was withheld."""
        if self.withheld_from is None:
            return ""
        return (
            f"; redirected to another origin ({self.withheld_from}): headers not sent there: "
            + ", ".join(self.withheld)
        )
