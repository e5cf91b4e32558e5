"""Domain status values: the RFC 8056 mapping between RDAP strings and EPP codes, as a table of data.

RDAP (RFC 9083 section 10.2.2) spells statuses as lower-case words ("client hold"); EPP (RFC 5731) and WHOIS
spell them in camelCase ("clientHold"); RFC 8056 section 2 is the one-to-one table between the two. Each row
here adds what an on-call engineer needs at 3 a.m.: what the status means, who can lift it, and whether the
domain still resolves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

REGISTRAR = "registrar"
REGISTRY = "registry"
NOBODY = "nobody (it ends on its own)"


@dataclass(frozen=True)
class EppStatus:
    """One status value: its EPP code, its meaning, who lifts it, and what it does to DNS."""

    rdap: str
    epp: str | None
    meaning: str
    lifted_by: str
    resolves: bool = True  # False: the registry withdraws the delegation (RFC 5731 section 2.3)
    risky: bool = False  # worth paging for: the domain is down or about to be lost


_ROWS: tuple[EppStatus, ...] = (
    EppStatus("active", "ok", "normal state: no pending operation and no restriction", NOBODY),
    EppStatus(
        "add period", "addPeriod", "newly registered; the registrar may still delete it for a refund", NOBODY
    ),
    EppStatus(
        "auto renew period",
        "autoRenewPeriod",
        "the registry renewed it automatically after expiry; the registrar may still delete it",
        REGISTRAR,
    ),
    EppStatus("renew period", "renewPeriod", "recently renewed (grace period)", NOBODY),
    EppStatus(
        "transfer period", "transferPeriod", "recently transferred to a new registrar (grace period)", NOBODY
    ),
    EppStatus(
        "client hold",
        "clientHold",
        "the registrar suspended the domain: it is withdrawn from DNS (abuse complaint, unpaid invoice,"
        " failed contact verification)",
        REGISTRAR,
        resolves=False,
        risky=True,
    ),
    EppStatus(
        "server hold",
        "serverHold",
        "the registry suspended the domain: it is withdrawn from DNS (legal order, policy or abuse action)",
        REGISTRY,
        resolves=False,
        risky=True,
    ),
    EppStatus(
        "inactive",
        "inactive",
        "no nameservers are delegated, so the domain does not resolve",
        REGISTRAR,
        resolves=False,
        risky=True,
    ),
    EppStatus(
        "pending delete",
        "pendingDelete",
        "the domain is being deleted and will be released for anyone to register (about 5 days)",
        REGISTRY,
        resolves=False,
        risky=True,
    ),
    EppStatus(
        "redemption period",
        "redemptionPeriod",
        "deleted, usually after a missed renewal; withdrawn from DNS; the registrar can still restore it"
        " for a fee during about 30 days (RFC 3915)",
        REGISTRAR,
        resolves=False,
        risky=True,
    ),
    EppStatus(
        "pending restore",
        "pendingRestore",
        "a restore from the redemption period was requested and awaits the registrar's restore report",
        REGISTRAR,
        resolves=False,
        risky=True,
    ),
    EppStatus("pending create", "pendingCreate", "a registration is being processed", REGISTRY),
    EppStatus("pending renew", "pendingRenew", "a renewal is being processed", REGISTRY),
    EppStatus(
        "pending transfer",
        "pendingTransfer",
        "a transfer to another registrar is pending; if nobody at your company asked for it, object now",
        REGISTRAR,
        risky=True,
    ),
    EppStatus("pending update", "pendingUpdate", "an update is being processed", REGISTRY),
    EppStatus(
        "client delete prohibited",
        "clientDeleteProhibited",
        "the registrar refuses deletion (lock)",
        REGISTRAR,
    ),
    EppStatus("client renew prohibited", "clientRenewProhibited", "the registrar refuses renewal", REGISTRAR),
    EppStatus(
        "client transfer prohibited",
        "clientTransferProhibited",
        "the registrar refuses transfers to another registrar (transfer lock)",
        REGISTRAR,
    ),
    EppStatus(
        "client update prohibited",
        "clientUpdateProhibited",
        "the registrar refuses changes such as nameserver updates (lock)",
        REGISTRAR,
    ),
    EppStatus(
        "server delete prohibited",
        "serverDeleteProhibited",
        "the registry refuses deletion (Registry Lock)",
        REGISTRY,
    ),
    EppStatus("server renew prohibited", "serverRenewProhibited", "the registry refuses renewal", REGISTRY),
    EppStatus(
        "server transfer prohibited",
        "serverTransferProhibited",
        "the registry refuses transfers (Registry Lock or a dispute)",
        REGISTRY,
    ),
    EppStatus(
        "server update prohibited",
        "serverUpdateProhibited",
        "the registry refuses changes, nameservers included (Registry Lock): plan for its unlock"
        " procedure before a DNS failover",
        REGISTRY,
    ),
    # RFC 9083 section 10.2.2 values without an EPP code: registries use them for non-EPP objects.
    EppStatus("locked", None, "changes are refused (generic lock)", "the sponsoring party"),
    EppStatus("transfer prohibited", None, "transfers are refused (generic lock)", "the sponsoring party"),
    EppStatus("update prohibited", None, "changes are refused (generic lock)", "the sponsoring party"),
    EppStatus("delete prohibited", None, "deletion is refused (generic lock)", "the sponsoring party"),
    EppStatus("renew prohibited", None, "renewal is refused (generic lock)", "the sponsoring party"),
)

# JPRS (.jp) states are not EPP codes: JPRS WHOIS prints them in [状態]/[Status], and their lifecycle is JPRS's
# own ("JPドメイン名のライフサイクル", jprs.jp/about/dom-rule/lifecycle). "Active" is already RFC 8056's "active".
_JPRS_ROWS: tuple[EppStatus, ...] = (
    EppStatus("connected", None, "registered and delegated (.co.jp and other organisational types; the date"
              " in brackets is the expiry)", NOBODY),
    EppStatus("to be suspended", None, "cancellation was requested (or the renewal was not made): the domain"
              " still resolves until the end of the month, then it is Suspended", "the designated registrar",
              risky=True),
    EppStatus("suspended", None, "cancelled or not renewed: withdrawn from DNS for one month, then deleted;"
              " the designated registrar can file a restore (登録回復) from the 1st to the 20th of that month",
              "the designated registrar", resolves=False, risky=True),
    EppStatus("registered", None, "registered but not connected: no nameservers are delegated, so it does"
              " not resolve", "the designated registrar", resolves=False, risky=True),
    EppStatus("agent change locked", None, "the designated registrar cannot be changed (JPRS lock)",
              "the designated registrar"),
)

BY_RDAP: dict[str, EppStatus] = {row.rdap: row for row in _ROWS}
BY_JPRS: dict[str, EppStatus] = {row.rdap: row for row in _JPRS_ROWS}
_BY_EPP: dict[str, EppStatus] = {row.epp.lower(): row for row in _ROWS if row.epp}

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


# What to do, per status, with {abuse} standing for the registrar's abuse contact.
ADVICE: dict[str, str] = {
    "clientHold": (
        "domain is on clientHold: the registrar suspended it and it is withdrawn from DNS; call the "
        "registrar's abuse desk ({abuse}) to learn why (abuse report, unpaid invoice, unverified "
        "contact) and get it lifted"
    ),
    "serverHold": (
        "domain is on serverHold: the registry withdrew it from DNS (legal, policy or abuse action); "
        "only the registry can lift it, so open a ticket with the registrar ({abuse}) to escalate"
    ),
    "pendingDelete": (
        "domain is pendingDelete: it will be purged and open for anyone to register within days; "
        "call the registrar ({abuse}) now, a restore is no longer possible once purged"
    ),
    "redemptionPeriod": (
        "domain is in its redemptionPeriod (deleted, usually after a missed renewal) and does "
        "not resolve; the registrar ({abuse}) can restore it for a fee within about 30 days"
    ),
    "pendingRestore": (
        "domain is pendingRestore: a restore was requested; it resolves again only when the "
        "registrar ({abuse}) completes it"
    ),
    "inactive": (
        "domain is inactive: no nameservers are delegated, so it does not resolve; set nameservers "
        "at the registrar"
    ),
    "pendingTransfer": (
        "domain has a pendingTransfer to another registrar; if nobody asked for it, tell the "
        "registrar ({abuse}) to reject it before it completes"
    ),
}


# What to do about a JPRS state, keyed like BY_JPRS; {abuse} as above.
JPRS_ADVICE: dict[str, str] = {
    "to be suspended": (
        "domain is 'To be suspended' at JPRS: it leaves DNS at the end of this month; ask the designated "
        "registrar ({abuse}) to withdraw the cancellation or renew now"
    ),
    "suspended": (
        "domain is 'Suspended' at JPRS and does not resolve; the designated registrar ({abuse}) can file a "
        "restore (登録回復) only between the 1st and the 20th of this month, after that it is deleted"
    ),
    "registered": (
        "domain is 'Registered' at JPRS but not connected: no nameservers are delegated; set them at the "
        "designated registrar ({abuse})"
    ),
}


def advice(status: dict[str, Any], abuse: str) -> str | None:
    """What to do about one described status (``describe``'s output), or None when nothing is urgent."""
    if status["epp"] in ADVICE:
        return ADVICE[status["epp"]].format(abuse=abuse)
    text = JPRS_ADVICE.get(status.get("scheme") == "jprs" and normalise(status["value"]) or "")
    return text.format(abuse=abuse) if text else None


def normalise(value: str) -> str:
    """Spell any status the RDAP way: "clientHold", "CLIENT_HOLD", "client hold https://icann.org/epp#..."."""
    # WHOIS appends the ICANN explanation URL after the code (ICANN's 2014 EPP status advisory).
    first = value.strip().split(" http", 1)[0].strip()
    if " " not in first and first.lower() in _BY_EPP:
        return _BY_EPP[first.lower()].rdap
    words = _CAMEL.sub(" ", first).replace("_", " ").replace("-", " ")
    return " ".join(words.lower().split())


def describe(value: str, scheme: str = "epp") -> dict[str, Any]:
    """One status as plain data: the value as given, its EPP code, meaning and who can lift it.

    ``scheme`` "jprs" also reads JPRS's own states (a .jp WHOIS answer); RFC 8056 values are read either way.
    """
    key = normalise(value)
    row = BY_RDAP.get(key) or (BY_JPRS.get(key) if scheme == "jprs" else None)
    if row is None:
        return {
            "value": value,
            "epp": None,
            "scheme": scheme,
            "meaning": "not an RFC 8056 status: see the registry's own documentation",
            "lifted_by": "unknown",
            "resolves": True,
            "risky": False,
        }
    return {
        "value": value,
        "epp": row.epp,
        "scheme": scheme,
        "meaning": row.meaning,
        "lifted_by": row.lifted_by,
        "resolves": row.resolves,
        "risky": row.risky,
    }


def locks(codes: set[str]) -> dict[str, Any]:
    """Which operations are locked and by whom; all three server locks together are a Registry Lock."""
    result: dict[str, Any] = {}
    for op in ("transfer", "update", "delete"):
        by = [party for party in ("client", "server") if f"{party}{op.title()}Prohibited" in codes]
        result[op] = {"client": "client" in by, "server": "server" in by}
    # Registry Lock is the registry setting serverUpdate/Delete/TransferProhibited at the owner's request,
    # lifted only by an out-of-band, authenticated procedure (ICANN RSEP Registry Lock descriptions).
    result["registry_lock"] = all(result[op]["server"] for op in ("transfer", "update", "delete"))
    return result
