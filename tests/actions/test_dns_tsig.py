"""dns.tsig_check against a real BIND 9 primary: the right key works, a wrong secret or name is told apart,
a server that is not the zone's primary is not taken for one, and the secret never reaches the output."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from actions.base import ActionContext, ActionResult
from actions.clients.dns import TsigCredentials
from actions.dns_tsig import DnsTsigCheck
from tests.lab.bind import BindServer, TsigKey, zone_text

ZONE = "example.test."


@pytest.fixture(scope="module")
def primary(bind_module_factory: Callable[..., BindServer]) -> BindServer:
    key = TsigKey.generate("update-key.")
    return bind_module_factory({ZONE: zone_text(ZONE, "www IN A 192.0.2.10\n", serial=42)}, tsig=key,
                               update_zones=[ZONE])


def check(primary: BindServer, **kw: Any) -> ActionResult:
    assert primary.tsig is not None
    base = {"server": primary.address, "zone": "example.test", "tsig_name": primary.tsig.name,
            "tsig_secret": primary.tsig.secret}
    action = DnsTsigCheck()
    return action.run(action.Params(**{**base, **kw}), ActionContext())


def test_the_right_key_is_accepted_and_the_reply_is_signed(primary: BindServer) -> None:
    result = check(primary)
    assert result.ok, result.message
    assert result.output["tsig"] == "ok" and result.output["works"] is True
    assert result.output["serial"] == 42 and result.output["authoritative"] is True


def test_a_wrong_secret_is_badsig(primary: BindServer) -> None:
    wrong = base64.b64encode(b"not the secret, 32 bytes long!!!").decode()
    result = check(primary, tsig_secret=wrong)
    assert not result.ok
    assert (result.output["status"], result.output["tsig"]) == ("NOTAUTH", "BADSIG")
    assert "secret differs" in result.message
    assert wrong not in json.dumps(result.output) + result.message


def test_an_unknown_key_name_is_badkey(primary: BindServer) -> None:
    assert primary.tsig is not None
    result = check(primary, tsig_name="old-key.")
    assert not result.ok
    assert (result.output["status"], result.output["tsig"]) == ("NOTAUTH", "BADKEY")
    assert primary.tsig.secret not in json.dumps(result.output) + result.message


def test_a_zone_the_server_does_not_serve_is_not_a_working_key(primary: BindServer) -> None:
    result = check(primary, zone="other.test")
    assert not result.ok and result.output["works"] is False
    assert "primary of other.test." in result.message


def test_nobody_listening_is_a_result_not_a_traceback(primary: BindServer) -> None:
    from tests.lab import free_tcp_udp_port

    result = check(primary, server=f"127.0.0.1:{free_tcp_udp_port('127.0.0.1')}", timeout=1)
    assert not result.ok and result.output["tsig"] == "none"
    assert result.output["status"] in ("ERROR", "TIMEOUT")


def test_the_secret_is_declared_secret() -> None:
    assert DnsTsigCheck.secret_params == frozenset({"tsig_secret"})
    assert "secret=***" in repr(TsigCredentials("k.", "hmac-sha256", "c2VjcmV0"))
