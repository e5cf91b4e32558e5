"""``dns.update``: change one RRset at the zone's primary, with a plan, a blast-radius cap and a way back.

The plan reads the current RRset from the primary and computes the exact diff; ``apply`` sends one atomic
RFC 2136 update signed with TSIG (RFC 8945), guarded by a prerequisite that the RRset is still what the plan
saw, then re-reads the primary to verify. The output carries ``previous`` (records + ttl) so a step's
``rollback`` can put it back with ``operation: replace``.

Providers stay behind the small ``DnsProvider`` protocol so Cloudflare, Route 53 or PowerDNS can be added
later; RFC 2136 is the only one now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import Field

from actions.base import Action, ActionContext, ActionResult, Effect, Output, Params, Plan
from actions.clients.address import FORMS, Address
from actions.clients.dns import (
    RecordType,
    TsigCredentials,
    parse_rdata,
    parse_server,
    query,
    tsig_error_name,
)
from engine.errors import ActionError

DEFAULT_TTL = 300


@dataclass(frozen=True)
class RRset:
    """One RRset as plain data: records in zone-file form (sorted) and their TTL; empty means absent."""

    records: tuple[str, ...] = ()
    ttl: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"records": list(self.records), "ttl": self.ttl}

    def __str__(self) -> str:
        return ", ".join(self.records) if self.records else "(none)"


@dataclass(frozen=True)
class RRsetChange:
    """Make ``name``/``type`` equal ``after``, provided it is still ``before`` (what the plan saw)."""

    name: str
    type: str
    before: RRset
    after: RRset


class UpdateRejected(ActionError):
    """The provider refused or failed the change; the message says why and that nothing changed."""


class DnsProvider(Protocol):
    """What a DNS backend must offer for ``dns.update``: read one RRset, apply one RRset change atomically."""

    def read_rrset(self, name: str, rdtype: str) -> RRset: ...

    def apply_change(self, change: RRsetChange) -> None: ...


# -- RFC 2136 ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rfc2136Provider:
    """Dynamic update (RFC 2136) against the zone's primary, reading back from that same primary."""

    server: Address
    zone: str
    tsig: TsigCredentials | None
    timeout: float = 5.0

    def read_rrset(self, name: str, rdtype: str) -> RRset:
        outcome = query(self.server, name, rdtype, timeout=self.timeout, retries=1, recursion=False)
        if outcome.status in ("NXDOMAIN", "NODATA") and outcome.authoritative:
            return RRset()
        if outcome.status != "NOERROR" or not outcome.authoritative:
            why = outcome.error or ("not authoritative" if outcome.responded else "")
            raise ActionError(
                f"cannot read {name} {rdtype} from primary {self.server}: {outcome.status} {why}".rstrip()
                + f"; is {self.server} the primary of {self.zone}?"
            )
        rdatas = outcome.rdatas()
        return RRset(tuple(sorted(rd.to_text() for rd in rdatas)), outcome.ttl)

    def apply_change(self, change: RRsetChange) -> None:
        import dns.exception
        import dns.query
        import dns.rcode
        import dns.tsig

        message = self._message(change)
        try:
            # TCP: an update is not idempotent, so no blind UDP retransmissions (RFC 2136 section 7).
            reply = dns.query.tcp(message, self.server.host, port=self.server.port, timeout=self.timeout)
        except dns.tsig.PeerError as exc:
            raise UpdateRejected(_tsig_refusal(exc, self.tsig)) from None
        except (dns.exception.DNSException, OSError) as exc:
            raise UpdateRejected(f"no usable reply from {self.server}: {type(exc).__name__}: {exc}") from None
        rcode = dns.rcode.to_text(reply.rcode())
        if rcode != "NOERROR":
            raise UpdateRejected(_rcode_refusal(rcode, self.server, self.zone))

    def _message(self, change: RRsetChange) -> Any:
        import dns.update

        kwargs: dict[str, Any] = {}
        if self.tsig is not None:
            kwargs = {"keyring": self.tsig.keyring(), "keyalgorithm": self.tsig.algorithm}
        update = dns.update.UpdateMessage(self.zone, **kwargs)
        before = [parse_rdata(change.type, r) for r in change.before.records]
        # Compare-and-swap: the RRset must still be what the plan showed (RFC 2136 2.4.2/2.4.3), so a change
        # made by someone else between plan and apply makes the server refuse instead of being overwritten.
        if before:
            update.present(change.name, *before)
        else:
            update.absent(change.name, change.type)
        after = [parse_rdata(change.type, r) for r in change.after.records]
        if after:
            update.replace(change.name, change.after.ttl or DEFAULT_TTL, *after)
        else:
            update.delete(change.name, change.type)
        return update


