"""Who may sign approvals, and SSH signatures made and checked by OpenSSH's own ``ssh-keygen -Y``.

The team's ``allowed_signers`` file (the format git and OpenSSH use) names each person and their key; groups
are extra principals written ``@group`` on a person's line::

    alice,@dns-oncall ssh-ed25519 AAAA...
    bob,@dns-oncall,@mail ssh-ed25519 AAAA...

Its location comes from the team's configuration (``BREAKGLASS_ALLOWED_SIGNERS``), never from a runbook: a
runbook that named its own signers could approve itself.

Why ``ssh-keygen`` and not a Python library (``sshsig``): OpenSSH is the reference implementation of the
SSHSIG format and of ``allowed_signers`` (options, ``valid-before``, ``cert-authority``, every key type
including FIDO keys), it is already installed wherever engineers have SSH keys, it signs through the
ssh-agent, and it gets security fixes with the OS. A library would be one more parser of hostile bytes to
trust. The cost is a process per signature checked (a few ms), paid at a gate where people take seconds.
This module parses only the allowed_signers file (to expand groups and to know whose key is whose);
signatures themselves are only ever read by ``ssh-keygen``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputError

NAMESPACE = "breakglass"  # a signature made for git or for a file cannot be passed off as an approval
ENV = "BREAKGLASS_ALLOWED_SIGNERS"
_WILDCARD = re.compile(r"[*?!]")
_GOOD = re.compile(r'^Good "[^"]*" signature for (?P<who>\S+) with \S+ key (?P<fp>SHA256:\S+)')


class SignatureError(InputError):
    """A signature that does not verify, or a key that cannot sign."""


@dataclass(frozen=True)
class Signer:
    name: str
    groups: frozenset[str]
    key: str  # "type base64", compared to the keys an operator holds
    fingerprint: str


@dataclass(frozen=True)
class AllowedSigners:
    path: Path
    signers: tuple[Signer, ...]

    def expand(self, approvers: list[str]) -> set[str]:
        """The people named by ``approvers`` (names and @groups)."""
        names = {a for a in approvers if not a.startswith("@")}
        groups = {a for a in approvers if a.startswith("@")}
        return {s.name for s in self.signers if s.name in names or s.groups & groups}

    def names_of(self, keys: set[str]) -> set[str]:
        """The people whose listed key is one of ``keys``."""
        return {s.name for s in self.signers if s.key in keys}

    def fingerprints_of(self, keys: set[str]) -> set[str]:
        return {s.fingerprint for s in self.signers if s.key in keys}


def fingerprint(key: str) -> str:
    """OpenSSH's SHA256 fingerprint of a "type base64" public key."""
    blob = base64.b64decode(key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def signers_path() -> Path:
    value = os.environ.get(ENV, "").strip()
    if not value:
        raise InputError(f"this gate needs other people's signed approvals, but ${ENV} does not name the team's "
                         "allowed_signers file (one line per person: 'name,@group ssh-ed25519 AAAA...')")
    return Path(value).expanduser()


def load(path: Path | None = None) -> AllowedSigners:
    """Read an allowed_signers file; a line breakglass cannot attribute to one named person is refused."""
    path = path or signers_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the allowed_signers file ({exc.__class__.__name__})") from None
    signers = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        principals = fields[0].split(",")
        # The key is the last "type base64" pair: options (namespaces=..., valid-before=...) may sit between.
        key_at = next((i for i in range(1, len(fields) - 1) if fields[i].startswith(("ssh-", "ecdsa-", "sk-"))),
                      None)
        people = [p for p in principals if not p.startswith("@")]
        if key_at is None or len(people) != 1 or any(_WILDCARD.search(p) for p in principals):
            raise InputError(f"{path}:{n}:1: each line must name one person (plus optional @groups) and a key, "
                             "without wildcards: 'alice,@dns-oncall ssh-ed25519 AAAA...'")
        key = f"{fields[key_at]} {fields[key_at + 1]}"
        try:
            fp = fingerprint(key)
        except (ValueError, IndexError):
            raise InputError(f"{path}:{n}:1: the key is not valid base64") from None
        signers.append(Signer(people[0], frozenset(p for p in principals if p.startswith("@")), key, fp))
    return AllowedSigners(path, tuple(signers))


def public_key_of(key_file: Path) -> str:
    """The "type base64" public key of a key file (its .pub beside it, else derived by ssh-keygen)."""
    pub = key_file if key_file.suffix == ".pub" else key_file.with_name(key_file.name + ".pub")
    if pub.exists():
        text = pub.read_text(encoding="utf-8").split()
    else:
        out = _ssh_keygen(["-y", "-f", str(key_file)], b"", what=f"read the key {key_file}")
        text = out.decode().split()
    if len(text) < 2:
        raise SignatureError(f"{pub}: not an OpenSSH public key")
    return f"{text[0]} {text[1]}"


def agent_keys() -> list[str]:
    """Public keys the ssh-agent holds ("type base64"), first the one it lists first; [] without an agent."""
    if not os.environ.get("SSH_AUTH_SOCK"):
        return []
    try:
        done = subprocess.run(["ssh-add", "-L"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return [" ".join(line.split()[:2]) for line in done.stdout.decode().splitlines() if len(line.split()) >= 2]


def own_keys(key_file: Path | None = None) -> list[str]:
    """The keys this person signs with: ``key_file`` when given, else the ssh-agent's, else ~/.ssh/id_ed25519."""
    if key_file is not None:
        return [public_key_of(key_file)]
    keys = agent_keys()
    default = Path.home() / ".ssh" / "id_ed25519"
    if default.exists():
        keys.append(public_key_of(default))
    return keys


def sign(payload: bytes, key_file: Path | None = None) -> str:
    """An armored SSH signature of ``payload`` in the breakglass namespace, by ``key_file`` or the agent."""
    with tempfile.TemporaryDirectory(prefix="breakglass-sign-") as tmp:
        if key_file is None:
            agent = agent_keys()
            default = Path.home() / ".ssh" / "id_ed25519"
            if agent:  # ssh-keygen signs with the agent's private key when given only the public half
                key_file = Path(tmp) / "agent.pub"
                key_file.write_text(agent[0] + "\n", encoding="utf-8")
            elif default.exists():
                key_file = default
            else:
                raise SignatureError("no key to sign with: no ssh-agent key and no ~/.ssh/id_ed25519; "
                                     "give one with --key FILE")
        out = _ssh_keygen(["-Y", "sign", "-f", str(key_file), "-n", NAMESPACE], payload,
                          what=f"sign with {key_file}")
    return out.decode()


def verify(signers: AllowedSigners, name: str, payload: bytes, signature: str) -> str:
    """The fingerprint of the key that signed, when ``signature`` is ``name``'s over ``payload``; else
    ``SignatureError`` (an unknown key, another person's key, another namespace, altered bytes)."""
    with tempfile.TemporaryDirectory(prefix="breakglass-verify-") as tmp:
        sig = Path(tmp) / "approval.sig"
        sig.write_text(signature, encoding="utf-8")
        try:
            done = subprocess.run(
                ["ssh-keygen", "-Y", "verify", "-f", str(signers.path), "-I", name, "-n", NAMESPACE, "-s", str(sig)],
                input=payload, capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SignatureError(f"ssh-keygen could not check the signature ({exc.__class__.__name__})") from None
    match = _GOOD.match(done.stdout.decode(errors="replace"))
    if done.returncode != 0 or match is None or match["who"] != name:
        raise SignatureError(f"the signature is not by a key {signers.path} lists for '{name}' (unknown key?)")
    return match["fp"]


def _ssh_keygen(args: list[str], stdin: bytes, what: str) -> bytes:
    try:
        done = subprocess.run(["ssh-keygen", *args], input=stdin, capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SignatureError(f"could not {what}: {exc.__class__.__name__}") from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise SignatureError(f"could not {what}: {said[-1] if said else 'ssh-keygen failed'}")
    return done.stdout
