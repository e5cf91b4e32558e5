"""Customer updates (engine/comms.py, actions/comms.py): `comms:` templates filled into `comms.post` steps and
checked where they stand, the exact text recorded, the reminder when the cadence passed, the report's list."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from actions.base import ActionContext
from actions.comms import CommsPost, CommsPostParams
from engine import comms, drill
from engine.console import JsonReporter, NullReporter, TerminalReporter
from engine.errors import RunbookError
from engine.gates import Terminal
from engine.loader import load_file
from engine.report import from_store
from engine.report_render import render
from engine.session import RunOptions, resume, start
from engine.store import FileStore
from engine.world import LiveWorld
from tests.runbooks.labweb import hook_url, serve, stop

RUNBOOK = """\
id: site-down
title: Site down
inputs:
  site: {type: hostname, default: www.example.com}
comms:
  cadence: 30m
  templates:
    status_page:
      en: "{{ inputs.site }} is down; {{ steps.look.output.status | default('no answer') }}."
      ja: "{{ inputs.site }} が停止しています。"
steps:
  - {id: look, title: Look, action: http.probe, with: {url: "https://{{ inputs.site }}/"}, on_failure: continue}
  - {id: post, title: Tell customers, action: comms.post, with: {kind: status_page, stage: investigating}}
  - {id: fix, title: Fix it, action: http.request, with: {url: "https://{{ inputs.site }}/fix", method: POST}}
  - {id: done, title: Tell customers again, action: comms.post, with: {kind: status_page, stage: resolved}}
"""
SCENARIO = """\
title: Slow fix
steps:
  look: {output: {status: 503}, duration: 1900}
  fix: {output: {status: 200}, duration: 1000}
expect:
  steps: {post: succeeded, done: succeeded}
  reminders: 1
  outcome: succeeded