def _tsig_refusal(exc: Exception, tsig: TsigCredentials | None) -> str:
    key = f"'{tsig.name}' ({tsig.algorithm})" if tsig else "(none)"
    return (
        f"the primary rejected TSIG key {key}: {tsig_error_name(exc)}; nothing was changed. "
        "Check the key name, algorithm and secret against the server's key statement."
    )


def _rcode_refusal(rcode: str, server: Address, zone: str) -> str:
    advice = {
        "REFUSED": "this key or address may not update the zone (allow-update / update-policy)",
        "NOTAUTH": f"{server} is not authoritative for {zone}, or the TSIG key was not accepted",
        "NXRRSET": "the RRset changed since the plan was made (prerequisite failed); plan again",
        "YXRRSET": "the RRset appeared since the plan was made (prerequisite failed); plan again",
        "NOTZONE": f"the name is outside the zone {zone}",
        "SERVFAIL": "the server failed to apply the update; check its logs",
    }
    why = advice.get(rcode, "see RFC 2136 section 2.2")
    return f"update refused by {server}: {rcode}: {why}; nothing changed"


# -- the action ---------------------------------------------------------------------------------------------


class DnsUpdateParams(Params):
    server: str = Field(description='The zone\'s primary that accepts updates, "ip[:port]" or "[ipv6]:port".')
    zone: str = Field(description="The zone to update, e.g. example.com.")
    name: str = Field(description='The owner name to change, fully qualified ("www.example.com") or "@".')
    type: RecordType = Field("A", description="The record type of the RRset.")
    operation: Literal["replace", "add", "delete"] = Field(
        "replace",
        description="replace: the RRset becomes `records` (empty = delete it); add: add `records`; "
        "delete: remove `records`, or the whole RRset when `records` is empty.",
    )
    records: list[str] = Field(default=[], description="Record values in zone-file form.")
    ttl: int | None = Field(
        None,
        ge=0,
        le=2**31 - 1,
        description=f"TTL of the result; default: the current TTL, else {DEFAULT_TTL}.",
    )
    lower_ttl_first: int | None = Field(
        None,
        ge=0,
        description="Lower the current RRset's TTL to this before changing it (cache-safe switch).",
    )
    lower_ttl_wait: float = Field(
        0.0, ge=0, description="Seconds to wait after lowering the TTL; the old TTL is the cache-safe value."
    )
    tsig_name: str | None = Field(None, description="TSIG key name (RFC 8945); none = unsigned update.")
    tsig_algorithm: str = Field("hmac-sha256", description="TSIG algorithm, e.g. hmac-sha256, hmac-sha512.")
    tsig_secret: str | None = Field(None, description="TSIG secret (base64); pass it from a secret input.")
    max_changes: int = Field(
        10, ge=0, description="Blast-radius cap: refuse a plan that adds plus removes more records than this."
    )
    timeout: float = Field(5.0, gt=0, description="Seconds to wait for the primary on each request.")


