"""RDAP for domains: find the server (RFC 9224), fetch politely (RFC 7480), read the answer (RFC 9083).

httpx is imported inside the functions that talk to the network, so importing this module (which listing
actions does) stays cheap. Nothing here raises on a misbehaving server: fetches return a ``Fetched`` whose
``status`` says what happened (``ok``, ``not_found``, ``rate_limited``, ``server_error``, ``timeout``,
``malformed``, ``unreachable``).
"""

from __future__ import annotations

import email.utils
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from engine.errors import ActionError

if TYPE_CHECKING:
    import asyncio

    import httpx

IANA_DNS_BOOTSTRAP = "https://data.iana.org/rdap/dns.json"
SHIPPED_BOOTSTRAP = Path(__file__).parents[1] / "data" / "rdap-dns-bootstrap.json"
CACHE_NAME = "rdap-dns-bootstrap.json"
# RFC 7480 section 4.2: ask for RDAP, accept plain JSON from servers that label it so.
ACCEPT = "application/rdap+json, application/json;q=0.9"


class BootstrapError(ActionError):
    """A bootstrap file that is not a usable RFC 9224 registry."""


@dataclass(frozen=True)
class Bootstrap:
    """The DNS part of the IANA RDAP bootstrap registry: TLD label → RDAP base URLs."""

    services: dict[str, tuple[str, ...]]
    publication: str
    origin: str

    def base_urls(self, domain: str) -> tuple[str, ...]:
        """Base URLs for ``domain``: the longest matching label suffix wins (RFC 9224 section 4)."""
        labels = domain.rstrip(".").lower().split(".")
        for start in range(len(labels)):
            urls = self.services.get(".".join(labels[start:]))
            if urls:
                # RFC 9224 section 4: prefer https when a service lists several schemes.
                return tuple(sorted(urls, key=lambda u: not u.startswith("https:")))
        return ()


