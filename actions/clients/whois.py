"""WHOIS over port 43 (RFC 3912) for TLDs that publish no RDAP service: a fallback, never the first choice.

RFC 3912 defines only the transport: one query line, free text back until the server closes. The field names
parsed here are the ones ICANN's 2013 RAA specification made common ("Registry Expiry Date", "Registrar Abuse
Contact Email"); ccTLDs differ, so results from here are marked low-reliability.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from actions.clients.address import parse_address

WHOIS_PORT = 43
SHIPPED_SERVERS = Path(__file__).parents[1] / "data" / "whois-servers.json"
MAX_BYTES = 256_000  # a WHOIS answer is a few kB; stop reading a server that never closes

# Field name (lower case) → output key; the first spelling found wins.
_FIELDS: dict[str, str] = {
    "registrar": "registrar",
    "sponsoring registrar": "registrar",
    "registrar iana id": "iana_id",
    "registrar abuse contact email": "abuse_email",
    "registrar abuse contact phone": "abuse_phone",
    "creation date": "registered",
    "created": "registered",
    "registered on": "registered",
    "registry expiry date": "expires",
    "registrar registration expiration date": "expires",
    "expiry date": "expires",
    "expiration date": "expires",
    "paid-till": "expires",
    "updated date": "last_changed",
    "changed": "last_changed",
    "last modified": "last_changed",
    "dnssec": "dnssec",
}
_LISTS = {
    "domain status": "statuses",
    "status": "statuses",
    "name server": "nameservers",
    "nserver": "nameservers",
}
_NOT_FOUND = re.compile(
    r"^(no match|not found|no data found|no entries found|domain not found|status:\s*free)",
    re.IGNORECASE | re.MULTILINE,
)


def server_for(domain: str, explicit: str | None) -> tuple[str, int] | None:
    """``host`` or ``host:port`` from the argument, else the shipped TLD → server map."""
    if explicit:
        try:
            address = parse_address(explicit, WHOIS_PORT)
        except ValueError:
            return explicit, WHOIS_PORT  # the connection fails and says so, naming what was written
        return address.host, address.port
    servers: dict[str, str] = json.loads(SHIPPED_SERVERS.read_text(encoding="utf-8"))["servers"]
    tld = domain.rstrip(".").rsplit(".", 1)[-1].lower()
    return (servers[tld], WHOIS_PORT) if tld in servers else None


async def query(host: str, port: int, domain: str, timeout: float) -> str:
    """Send one query line, read until the server closes (RFC 3912 section 2)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(domain.encode("idna") + b"\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(MAX_BYTES), timeout)
        chunks = [data]
        while data and sum(map(len, chunks)) < MAX_BYTES:
            data = await asyncio.wait_for(reader.read(MAX_BYTES), timeout)
            chunks.append(data)
    finally:
        writer.close()
    # RFC 3912 names no charset; UTF-8 with replacement is what registries mostly send today.
    return b"".join(chunks).decode("utf-8", "replace")


def parse(text: str) -> dict[str, Any]:
    """The common ``Key: value`` fields; ``found`` False when the server says there is no such domain."""
    record: dict[str, Any] = {"found": not _NOT_FOUND.search(text), "statuses": [], "nameservers": []}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        key, value = key.strip().lower(), value.strip()
        if not sep or not value or line.lstrip().startswith(("%", "#", ">>>")):
            continue
        if key in _LISTS:
            item = value.split()[0] if key.endswith("status") else value.split()[0].rstrip(".").lower()
            if item not in record[_LISTS[key]]:
                record[_LISTS[key]].append(item)
        elif key in _FIELDS and _FIELDS[key] not in record:
            record[_FIELDS[key]] = value
    return record


def to_record(domain: str, parsed: dict[str, Any]) -> dict[str, Any]:
    """The same shape as ``rdap.parse_domain`` returns, so one summary serves both sources."""
    dnssec = str(parsed.get("dnssec", "")).lower()
    return {
        "name": domain,
        "statuses": parsed["statuses"],
        "nameservers": parsed["nameservers"],
        "registrar": {
            "name": parsed.get("registrar"),
            "iana_id": parsed.get("iana_id"),
            "abuse_email": parsed.get("abuse_email"),
            "abuse_phone": parsed.get("abuse_phone"),
        },
        "registered": parsed.get("registered"),
        "expires": parsed.get("expires"),
        "last_changed": parsed.get("last_changed"),
        "delegation_signed": dnssec.startswith("signed") if dnssec else None,
    }