"""


def _write(tmp: Path, runbook: str = RUNBOOK, scenario: str = SCENARIO) -> tuple[Path, Path]:
    book = tmp / "site-down.yaml"
    book.write_text(runbook, encoding="utf-8")
    case = tmp / "scenarios" / "site-down" / "01-slow.yaml"
    case.parent.mkdir(parents=True)
    case.write_text(scenario, encoding="utf-8")
    return book, case


def _drill(book: Path, case: Path, out: io.StringIO | None = None) -> list[dict[str, Any]]:
    loaded = load_file(book)
    opts = RunOptions(operator="alice", yes=True, terminal=Terminal(stdin=io.StringIO()))
    reporter = TerminalReporter(out) if out is not None else JsonReporter(io.StringIO())
    outcome = drill.run_drill(loaded, drill.load_scenario(case), {}, opts, reporter, FileStore())
    return [r.to_dict() for r in FileStore().records(outcome.run_id)]


def test_a_drill_records_the_exact_text_and_reminds_once_the_cadence_passed(tmp_path: Path, bg_home: Path) -> None:
    out = io.StringIO()
    records = _drill(*_write(tmp_path), out=out)
    graded = next(r for r in records if r["type"] == "drill.graded")
    assert graded["deviations"] == [] and graded["score"] == graded["total"]
    types = [(r["type"], r.get("step")) for r in records]
    # 1900 s of looking passed the 30 min cadence before the first update: reminded between the steps.
    due = types.index(("comms.due", None))
    assert types[due - 1] == ("step.succeeded", "look") and types[due + 1] == ("step.started", "post")
    reminder = records[due]
    assert reminder["cadence_s"] == 1800 and reminder["kinds"] == ["status_page"]
    assert "customer update due" in out.getvalue() and reminder["due"][11:16] in out.getvalue()
    posted = {r["step"]: r["output"] for r in records
              if r["type"] == "step.succeeded" and r["step"] in ("post", "done")}
    assert posted["post"]["texts"]["en"].startswith("[Investigating] www.example.com is down; 503.\nNext update by ")
    assert posted["post"]["texts"]["ja"].startswith("【調査中】 www.example.com が停止しています。\n次回の更新は ")
    assert "(日本時間)" in posted["post"]["texts"]["ja"]
    assert posted["post"]["posted"] is False and posted["post"]["next_update"]
    # The fix took 1000 s after the update: under the cadence, no second reminder. Resolved promises nothing.
    assert posted["done"]["next_update"] is None and "Next update" not in posted["done"]["texts"]["en"]


def test_expecting_another_number_of_reminders_is_a_deviation(tmp_path: Path, bg_home: Path) -> None:
    records = _drill(*_write(tmp_path, scenario=SCENARIO.replace("reminders: 1", "reminders: 0")))
    graded = next(r for r in records if r["type"] == "drill.graded")
    assert graded["deviations"] == ["customer-update reminders: expected 0, were 1"]


def test_without_comms_there_is_no_reminder(tmp_path: Path, bg_home: Path) -> None:
    plain = RUNBOOK.split("comms:")[0] + "steps:\n" + RUNBOOK.split("steps:\n")[1].split("  - {id: post")[0]
    records = _drill(*_write(tmp_path, runbook=plain, scenario=SCENARIO.replace("reminders: 1", "reminders: 0")
                             .replace("{post: succeeded, done: succeeded}", "{look: succeeded}")))
    assert not [r for r in records if r["type"] == "comms.due"]


def test_the_report_lists_every_update_and_reminder(tmp_path: Path, bg_home: Path) -> None:
    records = _drill(*_write(tmp_path))
    run_id = records[0]["run"]
    report = from_store(FileStore(), run_id)
    assert [(u["step"], u["kind"], u["stage"]) for u in report.updates] == [
        ("post", "status_page", "investigating"), ("done", "status_page", "resolved")]
    assert len(report.reminders) == 1
    md = render(report, "markdown")
    assert "## Customer updates" in md and "[Investigating] www.example.com is down; 503." in md
    assert "【解決】 www.example.com が停止しています。" in md and "reminder: a customer update was due at" in md
    html = render(report, "html")
    assert 'id="customer-updates"' in html and "[Resolved] www.example.com is down" in html


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.replace("kind: status_page, stage: investigating", "kind: customer_notice, stage: investigating"),
     "site-down.yaml:13:72: `comms.templates` has no customer_notice text"),
    (lambda s: s.replace("kind: status_page, stage: investigating", 'kind: "{{ inputs.site }}", stage: investigating'),
     "site-down.yaml:13:72: kind must be written out: status_page or customer_notice"),
    (lambda s: s.replace("stage: resolved}", "stage: resolved, templates: {en: x, ja: y}}"),
     ": 'templates' comes from the runbook's `comms:`; do not write it"),
    (lambda s: s.replace("{{ inputs.site }} is down", "{{ inputs.sit }} is down"),
     "site-down.yaml:9:11: undefined input 'inputs.sit'; declared inputs: site"),
    (lambda s: s.replace("status | default('no answer')", "status | default('no answer') }}{{ steps.fix.ok"),
     "site-down.yaml:9:11: 'steps.fix' refers to a step that has not run yet at this point"),
    (lambda s: s.replace("stage: resolved}", "stage: resovled}"),
     "site-down.yaml:15:98: 'stage' cannot be \"resovled\" (did you mean 'resolved'?); it takes: investigating, "
     "identified, monitoring, resolved"),
    (lambda s: s.replace("cadence: 30m", "cadence: half an hour"),
     "site-down.yaml:6:12: 'comms.cadence': must be minutes or hours"),
    (lambda s: s.split("comms:")[0] + "steps:\n" + s.split("\nsteps:\n")[1],
     "site-down.yaml:7:47: comms.post needs the runbook's top-level `comms:`"),
])
def test_mistakes_are_named_where_they_are_written(tmp_path: Path, edit: Any, message: str) -> None:
    book = tmp_path / "site-down.yaml"
    book.write_text(edit(RUNBOOK), encoding="utf-8")
    with pytest.raises(RunbookError) as exc:
        load_file(book)
    assert message in str(exc.value), str(exc.value)


def test_comms_post_posts_the_texts_to_a_webhook_and_masks_its_secret() -> None:
    hooks = serve()
    try:
        url = hook_url(hooks)
        params = CommsPostParams(kind="customer_notice", stage="identified",
                                 templates={"en": "Sorry.", "ja": "申し訳ありません。"}, cadence_minutes=60, url=url)
        now = datetime(2026, 11, 30, 3, 10, tzinfo=UTC).timestamp()
        ctx = ActionContext(run_id="r1", step_id="s1", settings={"run_clock": now})
        action = CommsPost()
        plan = action.plan(params, ctx)
        assert "lab-secret" not in plan.summary and plan.refused is None
        result = action.apply(params, ctx, plan)
    finally:
        stop(hooks)
    assert result.ok and result.output["posted"] is True and result.output["status"] == 200
    assert "lab-secret" not in json.dumps(result.output) and any("lab-secret" in x for x in result.secrets)
    body = hooks.received[0].json
    assert body["texts"] == {"en": "[Identified] Sorry.\nNext update by 2026-11-30 04:10 UTC.",
                             "ja": "【原因特定】 申し訳ありません。\n"
                                   "次回の更新は 11月30日 13:10 (日本時間) までにお知らせします。"}
    assert result.message.endswith("next update due 04:10 UTC")


def test_a_missing_text_refuses_the_plan() -> None:
    params = CommsPostParams(kind="status_page", stage="monitoring", templates={"en": "ok"})
    assert CommsPost().plan(params, ActionContext()).refused == "no ja text for status_page"


def test_cadence_and_due() -> None:
    assert comms.cadence_minutes("30m") == 30 and comms.cadence_minutes("2h") == 120
    assert comms.cadence_minutes("30") is None
    owed = comms.at_start(0.0, 1800)
    assert owed.reminder(1000.0) is None
    reminded = owed.reminder(1800.0)
    assert reminded is not None and reminded.reminded == 1800.0 and reminded.reminder(2000.0) is None
    # An update promises the next; `resolved` promises none, and nothing is owed after it.
    assert comms.after_post(0.0, {"stage": "identified", "next_update": "1970-01-01T00:20:00Z"}, 1800).due == 1200.0
    assert comms.after_post(0.0, {"stage": "resolved", "next_update": None}, 1800).reminder(10**9) is None


# --- a resumed run keeps the promise the last update made -------------------------------------------------

# A shop that is down, its first customer update posted: the start of the runbooks below.
SHOP_DOWN = """\
comms:
  cadence: 30m
  templates:
    status_page: {en: "The shop is down.", ja: "ショップが停止しています。"}