class DnsUpdateOutput(Output):
    server: str = Field(description="The primary the update was sent to.")
    zone: str = Field(description="The zone updated.")
    name: str = Field(description="The name changed.")
    type: str = Field(description="The record type changed.")
    operation: str = Field(description="The operation asked for.")
    previous: dict[str, Any] = Field(description="The RRset before the change: {records, ttl} (for a rollback).")
    changes: list[dict[str, Any]] = Field(description="The changes made: delete, add, ttl.")
    lowered_ttl: dict[str, Any] = Field({}, description="{from, to} when the TTL was lowered first.")
    current: dict[str, Any] = Field(description="The RRset the primary shows after the change: {records, ttl}.")
    verified: bool = Field(description="True when the primary shows exactly the desired RRset.")
    error: str = Field("", description="Why the server rejected the update.")
    refused: str = Field("", description="Why the plan was refused (e.g. over the blast-radius cap).")


# What an undo keeps of the step's arguments: where and how to send the update, never what to change.
_UNDO_KEEPS = frozenset({"server", "zone", "tsig_name", "tsig_algorithm", "tsig_secret", "timeout", "max_changes"})


class DnsUpdate(Action[DnsUpdateParams]):
    name = "dns.update"
    summary = "Replace, add or delete records with an RFC 2136 update (TSIG); plan shows the diff."
    effect = Effect.WRITE
    Output = DnsUpdateOutput
    secret_params = frozenset({"tsig_secret"})

    @classmethod
    def undo(cls, args: Mapping[str, Any], recorded: str) -> dict[str, Any] | None:
        # The same primary, key and owner, set back to the RRset and TTL the step read before it changed
        # anything (`previous`, taken before a lowered TTL too); the undo's own plan re-reads the RRset and
        # its update is again a compare-and-swap, so a change someone made since is refused, not overwritten.
        kept = {k: v for k, v in args.items() if k in _UNDO_KEEPS}
        return {**kept, "name": "{{ %s.name }}" % recorded, "type": "{{ %s.type }}" % recorded,
                "operation": "replace", "records": "{{ %s.previous.records }}" % recorded,
                "ttl": "{{ %s.previous.ttl }}" % recorded}

    def provider(self, params: DnsUpdateParams, ctx: ActionContext) -> DnsProvider:
        tsig = None
        if params.tsig_name:
            if not params.tsig_secret:
                raise ActionError(f"tsig_name '{params.tsig_name}' is set but tsig_secret is empty")
            tsig = TsigCredentials(params.tsig_name, params.tsig_algorithm, params.tsig_secret)
        try:
            server = parse_server(params.server)
        except ValueError as exc:
            raise ActionError(f"{exc}; write the primary as {FORMS}") from None
        return Rfc2136Provider(server, _fqdn(params.zone), tsig, ctx.remaining(params.timeout))

    def plan(self, params: DnsUpdateParams, ctx: ActionContext) -> Plan:
        name = _owner(params.name, params.zone)
        before = self.provider(params, ctx).read_rrset(name, params.type)
        after = _desired(params, before)
        removed = [r for r in before.records if r not in after.records]
        added = [r for r in after.records if r not in before.records]
        changes = [{"op": "delete", "record": r} for r in removed] + [
            {"op": "add", "record": r, "ttl": after.ttl} for r in added
        ]
        if after.records and before.records and after.ttl != before.ttl:
            changes.append({"op": "ttl", "from": before.ttl, "to": after.ttl})
        state = {"name": name, "previous": before.to_dict(), "desired": after.to_dict()}
        summary = _summary(params.type, name, before, after)
        count = len(removed) + len(added)
        refused = None
        if count > params.max_changes:
            cap = params.max_changes
            refused = f"{summary}: would touch {count} records, over the blast-radius cap max_changes={cap}"
        return Plan(summary=summary, changes=changes, state=state, refused=refused)

    def apply(self, params: DnsUpdateParams, ctx: ActionContext, plan: Plan) -> ActionResult:
        if plan.refused:
            return ActionResult(output={"refused": plan.refused}, ok=False, message=plan.refused)
        provider = self.provider(params, ctx)
        name = plan.state["name"]
        before, after = _rrset(plan.state["previous"]), _rrset(plan.state["desired"])
        output: dict[str, Any] = {
            "server": params.server,
            "zone": params.zone,
            "name": name,
            "type": params.type,
            "operation": params.operation,
            "previous": before.to_dict(),
            "changes": plan.changes,
        }
        secrets = (params.tsig_secret,) if params.tsig_secret else ()
        try:
            before = self._lower_ttl(params, ctx, provider, name, before, output)
            provider.apply_change(RRsetChange(name, params.type, before, after))
        except UpdateRejected as exc:
            return ActionResult(
                output={**output, "error": str(exc)}, ok=False, message=str(exc), secrets=secrets
            )
        seen = provider.read_rrset(name, params.type)
        verified = seen.records == after.records and (not after.records or seen.ttl == after.ttl)
        output.update(current=seen.to_dict(), verified=verified)
        message = (
            plan.summary if verified else f"update accepted but the primary now shows {seen} (ttl {seen.ttl})"
        )
        return ActionResult(output=output, ok=verified, message=message, secrets=secrets)

    @staticmethod
    def _lower_ttl(
        params: DnsUpdateParams,
        ctx: ActionContext,
        provider: DnsProvider,
        name: str,
        before: RRset,
        output: dict[str, Any],
    ) -> RRset:
        """Lower the TTL of the unchanged records first, so caches let go quickly when the values change."""
        low = params.lower_ttl_first
        if low is None or not before.records or before.ttl is None or before.ttl <= low:
            return before
        lowered = RRset(before.records, low)
        provider.apply_change(RRsetChange(name, params.type, before, lowered))
        output["lowered_ttl"] = {"from": before.ttl, "to": low}
        if params.lower_ttl_wait:
            ctx.progress(f"TTL of {name} {params.type} lowered to {low}s; waiting {params.lower_ttl_wait}s")
            if ctx.cancel.wait(params.lower_ttl_wait):
                raise UpdateRejected(
                    "cancelled while waiting after lowering the TTL; only the TTL was changed"
                )
        return lowered


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _owner(name: str, zone: str) -> str:
    """The absolute owner name; refuses names outside the zone before anything is sent."""
    import dns.name

    origin = dns.name.from_text(zone)
    owner = origin if name.strip() == "@" else dns.name.from_text(name)
    if not owner.is_subdomain(origin):
        raise ActionError(f"name '{name}' is not inside zone '{zone}'")
    return str(owner.to_text())


