"""dns.update against a real BIND 9 primary with a TSIG key: plan, apply, verify, roll back, refuse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from actions.base import ActionContext, ActionResult, Plan
from actions.dns import DnsLookup
from actions.dns_update import DnsUpdate, TsigCredentials
from engine.errors import ActionError
from tests.lab.bind import BindServer, TsigKey, zone_text

ZONE = "example.test."
RECORDS = """
www  IN A   192.0.2.10
txt  IN TXT "part one" "part two"
"""


@pytest.fixture
def primary(bind_factory: Callable[..., BindServer]) -> BindServer:
    """A fresh primary per test (updates change it) that accepts updates signed with its key."""
    key = TsigKey.generate("failover-key.")
    return bind_factory({ZONE: zone_text(ZONE, RECORDS, serial=100)}, tsig=key, update_zones=[ZONE])


def params(server: BindServer, **kw: Any) -> Any:
    assert server.tsig is not None
    base = {
        "server": server.address,
        "zone": "example.test",
        "name": "www.example.test",
        "tsig_name": server.tsig.name,
        "tsig_secret": server.tsig.secret,
    }
    return DnsUpdate.Params(**{**base, **kw})


def run(p: Any) -> tuple[Plan, ActionResult]:
    action, ctx = DnsUpdate(), ActionContext()
    plan = action.plan(p, ctx)
    return plan, action.apply(p, ctx, plan)


def answers(
    server: BindServer, name: str = "www.example.test", rdtype: str = "A"
) -> tuple[str, list[str], Any]:
    action = DnsLookup()
    out = action.run(action.Params(name=name, type=rdtype, server=server.address), ActionContext()).output
    return out["status"], sorted(out["answers"]), out["ttl"]


def test_round_trip_plan_apply_verify_rollback(primary: BindServer) -> None:
    switch = params(primary, records=["198.51.100.7"])
    plan = DnsUpdate().plan(switch, ActionContext())
    assert plan.summary == "A www.example.test 192.0.2.10 → 198.51.100.7"
    assert plan.changes == [
        {"op": "delete", "record": "192.0.2.10"},
        {"op": "add", "record": "198.51.100.7", "ttl": 300},
    ]
    assert plan.refused is None
    assert answers(primary) == ("NOERROR", ["192.0.2.10"], 300), "a plan must change nothing"

    result = DnsUpdate().apply(switch, ActionContext(), plan)
    assert result.ok, result.message
    assert result.output["verified"] is True
    assert result.output["previous"] == {"records": ["192.0.2.10"], "ttl": 300}
    assert result.output["current"] == {"records": ["198.51.100.7"], "ttl": 300}
    assert answers(primary) == ("NOERROR", ["198.51.100.7"], 300)
    assert primary.soa_serial(ZONE) == 101

    # What a runbook's rollback renders from steps.switch.output.previous.
    previous = result.output["previous"]
    _, back = run(params(primary, operation="replace", records=previous["records"], ttl=previous["ttl"]))
    assert back.ok and back.output["current"] == previous
    assert answers(primary) == ("NOERROR", ["192.0.2.10"], 300)


def test_multi_string_txt_is_restored_exactly(primary: BindServer) -> None:
    _, result = run(params(primary, name="txt.example.test", type="TXT", records=["v=spf1 -all"], ttl=60))
    assert result.ok and answers(primary, "txt.example.test", "TXT") == ("NOERROR", ["v=spf1 -all"], 60)
    previous = result.output["previous"]
    assert previous == {"records": ['"part one" "part two"'], "ttl": 300}
    _, back = run(params(primary, name="txt.example.test", type="TXT", records=previous["records"], ttl=300))
    assert back.ok and back.output["current"] == previous


def test_add_then_delete_records_then_the_rrset(primary: BindServer) -> None:
    plan, added = run(params(primary, operation="add", records=["192.0.2.11", "192.0.2.12"]))
    assert plan.summary == "A www.example.test 192.0.2.10 → 192.0.2.10, 192.0.2.11, 192.0.2.12"
    assert added.ok and answers(primary)[1] == ["192.0.2.10", "192.0.2.11", "192.0.2.12"]

    _, deleted = run(params(primary, operation="delete", records=["192.0.2.11"]))
    assert deleted.ok and answers(primary)[1] == ["192.0.2.10", "192.0.2.12"]

    plan, gone = run(params(primary, operation="delete"))
    assert [c["op"] for c in plan.changes] == ["delete", "delete"]
    assert gone.ok and answers(primary) == ("NXDOMAIN", [], None)  # www had only this RRset

    # Rolling back a delete: the previous RRset comes back from nothing.
    previous = gone.output["previous"]
    _, back = run(params(primary, records=previous["records"], ttl=previous["ttl"]))
    assert back.ok and answers(primary) == ("NOERROR", ["192.0.2.10", "192.0.2.12"], 300)


def test_create_a_new_name(primary: BindServer) -> None:
    plan, result = run(params(primary, name="new.example.test", type="AAAA", records=["2001:db8::7"], ttl=30))
    assert plan.summary == "AAAA new.example.test (none) → 2001:db8::7"
    assert result.ok and result.output["previous"] == {"records": [], "ttl": None}
    assert answers(primary, "new.example.test", "AAAA") == ("NOERROR", ["2001:db8::7"], 30)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"tsig_secret": TsigKey.generate().secret}, "BADSIG"),
        ({"tsig_name": "unknown-key."}, "BADKEY"),
        ({"tsig_name": None, "tsig_secret": None}, "REFUSED"),
    ],
)
def test_wrong_key_is_refused_and_changes_nothing(
    primary: BindServer, change: dict[str, Any], expected: str
) -> None:
    bad = params(primary, records=["198.51.100.7"]).model_copy(update=change)
    _, result = run(bad)
    assert not result.ok
    assert expected in result.message and "nothing" in result.message
    assert answers(primary) == ("NOERROR", ["192.0.2.10"], 300)
    assert primary.soa_serial(ZONE) == 100
    secret = bad.tsig_secret or "unused"
    assert secret not in result.message and secret not in repr(result.output)
    if bad.tsig_secret:
        assert result.secrets == (bad.tsig_secret,)


def test_blast_radius_cap_refuses(primary: BindServer) -> None:
    many = [f"198.51.100.{i}" for i in range(1, 6)]
    plan, result = run(params(primary, records=many, max_changes=3))
    assert plan.refused is not None
    assert "6 records" in plan.refused and "max_changes=3" in plan.refused
    assert not result.ok and answers(primary) == ("NOERROR", ["192.0.2.10"], 300)
    plan, _ = run(params(primary, records=many, max_changes=6))
    assert plan.refused is None


def test_a_change_made_after_the_plan_is_not_overwritten(primary: BindServer) -> None:
    action, ctx = DnsUpdate(), ActionContext()
    mine = params(primary, records=["198.51.100.7"])
    plan = action.plan(mine, ctx)
    _, theirs = run(params(primary, records=["203.0.113.5"]))
    assert theirs.ok
    result = action.apply(mine, ctx, plan)
    assert not result.ok and "NXRRSET" in result.message and "plan again" in result.message
    assert answers(primary)[1] == ["203.0.113.5"]


def test_lower_ttl_first(primary: BindServer) -> None:
    _, result = run(params(primary, records=["198.51.100.7"], ttl=60, lower_ttl_first=30))
    assert result.ok and result.output["lowered_ttl"] == {"from": 300, "to": 30}
    assert result.output["previous"] == {"records": ["192.0.2.10"], "ttl": 300}
    assert answers(primary) == ("NOERROR", ["198.51.100.7"], 60)
    assert primary.soa_serial(ZONE) == 102  # two updates: the TTL, then the value


def test_name_outside_the_zone_is_an_error(primary: BindServer) -> None:
    with pytest.raises(ActionError, match="not inside zone"):
        DnsUpdate().plan(params(primary, name="www.example.org", records=["192.0.2.1"]), ActionContext())


def test_invalid_record_is_an_error(primary: BindServer) -> None:
    with pytest.raises(ActionError, match="not valid A values"):
        DnsUpdate().plan(params(primary, records=["not-an-address"]), ActionContext())


def test_secret_is_declared_and_never_shown() -> None:
    assert DnsUpdate.secret_params == frozenset({"tsig_secret"})
    creds = TsigCredentials("k.", "hmac-sha256", "c2VjcmV0LXNlY3JldA==")
    assert "c2VjcmV0" not in repr(creds)
    with pytest.raises(ActionError, match="not valid base64") as info:
        TsigCredentials("k.", "hmac-sha256", "%%%not base64%%%").keyring()
    assert "%%%" not in str(info.value)
