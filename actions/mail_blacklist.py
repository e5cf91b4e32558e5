"""``mail.blacklist``: is this IP address or domain on the DNS blocklists receivers use?

A DNSBL (RFC 5782) answers an A record inside 127.0.0.0/8 for a listed name and NXDOMAIN otherwise; the code
says why, and a TXT record at the same name usually carries a human reason and a link. Some answers are not
listings at all: Spamhaus answers 127.255.255.252/254/255 when it refuses the *query* (typo, public resolver,
over quota) and URIBL/SURBL answer 127.0.0.1 for the same. Reading those as "listed" sends an on-call
engineer chasing a delisting that is not needed, so each list's codes are data in ``data/dnsbl.yaml``. A zone
given by name only (a team's own Spamhaus mirror, a DQS zone with its key in the name) has no codes, so
127.255.255.0/24 is read as a refusal on every list whose definition does not say otherwise.

Every (target, list) query runs concurrently: fifty lists cost one round trip, not fifty.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from functools import cache, partial
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from actions.base import Action, ActionContext, ActionResult, Effect, Output, Params
from actions.clients import fanout
from actions.clients.dns import ERROR, NODATA, TIMEOUT, QueryOutcome, Resolver

Status = Literal["listed", "not_listed", "refused", "error"]
# Spamhaus's refusal answers (news article 788, codes.tsv): the range mirrors and DQS zones answer from too.
REFUSED_RANGE = "127.255.255.0/24"


class CodeMeaning(BaseModel):
    """What one A answer of a list means."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    status: Literal["listed", "refused", "error"] = Field(description="listed, refused or error")
    meaning: str = Field(description="human explanation of the answer")


