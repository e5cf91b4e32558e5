"""HTTP actions: probe a URL (status, latency, redirects, body match, TLS certificate) and call an API.

``resolve`` pins host names to addresses like ``curl --resolve`` while SNI and certificate checks keep the
real name, so the standby can be checked under the production hostname before DNS is switched; how that
works, and how the certificate is read, is in ``http_tls``. A redirect to another origin gets none of the
headers the runbook set (``http_redirect``).

httpx is imported inside functions. Response bodies are data: only a bounded excerpt is kept and it is never
rendered as a template.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from actions.base import Action, ActionContext, ActionResult, Effect, Output, Params, Plan
from actions.clients.http_redirect import RedirectGuard, RedirectRefused
from actions.clients.http_tls import (
    parse_resolve,
    peek_certificate,
    pinned_address,
    shared_transport,
    tls_of,
)
from actions.clients.redact_headers import redact_headers, redact_url, scrub

if TYPE_CHECKING:
    import httpx

EXCERPT_CHARS = 2048
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1


class HttpTarget(Params):
    """Where to send a request and how to connect: shared by http.probe and http.request."""

    url: str = Field(description="http:// or https:// URL.")
    headers: dict[str, str] = Field(
        default={},
        description="Request headers; credentials (Authorization, *token*, *key*) are redacted, and none of "
        "these headers is sent to another origin a redirect leads to.",
    )
    resolve: dict[str, str] | list[str] | None = Field(
        None,
        description='Pin host names to IPs like curl --resolve: {"www.example.com": "192.0.2.7"} or '
        '["www.example.com:443:192.0.2.7"]. Host header, SNI and certificate checks keep the name.',
    )
    verify_tls: bool = Field(True, description="Verify the server certificate and host name.")
    ca_file: str | None = Field(
        None, description="PEM file of CA certificates to trust instead of the system ones."
    )
    timeout: float = Field(10.0, gt=0, description="Seconds for connect, and for each read.")
    max_body: int = Field(
        1 << 20, ge=0, description="Bytes of the response body read; the rest is left unread."
    )
    max_redirects: int = Field(10, ge=0, description="Redirects followed before giving up.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        # RFC 3986 §2 has no control characters in a URL; one rendered in from an input or an earlier step's
        # output must fail this step, not crash the run inside httpx (InvalidURL is no HTTPError).
        control = _CONTROL.search(url)
        if control is not None:
            bad = control.start()
            raise ValueError(f"the URL holds the control character {url[bad]!r} at position {bad + 1}; "
                             "percent-encode it (the urlencode filter) or fix what produced it")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return url

    @field_validator("resolve")
    @classmethod
    def _valid_pins(cls, value: dict[str, str] | list[str] | None) -> dict[str, str] | list[str] | None:
        parse_resolve(value)
        return value


def build_client(p: HttpTarget, follow_redirects: bool, timeout: float, guard: RedirectGuard) -> httpx.Client:
    """An httpx client honouring the TLS settings and pins, with ``guard`` seeing every request it sends;
    proxies from the environment are not used, because a proxy would dial the name itself and silently
    defeat ``resolve``."""
    import httpx

    return httpx.Client(
        transport=shared_transport(p.verify_tls, p.ca_file, parse_resolve(p.resolve)),
        timeout=timeout,
        follow_redirects=follow_redirects,
        max_redirects=p.max_redirects,
        trust_env=False,
        event_hooks={"request": [guard]},
    )


def redirect_guard(p: HttpTarget) -> RedirectGuard:
    return RedirectGuard(p.url, p.headers, _secrets(p))


@dataclass
class Exchange:
    """A response with its bounded body and the facts gathered while the connection was open."""

    response: httpx.Response
    body: bytes
    body_truncated: bool
    latency_ms: int
    tls: dict[str, Any] | None


def exchange(client: httpx.Client, method: str, p: HttpTarget, **kwargs: Any) -> Exchange:
    """Send the request; read the TLS certificate before the body, since the stream closes after it."""
    started = time.monotonic()
    with client.stream(method, p.url, headers=p.headers, **kwargs) as response:
        latency_ms = round((time.monotonic() - started) * 1000)
        tls = tls_of(response)
        body = bytearray()
        truncated = False
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > p.max_body:
                truncated = True
                break
    return Exchange(response, bytes(body[: p.max_body]), truncated, latency_ms, tls)


def failure(exc: Exception, p: HttpTarget, method: str, guard: RedirectGuard) -> ActionResult:
    """An httpx error as a result: a kind (tls, timeout, connect, redirects, redirect, protocol) and advice."""
    import httpx

    shown_url, secrets = redact_url(p.url)
    kind, reason = _classify(exc)
    output: dict[str, Any] = {"url": shown_url, "method": method, "error": kind, "status": None, **guard.fields()}
    message = f"{method} {shown_url}: {reason}{guard.note()}"
    if kind == "tls":
        cert = peek_certificate(p.url, p.resolve, p.timeout)
        output["tls"] = cert
        if cert is not None:
            message += (
                f" (certificate {cert['subject']}, issuer {cert['issuer']}, not after {cert['not_after']})"
            )
    elif isinstance(exc, httpx.ConnectError) and p.resolve is None and "Name or service" in reason:
        message += "; to reach a host DNS does not point at yet, pin it with resolve: {host: ip}"
    _, header_secrets = redact_headers(p.headers)
    all_secrets = secrets + header_secrets
    return ActionResult(output=output, ok=False, message=scrub(message, all_secrets), secrets=all_secrets)


def _classify(exc: Exception) -> tuple[str, str]:
    import ssl

    import httpx

    if isinstance(exc, RedirectRefused):
        return "redirect", str(exc)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "tls", f"TLS certificate verification failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return "tls", f"TLS handshake failed: {cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.TooManyRedirects):
        return "redirects", str(exc)
    if isinstance(exc, httpx.ConnectError):
        return "connect", f"cannot connect: {exc}"
    return "protocol", f"{type(exc).__name__}: {exc}"


def status_ok(status: int, expect: int | list[int] | None, default: range) -> bool:
    if expect is None:
        return status in default
    return status in (expect if isinstance(expect, list) else [expect])


def response_fields(x: Exchange, guard: RedirectGuard) -> dict[str, Any]:
    """What both actions report about a response, with secret-named response headers (Set-Cookie) hidden."""
    r = x.response
    headers, _ = redact_headers(dict(r.headers))
    return {
        **guard.fields(),
        "status": r.status_code,
        "latency_ms": x.latency_ms,
        "final_url": redact_url(str(r.url))[0],
        "redirects": [
            {"status": h.status_code, "url": redact_url(str(h.url))[0], "location": h.headers.get("location")}
            for h in r.history
        ],
        "http_version": r.http_version,
        "headers": headers,
        "body_excerpt": x.body[: EXCERPT_CHARS * 4].decode(r.encoding or "utf-8", "replace")[:EXCERPT_CHARS],
        "body_bytes_read": len(x.body),
        "body_truncated": x.body_truncated,
        "tls": x.tls,
    }


class HttpProbeParams(HttpTarget):
    method: Literal["GET", "HEAD"] = Field("GET", description="GET or HEAD.")
    follow_redirects: bool = Field(
        True, description="Follow redirects; final_url and redirects show the path."
    )
    expect_status: int | list[int] | None = Field(
        None, description="Status code(s) of the final response that count as up (default: below 400)."
    )
    body_contains: str | None = Field(None, description="Text the body must contain.")
    body_regex: str | None = Field(None, description="Regular expression the body must match (re.search).")
    min_cert_days: int | None = Field(
        None, description="Fail when the certificate expires in fewer days than this."
    )
    allowed_script_origins: list[str] | None = Field(
        None,
        description="Origins (https://host[:port]) the page may load <script src> from; any other fails the "
        "probe (a skimmer injected into a checkout). The page's own origin is always allowed.",
    )

    @field_validator("body_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    @model_validator(mode="after")
    def _body_needs_get(self) -> HttpProbeParams:
        if self.method == "HEAD" and (self.body_contains or self.body_regex):
            raise ValueError("body_contains/body_regex need method GET: a HEAD response has no body")
        return self


def _secrets(params: HttpTarget) -> tuple[str, ...]:
    """Secret values in a request's headers and URL, known before plan or gate (for the engine's redactor)."""
    return redact_headers(params.headers)[1] + redact_url(params.url)[1]


class HttpResponseOutput(Output):
    """What every HTTP action gives: the response, or the error that stopped it."""

    url: str = Field(description="The URL asked (secrets in it masked).")
    method: str = Field(description="The HTTP method.")
    status: int | None = Field(description="The final response's status code; null when none came.")
    latency_ms: float = Field(description="Time to the response headers.")
    final_url: str = Field(description="The URL after redirects.")
    redirects: list[dict[str, Any]] = Field(description="Each redirect followed: status, url, location.")
    http_version: str = Field(description="HTTP/1.1 or HTTP/2.")
    headers: dict[str, str] = Field(description="Response headers (secrets masked).")
    body_excerpt: str = Field(description="The start of the body, as text.")
    body_bytes_read: int = Field(description="Bytes of the body read.")
    body_truncated: bool = Field(description="True when the body was longer than max_body.")
    tls: dict[str, Any] | None = Field(description="TLS version, cipher and certificate, for https.")
    error: str = Field("", description="tls, timeout, connect, redirects, redirect or protocol, when it failed.")


class HttpProbeOutput(HttpResponseOutput):
    pinned_to: str | None = Field(description="The address the host was pinned to (resolve:), if any.")
    body_match: bool | None = Field(description="Whether the body matched expect_body, when given.")
    body_sha256: str = Field("", description="SHA-256 of the body read (evidence: the same page, the same hash).")
    script_origins: list[str] = Field([], description="Origins the page loads <script src> from (HTML only).")
    unexpected_script_origins: list[str] = Field(
        [], description="Script origins outside allowed_script_origins and the page's own, when that is given."
    )


class HttpProbe(Action[HttpProbeParams]):
    """Check that a URL answers as expected; read-only, so it also runs in dry-runs."""

    name = "http.probe"
    summary = "GET/HEAD a URL: status, latency, redirects, body match, TLS certificate (resolve pins the IP)"
    effect = Effect.READ
    Output = HttpProbeOutput

    def secrets_for(self, params: HttpProbeParams) -> tuple[str, ...]:
        return _secrets(params)

    def run(self, params: HttpProbeParams, ctx: ActionContext) -> ActionResult:
        import httpx

        secrets = _secrets(params)
        guard = redirect_guard(params)
        try:
            with build_client(params, params.follow_redirects, ctx.remaining(params.timeout), guard) as client:
                x = exchange(client, params.method, params)
        except (httpx.HTTPError, RedirectRefused) as exc:
            return failure(exc, params, params.method, guard)
        output = {"url": redact_url(params.url)[0], "method": params.method, **response_fields(x, guard)}
        output["pinned_to"] = pinned_address(params.url, params.resolve)
        output["body_match"] = _body_match(params, x)
        output.update(_scripts(params, x))
        ok, message = _judge_probe(params, output)
        message += guard.note()
        return ActionResult(
            output=scrub(output, secrets), ok=ok, message=scrub(message, secrets), secrets=secrets
        )


def _body_match(p: HttpProbeParams, x: Exchange) -> bool | None:
    if p.body_contains is None and p.body_regex is None:
        return None
    text = x.body.decode(x.response.encoding or "utf-8", "replace")
    contains = p.body_contains is None or p.body_contains in text
    regex = p.body_regex is None or re.search(p.body_regex, text) is not None
    return contains and regex


def _scripts(p: HttpProbeParams, x: Exchange) -> dict[str, Any]:
    """The body's hash and, for HTML, where its scripts come from: a page is evidence before it is cleaned."""
    import hashlib

    from actions.clients.html_scripts import origin, script_origins

    found: list[str] = []
    if "html" in x.response.headers.get("content-type", "html").lower():
        found = script_origins(x.body.decode(x.response.encoding or "utf-8", "replace"), str(x.response.url))
    allowed = {origin(str(x.response.url))} | {origin(o) or o.lower() for o in p.allowed_script_origins or ()}
    unexpected = [o for o in found if o not in allowed] if p.allowed_script_origins is not None else []
    return {"body_sha256": hashlib.sha256(x.body).hexdigest(), "script_origins": found,
            "unexpected_script_origins": unexpected}