steps:
  - {id: post, title: Tell customers, action: comms.post, with: {kind: status_page, stage: identified}}
"""
HANDOVER = "id: handover\ntitle: Handed over\n" + SHOP_DOWN + """\
  - {id: fix, title: Fix it, action: shell.run, with: {argv: ["true"]}}
  - {id: check, title: Check it, action: shell.run, with: {argv: ["true"]}}
"""


class _Clock(LiveWorld):
    """The live world on a clock the test sets; each change applied takes 15 minutes of it."""

    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def apply(self, *args: Any, **kw: Any) -> Any:
        result = super().apply(*args, **kw)
        self.t += 15 * 60
        return result


class _Typed(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_resumed_run_counts_the_cadence_from_the_last_update_in_the_log(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "home")
    book = tmp_path / "handover.yaml"
    book.write_text(HANDOVER, encoding="utf-8")
    t0 = datetime(2026, 11, 30, 6, 40, tzinfo=UTC).timestamp()
    world = _Clock(t0)

    def opts(typed: str) -> RunOptions:
        return RunOptions(operator="alice", world=world,
                          terminal=Terminal(stdin=_Typed(typed), stderr=io.StringIO()))

    # 06:40: the update goes out (its post takes 15 min of the clock: 06:55), promising the next by 07:10;
    # then alice's shift ends at the next gate (end of input: refused).
    first = start(load_file(book), {}, opts("yes\n"), NullReporter(), store=store)
    assert first.exit_code == 3
    # 07:00: bob takes over. Fixing takes 15 min (07:15): the update promised for 07:10 is overdue now, not
    # at 07:30 (30 min after the resume).
    world.t = t0 + 20 * 60
    resume(store, first.run_id, {}, opts("yes\nyes\n"), NullReporter())
    records = [r.to_dict() for r in store.records(first.run_id)]
    posted = next(r for r in records if r["type"] == "step.succeeded" and r["step"] == "post")
    assert posted["output"]["next_update"] == "2026-11-30T07:10:00Z"
    reminders = [r for r in records if r["type"] == "comms.due"]
    assert [r["due"] for r in reminders] == ["2026-11-30T07:10:00Z"]
    kinds = [(r["type"], r.get("step")) for r in records]
    assert kinds.index(("comms.due", None)) == kinds.index(("step.succeeded", "fix")) + 1


def test_a_resume_does_not_remind_again_of_a_due_time_already_reminded(tmp_path: Path) -> None:
    records = [{"type": "run.started", "ts": "2026-11-30T06:00:00.000001Z"},
               {"type": "comms.due", "ts": "2026-11-30T06:31:00Z", "due": "2026-11-30T06:30:00Z"}]
    owed = comms.from_records(records, 1800)
    assert owed.due is not None and comms.iso(owed.due) == "2026-11-30T06:30:00Z"
    assert owed.reminded == comms.epoch("2026-11-30T06:30:00Z")
    assert owed.reminder(comms.epoch("2026-11-30T07:00:00Z")) is None


# --- a called runbook: the caller decides what customers hear, once, on its own cadence ---------------------

CALLER = "id: outage\ntitle: Outage\n" + SHOP_DOWN + """\
  - {id: switch, title: Switch, action: runbook.run, with: {runbook: switch-over}}
  - {id: done, title: Tell customers it is fixed, action: comms.post, with: {kind: status_page, stage: resolved}}
