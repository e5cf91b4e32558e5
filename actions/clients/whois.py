"""WHOIS over port 43 (RFC 3912) for TLDs that publish no RDAP service: a fallback, never the first choice.

RFC 3912 defines only the transport: one query line, free text back until the server closes. The field names
parsed here are the ones ICANN's 2013 RAA specification made common ("Registry Expiry Date", "Registrar Abuse
Contact Email"); ccTLDs differ, so results from here are marked low-reliability.

JPRS (.jp) has its own layout: ``[Field]  value`` lines, optionally lettered (``a. [ドメイン名]`` for .co.jp),
in Japanese with English beside it by default, or English only when the query ends in ``/e``. A plain query is
answered in ISO-2022-JP, which a UTF-8 decode would turn into escape-sequence garbage.
"""

from __future__ import annotations

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
    import asyncio  # here, not at the top: validating a runbook imports this module

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
    return decode(b"".join(chunks))


def decode(raw: bytes) -> str:
    """RFC 3912 names no charset: ISO-2022-JP when the bytes shift into it (JPRS), else UTF-8 with replacement."""
    if b"\x1b$" in raw or b"\x1b(" in raw:
        try:
            return raw.decode("iso2022_jp_2")
        except UnicodeDecodeError:
            pass
    return raw.decode("utf-8", "replace")


# JPRS field name (Japanese or English, lower case) → output key; the Japanese comes first in a plain answer.
_JPRS_FIELDS: dict[str, str] = {
    "ドメイン名": "name",
    "domain name": "name",
    "登録者名": "registrant",
    "registrant": "registrant",
    "組織名": "registrant",
    "organization": "registrant",
    "有効期限": "expires",
    "expires on": "expires",
    "登録年月日": "registered",
    "created on": "registered",
    "registered date": "registered",
    "最終更新": "last_changed",
    "last updated": "last_changed",
    "last update": "last_changed",
    "状態": "state",
    "status": "state",
    "ロック状態": "lock",
    "lock status": "lock",
    "署名鍵": "signing_key",
    "signing key": "signing_key",
}
_JPRS_LISTS = {"name server": "nameservers", "ネームサーバ": "nameservers"}
_JPRS_LINE = re.compile(r"^(?:[a-z]\.\s*)?\[(?P<key>[^\]\[]{1,40})\][ \t]*(?P<value>.*)$")
_JPRS_DATED = re.compile(r"^(?P<state>[^()]+?)\s*\((?P<date>\d{4}/\d{2}/\d{2})\)")
_JPRS_CONTACT = re.compile(r"^\s*(Contact Information|Host Information)\b", re.MULTILINE)


def is_jprs(text: str) -> bool:
    """Whether the answer is in JPRS's ``[Field] value`` layout."""
    return any(
        (m := _JPRS_LINE.match(line.strip())) and m["key"].strip().lower() in ("domain name", "ドメイン名")
        for line in text.splitlines()
    )


def parse(text: str) -> dict[str, Any]:
    """The common ``Key: value`` fields; ``found`` False when the server says there is no such domain."""
    if is_jprs(text):
        return parse_jprs(text)
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


def parse_jprs(text: str) -> dict[str, Any]:
    """A JPRS domain answer: the domain block only (the contact block after it has its own [Name], [Email])."""
    block = _JPRS_CONTACT.split(text, maxsplit=1)[0]
    record: dict[str, Any] = {"found": True, "statuses": [], "nameservers": [], "scheme": "jprs"}
    registrants: list[str] = []
    for line in block.splitlines():
        match = _JPRS_LINE.match(line.strip())
        if not match:
            continue
        key, value = match["key"].strip().lower(), match["value"].strip()
        if key in _JPRS_LISTS:
            if value and value.split()[0].rstrip(".").lower() not in record["nameservers"]:
                record["nameservers"].append(value.split()[0].rstrip(".").lower())
        elif _JPRS_FIELDS.get(key) == "registrant":
            if value and value not in registrants:
                registrants.append(value)
        elif key in _JPRS_FIELDS:
            # An empty [Signing Key] is information (the delegation is unsigned); other empty fields are not.
            if value or _JPRS_FIELDS[key] == "signing_key":
                record.setdefault(_JPRS_FIELDS[key], value)
    state = record.pop("state", "")
    dated = _JPRS_DATED.match(state)
    if dated:  # .co.jp and the like: "Connected (2025/03/31)", the date in brackets is the expiry
        state = dated["state"]
        record.setdefault("expires", dated["date"])
    record["statuses"] = [state.strip()] if state.strip() else []
    if record.get("lock"):
        record["statuses"].append(record.pop("lock"))
    for field in ("expires", "registered", "last_changed"):
        if field in record:
            record[field] = _jprs_date(record[field])
    if registrants:
        record["registrant"] = " / ".join(registrants)
    if "signing_key" in record:
        record["dnssec"] = "signed" if record.pop("signing_key") else "unsigned"
    return record


_JPRS_DATE = re.compile(r"^(\d{4})/(\d{2})/(\d{2})(?:\s+(\d{2}:\d{2}(?::\d{2})?))?")


def _jprs_date(value: str) -> str:
    """JPRS writes ``2025/02/28`` or ``2024/03/01 01:05:05 (JST)``: Japan time, said here as +09:00."""
    match = _JPRS_DATE.match(value)
    if not match:
        return value  # kept as written: summarize then reports the date as unreadable, not as absent
    year, month, day, clock = match.groups()
    return f"{year}-{month}-{day}T{clock or '00:00:00'}+09:00"


def to_record(domain: str, parsed: dict[str, Any]) -> dict[str, Any]:
    """The same shape as ``rdap.parse_domain`` returns, so one summary serves both sources."""
    dnssec = str(parsed.get("dnssec", "")).lower()
    return {
        "scheme": parsed.get("scheme", "epp"),
        "registrant": parsed.get("registrant"),
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
