"""The signatures a run's log holds, checked again later and offline: other people's approvals, and the
driving operator's signature over the final chain head (``run --sign``).

The hash chain (``engine.audit``) shows the log was not edited after a head was published; these show who
stood behind it. Both are checked by OpenSSH's ``ssh-keygen -Y verify`` against an allowed_signers file
(``engine.signers``), the same rules the driving process applied (``engine.approvals.judge``), with each
approval judged at the time it was recorded, not now: a gate that timed out an hour later does not void it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine import signers
from engine.approvals import OpenGate, Tally
from engine.audit import canonical, elapsed
from engine.errors import InputError
from engine.events import RecordType
from engine.signers import AllowedSigners, SignatureError

T = RecordType
EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class Checked:
    """One signature in the log, checked again: ``problem`` is "" when it verifies and counts."""

    seq: int
    kind: str  # approval | head
    gate: str
    by: str
    decision: str
    counted: bool  # the driving process counted it (an approval), or it pins the run's head
    fingerprint: str = ""
    problem: str = ""

    @property
    def verified(self) -> bool:
        return not self.problem

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "verified": self.verified}


def unix(ts: str) -> float:
    return elapsed(EPOCH, ts)


def approvals(records: Iterable[Mapping[str, Any]], allowed: AllowedSigners) -> list[Checked]:
    """Every ``approval.signed`` record judged again as it was when recorded: signature, signer, gate, plan."""
    records = list(records)
    counted = {r.get("record") for r in records if r.get("type") == T.APPROVAL_COUNTED}
    tallies: dict[str, Tally] = {}
    out = []
    for rec in records:
        kind = rec.get("type")
        opened = OpenGate.of(rec) if kind == T.GATE_ASKED else None
        if opened is not None:
            tallies[opened.gate] = Tally(opened)
        if kind != T.APPROVAL_SIGNED:
            for each in tallies.values():
                each.feed(rec, allowed)  # closes a tally at its gate's decision
            continue
        seq, gid = int(rec.get("seq", 0)), str(rec.get("gate", ""))
        base = Checked(seq, "approval", gid, str(rec.get("by", "?")), str(rec.get("decision", "?")), seq in counted)
        current = tallies.get(gid)
        verdict = current.feed(rec, allowed, now=unix(str(rec.get("ts", EPOCH)))) if current is not None else None
        if verdict is None:
            out.append(replace(base, problem="no opening of its gate was waiting for it (the gate had closed)"))
        else:
            out.append(replace(base, fingerprint=verdict.fingerprint, problem=verdict.problem))
    return out


def head_payload(run: str, head: str, signer: str) -> bytes:
    """The exact bytes the driving operator signs at the end of a run."""
    return canonical({"namespace": signers.NAMESPACE, "v": 1, "kind": "head", "run": run, "head": head,
                      "signer": signer})


def sign_head(run: str, head: str, operator: str, key_file: Path | None = None) -> dict[str, Any]:
    """The ``head.signed`` record's data: the operator's signature over ``head`` by ``key_file`` or the agent.

    ``by`` is the operator's name in the team's allowed_signers file when one is configured (so ``audit
    verify --signers`` knows whose key to expect), else the operator as ``--operator`` named them."""
    keys = signers.own_keys(key_file)
    if not keys:
        raise SignatureError("--sign: no key to sign with: no ssh-agent key and no ~/.ssh/id_ed25519; "
                             "give one with --key FILE")
    try:
        names = signers.load().names_of(set(keys[:1]))
    except InputError:  # no team signers file here: the head is still signed, as the operator
        names = set()
    by = sorted(names)[0] if names else operator
    body = head_payload(run, head, by)
    return {"head": head, "by": by, "fingerprint": signers.fingerprint(keys[0]), "payload": body.decode(),
            "signature": signers.sign(body, key_file)}


def heads(records: Iterable[Mapping[str, Any]], allowed: AllowedSigners | None) -> list[Checked]:
    """Every ``head.signed`` record: it signs the record just before it, for this run, by a listed key."""
    out = []
    previous: Mapping[str, Any] = {}
    for rec in records:
        if rec.get("type") == T.HEAD_SIGNED:
            out.append(_head(rec, previous, allowed))
        previous = rec
    return out


def _head(rec: Mapping[str, Any], previous: Mapping[str, Any], allowed: AllowedSigners | None) -> Checked:
    by = str(rec.get("by", "?"))
    base = Checked(int(rec.get("seq", 0)), "head", "", by, "sign", True, str(rec.get("fingerprint", "")))
    try:
        data = json.loads(str(rec.get("payload", "")))
    except ValueError:
        data = None
    expected = json.loads(head_payload(str(rec.get("run", "")), str(previous.get("hash", "")), by))
    if data != expected or rec.get("head") != previous.get("hash"):
        return replace(base, problem="it does not sign the chain head before it (a head.signed moved or edited)")
    if allowed is None:
        return replace(base, problem="not checked: give the team's allowed_signers with --signers FILE")
    try:
        fp = signers.verify(allowed, by, str(rec["payload"]).encode(), str(rec.get("signature", "")))
    except SignatureError as exc:
        return replace(base, problem=str(exc))
    return replace(base, fingerprint=fp)


def check(records: Iterable[Mapping[str, Any]], allowed: AllowedSigners) -> list[Checked]:
    """Every signature in one run's log, checked again offline, in log order."""
    records = list(records)
    return sorted(approvals(records, allowed) + heads(records, allowed), key=lambda c: c.seq)


def failures(checked: Iterable[Checked]) -> list[Checked]:
    """What makes ``audit verify --signers`` fail: an approval the driver counted, or a signed head, that does
    not verify now. An approval the driver itself refused (and said so in the log) is no failure."""
    return [c for c in checked if c.problem and c.counted]
