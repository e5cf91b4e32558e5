"""Tampering with an audit log: `breakglass audit verify` fails (exit 6) and names the line."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from engine import audit
from engine.console import NullReporter
from engine.loader import load_text
from engine.session import RunOptions, start
from engine.store import FileStore

BG = shutil.which("breakglass") or "breakglass"

RUNBOOK = """
id: tamper
title: a short run to tamper with
steps:
  - id: probe
    title: read
    action: shell.run
    with: {argv: [echo, hello], read_only: true}
  - id: change
    title: a change
    action: shell.run
    with: {argv: [/bin/true]}
  - id: note
    title: a note
    action: log.note
    with: {text: all done}
"""


@pytest.fixture
def run(bg_home: Path, tmp_path: Path) -> tuple[str, Path, str]:
    """A finished run: its id, its log and its published head."""
    loaded = load_text(RUNBOOK, str(tmp_path / "tamper.yaml"))
    store = FileStore(bg_home)
    opts = RunOptions(operator="t", approvals=frozenset({"change"}))
    outcome = start(loaded, {}, opts, NullReporter(), store=store)
    assert outcome.status == "succeeded"
    path = store.log_path(outcome.run_id)
    assert len(path.read_bytes().splitlines()) >= 10
    return outcome.run_id, path, outcome.head


def verify(run_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BG, "audit", "verify", run_id, *extra], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, check=False)


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write(path: Path, rows: list[bytes]) -> None:
    path.write_bytes(b"".join(rows))


def assert_fails_at(run_id: str, line: int, words: str, *extra: str) -> None:
    proc = verify(run_id, *extra)
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert f"line {line}:" in proc.stderr and words in proc.stderr, proc.stderr
    assert "ok:" not in proc.stdout


def test_untouched_log_verifies_with_its_head(run: tuple[str, Path, str]) -> None:
    run_id, _, head = run
    proc = verify(run_id, "--head", head)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok:") and head in proc.stdout


def test_flipped_byte_inside_a_value(run: tuple[str, Path, str]) -> None:
    run_id, path, _ = run
    rows = lines(path)
    rows[4] = rows[4].replace(b'"change"', b'"chanGe"', 1)  # still valid JSON: only the hash can tell
    assert json.loads(rows[4])
    write(path, rows)
    assert_fails_at(run_id, 5, "does not match its hash")


def test_flipped_bit_anywhere(run: tuple[str, Path, str]) -> None:
    run_id, path, _ = run
    data = bytearray(path.read_bytes())
    start_of_7 = sum(len(r) for r in lines(path)[:6])
    data[start_of_7 + 5] ^= 0x01
    path.write_bytes(bytes(data))
    assert_fails_at(run_id, 7, "")


def test_deleted_line(run: tuple[str, Path, str]) -> None:
    run_id, path, _ = run
    rows = lines(path)
    del rows[3]
    write(path, rows)
    assert_fails_at(run_id, 4, "does not follow the previous line")


def test_swapped_lines(run: tuple[str, Path, str]) -> None:
    run_id, path, _ = run
    rows = lines(path)
    rows[5], rows[6] = rows[6], rows[5]
    write(path, rows)
    assert_fails_at(run_id, 6, "does not follow the previous line")
    assert "sequence number" in verify(run_id).stderr


def test_truncated_mid_line(run: tuple[str, Path, str]) -> None:
    run_id, path, _ = run
    data = path.read_bytes()
    kept = sum(len(r) for r in lines(path)[:8]) + 20
    path.write_bytes(data[:kept])
    assert_fails_at(run_id, 9, "incomplete")


def test_truncated_at_a_line_boundary_needs_the_head(run: tuple[str, Path, str]) -> None:
    """A clean cut leaves a valid shorter chain: only the published head can tell (that is what it is for)."""
    run_id, path, head = run
    write(path, lines(path)[:-2])
    assert verify(run_id).returncode == 0
    proc = verify(run_id, "--head", head)
    assert proc.returncode == 6 and "does not pass through the head" in proc.stderr, proc.stderr


def _rehash(rec: dict[str, Any]) -> bytes:
    rec = {k: v for k, v in rec.items() if k != "hash"}
    rec["hash"] = audit.digest(rec)
    return audit.canonical(rec) + b"\n"


def test_rewritten_record_with_recomputed_hash_breaks_the_next_line(run: tuple[str, Path, str]) -> None:
    run_id, path, _ = run
    rows = lines(path)
    rec = json.loads(rows[7])
    rec["by"] = "someone-else"
    rows[7] = _rehash(rec)
    write(path, rows)
    assert_fails_at(run_id, 9, "does not follow the previous line")
    assert "line 8:" not in verify(run_id).stderr, "line 8 itself is self-consistent"


def test_whole_chain_rewritten_only_the_head_tells(run: tuple[str, Path, str]) -> None:
    run_id, path, head = run
    prev = audit.GENESIS
    rows = []
    for raw in lines(path):
        rec = json.loads(raw)
        if rec["type"] == "gate.approved":
            rec["by"] = "mallory@elsewhere"
        rec["prev"] = prev
        row = _rehash(rec)
        prev = json.loads(row)["hash"]
        rows.append(row)
    write(path, rows)
    assert verify(run_id).returncode == 0, "a consistent rewrite passes without the head"
    proc = verify(run_id, "--head", head)
    assert proc.returncode == 6
    assert "does not pass through the head" in proc.stderr and head[:16] in proc.stderr


def test_a_note_after_the_published_head_is_not_tampering(run: tuple[str, Path, str]) -> None:
    run_id, path, head = run
    note = subprocess.run([BG, "note", run_id, "called the registrar, ticket 4411"], capture_output=True,
                          text=True, check=True)
    new_head = note.stdout.split("audit head now ")[1].strip()
    proc = verify(run_id, "--head", head)
    assert proc.returncode == 0, proc.stderr
    assert "1 record(s) were added after it: note" in proc.stdout
    assert verify(run_id, "--head", new_head).returncode == 0
    assert verify(run_id, "--head", "0" * 64).returncode == 6


def test_resume_refuses_a_tampered_log(run: tuple[str, Path, str]) -> None:
    run_id, path, _ = run
    rows = lines(path)
    rows[2], rows[3] = rows[3], rows[2]
    write(path, rows)
    proc = subprocess.run([BG, "resume", run_id], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=60, check=False)
    assert proc.returncode == 6 and "line 3:" in proc.stderr, proc.stderr
