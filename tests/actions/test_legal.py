"""legal.deadlines: APPI and GDPR breach-notification deadlines from the time of discovery."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from actions.base import ActionContext, ActionResult
from actions.legal import LegalDeadlines
from engine.errors import ActionError

# Discovered on a Friday evening in Tokyo, which is still Friday morning in UTC.
FOUND = "2024-11-22T19:30:00+09:00"


def run(settings: dict[str, Any] | None = None, **args: Any) -> ActionResult:
    action = LegalDeadlines()
    args.setdefault("discovered_at", FOUND)
    args.setdefault("now", "2024-11-22T20:00:00+09:00")
    return action.run(action.Params(**args), ActionContext(settings=settings or {}))


def due(result: ActionResult) -> dict[str, str | None]:
    return {d["duty"]: d["due"] for d in result.output["deadlines"]}


def test_appi_and_gdpr_from_the_team_files_regimes() -> None:
    result = run({"legal_regimes": ("appi", "gdpr")})
    out = result.output
    assert out["regimes"] == ["appi", "gdpr"] and out["regimes_from"] == "team file"
    assert due(result) == {
        "notification of the breach": "2024-11-25T19:30:00+09:00",  # GDPR: 72 hours, to the minute
        "preliminary report (速報)": "2024-11-27T23:59:59+09:00",  # about 3-5 days: the 5th day, day one not counted
        "final report (確報)": "2024-12-22T23:59:59+09:00",  # 30 days after 22 Nov, Japan time
        "notice to the people affected (本人通知)": None,
        "communication to the data subjects": None,
    }
    assert [d["duty"] for d in out["deadlines"]][0] == "notification of the breach"  # earliest first
    gdpr = out["deadlines"][0]
    assert gdpr["basis"] == "GDPR Art. 33(1)" and gdpr["hours_left"] == 71.5
    assert len(out["open_items"]) == 5 and out["open_items"][0]["due"] == gdpr["due"]
    assert ("GDPR notification of the breach to the lead supervisory authority: due 2024-11-25T19:30:00+09:00 "
            "[GDPR Art. 33(1)]") in out["summary"].splitlines()


def test_unauthorised_access_gives_appi_60_days() -> None:
    result = run(regimes=["appi"], malicious=True)
    assert due(result)["final report (確報), wrongful intent suspected"] == "2025-01-21T23:59:59+09:00"
    assert "final report (確報)" not in due(result) and result.output["regimes_from"] == "argument"


def test_days_count_in_japan_time_not_utc() -> None:
    # 23:30 UTC on 30 Nov is already 1 Dec in Tokyo: the 30 days start from 1 Dec.
    result = run(regimes=["appi"], discovered_at="2024-11-30T23:30:00Z")
    assert due(result)["final report (確報)"] == "2024-12-31T23:59:59+09:00"


def test_no_regime_fails_rather_than_saying_nothing_is_due() -> None:
    with pytest.raises(ActionError, match="no notification regime applies"):
        run()


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ActionError, match="has no time zone"):
        run(regimes=["gdpr"], discovered_at="2024-11-22T19:30:00")


def test_the_clock_is_an_argument() -> None:
    early = run(regimes=["gdpr"], now="2024-11-22T19:30:00+09:00").output["deadlines"][0]["hours_left"]
    assert early == 72.0 and datetime.fromisoformat(FOUND).tzinfo is not None
