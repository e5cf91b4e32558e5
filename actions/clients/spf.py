"""A compact RFC 7208 SPF evaluator (``check_host()``) over dnspython, pointed at any resolver.

Why not pyspf: its DNS layer is the module-global ``spf.DNSLookup`` calling dnspython's *default* resolver, so
pointing it at another server means patching process-wide state (unsafe with concurrent steps using
different resolvers), and it is not a declared dependency. This module keeps the whole evaluation explicit:
the parse (syntax errors anywhere are a permerror before evaluation, RFC 7208 4.6), the lookup budget shared
across include/redirect (10 DNS mechanisms, 2 void lookups, RFC 7208 4.6.4), macros (RFC 7208 7) and which
term decided, which is what an engineer needs to read.

DNS comes from the shared ``clients.dns.Resolver``; a question it cannot get answered is a temperror
(RFC 7208 2.6.7, 4.4), translated where the evaluation asks.
"""

from __future__ import annotations

import ipaddress
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from actions.clients.dns import DnsFailure, Resolver
from engine.errors import ActionError

MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
LOOKUP_LIMIT = 10  # RFC 7208 4.6.4: DNS-querying mechanisms and redirect, across the whole evaluation
VOID_LIMIT = 2  # RFC 7208 4.6.4: lookups answering NXDOMAIN or no records
MX_PTR_LIMIT = 10  # RFC 7208 4.6.4: names looked up per mx / ptr mechanism
DEFAULT_EXPLANATION = "DEFAULT"

_MODIFIER = re.compile(r"^([a-z][a-z0-9_.\-]*)=(.*)$", re.IGNORECASE)
_DIRECTIVE = re.compile(r"^([+\-~?]?)([a-z][a-z0-9_.\-]*)(.*)$", re.IGNORECASE)
_CIDR = re.compile(r"^(.*?)(?:/(0|[1-9][0-9]{0,2}))?(?://(0|[1-9][0-9]{0,2}))?$", re.DOTALL)
_MACRO = re.compile(r"%(?:\{([a-zA-Z])([0-9]*)(r?)([.\-+,/_=]*)\}|([%_\-]))")
_TOPLABEL = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9\-]*[a-z0-9])?$", re.IGNORECASE)


class SpfError(ActionError):
    """Evaluation stops with this result (permerror or temperror)."""

    result = "permerror"


class PermError(SpfError):
    result = "permerror"


class TempError(SpfError):
    result = "temperror"


@dataclass(frozen=True)
class Term:
    """One parsed directive or modifier of an SPF record."""

    text: str
    kind: str  # a mechanism name, or "redirect"/"exp"/"unknown" for modifiers
    qualifier: str = "+"
    spec: str | None = None  # the domain-spec or ip-network, unexpanded
    cidr4: int | None = None
    cidr6: int | None = None


@dataclass
class Record:
    """A parsed policy: directives in order, and the two modifiers RFC 7208 gives meaning to."""

    text: str
    directives: list[Term]
    redirect: Term | None = None
    exp: Term | None = None
    dns_terms: int = 0  # mechanisms + redirect that cost a DNS lookup (what auth_records reports)


@dataclass(frozen=True)
class SpfResult:
    result: str
    mechanism: str | None  # the term that decided, in the record of ``domain``
    domain: str
    explanation: str | None = None
    reason: str = ""
    lookups: int = 0
    void_lookups: int = 0
    chain: tuple[str, ...] = ()  # "domain: term" from the top record to the deciding one


@dataclass
class Budget:
    """Counters shared by one whole check_host() evaluation, includes and redirects included."""

    lookups: int = 0
    voids: int = 0
    deadline: float = 0.0

    def spend(self) -> None:
        self.lookups += 1
        if self.lookups > LOOKUP_LIMIT:
            raise PermError(f"more than {LOOKUP_LIMIT} DNS-querying mechanisms (RFC 7208 4.6.4)")

    def void(self) -> None:
        self.voids += 1
        if self.voids > VOID_LIMIT:
            raise PermError(f"more than {VOID_LIMIT} void DNS lookups (RFC 7208 4.6.4)")


# ---- parsing ----------------------------------------------------------------------------------------------


def is_spf(txt: bytes) -> bool:
    """RFC 7208 4.5: a record starts with "v=spf1" followed by a space or its end."""
    return txt[:6].lower() == b"v=spf1" and (len(txt) == 6 or txt[6:7] == b" ")


def check_macro_string(value: str, exp: bool = False) -> None:
    """RFC 7208 7.1: only %{x...}, %%, %_ and %- may follow a '%'; c, r, t only in explanations."""
    letters = "slodiphvcrt" if exp else "slodiphv"
    position = 0
    for match in _MACRO.finditer(value):
        if "%" in value[position : match.start()]:
            raise PermError(f"bad macro in {value!r}")
        letter = match.group(1)
        if letter and letter.lower() not in letters:
            raise PermError(f"macro %{{{letter}}} is not allowed in {value!r}")
        if match.group(2) == "0" or (match.group(2) or "").startswith("0") and match.group(2):
            raise PermError(f"macro digit 0 in {value!r}")
        position = match.end()
    if "%" in value[position:]:
        raise PermError(f"bad macro in {value!r}")


