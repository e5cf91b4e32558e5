"""``tls.check``: the certificate an endpoint serves (web, SMTP/IMAP STARTTLS, implicit TLS) and what is
wrong with it for a client that verifies. Read-only; the protocol work is in ``clients.tls_endpoint``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from actions.base import OPEN_ITEMS, Action, ActionContext, ActionResult, Effect, Output, Params
from actions.clients import tls_endpoint
from actions.clients.tls_endpoint import Endpoint
from engine.errors import ActionError

# Problems that break clients; the others (expires_soon, must_staple) are warnings.
BROKEN = {tls_endpoint.EXPIRED, tls_endpoint.NOT_YET_VALID, tls_endpoint.NAME_MISMATCH,
          tls_endpoint.INCOMPLETE_CHAIN, tls_endpoint.SELF_SIGNED, tls_endpoint.UNTRUSTED}
IMPLICIT_TLS_PORTS = {465, 636, 993, 995}  # not HTTP: no HSTS header to read there


class TlsCheckParams(Params):
    host: str = Field(description="host, host:port or scheme://host[:port] with scheme https (443), smtp (25, "
                      "STARTTLS), submission (587, STARTTLS), smtps (465), imap (143, STARTTLS), imaps (993).")
    port: int | None = Field(None, ge=1, le=65535, description="Port; default: from host, else 443.")
    starttls: Literal["none", "smtp", "imap"] | None = Field(
        None, description="Upgrade a plain connection first; default: from the scheme (none for host:port).")
    servername: str | None = Field(
        None, description="Name sent as SNI and checked against the certificate; default: the host.")
    address: str | None = Field(
        None, description="Connect to this IP instead of resolving the host (like curl --resolve).")
    ca_file: str | None = Field(None, description="PEM bundle of CAs to trust; default: the system's.")
    min_days: int = Field(0, ge=0, description="Fail when fewer days than this are left.")
    hsts: bool | None = Field(
        None, description="Read the Strict-Transport-Security header with HEAD /; default: on HTTPS endpoints.")
    timeout: float = Field(10.0, gt=0, description="Seconds for connecting and each reply.")
    remind: bool = Field(
        True, description="Leave the renewal date of a valid certificate as an item open at the end of the run.")
    renew_before_days: int = Field(30, ge=0, description="That date: this many days before the certificate expires.")


class TlsCheckOutput(Output):
    endpoint: str = Field(description="host:port (and STARTTLS dialect) checked.")
    host: str = Field(description="The name checked (SNI and SAN).")
    port: int = Field(description="The port.")
    starttls: str = Field(description="none, smtp or imap.")
    status: str = Field(description="ok (verified), invalid (served, fails verification) or error (no TLS).")
    error: str = Field("", description="Why no certificate could be read (status error).")
    verified: bool = Field(description="True when a verifying client accepts the chain and the name.")
    verify_error: str | None = Field(None, description="OpenSSL's reason when it does not.")
    problems: list[str] = Field(description="expired, not_yet_valid, name_mismatch, incomplete_chain, "
                                "self_signed, untrusted, expires_soon, must_staple.")
    days_left: int | None = Field(None, description="Whole days until the leaf expires; negative once expired.")
    not_after: str | None = Field(None, description="When the leaf expires (ISO 8601).")
    subject: str | None = Field(None, description="The leaf's subject.")
    issuer: str | None = Field(None, description="The leaf's issuer.")
    san: list[str] = Field([], description="The leaf's names (SAN).")
    name_matches: bool | None = Field(None, description="The host is one of those names.")
    chain_complete: bool | None = Field(None, description="Every issuer is served or a trust anchor.")
    missing_issuer: str | None = Field(None, description="The intermediate the server should send and does not.")
    self_signed: bool | None = Field(None, description="A lone certificate that signed itself.")
    must_staple: bool | None = Field(None, description="The leaf demands a stapled OCSP response (RFC 7633).")
    fingerprint_sha256: str | None = Field(None, description="SHA-256 of the leaf, to tell certificates apart.")
    chain: list[dict[str, Any]] = Field(description="Every served certificate: subject, issuer, san, validity.")
    protocol: str | None = Field(None, description="TLS version negotiated.")
    hsts: dict[str, Any] | None = Field(None, description="max_age, include_subdomains, preload, header; "
                                        "null when not sent or not HTTPS.")
    open_items: list[dict[str, Any]] = Field([], description="The next renewal date, as an item open at the end.")


class TlsCheck(Action[TlsCheckParams]):
    name = "tls.check"
    summary = "The certificate chain an endpoint serves (HTTPS, STARTTLS, IMAPS): expiry, name, chain, HSTS."
    effect = Effect.READ
    Output = TlsCheckOutput

    def run(self, params: TlsCheckParams, ctx: ActionContext) -> ActionResult:
        try:
            endpoint = Endpoint.parse(params.host, params.port, params.starttls, params.address)
        except ValueError as exc:
            raise ActionError(str(exc)) from None
        if params.servername:
            endpoint = Endpoint(params.servername, endpoint.port, endpoint.starttls,
                                endpoint.address or endpoint.host)
        hsts = params.hsts if params.hsts is not None else (
            endpoint.starttls == "none" and endpoint.port not in IMPLICIT_TLS_PORTS)
        out = tls_endpoint.inspect(endpoint, ca_file=params.ca_file, timeout=ctx.remaining(params.timeout),
                                   min_days=params.min_days, read_hsts=hsts)
        out[OPEN_ITEMS] = _renewal(out, params.renew_before_days) if params.remind else []
        return ActionResult(out, ok=_ok(out), message=_summary(out))


def _ok(out: dict[str, Any]) -> bool:
    return out["status"] == "ok" and tls_endpoint.EXPIRES_SOON not in out["problems"]


def _renewal(out: dict[str, Any], before_days: int) -> list[dict[str, Any]]:
    if not out["verified"]:
        return []  # the certificate to renew is the one that replaces this
    due = datetime.fromisoformat(out["not_after"]) - timedelta(days=before_days)
    return [{"text": f"renew the certificate of {out['endpoint']} (expires {out['not_after'][:10]}); "
                     "is its expiry monitored?", "due": due.date().isoformat()}]


def _summary(out: dict[str, Any]) -> str:
    where = out["endpoint"]
    if out["status"] == "error":
        return f"{where}: no certificate: {out['error']}"
    words = []
    for problem in out["problems"]:
        if problem == tls_endpoint.EXPIRED:
            words.append(f"EXPIRED {-out['days_left']} days ago ({out['not_after'][:10]})")
        elif problem == tls_endpoint.NAME_MISMATCH:
            words.append(f"not valid for {out['host']} (names: {', '.join(out['san']) or 'none'})")
        elif problem == tls_endpoint.INCOMPLETE_CHAIN:
            words.append(f"incomplete chain: intermediate {out['missing_issuer']} not served")
        elif problem == tls_endpoint.EXPIRES_SOON:
            words.append(f"expires in {out['days_left']} days")
        elif problem == tls_endpoint.MUST_STAPLE:
            words.append("must-staple (check the OCSP staple: openssl s_client -status)")
        elif problem == tls_endpoint.UNTRUSTED:
            words.append(f"not trusted ({out['verify_error']})")
        else:
            words.append(problem.replace("_", " "))
    if out["hsts"]:
        words.append(f"HSTS max-age={out['hsts']['max_age']}" + (" preload" if out["hsts"]["preload"] else ""))
    state = "ok" if out["verified"] else "INVALID"
    return f"{where}: {state}, {out['days_left']} days left" + "".join(f"; {w}" for w in words)
