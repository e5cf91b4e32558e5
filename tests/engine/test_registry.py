"""The action registry: built-ins resolve lazily, third parties plug in through entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo

from actions.base import Action, ActionContext, ActionResult, Effect, Params
from actions.registry import BUILTIN, Registry, UnknownAction
from engine.errors import BreakglassError

# What actions talk to the world with: imported where they connect, never to list actions or validate a runbook
# (asyncio alone added 30 ms to validating a registrar runbook).
HEAVY = ("paramiko", "httpx", "httpcore", "dns.resolver", "dns.query", "dns.asyncquery", "cryptography", "asyncio",
         "ssl", "smtplib", "psycopg")


def _python(code: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})})
    return proc.stdout


def test_listing_and_validating_import_no_heavy_library(tmp_path: Path) -> None:
    rb = tmp_path / "heavy.yaml"
    rb.write_text(textwrap.dedent("""\
        id: heavy
        title: Uses the actions with heavy libraries
        steps:
          - {id: ssh, title: ssh, action: ssh.run, with: {host: h, user: u, command: [uptime], read_only: true}}
          - {id: web, title: web, action: http.probe, with: {url: "https://example.invalid/"}}
          - {id: dns, title: dns, action: dns.lookup, with: {name: example.invalid}}
          - {id: mail, title: mail, action: mail.smtp_probe, with: {host: mx.example.invalid}}
        """))
    shipped = Path(__file__).resolve().parents[2] / "runbooks"
    out = _python(textwrap.dedent(f"""\
        import json, sys
        from pathlib import Path
        from actions.registry import Registry
        from engine.loader import load_file
        r = Registry()
        r.describe()
        load_file({str(rb)!r}, r)
        for path in sorted(Path({str(shipped)!r}).glob("*.yaml")):  # every shipped runbook validates the same way
            load_file(path, r)
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
        """))
    assert json.loads(out) == []


def test_every_builtin_resolves_to_an_action_with_documented_arguments() -> None:
    registry = Registry()
    for name in BUILTIN:
        cls = registry.get(name)
        assert cls.name == name and isinstance(cls.effect, Effect) and cls.summary
        for arg, field in cls.Params.model_fields.items():
            assert field.description, f"{name}: argument {arg} has no description"


def test_no_model_field_makes_pydantic_read_a_builtin_signature() -> None:
    """`default_factory=list` costs validate ~5 ms (Python tokenizes the builtin's text signature);
    the argument models and the runbook model write empty defaults as `default=[]` (actions.base.Params)."""
    from pydantic import BaseModel

    import engine.model

    registry = Registry()
    models = [registry.get(name).Params for name in BUILTIN]
    models += [m for m in vars(engine.model).values()
               if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == "engine.model"]
    builtin_factories = [f"{model.__name__}.{name}" for model in models
                         for name, field in model.model_fields.items()
                         if isinstance(field.default_factory, type) and field.default_factory.__module__ == "builtins"]
    assert builtin_factories == []


def test_unknown_action_suggests_the_nearest_name() -> None:
    with pytest.raises(UnknownAction, match="did you mean 'dns.update'"):
        Registry().get("dns.updte")


class _PingParams(Params):
    host: str


class _Ping(Action):
    name = "acme.ping"
    summary = "test action"
    Params = _PingParams

    def run(self, params: Params, ctx: ActionContext) -> ActionResult:
        return ActionResult({"pong": True})


def test_direct_registration_and_duplicates() -> None:
    registry = Registry()
    registry.register(_Ping)
    assert registry.get("acme.ping") is _Ping
    with pytest.raises(BreakglassError, match="already registered"):
        registry.register(_Ping)

    class Shadow(_Ping):
        name = "dns.lookup"

    with pytest.raises(BreakglassError, match="already registered"):
        Registry().register(Shadow)


def _plugin(tmp_path: Path, entries: dict[str, str]) -> dict[str, str]:
    """A minimal installed distribution on PYTHONPATH with actions entry points."""
    (tmp_path / "acme_actions.py").write_text(textwrap.dedent("""\
        from actions.base import Action, ActionResult, Params

        class PingParams(Params):
            host: str

        class Ping(Action):
            name = "acme.ping"
            summary = "Ping a host (third-party test action)"
            Params = PingParams

            def run(self, params, ctx):
                return ActionResult({"pong": params.host})
        """))
    dist = tmp_path / "acme_actions-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-actions\nVersion: 1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entries.items())
    (dist / "entry_points.txt").write_text(f"[breakglass.actions]\n{lines}\n")
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}


def test_third_party_action_through_an_entry_point(tmp_path: Path) -> None:
    env = _plugin(tmp_path, {"acme.ping": "acme_actions:Ping"})
    out = _python(textwrap.dedent("""\
        from actions.base import ActionContext
        from actions.registry import Registry
        r = Registry()
        cls = r.get("acme.ping")
        print("acme.ping" in r.names(), cls().run(cls.Params(host="h1"), ActionContext()).output["pong"])
        """), env)
    assert out.split() == ["True", "h1"]


def test_entry_point_that_shadows_a_builtin_is_refused(tmp_path: Path) -> None:
    env = _plugin(tmp_path, {"dns.lookup": "acme_actions:Ping"})
    out = _python(textwrap.dedent("""\
        from actions.registry import Registry
        from engine.errors import BreakglassError
        try:
            Registry().names()
        except BreakglassError as exc:
            print("refused:", exc)
        """), env)
    assert out.startswith("refused: action 'dns.lookup' is registered twice")


@pytest.mark.parametrize("argv", [["--help"], ["list"]])
def test_help_and_list_import_neither_pydantic_nor_action_modules(argv: list[str], tmp_path: Path) -> None:
    """`--help` and `list` must start in 0.3 s: a stray import of pydantic or an action module would undo it.
    (`validate`, `show` and `run` build the model, so they may.)"""
    out = _python(textwrap.dedent(f"""\
        import json, sys
        sys.argv = ["breakglass", *{argv!r}]
        from engine.cli import main
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        loaded = [m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_core", "asyncio", "jinja2")
                  or m.startswith("actions.") and m != "actions.registry"]
        print(json.dumps([code, sorted(loaded)]))
        """), {"BREAKGLASS_HOME": str(tmp_path), "BREAKGLASS_PATH": ""})
    assert json.loads(out.splitlines()[-1]) == [0, []], out


def test_each_builtin_declares_its_output_fields_with_descriptions() -> None:
    registry = Registry()
    for name in BUILTIN:
        if name == "runbook.run":
            continue  # its output is the called runbook's `outputs:`, declared there (engine.calls)
        cls = registry.get(name)
        assert cls.Output is not None, f"{name}: declare its output fields (an Output declaration)"
        fields = cls.Output.fields()
        assert fields, name
        for field_name, field in fields.items():
            assert isinstance(field, FieldInfo) and field.description, \
                f"{name}: output field {field_name} has no description"
        assert list(cls.Output.model().model_fields) == list(fields), name  # the docs' types: the same fields


def test_an_output_written_as_a_pydantic_model_is_still_read() -> None:
    """Actions written before ``Output`` became a declaration gave a pydantic model: validation reads its
    fields and ``breakglass actions`` shows their types, as for a declaration."""
    from pydantic import BaseModel, Field

    class PongOutput(BaseModel):
        pong: bool = Field(description="True when the host answered.")
        rtt_ms: float | None = Field(None, description="Round trip.")

    class Pong(_Ping):
        name = "acme.pong"
        Output = PongOutput

    registry = Registry()
    registry.register(Pong)
    assert registry.output_fields("acme.pong") == ("pong", "rtt_ms")
    [described] = registry.describe("acme.pong")
    assert [(f["name"], f["type"], f["description"]) for f in described["output"]] == [
        ("pong", "boolean", "True when the host answered."), ("rtt_ms", "number", "Round trip.")]


def test_an_undeclared_output_is_open_ended() -> None:
    assert _Ping.output_fields() is None
    registry = Registry()
    registry.register(_Ping)
    assert registry.output_fields("acme.ping") is None
    assert registry.output_fields("log.note") == ("note",)


def test_plugin_arguments_are_checked_by_the_plugin_model(tmp_path: Path) -> None:
    env = _plugin(tmp_path, {"acme.ping": "acme_actions:Ping"})
    rb = tmp_path / "ping.yaml"
    rb.write_text("id: ping\ntitle: Ping\nsteps:\n  - {id: p, title: p, action: acme.ping, with: {hots: h}}\n")
    proc = subprocess.run([sys.executable, "-c", "from engine.cli import main; main()", "validate",
                           str(rb)], capture_output=True, text=True, env={**os.environ, **env})
    assert proc.returncode == 2
    assert "does not accept argument 'hots' (did you mean 'host'?)" in proc.stderr
    assert "action 'acme.ping' needs argument 'host'" in proc.stderr


def test_actions_reach_the_engine_only_through_errors() -> None:
    """Actions import their base, their clients and ``engine.errors``, nothing else of the engine: the operator
    is reached through ``OperatorTerminal`` (which words its questions), not engine.gates or engine.i18n."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "actions"
    crossing = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            crossing += [f"{path.relative_to(root.parent)}:{node.lineno} imports {name}" for name in names
                         if name.startswith("engine") and name != "engine.errors"]
    assert not crossing, "\n".join(crossing)