def _desired(params: DnsUpdateParams, before: RRset) -> RRset:
    """The RRset after the operation, records in canonical zone-file form so texts compare exactly."""
    try:
        given = {parse_rdata(params.type, r) for r in params.records}
    except Exception as exc:  # dnspython raises several syntax errors; all mean the same to the author
        raise ActionError(f"records {params.records!r} are not valid {params.type} values: {exc}") from None
    current = {parse_rdata(params.type, r) for r in before.records}
    if params.operation == "replace":
        result = given
    elif params.operation == "add":
        result = current | given
    else:
        result = current - given if given else set()
    ttl = params.ttl if params.ttl is not None else before.ttl or DEFAULT_TTL
    return RRset(tuple(sorted(rd.to_text() for rd in result)), ttl if result else None)


def _rrset(data: dict[str, Any]) -> RRset:
    return RRset(tuple(data["records"]), data["ttl"])


def _summary(rdtype: str, name: str, before: RRset, after: RRset) -> str:
    """One line for the operator: "A www.example.com 192.0.2.10 → 198.51.100.7 (ttl 300 → 60)"."""
    shown = name.rstrip(".")
    if before == after:
        return f"{rdtype} {shown}: no change ({before})"
    ttl = f" (ttl {before.ttl} → {after.ttl})" if before.ttl and after.ttl and before.ttl != after.ttl else ""
    return f"{rdtype} {shown} {before} → {after}{ttl}"
