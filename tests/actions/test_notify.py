"""notify.webhook against the lab webhook receiver: what is sent, what is shown, what is kept secret."""

from __future__ import annotations

import json

from actions.base import ActionContext, Effect
from actions.notify import NotifyWebhook
from tests.lab.https import WebLab

HOOK_SECRET = "T0001/B0002/XyZsecretHookToken"


def ctx(mode: str = "live") -> ActionContext:
    return ActionContext(
        run_id="r-20241123-01", step_id="tell_oncall", mode=mode, operator="alice", runbook_id="www-failover"
    )


def test_json_webhook_receives_message_with_run_info(web: WebLab) -> None:
    action = NotifyWebhook()
    assert action.effect is Effect.NOTIFY
    params = action.Params(
        url=f"{web.http_url}/hooks/{HOOK_SECRET}",
        text="www failed over to standby",
        format="json",
        extra={"severity": "major"},
    )
    plan = action.plan(params, ctx())
    before = len(web.received)
    result = action.apply(params, ctx(), plan)
    assert result.ok, result.message
    got = web.received[before:]
    assert len(got) == 1
    assert got[0].path == f"/hooks/{HOOK_SECRET}"
    assert got[0].headers["Content-Type"] == "application/json"
    assert got[0].json == {
        "severity": "major",
        "text": "www failed over to standby",
        "run_id": "r-20241123-01",
        "runbook_id": "www-failover",
        "step_id": "tell_oncall",
        "operator": "alice",
        "mode": "live",
    }


def test_slack_format_has_text_and_run_footer(web: WebLab) -> None:
    action = NotifyWebhook()
    params = action.Params(url=f"{web.http_url}/slack/{HOOK_SECRET}", text=":rotating_light: mail relay down")
    before = len(web.received)
    result = action.apply(params, ctx(), action.plan(params, ctx()))
    assert result.ok
    body = web.received[before].json
    assert list(body) == ["text"]
    first, footer = body["text"].split("\n")
    assert first == ":rotating_light: mail relay down"
    assert "www-failover" in footer and "r-20241123-01" in footer and "alice" in footer


def test_plan_shows_message_sends_nothing_and_hides_the_hook_path(web: WebLab) -> None:
    action = NotifyWebhook()
    params = action.Params(url=f"{web.http_url}/hooks/{HOOK_SECRET}", text="dry run notice", format="json")
    before = len(web.received)
    plan = action.plan(params, ctx("dry-run"))
    assert len(web.received) == before  # planning posts nothing
    assert plan.summary == f"post to {web.http_url}/***: dry run notice"
    assert plan.changes[0]["payload"]["mode"] == "dry-run"
    assert HOOK_SECRET not in json.dumps(plan.changes)


def test_hook_token_is_secret_in_result(web: WebLab) -> None:
    action = NotifyWebhook()
    params = action.Params(url=f"{web.http_url}/hooks/{HOOK_SECRET}", text="x")
    result = action.apply(params, ctx(), action.plan(params, ctx()))
    assert any(HOOK_SECRET in s for s in result.secrets)
    assert HOOK_SECRET not in json.dumps(result.output) + result.message


def test_refused_webhook_is_a_failed_result(web: WebLab) -> None:
    action = NotifyWebhook()
    params = action.Params(url=f"{web.http_url}/fail/{HOOK_SECRET}", text="x")
    result = action.apply(params, ctx(), action.plan(params, ctx()))
    assert not result.ok and result.output["status"] == 500 and "refused with HTTP 500" in result.message


def test_unreachable_webhook_is_a_failed_result() -> None:
    from tests.lab import free_port

    action = NotifyWebhook()
    params = action.Params(url=f"http://127.0.0.1:{free_port()}/hooks/{HOOK_SECRET}", text="x", timeout=3)
    result = action.apply(params, ctx(), action.plan(params, ctx()))
    assert not result.ok and result.output["sent"] is False
    assert HOOK_SECRET not in result.message


def test_https_webhook_certificate_is_verified(web: WebLab) -> None:
    # the lab certificate names www.example.test only; posting to the bare IP must fail the name check
    action = NotifyWebhook()
    params = action.Params(
        url=f"https://127.0.0.1:{web.https_port}/hooks/x", text="x", ca_file=str(web.ca_file)
    )
    result = action.apply(params, ctx(), action.plan(params, ctx()))
    assert not result.ok and "not reached" in result.message
    assert "certificate is not valid for '127.0.0.1'" in result.message
