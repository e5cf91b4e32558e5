"""Which HTTP header and URL parts are credentials, so plans and outputs show ``***`` in their place.

The values found here go into ``ActionResult.secrets`` as well, so the engine redacts them wherever else
they surface (a server echoing the token back, an error message quoting the URL).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

T = TypeVar("T")
MASK = "***"
# Named outright because their names do not contain one of the words below.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_WORDS = ("token", "secret", "key", "password", "passwd", "auth", "session", "signature", "credential")
# A credential shorter than this is not added on its own: redacting every "abc" in a log would hide more
# than it protects. The whole header value is always added.
_MIN_PART = 6


def is_secret_name(name: str) -> bool:
    """True for header or query parameter names that carry credentials (Authorization, X-Api-Key, ...)."""
    lowered = name.lower()
    return lowered in _SECRET_HEADERS or any(word in lowered for word in _SECRET_WORDS)


def redact_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """Headers safe to show, and the secret values they held."""
    shown: dict[str, str] = {}
    secrets: list[str] = []
    for name, value in headers.items():
        if is_secret_name(name) and value:
            shown[name] = MASK
            secrets.extend(_secret_parts(value))
        else:
            shown[name] = value
    return shown, tuple(dict.fromkeys(secrets))


def _secret_parts(value: str) -> list[str]:
    # "Bearer abc..." or "Basic dXNlcjpw...": the credential may be logged without its scheme word.
    parts = [value]
    scheme, _, credential = value.partition(" ")
    if credential and scheme.isalpha() and len(credential) >= _MIN_PART:
        parts.append(credential.strip())
    return parts


def redact_url(url: str, *, path_is_secret: bool = False) -> tuple[str, tuple[str, ...]]:
    """The URL safe to show, and the secrets it held: a password, secret query parameters, and (for webhook
    URLs such as Slack's, whose path is the credential) the whole path and query."""
    parts = urlsplit(url)
    secrets: list[str] = []
    netloc = parts.netloc
    if parts.password:
        secrets.append(parts.password)
        netloc = netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
    if path_is_secret and (parts.path.strip("/") or parts.query):
        secrets.append(url)
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        secrets.append(tail)
        return urlunsplit((parts.scheme, netloc, f"/{MASK}", "", "")), tuple(secrets)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    hidden = [value for name, value in pairs if is_secret_name(name) and value]
    query = parts.query
    if hidden:
        secrets.extend(hidden)
        # rebuilt only when something is hidden, so an untouched URL is shown byte for byte
        query = urlencode([(n, MASK if v in hidden else v) for n, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)), tuple(secrets)


def scrub(value: T, secrets: tuple[str, ...]) -> T:
    """The value (plain JSON data) with every secret string replaced by ``***``, longest secrets first."""
    ordered = sorted((s for s in secrets if s), key=len, reverse=True)
    return cast(T, _scrub(value, ordered))


def _scrub(value: object, secrets: list[str]) -> object:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value