def parse_bootstrap(text: str, origin: str) -> Bootstrap:
    """Validate and index a bootstrap file; entries that are not [[labels], [urls]] are skipped."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BootstrapError(f"{origin} is not JSON ({exc})") from exc
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, list):
        raise BootstrapError(f"{origin} has no 'services' array (RFC 9224 section 3)")
    index: dict[str, tuple[str, ...]] = {}
    for entry in services:
        if not (isinstance(entry, list) and len(entry) >= 2):
            continue
        labels, urls = entry[0], entry[1]
        good = tuple(u for u in urls if isinstance(u, str) and u.startswith(("https://", "http://")))
        if isinstance(labels, list) and good:
            index.update({str(label).lower(): good for label in labels})
    if not index:
        raise BootstrapError(f"{origin} lists no usable service")
    return Bootstrap(index, str(data.get("publication", "")), origin)


def cache_dir(env: dict[str, str] | None = None) -> Path:
    """$BREAKGLASS_HOME/cache, else $XDG_CACHE_HOME/breakglass, else ~/.cache/breakglass."""
    env = dict(os.environ) if env is None else env
    if env.get("BREAKGLASS_HOME"):
        return Path(env["BREAKGLASS_HOME"]) / "cache"
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "breakglass"


def load_bootstrap() -> Bootstrap:
    """The refreshed copy from the cache when it is valid, else the snapshot shipped with breakglass."""
    cached = cache_dir() / CACHE_NAME
    if cached.is_file():
        try:
            return parse_bootstrap(cached.read_text(encoding="utf-8"), str(cached))
        except (OSError, BootstrapError):
            pass  # a corrupt cache must not stop an incident: the shipped snapshot still works
    return parse_bootstrap(SHIPPED_BOOTSTRAP.read_text(encoding="utf-8"), "shipped snapshot")


async def refresh_bootstrap(client: httpx.AsyncClient, url: str, policy: FetchPolicy) -> Bootstrap:
    """Fetch the bootstrap file, validate it, then replace the cached copy atomically."""
    import httpx

    try:
        response = await client.get(url, timeout=policy.timeout)
    except httpx.HTTPError as exc:
        raise BootstrapError(f"cannot fetch {url}: {exc.__class__.__name__} {exc}") from exc
    if response.status_code != 200:
        raise BootstrapError(f"{url} answered HTTP {response.status_code}")
    fresh = parse_bootstrap(response.text, url)
    target = cache_dir() / CACHE_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(response.text, encoding="utf-8")
    tmp.replace(target)
    return fresh


def domain_url(base: str, domain: str) -> str:
    """RFC 9082 section 3.1.3: <base>/domain/<name>, the base ending with one slash."""
    return f"{base.rstrip('/')}/domain/{quote(domain.rstrip('.'), safe='')}"


@dataclass(frozen=True)
class FetchPolicy:
    """How hard to try: per-request timeout, retries with backoff, and the longest Retry-After we honour."""

    timeout: float = 10.0
    retries: int = 2
    backoff: float = 0.5
    max_retry_after: float = 30.0
    max_bytes: int = 2_000_000  # RDAP domain answers are a few kB; refuse a runaway body


@dataclass
class ServerGate:
    """Per-RDAP-server politeness: at most ``per_server`` requests in flight, a minimum gap between
    request starts, and a pause shared by every request to a server that answered 429."""

    per_server: int = 4
    interval: float = 0.0
    _slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _not_before: dict[str, float] = field(default_factory=dict)

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        import asyncio  # here, not at the top: validating a runbook imports this module

        semaphore = self._slots.setdefault(host, asyncio.Semaphore(self.per_server))
        async with semaphore:
            while (wait := self._not_before.get(host, 0.0) - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            self._not_before[host] = max(self._not_before.get(host, 0.0), time.monotonic() + self.interval)
            yield

    def pause(self, host: str, seconds: float) -> None:
        """Hold back every request to ``host`` for ``seconds`` (a 429 speaks for the whole server)."""
        self._not_before[host] = max(self._not_before.get(host, 0.0), time.monotonic() + seconds)


@dataclass(frozen=True)
class Fetched:
    """The outcome of one RDAP query, after retries."""

    status: str
    url: str
    body: dict[str, Any] | None = None
    http_status: int | None = None
    message: str = ""
    attempts: int = 1
    retry_after: float | None = None  # seconds the server asked for with 429


def retry_after(value: str | None, default: float) -> float:
    """Seconds from a Retry-After header: delta-seconds or an HTTP-date (RFC 9110 section 10.2.3)."""
    if not value:
        return default
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


async def fetch_rdap(client: httpx.AsyncClient, url: str, policy: FetchPolicy, gate: ServerGate) -> Fetched:
    """GET an RDAP object, retrying 5xx, timeouts and 429 (after its Retry-After, up to the cap)."""
    import asyncio

    host = urlsplit(url).netloc
    outcome = Fetched("unreachable", url, message="no attempt made")
    for attempt in range(1, policy.retries + 2):
        async with gate.slot(host):
            outcome = await _fetch_once(client, url, policy, attempt)
        if outcome.status not in ("server_error", "timeout", "rate_limited", "unreachable"):
            return outcome
        if attempt > policy.retries:
            break
        delay = policy.backoff * 2 ** (attempt - 1)
        if outcome.status == "rate_limited":
            delay = outcome.retry_after or delay
            if delay > policy.max_retry_after:
                break  # the server wants a longer pause than the runbook can afford: report it
            gate.pause(host, delay)
        await asyncio.sleep(delay)
    return outcome


async def _fetch_once(client: httpx.AsyncClient, url: str, policy: FetchPolicy, attempt: int) -> Fetched:
    import httpx

    try:
        async with client.stream("GET", url, headers={"Accept": ACCEPT}, timeout=policy.timeout) as response:
            if response.status_code == 429:
                wait = retry_after(response.headers.get("retry-after"), policy.backoff * 2**attempt)
                return Fetched(
                    "rate_limited", url, None, 429, f"HTTP 429, Retry-After {wait:g}s", attempt, wait
                )
            if response.status_code >= 500:
                return Fetched("server_error", url, None, response.status_code, "", attempt)
            raw = await _read_capped(response, policy.max_bytes)
            status_code = response.status_code
    except httpx.TimeoutException as exc:
        return Fetched(
            "timeout",
            url,
            message=f"no answer within {policy.timeout}s ({exc.__class__.__name__})",
            attempts=attempt,
        )
    except httpx.HTTPError as exc:
        return Fetched("unreachable", url, message=f"{exc.__class__.__name__}: {exc}", attempts=attempt)
    except ValueError as exc:
        return Fetched("malformed", url, message=str(exc), attempts=attempt)
    return _interpret(url, status_code, raw, attempt)


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ValueError(f"answer larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _interpret(url: str, status_code: int, raw: bytes, attempt: int) -> Fetched:
    """Turn a complete HTTP answer into a Fetched; RFC 9083 section 6 error objects carry errorCode."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    error_code = body.get("errorCode") if isinstance(body, dict) else None
    if status_code == 404 or error_code == 404:
        return Fetched("not_found", url, None, 404, "the registry has no such domain", attempt)
    if status_code != 200:
        detail = _error_text(body) or raw[:120].decode("utf-8", "replace")
        return Fetched("http_error", url, None, status_code, detail, attempt)
    if error_code is not None:
        # RFC 9083 section 6: an error object goes with the matching HTTP status, never with 200.
        detail = f"an error object (errorCode {error_code}: {_error_text(body)}) sent with HTTP 200"
        return Fetched("malformed", url, None, status_code, detail, attempt)
    if not isinstance(body, dict):
        preview = raw[:60].decode("utf-8", "replace").replace("\n", " ")
        return Fetched("malformed", url, None, status_code, f"not a JSON object: {preview!r}", attempt)
    if body.get("objectClassName") != "domain":
        found = body.get("objectClassName")
        return Fetched(
            "malformed", url, None, status_code, f"objectClassName is {found!r}, not 'domain'", attempt
        )
    return Fetched("ok", url, body, status_code, "", attempt)


