"""Which servers to ask for a domain's delegation: its TLD's own, from the IANA root zone data shipped here.

The delegation a registry publishes is what the TLD's servers answer (RFC 1034 section 4.2.2: the parent
holds the NS set of a zone cut); a recursive resolver answers from cache, which is exactly what a delegation
check after a registrar change must not trust. The table keeps the first servers of each TLD with their IPv4
glue so the check needs no resolver at all; ``overrides`` (the ``tld_servers`` setting) points a TLD
elsewhere, which is how tests put a TLD on a loopback BIND.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

SHIPPED = Path(__file__).parents[1] / "data" / "tld-servers.json"


def suffix_of(domain: str, known: Sequence[str]) -> str | None:
    """The longest ``known`` suffix of ``domain`` ("co.jp" before "jp" when both are known)."""
    labels = domain.strip().rstrip(".").lower().split(".")
    for start in range(1, len(labels)):
        candidate = ".".join(labels[start:])
        if candidate in known:
            return candidate
    return None


def servers_for(domain: str, overrides: Mapping[str, Sequence[str]] | None = None) -> tuple[str, list[str]] | None:
    """(the TLD, its servers as "ip[:port]") for ``domain``; None when neither table knows its TLD."""
    if overrides:
        tld = suffix_of(domain, list(overrides))
        if tld is not None:
            return tld, [str(s) for s in overrides[tld]]
    table: dict[str, dict[str, str]] = json.loads(SHIPPED.read_text(encoding="utf-8"))["servers"]
    tld = suffix_of(domain, list(table))
    return (tld, list(table[tld].values())) if tld is not None else None