def _judge_probe(p: HttpProbeParams, out: dict[str, Any]) -> tuple[bool, str]:
    head = f"{p.method} {out['url']} → {out['status']} in {out['latency_ms']} ms"
    problems = []
    if not status_ok(out["status"], p.expect_status, range(100, 400)):
        problems.append(f"status {out['status']} not in {p.expect_status or 'below 400'}")
    if out["body_match"] is False:
        wanted = " and ".join(repr(w) for w in (p.body_contains, p.body_regex) if w is not None)
        problems.append(f"body does not match {wanted}")
    if out["unexpected_script_origins"]:
        problems.append("scripts from unexpected origins: " + ", ".join(out["unexpected_script_origins"]))
    days = (out["tls"] or {}).get("days_to_expiry")
    if p.min_cert_days is not None and days is not None and days < p.min_cert_days:
        problems.append(f"certificate expires in {days} days (minimum {p.min_cert_days})")
    tail = f"; certificate expires in {days} days" if days is not None else ""
    if problems:
        return False, f"{head}: " + "; ".join(problems)
    return True, head + tail


class HttpRequestParams(HttpTarget):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field("POST", description="HTTP method.")
    json_body: Any = Field(None, alias="json", description="JSON request body.")
    follow_redirects: bool = Field(
        False, description="Follow redirects (off: an API call should not wander)."
    )
    expect_status: int | list[int] | None = Field(
        None, description="Status code(s) that count as success (default: any 2xx)."
    )