class ZoneSpec(BaseModel):
    """One blocklist: its zone, what it lists and how to read its answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    zone: str = Field(description="DNS zone queried, e.g. zen.spamhaus.org")
    name: str = Field(default="", description="display name of the list")
    kind: Literal["ip", "domain"] = Field(default="ip", description="ip (reversed address) or domain list")
    ipv6: bool = Field(default=False, description="the list publishes IPv6 entries (RFC 5782 section 2.4)")
    delist: str = Field(default="", description="URL where a listed owner requests removal")
    procedure: str = Field(default="", description="how this list's removal works, in one or two sentences")
    codes: dict[str, CodeMeaning] = Field(default={}, description="A answer -> meaning")
    bits: dict[int, str] = Field(default={}, description="bitmask lists: last-octet bit -> meaning")
    refused_range: str | None = Field(
        default=REFUSED_RANGE, description="answers in this CIDR are query refusals; null when none are"
    )
    default: Literal["listed", "refused", "error"] = Field(
        default="listed", description="status of any other 127.0.0.0/8 answer"
    )


class MailBlacklistParams(Params):
    targets: list[str] = Field(
        min_length=1, description="IPv4/IPv6 addresses and domains to check (e.g. the outbound relay IP)"
    )
    zones: list[str | ZoneSpec] | None = Field(
        default=None,
        description="lists to query instead of the shipped set: a shipped zone name, an unknown zone name "
        "(read as a generic RFC 5782 IP list) or a full list definition",
    )
    nameservers: str | list[str] | None = Field(
        default=None,
        validation_alias=AliasChoices("nameservers", "resolver"),
        description="recursive resolvers 'ip[:port]' ('[v6]:port' for IPv6), one or a list; default: the "
        "system's resolvers. Spamhaus refuses public resolvers, use your own",
    )
    timeout: float = Field(default=5.0, gt=0, description="seconds to wait for each answer")
    concurrency: int = Field(default=64, ge=1, le=1024, description="queries in flight at once")


@cache
def shipped_lists() -> dict[str, ZoneSpec]:
    """The documented default lists in ``data/dnsbl.yaml``, by zone."""
    import yaml

    text = (Path(__file__).parent / "data" / "dnsbl.yaml").read_text(encoding="utf-8")
    specs = [ZoneSpec.model_validate(item) for item in yaml.safe_load(text)["lists"]]
    return {spec.zone: spec for spec in specs}


def select_zones(zones: list[str | ZoneSpec] | None) -> list[ZoneSpec]:
    """The lists one invocation queries: the shipped set, or the ones the caller named."""
    known = shipped_lists()
    if zones is None:
        return list(known.values())
    return [
        z if isinstance(z, ZoneSpec) else known.get(z.lower().rstrip("."), ZoneSpec(zone=z.rstrip("."))) for z in zones
    ]


def query_name(target: str, spec: ZoneSpec) -> str | None:
    """The name to look up for ``target`` on ``spec``, or None when the list cannot hold it."""
    try:
        address = ipaddress.ip_address(target)
    except ValueError:
        return f"{target.lower().rstrip('.')}.{spec.zone}" if spec.kind == "domain" else None
    if spec.kind != "ip" or (address.version == 6 and not spec.ipv6):
        return None
    # RFC 5782 2.1 / 2.4: reversed octets for IPv4, reversed nibbles for IPv6 — the reverse-DNS label order.
    reversed_labels = address.reverse_pointer.rsplit(".", 2)[0]
    return f"{reversed_labels}.{spec.zone}"


def interpret(spec: ZoneSpec, answer: str) -> tuple[Status, str]:
    """Read one A answer of ``spec``."""
    address = ipaddress.ip_address(answer)
    if address not in ipaddress.ip_network("127.0.0.0/8"):
        # RFC 5782 2.3: answers live in 127/8; anything else is a broken list or a resolver that rewrites
        # NXDOMAIN into an advertising page. Haraka disables such zones.
        return "error", f"answer {answer} is outside 127.0.0.0/8: the list or your resolver misbehaves"
    if answer in spec.codes:
        code = spec.codes[answer]
        return code.status, code.meaning
    if spec.refused_range and address in ipaddress.ip_network(spec.refused_range):
        return "refused", f"query refused by the list operator (answer {answer}), not a listing"
    if spec.bits:
        octet = int(answer.rsplit(".", 1)[1])
        meanings = [text for bit, text in sorted(spec.bits.items()) if octet & bit]
        if meanings:
            return "listed", "; ".join(meanings)
    return spec.default, f"listed (return code {answer})"


def combine(spec: ZoneSpec, answers: list[str]) -> tuple[Status, str]:
    """A name may carry several codes (ZEN: SBL and PBL at once); any listing wins over refusals."""
    readings = [interpret(spec, a) for a in answers]
    for wanted in ("listed", "refused", "error"):
        picked = [meaning for status, meaning in readings if status == wanted]
        if picked:
            return wanted, "; ".join(dict.fromkeys(picked))
    return "not_listed", ""


def _failure(outcome: QueryOutcome, timeout: float) -> tuple[Status | None, str]:
    """(status, meaning) of a lookup without a usable answer; (None, "") when the name is simply not there."""
    if outcome.status in ("NXDOMAIN", NODATA):
        return None, ""
    if outcome.status == TIMEOUT:
        return "error", f"no answer within {timeout:g}s"
    if outcome.status == ERROR:
        return "error", outcome.error or "no usable answer"
    return "error", f"resolver failed (SERVFAIL/REFUSED): {outcome.status} from {outcome.server}"


def _texts(outcome: QueryOutcome) -> list[str]:
    if outcome.type == "TXT":
        return [b"".join(r.strings).decode("utf-8", "replace") for r in outcome.rdatas()]
    return sorted(r.address for r in outcome.rdatas())


async def check_one(resolver: Resolver, target: str, spec: ZoneSpec, qname: str) -> dict[str, Any]:
    """One (target, list) row: A answer, its reading and, when listed or refused, the TXT reason."""
    row: dict[str, Any] = {
        "target": target,
        "zone": spec.zone,
        "list": spec.name or spec.zone,
        "query": qname,
        "answers": [],
        "reason": None,
        "delist": spec.delist or None,
        "procedure": spec.procedure or None,
    }
    answer = await resolver.ask_async(qname, "A")
    if answer.status != "NOERROR":
        status, message = _failure(answer, resolver.timeout)
        row.update(status=status or "not_listed", meaning=message)
        return row
    row["answers"] = _texts(answer)
    row["status"], row["meaning"] = combine(spec, row["answers"])
    if row["status"] in ("listed", "refused"):
        # A missing TXT reason is normal (RFC 5782 2.1 makes it optional).
        reason = await resolver.ask_async(qname, "TXT")
        row["reason"] = " | ".join(_texts(reason)) or None
    return row


async def check_all(
    targets: Sequence[str], specs: Sequence[ZoneSpec], resolver: Resolver, concurrency: int
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every applicable (target, list) pair at once, bounded by ``concurrency``."""
    jobs: list[Callable[[], Awaitable[dict[str, Any]]]] = []
    skipped = []
    for target in targets:
        for spec in specs:
            qname = query_name(target, spec)
            if qname is None:
                skipped.append({"target": target, "zone": spec.zone, "why": _skip_reason(target, spec)})
            else:
                jobs.append(partial(check_one, resolver, target, spec, qname))
    return await fanout.gather_bounded(jobs, concurrency), skipped