def _error_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    title = str(body.get("title") or "")
    description = body.get("description")
    lines = description if isinstance(description, list) else [description] if description else []
    return " ".join([title, *map(str, lines)]).strip()


# --- reading a domain object (RFC 9083 section 5.3); registries and registrars bend the shape, so every
# member is checked for its type before use and anything odd is skipped rather than trusted.

_EVENTS = {"registration": "registered", "expiration": "expires", "last changed": "last_changed"}


def parse_domain(body: dict[str, Any]) -> dict[str, Any]:
    """The parts of a domain object an incident needs, as plain data."""
    statuses = body.get("status")
    secure = body.get("secureDNS")
    signed = secure.get("delegationSigned") if isinstance(secure, dict) else None
    return {
        "name": _text(body.get("ldhName") or body.get("unicodeName")).rstrip(".").lower(),
        "statuses": [s for s in statuses if isinstance(s, str)] if isinstance(statuses, list) else [],
        "nameservers": _nameservers(body.get("nameservers")),
        "registrar": registrar(_dicts(body.get("entities"))),
        **_events(body.get("events")),
        "delegation_signed": signed if isinstance(signed, bool) else None,
        "referral": referral(body),
    }


def referral(body: dict[str, Any]) -> str | None:
    """The registrar's RDAP URL: a ``related`` link of RDAP type (RFC 9083 section 4.2, ICANN profile)."""
    own = {_text(link.get("href")) for link in _dicts(body.get("links")) if link.get("rel") == "self"}
    for link in _dicts(body.get("links")):
        href, kind = _text(link.get("href")), _text(link.get("type")).lower()
        # A related link typed text/html is the registrar's web page, not its RDAP service.
        if link.get("rel") == "related" and href.startswith(("https://", "http://")) and href not in own:
            if kind in ("", "application/rdap+json", "application/json"):
                return href
    return None