class HttpRequestOutput(HttpResponseOutput):
    json_: Any = Field(alias="json", description="The body parsed as JSON, when it is JSON (open-ended below "
                       "this field).")


class HttpRequest(Action[HttpRequestParams]):
    """Call an HTTP API (provider, status page, ticket system); a mutating action, gated and planned."""

    name = "http.request"
    summary = "Send an HTTP request (method, headers, JSON body); credentials in headers are redacted"
    effect = Effect.WRITE
    Output = HttpRequestOutput

    def secrets_for(self, params: HttpRequestParams) -> tuple[str, ...]:
        return _secrets(params)

    def plan(self, params: HttpRequestParams, ctx: ActionContext) -> Plan:
        url, _ = redact_url(params.url)
        headers, _ = redact_headers(params.headers)
        change = {"method": params.method, "url": url, "headers": headers, "json": params.json_body}
        return Plan(summary=f"{params.method} {url}", changes=[change])

    def apply(self, params: HttpRequestParams, ctx: ActionContext, plan: Plan) -> ActionResult:
        import httpx

        secrets = _secrets(params)
        body = {} if params.json_body is None else {"json": params.json_body}
        guard = redirect_guard(params)
        try:
            with build_client(params, params.follow_redirects, ctx.remaining(params.timeout), guard) as client:
                x = exchange(client, params.method, params, **body)
        except (httpx.HTTPError, RedirectRefused) as exc:
            return failure(exc, params, params.method, guard)
        output = {"url": plan.changes[0]["url"], "method": params.method, **response_fields(x, guard)}
        output["json"] = _json_of(x)
        ok = status_ok(x.response.status_code, params.expect_status, range(200, 300))
        verdict = "" if ok else f" (expected {params.expect_status or '2xx'})"
        message = f"{params.method} {output['url']} → {x.response.status_code}{verdict}{guard.note()}"
        return ActionResult(output=scrub(output, secrets), ok=ok, message=message, secrets=secrets)


def _json_of(x: Exchange) -> Any:
    if "json" not in x.response.headers.get("content-type", "") or x.body_truncated:
        return None
    try:
        return json.loads(x.body)
    except ValueError:
        return None
