"""``dns.tsig_check``: prove the DNS update key works before an incident needs it, without changing anything.

A key is only ever tried for real in the middle of an outage, by ``dns.update``; a rotated secret, a renamed
key or a primary moved since the last change then costs the failover. This sends the one question a key can be
tested with harmlessly: the zone's SOA, signed (RFC 8945). A primary that knows the key answers and signs its
reply; one that does not answers NOTAUTH with BADKEY (unknown name or algorithm) or BADSIG (wrong secret).
"""

from __future__ import annotations

from pydantic import Field

from actions.base import Action, ActionContext, ActionResult, Output, Params
from actions.clients.address import FORMS
from actions.clients.dns import TsigCredentials, parse_server, signed_soa_query
from engine.errors import ActionError

# What each TSIG error means for the key, said as advice (RFC 8945 section 5.2).
ADVICE = {
    "BADKEY": "the server does not know this key name with this algorithm",
    "BADSIG": "the server knows the key name, but the secret differs",
    "BADTIME": "the clocks differ by more than the fudge (300 s); fix NTP on one side",
    "unsigned": "the server answered without signing: it did not take the query as signed",
}


class DnsTsigCheckParams(Params):
    server: str = Field(description='The zone\'s primary that dns.update sends to, "ip[:port]" or "[ipv6]:port".')
    zone: str = Field(description="The zone the key updates, e.g. example.com.")
    tsig_name: str = Field(description="TSIG key name (RFC 8945), as in the server's key statement.")
    tsig_algorithm: str = Field("hmac-sha256", description="TSIG algorithm, e.g. hmac-sha256, hmac-sha512.")
    tsig_secret: str = Field(description="TSIG secret (base64); pass it from a secret input.")
    timeout: float = Field(5.0, gt=0, description="Seconds to wait for the server.")


class DnsTsigCheckOutput(Output):
    server: str = Field(description="The server asked.")
    zone: str = Field(description="The zone asked for.")
    key: str = Field(description="The key name (never its secret).")
    algorithm: str = Field(description="The key's algorithm.")
    status: str = Field(description="The reply's rcode (NOERROR, NOTAUTH, REFUSED ...), TIMEOUT or ERROR.")
    tsig: str = Field(description="ok (reply signed with this key), BADKEY, BADSIG, BADTIME, unsigned, none.")
    authoritative: bool = Field(description="True when the server answered for the zone with authority (AA).")
    serial: int | None = Field(description="The zone's SOA serial, when it answered.")
    latency_ms: float = Field(description="How long the answer took.")
    works: bool = Field(description="True when the key is accepted and the server is authoritative for the zone.")
    error: str = Field("", description="What went wrong, when no answer came.")


class DnsTsigCheck(Action[DnsTsigCheckParams]):
    """Read-only: a signed SOA query changes nothing, so it also runs in dry-runs and readiness checks."""

    name = "dns.tsig_check"
    summary = "Prove a TSIG update key works: a harmless signed SOA query to the zone's primary (RFC 8945)"
    Output = DnsTsigCheckOutput
    secret_params = frozenset({"tsig_secret"})

    def run(self, params: DnsTsigCheckParams, ctx: ActionContext) -> ActionResult:
        try:
            server = parse_server(params.server)
        except ValueError as exc:
            raise ActionError(f"{exc}; write server as {FORMS}") from None
        zone = params.zone if params.zone.endswith(".") else params.zone + "."
        tsig = TsigCredentials(params.tsig_name, params.tsig_algorithm, params.tsig_secret)
        answer = signed_soa_query(server, zone, tsig, timeout=ctx.remaining(params.timeout))
        works = answer.tsig == "ok" and answer.status == "NOERROR" and answer.authoritative
        output = {**answer.to_dict(), "key": params.tsig_name, "algorithm": params.tsig_algorithm, "works": works}
        head = f"key '{params.tsig_name}' ({params.tsig_algorithm}) at {server} for {zone}"
        if works:
            return ActionResult(output, True, f"{head}: accepted; SOA serial {answer.serial}")
        if answer.tsig in ADVICE:
            why = f"{answer.status}/{answer.tsig}: {ADVICE[answer.tsig]}"
        elif answer.status in ("TIMEOUT", "ERROR"):
            why = f"no answer ({answer.error})"
        elif not answer.authoritative or answer.status != "NOERROR":
            authority = "authoritative" if answer.authoritative else "not authoritative"
            why = f"{answer.status}, {authority}: is this the primary of {zone}?"
        else:
            why = answer.status
        return ActionResult(output, False, f"{head}: {why}")
