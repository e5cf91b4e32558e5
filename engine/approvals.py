"""Other people's approvals at a gate: what they sign, and which signatures count.

An approval is an SSH signature (``engine.signers``) over a canonical payload: the run, the gate, the plan
digest shown at the gate, the chain head when the gate opened (the hash of its ``gate.asked`` record), the
decision, the signer and a time. Binding the head makes each signature good for one opening of one gate:
replayed into another run, another gate, a later opening (after a resume, or a plan that changed), it does
not count. ``judge`` is the one place the rules live: the driving process applies them to every
``approval.signed`` record it reads, ``breakglass approve`` applies them before appending (to refuse
early, with the reason), and ``audit verify --signers`` applies the signature part again, offline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import signers
from engine.audit import canonical
from engine.errors import GateRefused
from engine.events import DECISIONS, RecordType
from engine.signers import AllowedSigners, SignatureError
from engine.store.base import RunStore

T = RecordType
APPROVE, DENY = "approve", "deny"


class GateClosed(GateRefused):
    """An answer that would not count: the gate is not open, or the signature would be refused."""


def payload(run: str, gate: str, digest: str, head: str, decision: str, signer: str, reason: str = "",
            ts: float | None = None) -> bytes:
    """The exact bytes an approver signs."""
    return canonical({"namespace": signers.NAMESPACE, "v": 1, "run": run, "gate": gate, "digest": digest,
                      "head": head, "decision": decision, "signer": signer, "reason": reason,
                      "ts": round(time.time() if ts is None else ts, 3)})


@dataclass(frozen=True)
class OpenGate:
    """A gate waiting for other people, as its ``gate.asked`` record describes it."""

    run: str
    step: str
    gate: str
    digest: str
    head: str  # the hash of the gate.asked record: the chain head once the gate opened
    seq: int
    needed: int
    approvers: tuple[str, ...]  # as the runbook wrote them
    eligible: frozenset[str]  # those names and groups, expanded when the gate opened
    deadline: float | None  # unix time
    operator: str
    operator_names: frozenset[str]  # the operator's own names in allowed_signers: never approvers of this gate
    operator_keys: frozenset[str]  # fingerprints
    shown: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""
    scripted: bool = False  # a drill's: its approvers are a scenario's script, nobody can answer it

    @classmethod
    def of(cls, rec: Mapping[str, Any]) -> OpenGate | None:
        others = rec.get("others")
        if rec.get("type") != T.GATE_ASKED or not isinstance(others, dict):
            return None
        return cls(str(rec["run"]), str(rec["step"]), str(rec["gate"]), str(rec["digest"]), str(rec["hash"]),
                   int(rec["seq"]), int(others["needed"]), tuple(others["approvers"]),
                   frozenset(others["eligible"]), others.get("deadline"), str(others["operator"]),
                   frozenset(others["operator_names"]), frozenset(others["operator_keys"]),
                   rec.get("shown") or {}, str(rec.get("message", "")), bool(others.get("scripted")))


@dataclass(frozen=True)
class Judgement:
    by: str
    decision: str  # approve | deny
    fingerprint: str = ""
    problem: str = ""  # why it does not count; "" when it does
    reason: str = ""  # a denial's reason


def judge(rec: Mapping[str, Any], gate: OpenGate, allowed: AllowedSigners, counted: Iterable[Judgement] = (),
          now: float | None = None) -> Judgement:
    """Whether one ``approval.signed`` record counts at ``gate``, given the approvals already counted."""
    by = str(rec.get("by", "?"))
    try:
        data = json.loads(str(rec.get("payload", "")))
    except ValueError:
        return Judgement(by, "?", problem="its payload is not JSON")
    if not isinstance(data, dict):
        return Judgement(by, "?", problem="its payload is not an object")
    decision = str(data.get("decision"))
    fail = _mismatch(data, rec, gate, now)
    if fail:
        return Judgement(by, decision, problem=fail)
    try:
        fp = signers.verify(allowed, by, str(rec.get("payload")).encode(), str(rec.get("signature", "")))
    except SignatureError as exc:
        return Judgement(by, decision, problem=str(exc))
    if by in gate.operator_names or fp in gate.operator_keys:
        return Judgement(by, decision, fp, f"{by} drives this run: the operator cannot approve their own gate")
    if by not in gate.eligible:
        return Judgement(by, decision, fp, f"{by} is not among this step's approvers ({', '.join(gate.approvers)})")
    for seen in counted:
        if seen.by == by or seen.fingerprint == fp:
            return Judgement(by, decision, fp, f"{by} already answered this gate: one person counts once")
    return Judgement(by, decision, fp, reason=str(data.get("reason", "")))


def _mismatch(data: Mapping[str, Any], rec: Mapping[str, Any], gate: OpenGate, now: float | None) -> str:
    if data.get("namespace") != signers.NAMESPACE or data.get("v") != 1:
        return "its payload is not a breakglass approval"
    if data.get("signer") != rec.get("by"):
        return f"signed as '{data.get('signer')}' but recorded as by '{rec.get('by')}'"
    if data.get("decision") not in (APPROVE, DENY):
        return f"unknown decision '{data.get('decision')}'"
    if data.get("run") != gate.run:
        return "signed for another run (a replayed approval)"
    if data.get("gate") != gate.gate:
        return f"signed for another gate ('{data.get('gate')}')"
    if data.get("digest") != gate.digest:
        return "signed over another plan (its digest is not the one shown at this gate)"
    if data.get("head") != gate.head:
        return "signed at another opening of this gate (a stale chain head: replayed, or the plan changed)"
    if gate.deadline is not None and (time.time() if now is None else now) > gate.deadline:
        return "arrived after the gate's timeout"
    return ""


@dataclass
class Tally:
    """What other people said at one opening of a gate, from the records after its ``gate.asked``."""

    gate: OpenGate
    approved: list[Judgement] = field(default_factory=list)
    denied: Judgement | None = None
    rejected: list[tuple[int, Judgement]] = field(default_factory=list)
    closed: bool = False  # the gate was decided (approved, refused or timed out)
    judged: set[int] = field(default_factory=set)  # seqs of approval records already judged

    @property
    def missing(self) -> int:
        return max(0, self.gate.needed - len(self.approved))

    def feed(self, rec: Mapping[str, Any], allowed: AllowedSigners, now: float | None = None) -> Judgement | None:
        """Judge one more record (once); the judgement of an approval record, else None."""
        seq = int(rec.get("seq", 0))
        if seq <= self.gate.seq or seq in self.judged:
            return None
        if rec.get("type") in DECISIONS and rec.get("gate") == self.gate.gate:
            self.closed = True
            return None
        if rec.get("type") != T.APPROVAL_SIGNED or rec.get("gate") != self.gate.gate or self.closed:
            return None
        self.judged.add(seq)
        verdict = judge(rec, self.gate, allowed, self.approved, now)
        if verdict.problem:
            self.rejected.append((seq, verdict))
        elif verdict.decision == DENY:
            self.denied = verdict
        else:
            self.approved.append(verdict)
        return verdict


def open_gates(records: Iterable[Mapping[str, Any]]) -> list[OpenGate]:
    """The gates of one run still waiting for other people: asked, and neither decided nor asked again."""
    waiting: dict[str, OpenGate] = {}
    for rec in records:
        kind = rec.get("type")
        if kind == T.GATE_ASKED:
            waiting.pop(str(rec.get("gate")), None)
            gate = OpenGate.of(rec)
            if gate is not None:
                waiting[gate.gate] = gate
        elif kind in DECISIONS or kind in (T.RUN_FINISHED, T.RUN_RESUMED):
            if kind in DECISIONS:
                waiting.pop(str(rec.get("gate")), None)
            else:
                waiting.clear()
    return list(waiting.values())


def pending(store: RunStore) -> list[dict[str, Any]]:
    """Every gate, in every run being driven now, that waits for other people: what ``pending`` lists."""
    rows = []
    now = time.time()
    for run in store.list_runs():
        if run.status != "running":
            continue
        records = [r.to_dict() for r in store.records(run.id)]
        for gate in open_gates(records):
            if gate.scripted or (gate.deadline is not None and now > gate.deadline):
                continue
            got = sum(1 for r in records if r.get("type") == T.APPROVAL_COUNTED and r.get("gate") == gate.gate
                      and int(r.get("seq", 0)) > gate.seq)
            rows.append({"run": gate.run, "step": gate.step, "gate": gate.gate, "message": gate.message,
                         "plan": gate.shown.get("plan"), "digest": gate.digest, "approvers": list(gate.approvers),
                         "needed": gate.needed, "missing": max(0, gate.needed - got), "operator": gate.operator,
                         "seconds_left": None if gate.deadline is None else round(gate.deadline - now, 1)})
    return rows


def find_open(store: RunStore, run_ref: str, gate_id: str) -> tuple[str, OpenGate, list[dict[str, Any]]]:
    """The open gate ``gate_id`` of a run, or advice why there is none to answer."""
    run_id = store.resolve(run_ref)
    records = [r.to_dict() for r in store.records(run_id)]
    gate = next((g for g in open_gates(records) if g.gate == gate_id and not g.scripted), None)
    if gate is None or not store.is_driven(run_id):
        raise GateClosed(f"gate '{gate_id}' of run {run_id} is not waiting for approvals (never opened, already "
                         "decided, or the run is not being driven); `breakglass pending` lists open gates")
    if gate.deadline is not None and time.time() > gate.deadline:
        raise GateClosed(f"gate '{gate_id}' of run {run_id} timed out: an approval now would come too late")
    return run_id, gate, records


def answer(store: RunStore, run_ref: str, gate_id: str, decision: str, key_file: Path | None = None,
           reason: str = "", digest: str | None = None) -> dict[str, Any]:
    """Sign and record one person's answer at an open gate, after checking it would count (the driving
    process checks again: the store is not the authority, the signature is)."""
    allowed = signers.load()
    run_id, gate, records = find_open(store, run_ref, gate_id)
    if digest is not None and digest != gate.digest:
        raise GateClosed(f"the plan at gate '{gate_id}' is not the one you saw (digest {digest[:16]}..., now "
                         f"{gate.digest[:16]}...); look again with `breakglass pending`")
    keys = signers.own_keys(key_file)
    names = allowed.names_of(set(keys[:1]))
    if not names:
        raise SignatureError(f"your key is not in {allowed.path}: ask whoever keeps the team's signers to add it")
    who = sorted(names)[0]
    body = payload(run_id, gate_id, gate.digest, gate.head, decision, who, reason)
    rec = {"type": T.APPROVAL_SIGNED, "seq": gate.seq + 1, "by": who, "payload": body.decode(),
           "signature": signers.sign(body, key_file)}
    tally = Tally(gate)
    for earlier in records:
        tally.feed(earlier, allowed)
    verdict = judge(rec, gate, allowed, tally.approved)
    if verdict.problem:
        raise GateClosed(f"not recorded: {verdict.problem}")
    mode = str(records[0].get("mode", "live")) if records else "live"
    writer = store.writer(run_id, {"run": run_id, "mode": mode})
    try:
        return writer.append(T.APPROVAL_SIGNED, {"step": gate.step, "gate": gate_id, "by": who,
                                                 "decision": decision, "payload": body.decode(),
                                                 "signature": rec["signature"]})
    finally:
        writer.close()
