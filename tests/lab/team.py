"""A team for four-eyes gates: each person's own HOME with a key made by ssh-keygen, and the team's
allowed_signers file. oscar drives; alice and bob are @oncall; carol is known but not on call; mallory is
nobody. On the file store everyone shares one BREAKGLASS_HOME (one bastion); with a PostgreSQL URL each has
their own (different machines sharing only the database)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.store import FileStore, RunStore, open_store

BG = str(Path(sys.executable).with_name("breakglass"))
RUNBOOK = """\
id: four-eyes
title: Change something with two other people's approval
steps:
  - id: change
    title: Change something
    action: shell.run
    with: {{argv: ["true"]}}
    confirm: {{message: "change it?", approvals: {needed}, approvers: ["@oncall"], timeout: {timeout}}}
"""


@dataclass
class Team:
    root: Path
    store_home: Path
    signers_file: Path
    runbook: Path
    store_url: str = ""  # PostgreSQL: every person on their own machine, sharing only the database

    def store(self) -> RunStore:
        return open_store(self.store_url) if self.store_url else FileStore(self.store_home)

    def key(self, who: str) -> Path:
        return self.root / who / ".ssh" / "id_ed25519"

    def env(self, who: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}  # no agent: each uses their key
        env.update(HOME=str(self.root / who), BREAKGLASS_HOME=str(self.store_home),
                   BREAKGLASS_ALLOWED_SIGNERS=str(self.signers_file), NO_COLOR="1")
        if self.store_url:
            env.update(BREAKGLASS_HOME=str(self.root / who / "breakglass"), BREAKGLASS_STORE=self.store_url)
        return env

    def bg(self, who: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BG, *args], env=self.env(who), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)

    def write_runbook(self, needed: int = 2, timeout: float = 30) -> None:
        self.runbook.write_text(RUNBOOK.format(needed=needed, timeout=timeout), encoding="utf-8")


def _keygen(path: Path) -> str:
    path.parent.mkdir(parents=True, mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.parent.parent.name, "-f", str(path)],
                   check=True, timeout=30)
    return " ".join(path.with_name("id_ed25519.pub").read_text().split()[:2])


def make_team(root: Path, store_url: str = "") -> Team:
    t = Team(root, root / "shared-home", root / "allowed_signers", root / "four-eyes.yaml", store_url)
    keys = {who: _keygen(t.key(who)) for who in ("oscar", "alice", "bob", "carol", "mallory")}
    # oscar drives; alice and bob are on call; carol is known but not on call; mallory is nobody.
    t.signers_file.write_text(f"oscar {keys['oscar']}\nalice,@oncall {keys['alice']}\n"
                              f"bob,@oncall {keys['bob']}\ncarol {keys['carol']}\n", encoding="utf-8")
    t.write_runbook()
    return t