def check_domain_spec(spec: str) -> None:
    """RFC 7208 7.1 domain-spec: a macro-string ending in "." toplabel or in a macro."""
    check_macro_string(spec)
    if spec == "" or any(ord(c) < 0x21 or ord(c) > 0x7E for c in spec):
        raise PermError(f"bad domain-spec {spec!r}")
    if spec.endswith("}"):
        return
    labels = spec.rstrip(".").split(".") if spec.endswith(".") else spec.split(".")
    if len(labels) < 2 or not _TOPLABEL.match(labels[-1]):
        raise PermError(f"domain-spec {spec!r} does not end in a valid top label")


def parse_record(text: str) -> Record:
    """Parse one policy; any syntax error anywhere is a permerror (RFC 7208 4.6)."""
    if any(ord(c) > 0x7E for c in text):
        raise PermError("SPF record contains non-ASCII characters (RFC 7208 3.1)")
    if any(ord(c) < 0x20 for c in text):
        raise PermError("SPF record contains control characters; terms are separated by spaces only (4.6.1)")
    record = Record(text=text, directives=[])
    for word in text[6:].split(" "):
        if word:
            _add_term(record, word)
    return record


def _add_term(record: Record, word: str) -> None:
    modifier = _MODIFIER.match(word)
    if modifier:
        name, value = modifier.group(1).lower(), modifier.group(2)
        if name in ("redirect", "exp"):
            if getattr(record, name) is not None:
                raise PermError(f"more than one {name}= modifier (RFC 7208 6)")
            check_domain_spec(value)
            setattr(record, name, Term(word, name, spec=value))
            record.dns_terms += name == "redirect"
        else:
            check_macro_string(value)  # unknown modifiers are ignored but must parse (RFC 7208 6)
        return
    record.directives.append(parse_directive(word))
    record.dns_terms += record.directives[-1].kind in ("include", "a", "mx", "ptr", "exists")


def parse_directive(word: str) -> Term:
    match = _DIRECTIVE.match(word)
    if not match or match.group(2).lower() not in MECHANISMS:
        raise PermError(f"unknown mechanism {word!r}")
    qualifier, kind, rest = match.group(1) or "+", match.group(2).lower(), match.group(3)
    if kind == "all":
        if rest:
            raise PermError(f"bad mechanism {word!r}")
        return Term(word, kind, qualifier)
    if kind in ("ip4", "ip6"):
        return _parse_ip(word, kind, qualifier, rest)
    spec, cidr4, cidr6 = rest, None, None
    if kind in ("a", "mx"):
        cidr = _CIDR.match(rest)
        assert cidr is not None  # the pattern matches every string
        spec = cidr.group(1)
        cidr4 = int(cidr.group(2)) if cidr.group(2) else None
        cidr6 = int(cidr.group(3)) if cidr.group(3) else None
        if (cidr4 is not None and cidr4 > 32) or (cidr6 is not None and cidr6 > 128):
            raise PermError(f"bad CIDR length in {word!r}")
    if spec.startswith(":"):
        check_domain_spec(spec[1:])
        return Term(word, kind, qualifier, spec[1:], cidr4, cidr6)
    if spec or kind in ("include", "exists"):
        raise PermError(f"bad mechanism {word!r}")
    return Term(word, kind, qualifier, None, cidr4, cidr6)


def _parse_ip(word: str, kind: str, qualifier: str, rest: str) -> Term:
    version = 4 if kind == "ip4" else 6
    network, _, length = rest[1:].partition("/")
    limit = 32 if version == 4 else 128
    if not rest.startswith(":") or (length and not re.fullmatch(r"0|[1-9][0-9]{0,2}", length)):
        raise PermError(f"bad mechanism {word!r}")
    try:
        address = ipaddress.ip_address(network)
    except ValueError as exc:
        raise PermError(f"bad address in {word!r}") from exc
    if address.version != version or (length and int(length) > limit):
        raise PermError(f"bad network in {word!r}")
    cidr = int(length) if length else limit
    return Term(word, kind, qualifier, network, cidr if version == 4 else None, cidr if version == 6 else None)


