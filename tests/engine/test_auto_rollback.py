"""`rollback: auto` against a real BIND primary: the undo dns.update builds from what its step recorded puts
back the RRset and its TTL (a name that did not exist is removed again), live, after a resume, and planned
only in a dry-run; ssh.upload's puts back the file it moved aside, against a real sshd. Driven through the
CLI, as an operator would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lab.bind import BindServer, TsigKey, zone_text
from tests.lab.sshd import SshServer
from tests.runbooks.operator import audit_records, cli_env, run_json

ZONE = "example.test."
RUNBOOK = """
id: auto-undo
title: Two changes, then a check that fails
inputs:
  server: {type: string}
  tsig_name: {type: string}
  tsig_secret: {type: secret, env: BREAKGLASS_TSIG_SECRET}
  healthy: {type: boolean, default: false}
defaults:
  dns.update: {server: "{{ inputs.server }}", zone: example.test, tsig_name: "{{ inputs.tsig_name }}",
               tsig_secret: "{{ inputs.tsig_secret }}"}
steps:
  - id: make
    title: Create a name that did not exist
    action: dns.update
    with: {name: new.example.test, records: [203.0.113.5], ttl: 120}
    rollback: auto
  - id: switch
    title: Point www elsewhere with a short TTL
    action: dns.update
    with: {name: www.example.test, records: [198.51.100.7], ttl: 60}
    rollback: auto
  - id: check
    title: The check after the change
    action: assert
    with: {that: "{{ inputs.healthy }}", message: the site is not healthy after the change}
    on_failure: rollback
"""


@pytest.fixture
def primary(bind_factory: Callable[..., BindServer]) -> BindServer:
    key = TsigKey.generate("undo-key.")
    return bind_factory({ZONE: zone_text(ZONE, "www IN A 192.0.2.10\n", serial=7, ttl=300)}, tsig=key,
                        update_zones=[ZONE])


@pytest.fixture
def runbook(tmp_path: Path) -> Path:
    path = tmp_path / "auto-undo.yaml"
    path.write_text(RUNBOOK)
    return path


def rrset(server: BindServer, name: str) -> tuple[list[str], int | None]:
    import dns.message
    import dns.query

    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=server.port, timeout=2)
    found = [r for r in reply.answer if r.rdtype == 1]
    return sorted(rd.address for r in found for rd in r), (found[0].ttl if found else None)


def args(server: BindServer, runbook: Path, *more: str) -> list[str]:
    assert server.tsig is not None
    return ["run", str(runbook), "-i", f"server={server.address}", "-i", f"tsig_name={server.tsig.name}", *more]


def env(server: BindServer, home: Path) -> dict[str, str]:
    assert server.tsig is not None
    return cli_env(home, BREAKGLASS_TSIG_SECRET=server.tsig.secret)


def test_live_failure_puts_back_records_and_ttl(primary: BindServer, runbook: Path, bg_home: Path) -> None:
    result = run_json(args(primary, runbook, "--approve", "make", "--approve", "switch", "--approve",
                           "make.rollback", "--approve", "switch.rollback"), env(primary, bg_home))
    assert result.code == 1, result.stderr
    assert result.finished["status"] == "rolled_back"
    assert rrset(primary, "www.example.test.") == (["192.0.2.10"], 300)
    assert rrset(primary, "new.example.test.") == ([], None), "a name the step created is removed again"
    undos = [e for e in result.events if e["type"] == "rollback.started"]
    assert [e["step"] for e in undos] == ["switch", "make"]
    assert undos[0]["action"] == "dns.update" and undos[0]["args"]["records"] == ["192.0.2.10"]
    assert undos[0]["args"]["ttl"] == 300 and undos[0]["args"]["tsig_secret"] == "***"
    assert primary.tsig is not None
    assert all(primary.tsig.secret not in str(e) for e in audit_records(env(primary, bg_home)))


def test_dry_run_plans_and_changes_nothing(primary: BindServer, runbook: Path, bg_home: Path) -> None:
    result = run_json(args(primary, runbook, "--approve", "make", "--approve", "switch", "--approve",
                           "make.rollback", "--approve", "switch.rollback", "--dry-run"), env(primary, bg_home))
    assert result.code == 1, result.stderr
    assert rrset(primary, "www.example.test.") == (["192.0.2.10"], 300), "a dry-run changes nothing"
    skipped = [e for e in result.events if e["type"] == "rollback.skipped"]
    assert skipped == [], "a dry-run's steps were only planned: nothing succeeded, so nothing is undone"
    assert result.steps()["switch"] == "planned" and result.steps()["check"] == "failed"


def test_auto_undo_after_a_resume(primary: BindServer, runbook: Path, bg_home: Path) -> None:
    """The undo reads what its step recorded in the first drive of the run: the log, not memory."""
    first = run_json(args(primary, runbook, "--approve", "make"), env(primary, bg_home))
    assert first.code == 3, first.stderr  # no terminal: the gate of `switch` says no
    assert rrset(primary, "new.example.test.") == (["203.0.113.5"], 120)
    run_id = first.events[0]["run"]
    resumed = run_json(["resume", run_id, "--approve", "switch", "--approve", "switch.rollback", "--approve",
                        "make.rollback"], env(primary, bg_home))
    assert resumed.code == 1, resumed.stderr
    assert resumed.finished["status"] == "rolled_back"
    assert rrset(primary, "www.example.test.") == (["192.0.2.10"], 300)
    assert rrset(primary, "new.example.test.") == ([], None)


def test_ssh_upload_auto_rollback_puts_the_replaced_file_back(sshd: SshServer, tmp_path: Path,
                                                              bg_home: Path) -> None:
    """Against a real sshd: the upload moved the old file aside (keep_copy), the check after it fails, and
    the undo ssh.upload builds from its recorded `undo` puts the old file back and removes the new one."""
    import json

    remote = sshd.root / "auto-undo"
    remote.mkdir()
    (remote / "index.html").write_text("the old page")
    src = tmp_path / "site"
    src.mkdir()
    (src / "index.html").write_text("the new page")
    (src / "extra.css").write_text("body{}")
    conn = json.dumps(sshd.params(local=str(src), remote=str(remote), keep_copy=True))
    path = tmp_path / "publish.yaml"
    path.write_text(f"""