def registrar(entities: list[dict[str, Any]]) -> dict[str, Any]:
    """Registrar name, IANA id and abuse contact: nested under the registrar (ICANN RDAP profile 2.4.5) or,
    from older servers, a top-level entity with the ``abuse`` role."""
    found = next((e for e in entities if "registrar" in _roles(e)), None)
    card = vcard(found.get("vcardArray")) if found else {}
    abuse = next((e for e in _dicts(found.get("entities")) if "abuse" in _roles(e)), None) if found else None
    abuse = abuse or next((e for e in entities if "abuse" in _roles(e)), None)
    abuse_card = vcard(abuse.get("vcardArray")) if abuse else {}
    return {
        "name": card.get("fn") or card.get("org") or None,
        "iana_id": _iana_id(found) if found else None,
        "abuse_email": abuse_card.get("email") or None,
        "abuse_phone": abuse_card.get("tel") or None,
    }


def vcard(array: Any) -> dict[str, str]:
    """First fn, org, email and voice tel of a jCard (RFC 7095); tolerates flattened forms."""
    props: list[Any] = []
    if isinstance(array, list) and len(array) == 2 and array[0] == "vcard" and isinstance(array[1], list):
        props = array[1]
    elif isinstance(array, list):
        props = [p for p in array if isinstance(p, list)]
    card: dict[str, str] = {}
    for prop in props:
        if not (isinstance(prop, list) and len(prop) >= 4 and isinstance(prop[0], str)):
            continue
        name, params, value = prop[0].lower(), prop[1], prop[3]
        if name == "tel" and _is_fax(params):
            continue
        if name in ("fn", "org", "email", "tel") and name not in card:
            text = _text(value[0] if isinstance(value, list) and value else value).strip()
            if name == "tel":
                text = text.removeprefix("tel:")  # RFC 3966 URI form, as the ICANN profile asks
            if text:
                card[name] = text
    return card


def _is_fax(params: Any) -> bool:
    if not isinstance(params, dict):
        return False
    found: Any = next((v for k, v in params.items() if str(k).lower() == "type"), [])
    kinds: list[Any] = found if isinstance(found, list) else [found]
    return any(str(k).lower() == "fax" for k in kinds) and not any(str(k).lower() == "voice" for k in kinds)


def _iana_id(entity: dict[str, Any]) -> str | None:
    for public in _dicts(entity.get("publicIds")):
        if _text(public.get("type")).lower() == "iana registrar id" and _text(public.get("identifier")):
            return _text(public.get("identifier"))
    handle = _text(entity.get("handle"))
    return handle if handle.isdigit() else None  # Verisign uses the IANA id as the registrar's handle


def _events(events: Any) -> dict[str, str | None]:
    found: dict[str, str | None] = dict.fromkeys(_EVENTS.values())
    for event in _dicts(events):
        key = _EVENTS.get(_text(event.get("eventAction")).lower())
        if key and found[key] is None and _text(event.get("eventDate")):
            found[key] = _text(event.get("eventDate"))
    return found


def _nameservers(value: Any) -> list[str]:
    names = (_text(ns.get("ldhName") or ns.get("unicodeName")).rstrip(".").lower() for ns in _dicts(value))
    return list(dict.fromkeys(n for n in names if n))


def _roles(entity: dict[str, Any]) -> set[str]:
    roles = entity.get("roles")
    # whodap's samples show capitalised roles and comma-joined ones ("registrant,administrative").
    items = roles if isinstance(roles, list) else [roles] if isinstance(roles, str) else []
    return {part.strip().lower() for r in items if isinstance(r, str) for part in r.split(",")}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