# ---- evaluation -------------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """One check_host() run: the client, the identities and the shared budget."""

    dns: Resolver
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    sender: str
    helo: str
    budget: Budget = field(default_factory=Budget)
    chain: list[str] = field(default_factory=list)

    # -- DNS: an unanswered question is a temperror (RFC 7208 2.6.7) --

    def _query(self, name: str, rdtype: str) -> list[Any]:
        try:
            return self.dns.records(name, rdtype)
        except DnsFailure as exc:
            raise TempError(str(exc)) from exc

    def _txt(self, name: str) -> list[bytes]:
        return [b"".join(r.strings) for r in self._query(name, "TXT")]

    def _addresses(self, name: str, version: int) -> list[str]:
        return [r.address for r in self._query(name, "A" if version == 4 else "AAAA")]

    # -- macros (RFC 7208 7) --

    def expand(self, spec: str, domain: str, exp: bool = False) -> str:
        def one(match: re.Match[str]) -> str:
            if match.group(5):
                return {"%": "%", "_": " ", "-": "%20"}[match.group(5)]
            letter, digits, reverse, delims = match.group(1), match.group(2), match.group(3), match.group(4)
            value = self._macro_value(letter.lower(), domain)
            parts = re.split("[" + re.escape(delims or ".") + "]", value)
            if reverse:
                parts.reverse()
            if digits:
                parts = parts[-int(digits) :]
            text = ".".join(parts)
            # RFC 7208 7.3: an uppercase macro letter means the value is URL-escaped.
            return urllib.parse.quote(text, safe="-._~") if letter.isupper() else text

        return _MACRO.sub(one, spec)

    def _macro_value(self, letter: str, domain: str) -> str:
        local, _, sender_domain = self.sender.rpartition("@")
        if letter == "i" and self.ip.version == 6:
            return ".".join(self.ip.exploded.replace(":", ""))
        simple = {
            "s": self.sender,
            "l": local or "postmaster",
            "o": sender_domain,
            "d": domain,
            "i": str(self.ip),
            "h": self.helo,
            "c": str(self.ip),
            "r": "unknown",
            "t": str(int(time.time())),
            "v": "in-addr" if self.ip.version == 4 else "ip6",
        }
        if letter == "p":
            return self._validated_name(domain, any_name=True) or "unknown"
        return simple[letter]

    def target(self, term: Term, domain: str) -> str:
        """The domain a mechanism or modifier queries, macro-expanded and cut to 253 octets (RFC 7208 7.3)."""
        if term.spec is None:
            return domain
        name = self.expand(term.spec, domain).rstrip(".")
        while len(name) > 253 and "." in name:
            name = name.split(".", 1)[1]
        return name

    # -- check_host --

    def check_host(self, domain: str) -> SpfResult:
        """RFC 7208 4: the policy of ``domain`` applied to the connecting IP."""
        domain = domain.rstrip(".")
        if not valid_domain(domain):
            return self._result("none", None, domain, "not a valid domain name (RFC 7208 4.3)")
        try:
            record = self._fetch(domain)
            if record is None:
                return self._result("none", None, domain, "no SPF record")
            return self._evaluate(parse_record(record), domain)
        except SpfError as exc:
            return self._result(exc.result, None, domain, str(exc))

    def _fetch(self, domain: str) -> str | None:
        records = [t for t in self._txt(domain) if is_spf(t)]
        if len(records) > 1:
            raise PermError(f"{len(records)} SPF records at {domain} (RFC 7208 4.5)")
        return records[0].decode("latin-1") if records else None

    def _evaluate(self, record: Record, domain: str) -> SpfResult:
        for term in record.directives:
            if self._matches(term, domain):
                self.chain.append(f"{domain}: {term.text}")
                result = QUALIFIERS[term.qualifier]
                explanation = self._explain(record, domain) if result == "fail" else None
                return self._result(result, term.text, domain, explanation=explanation)
        if record.redirect is not None:
            self.budget.spend()
            self.chain.append(f"{domain}: {record.redirect.text}")
            target = self.target(record.redirect, domain)
            inner = self.check_host(target)
            if inner.result == "none":  # RFC 7208 6.1: a redirect to nowhere is a permerror
                raise PermError(f"redirect target {target} has no SPF record")
            return inner
        return self._result("neutral", None, domain, "no mechanism matched (default result)")

    def _result(
        self,
        result: str,
        mechanism: str | None,
        domain: str,
        reason: str = "",
        explanation: str | None = None,
    ) -> SpfResult:
        return SpfResult(
            result,
            mechanism,
            domain,
            explanation,
            reason,
            self.budget.lookups,
            self.budget.voids,
            tuple(self.chain),
        )

    def _explain(self, record: Record, domain: str) -> str:
        """RFC 7208 6.2: the exp= text; any problem falls back to the default explanation."""
        if record.exp is None:
            return DEFAULT_EXPLANATION
        try:
            texts = self._txt(self.target(record.exp, domain))
            if len(texts) != 1:
                return DEFAULT_EXPLANATION
            text = texts[0].decode("ascii")
            check_macro_string(text, exp=True)
            return self.expand(text, domain, exp=True)
        except (SpfError, UnicodeDecodeError):
            return DEFAULT_EXPLANATION

    # -- mechanisms (RFC 7208 5) --

    def _matches(self, term: Term, domain: str) -> bool:
        if term.kind == "all":
            return True
        if term.kind in ("ip4", "ip6"):
            return self._in_network(term.spec or "", term.cidr4 if term.kind == "ip4" else term.cidr6)
        self.budget.spend()
        target = self.target(term, domain)
        if term.kind == "include":
            return self._include(target)
        if term.kind == "a":
            return self._match_addresses(self._lookup_addresses(target), term)
        if term.kind == "mx":
            return self._mx(target, term)
        if term.kind == "ptr":
            name = self._validated_name(target)
            return name is not None
        return bool(self._counted(target, "A"))  # exists: any A record, whatever the client's family

    def _include(self, target: str) -> bool:
        inner = self.check_host(target)
        if inner.result == "pass":
            return True
        if inner.result in ("temperror", "permerror"):
            raise (TempError if inner.result == "temperror" else PermError)(inner.reason)
        if inner.result == "none":  # RFC 7208 5.2: include of a domain without a policy is a permerror
            raise PermError(f"include target {target} has no SPF record")
        return False

    def _counted(self, name: str, rdtype: str) -> list[Any]:
        answers = self._query(name, rdtype)
        if not answers:
            self.budget.void()
        return answers

    def _lookup_addresses(self, name: str) -> list[str]:
        return [r.address for r in self._counted(name, "A" if self.ip.version == 4 else "AAAA")]

    def _match_addresses(self, addresses: list[str], term: Term) -> bool:
        length = term.cidr4 if self.ip.version == 4 else term.cidr6
        return any(self._in_network(a, length) for a in addresses)

    def _in_network(self, address: str, length: int | None) -> bool:
        candidate = ipaddress.ip_address(address)
        if candidate.version != self.ip.version:
            return False
        network = ipaddress.ip_network(
            f"{address}/{length if length is not None else candidate.max_prefixlen}", strict=False
        )
        return self.ip in network

    def _mx(self, target: str, term: Term) -> bool:
        exchanges = self._counted(target, "MX")
        if len(exchanges) > MX_PTR_LIMIT:
            raise PermError(f"{target} has more than {MX_PTR_LIMIT} MX records (RFC 7208 4.6.4)")
        for mx in sorted(exchanges, key=lambda r: r.preference):
            name = mx.exchange.to_text(omit_final_dot=True)
            if name and self._match_addresses(self._addresses(name, self.ip.version), term):
                return True
        return False

    def _validated_name(self, target: str, any_name: bool = False) -> str | None:
        """RFC 7208 5.5: a PTR name of the IP whose A/AAAA leads back to it, within ``target``.

        With ``any_name`` (the %{p} macro, RFC 7208 7.3) a name outside ``target`` does too, as a fallback.
        """
        validated = self._validated_names()
        target = target.lower()
        inside = [n for n in validated if n.lower() == target or n.lower().endswith("." + target)]
        if inside:
            return inside[0]
        return validated[0] if any_name and validated else None

    def _validated_names(self) -> list[str]:
        try:
            records = self._query(self.ip.reverse_pointer, "PTR")
        except TempError:
            return []  # 5.5: a failed reverse lookup means no match, not a temperror
        validated = []
        for name in [r.target.to_text(omit_final_dot=True) for r in records][:MX_PTR_LIMIT]:
            try:
                forward = {ipaddress.ip_address(a) for a in self._addresses(name, self.ip.version)}
            except TempError:
                continue  # 5.5: a name whose lookup fails is skipped
            if self.ip in forward:
                validated.append(name)
        return validated


def valid_domain(domain: str) -> bool:
    """RFC 7208 4.3: a fully qualified name of non-empty labels of at most 63 octets."""
    labels = domain.split(".")
    return len(labels) > 1 and len(domain) <= 253 and all(0 < len(label) <= 63 for label in labels)


def split_identity(mail_from: str, helo: str) -> tuple[str, str]:
    """(sender, domain) per RFC 7208 2.4: an empty MAIL FROM is checked as postmaster@HELO."""
    if not mail_from:
        return f"postmaster@{helo}", helo
    local, at, domain = mail_from.rpartition("@")
    if not at:
        return f"postmaster@{mail_from}", mail_from
    return f"{local or 'postmaster'}@{domain}", domain


def check_host(dns: Resolver, ip: str, mail_from: str, helo: str) -> SpfResult:
    """Evaluate the SPF policy of MAIL FROM's domain (or HELO's, for the null sender) for ``ip``."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # RFC 7208 5: an IPv4-mapped client is an IPv4 client
    sender, domain = split_identity(mail_from, helo)
    return Evaluation(dns, address, sender, helo).check_host(domain)