"""
CALLED = """\
id: switch-over
title: Switch over
comms:
  cadence: 10m
  templates:
    status_page: {en: "Switching over.", ja: "切り替えています。"}
steps:
  - {id: look, title: Look, action: http.probe, with: {url: "https://www.example.com/"}}
  - {id: tell, title: Tell customers, action: comms.post, with: {kind: status_page, stage: investigating}}
  - {id: later, title: Look again, action: http.probe, with: {url: "https://www.example.com/"}}
"""
CALL_SCENARIO = """\
title: A long switch
steps:
  switch.look: {output: {status: 200}, duration: 1000}
  switch.later: {output: {status: 200}, duration: 900}
expect:
  steps: {post: succeeded, switch.tell: skipped, done: succeeded}
  reminders: 1
  outcome: succeeded
"""


def test_a_called_runbook_leaves_customers_to_its_caller(tmp_path: Path, bg_home: Path) -> None:
    (tmp_path / "switch-over.yaml").write_text(CALLED, encoding="utf-8")  # found next to its caller
    (tmp_path / "outage.yaml").write_text(CALLER, encoding="utf-8")
    (tmp_path / "01-long.yaml").write_text(CALL_SCENARIO, encoding="utf-8")
    records = _drill(tmp_path / "outage.yaml", tmp_path / "01-long.yaml")
    graded = next(r for r in records if r["type"] == "drill.graded")
    assert graded["deviations"] == [], graded["deviations"]
    skipped = next(r for r in records if r["type"] == "step.skipped" and r["step"] == "switch.tell")
    assert skipped["reason"] == "called by runbook 'outage', which decides what customers are told"
    # One cadence, the caller's: 1900 s of switching passed its 30 min once (the called runbook's 10 min would
    # have reminded three times), and the only posts are the caller's.
    assert len([r for r in records if r["type"] == "comms.due"]) == 1
    assert [r["step"] for r in records if r["type"] == "step.succeeded"
            and isinstance(r.get("output"), dict) and "texts" in r["output"]] == ["post", "done"]


def test_a_called_runbook_posts_nothing_even_when_its_caller_has_no_comms(tmp_path: Path, bg_home: Path) -> None:
    """A switch made for another reason must not announce an outage in words written for one."""
    (tmp_path / "switch-over.yaml").write_text(CALLED, encoding="utf-8")
    silent = CALLER.split("comms:")[0] + "steps:\n" + CALLER.split("steps:\n")[1].split("  - {id: done")[0]
    (tmp_path / "outage.yaml").write_text(silent.replace("  - {id: post, title: Tell customers, action: comms.post, "
                                                         "with: {kind: status_page, stage: identified}}\n", ""),
                                          encoding="utf-8")
    (tmp_path / "01-long.yaml").write_text(CALL_SCENARIO.replace("{post: succeeded, switch.tell: skipped, done: "
                                                                 "succeeded}", "{switch.tell: skipped}")
                                           .replace("reminders: 1", "reminders: 0"), encoding="utf-8")
    records = _drill(tmp_path / "outage.yaml", tmp_path / "01-long.yaml")
    graded = next(r for r in records if r["type"] == "drill.graded")
    assert graded["deviations"] == [], graded["deviations"]
    assert not [r for r in records if r["type"] == "step.succeeded" and "texts" in (r.get("output") or {})]