def _skip_reason(target: str, spec: ZoneSpec) -> str:
    if spec.kind == "domain":
        return "domain list; target is an address"
    if ":" in target:
        return "list has no IPv6 entries"
    return "address list; target is a domain"


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    listed = [r for r in rows if r["status"] == "listed"]
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("listed", "not_listed", "refused", "error")}
    return {
        "listed_count": counts["listed"],
        "listed_on": sorted({r["zone"] for r in listed}),
        "listed_targets": sorted({r["target"] for r in listed}),
        "checked": len(rows),
        "counts": counts,
    }


class MailBlacklistOutput(Output):
    results: list[dict[str, Any]] = Field(description="Each check: target, zone, list, query, status, answers, "
                                          "reason, delist, procedure (how removal works).")
    skipped: list[Any] = Field(description="Lists not asked, and why.")
    listed_count: int = Field(description="Checks that found the target listed.")
    listed_on: list[str] = Field(description="Lists (zones) that list a target.")
    listed_targets: list[str] = Field(description="Targets listed somewhere.")
    checked: int = Field(description="Checks made.")
    counts: dict[str, int] = Field(description="Checks by status: listed, not_listed and the failures.")


class MailBlacklist(Action[MailBlacklistParams]):
    name = "mail.blacklist"
    summary = "Check IPs and domains against DNS blocklists (Spamhaus, Barracuda, SpamCop, URIBL...)"
    effect = Effect.READ
    Output = MailBlacklistOutput

    def run(self, params: MailBlacklistParams, ctx: ActionContext) -> ActionResult:
        timeout = ctx.remaining(params.timeout) if ctx.timeout else params.timeout
        specs = select_zones(params.zones)
        # One attempt of `timeout` per question: fifty lists behind a silent resolver cost one timeout, not three.
        resolver = Resolver.of(params.nameservers, timeout=min(timeout, params.timeout))
        rows, skipped = fanout.run(lambda: check_all(params.targets, specs, resolver, params.concurrency))
        summary = summarize(rows)
        output = {"results": rows, "skipped": skipped, **summary}
        counts = summary["counts"]
        if rows and counts["listed"] + counts["not_listed"] == 0:
            message = f"no list gave a usable answer{_unusable(counts)}: check the resolver in `nameservers`"
            return ActionResult(output, ok=False, message=message + params.deprecation_note())
        message = (
            f"listed on {summary['listed_count']} of {len(rows)} checks: {', '.join(summary['listed_on'])}"
            if summary["listed_count"]
            else f"not listed on any of {len(rows)} checks"
        )
        return ActionResult(output, message=message + _unusable(counts) + params.deprecation_note())


def _unusable(counts: dict[str, int]) -> str:
    """'; N queries refused (not listings); M errors' for the summary line, empty when all answered."""
    parts = []
    if counts["refused"] == 1:
        parts.append("1 query refused (not a listing)")
    elif counts["refused"]:
        parts.append(f"{counts['refused']} queries refused (not listings)")
    if counts["error"]:
        parts.append(f"{counts['error']} error{'' if counts['error'] == 1 else 's'}")
    return "".join(f"; {part}" for part in parts)
