"""readiness end to end: a real BIND primary with the update key (and a secondary domain), the lab HTTPS
servers (a standby certificate valid for 30 days, one expired), a real sshd as the backup host with one fresh
backup set and one stale, and a team file.

Ready: the right key, the fresh set, the valid standby, a complete team: the run succeeds with nothing open.
Not ready: a wrong secret (BADSIG), the stale set, the expired standby, a role missing: each is an open item
at the end and the run fails; the secret is nowhere in the log. Nothing changes anywhere: the zone's serial
and the backups are as they were.
"""

from __future__ import annotations

import base64
import json
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.bind import BindServer, TsigKey, zone_text
from tests.lab.https import EXPIRED, WWW, WebLab
from tests.lab.sshd import SshServer
from tests.runbooks.operator import audit_records, cli_env, input_args, run_json

ZONE = "example.test."
SECONDARY = "example-status.test."
TEAM = """\
contacts:
  registrar_24x7: {name: Acme Registrar NOC, phone: "+81 3 5555 0100"}
  dpo: {name: Hanako Sato, email: dpo@example.jp}
"""


def backup_set(directory: Path, age_hours: float) -> None:
    directory.mkdir(parents=True)
    src = directory / "src"
    src.mkdir()
    (src / "index.html").write_text("shop build 2026.11\n")
    archive = directory / "site-2026-11-30.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "index.html", arcname="index.html")
    stamp = time.time() - age_hours * 3600
    os.utime(archive, (stamp, stamp))


class Lab:
    def __init__(self, tmp: Path, bind: BindServer, ssh: SshServer, web: WebLab) -> None:
        self.tmp, self.bind, self.ssh, self.web = tmp, bind, ssh, web
        self.fresh, self.stale = tmp / "backups" / "site", tmp / "backups" / "mail"
        backup_set(self.fresh, 3)
        backup_set(self.stale, 24 * 10)
        self.team = tmp / "team.yaml"
        self.team.write_text(TEAM)

    def inputs(self, **changes: Any) -> dict[str, Any]:
        assert self.bind.tsig is not None
        s = self.ssh
        return {
            "backup_host": s.host,
            "backup_port": s.port,
            "backup_user": s.user,
            "ssh_key_file": str(s.key_file),
            "known_hosts": str(s.known_hosts),
            "backup_dirs": [str(self.fresh)],
            "standby_urls": [f"https://{WWW}:{self.web.https_port}/"],
            "standby_address": "127.0.0.1",
            "ca_file": str(self.web.ca_file),
            "dns_primary": self.bind.address,
            "zone": "example.test",
            "tsig_name": self.bind.tsig.name,
            "secondary_domain": "example-status.test",
            "resolvers": [self.bind.address],
            "contact_roles": ["registrar_24x7", "dpo"],
            **changes,
        }

    def env(self, home: Path, secret: str | None = None) -> dict[str, str]:
        assert self.bind.tsig is not None
        return cli_env(home, BREAKGLASS_TSIG_SECRET=secret or self.bind.tsig.secret, BREAKGLASS_TEAM=str(self.team))


@pytest.fixture
def lab(tmp_path: Path, bind_factory: Callable[..., BindServer], sshd: SshServer, web: WebLab) -> Iterator[Lab]:
    key = TsigKey.generate("failover-key.")
    zones = {ZONE: zone_text(ZONE, "www IN A 192.0.2.10", serial=77),
             SECONDARY: zone_text(SECONDARY, "@ IN MX 10 mx1\nmx1 IN A 192.0.2.26\nwww IN A 192.0.2.11", serial=5)}
    yield Lab(tmp_path, bind_factory(zones, tsig=key, update_zones=[ZONE]), sshd, web)


def due(result: Any) -> list[tuple[str, str]]:
    return [(i["step"], i["text"]) for i in result.finished["open"] if i["kind"] == "due"]


def test_everything_ready_ends_with_nothing_open(lab: Lab, bg_home: Path) -> None:
    result = run_json(["run", "readiness", *input_args(lab.inputs(), lab.tmp)], lab.env(bg_home))
    failed = [(e.get("step"), e.get("error")) for e in result.events if e.get("type") == "step.failed"]
    assert result.code == 0, failed
    status = result.steps()
    for step in ("update_key", "secondary_ns", "secondary_mx", "secondary_www", "contacts", "backups[0]",
                 "standby_certs[0]", "ready"):
        assert status[step] == "succeeded", (step, status)
    assert due(result) == []
    assert lab.bind.soa_serial(ZONE) == 77  # a signed question changes nothing
    assert lab.bind.tsig is not None and lab.bind.tsig.secret not in json.dumps(audit_records(lab.env(bg_home)))


def test_what_is_not_ready_is_listed_and_fails_the_run(lab: Lab, bg_home: Path) -> None:
    wrong = base64.b64encode(b"rotated last month, nobody told us").decode()
    inputs = lab.inputs(backup_dirs=[str(lab.fresh), str(lab.stale)],
                        standby_urls=[f"https://{WWW}:{lab.web.https_port}/",
                                      f"https://{EXPIRED}:{lab.web.expired_port}/"],
                        contact_roles=["registrar_24x7", "dpo", "card_acquirer"])
    env = lab.env(bg_home, secret=wrong)
    result = run_json(["run", "readiness", *input_args(inputs, lab.tmp)], env)
    assert result.code == 1, result.stderr
    assert result.finished["status"] == "failed"
    status = result.steps()
    assert status["update_key"] == "failed" and status["backups[0]"] == "succeeded"
    assert status["backups[1]"] == "failed" and status["standby_certs[1]"] == "failed"
    assert status["ready"] == "failed"
    items = due(result)
    texts = [t for _, t in items]
    assert ("contacts", f"add contact 'card_acquirer' to {lab.team}") in items
    assert any(t.startswith(f"DNS update key {lab.bind.tsig.name} at {lab.bind.address}: NOTAUTH BADSIG")  # type: ignore[union-attr]
               for t in texts), texts
    assert f"backup set {lab.stale}: newest site-2026-11-30.tar.gz, 240 h old, 1 files restored; older than 26 h" \
        in texts, texts
    assert f"standby https://{EXPIRED}:{lab.web.expired_port}/: certificate expired; renew it" in texts, texts
    assert not any(str(lab.fresh) + ":" in t or f"{WWW}:" in t for t in texts)  # what is ready is not listed
    assert wrong not in json.dumps(audit_records(env))  # the secret never reaches the log
    assert (lab.stale / "site-2026-11-30.tar.gz").exists() and not list(lab.stale.glob("index.html"))


def test_no_secondary_domain_is_an_open_item(lab: Lab, bg_home: Path) -> None:
    result = run_json(["run", "readiness", *input_args(lab.inputs(secondary_domain=None), lab.tmp)],
                      lab.env(bg_home))
    status = result.steps()
    assert status["secondary_ns"] == "skipped" and status["ready"] == "succeeded"
    assert [t for _, t in due(result)] == ["no secondary domain: keep one at another registrar for the status "
                                           "page and support mail"]


def test_an_update_key_secret_missing_on_this_machine_is_not_ready(lab: Lab, bg_home: Path) -> None:
    env = cli_env(bg_home, BREAKGLASS_TEAM=str(lab.team))  # no $BREAKGLASS_TSIG_SECRET
    result = run_json(["run", "readiness", *input_args(lab.inputs(), lab.tmp)], env)
    assert result.finished["status"] == "failed"
    assert result.steps()["update_key"] == "skipped"
    assert due(result) == [("not_ready", "DNS update key failover-key.: $BREAKGLASS_TSIG_SECRET is not set on "
                                         "this machine")]