id: publish
title: Publish, check, undo
steps:
  - id: upload
    title: Upload the new site
    action: ssh.upload
    with: {conn}
    rollback: auto
  - id: check
    title: The check after it
    action: assert
    with: {{that: false, message: the new site is broken}}
    on_failure: rollback
""")
    result = run_json(["run", str(path), "--approve", "upload", "--approve", "upload.rollback"], cli_env(bg_home))
    assert result.code == 1, result.stderr
    assert result.finished["status"] == "rolled_back"
    assert (remote / "index.html").read_text() == "the old page"
    assert sorted(p.name for p in remote.iterdir()) == ["index.html"]
    undo = next(e for e in result.events if e["type"] == "rollback.succeeded")
    assert undo["output"]["restored"] == [f"{remote}/index.html"]


LOOPED = """
id: auto-undo-loop
title: One change per name, then a check that fails
inputs:
  server: {type: string}
  tsig_name: {type: string}
  tsig_secret: {type: secret, env: BREAKGLASS_TSIG_SECRET}
defaults:
  dns.update: {server: "{{ inputs.server }}", zone: example.test, tsig_name: "{{ inputs.tsig_name }}",
               tsig_secret: "{{ inputs.tsig_secret }}"}
steps:
  - id: point
    title: Point each name at the standby
    for_each: {www: 198.51.100.7, new: 203.0.113.5}
    action: dns.update
    with: {name: "{{ item_key }}.example.test", records: ["{{ item }}"], ttl: 60}
    rollback: auto
  - id: check
    title: The check after the change
    action: assert
    with: {that: "false", message: the site is not healthy after the change}
    on_failure: rollback
"""


def test_a_looped_update_undoes_each_item_from_its_own_output(primary: BindServer, tmp_path: Path,
                                                               bg_home: Path) -> None:
    path = tmp_path / "auto-undo-loop.yaml"
    path.write_text(LOOPED)
    result = run_json(args(primary, path, "--approve", "point", "--approve", "point.rollback"),
                      env(primary, bg_home))
    assert result.code == 1, result.stderr
    assert result.finished["status"] == "rolled_back"
    undos = [e for e in result.events if e["type"] == "rollback.started"]
    assert [e["step"] for e in undos] == ["point[new]", "point[www]"]
    assert undos[1]["args"]["records"] == ["192.0.2.10"] and undos[1]["args"]["ttl"] == 300
    assert rrset(primary, "www.example.test.") == (["192.0.2.10"], 300)
    assert rrset(primary, "new.example.test.") == ([], None), "the name the item created is removed again"
