"""Where action names resolve to classes: the built-in table, then the ``breakglass.actions`` entry points.

Built-ins are named here as ``module:Class`` strings so that resolving ``dns.lookup`` imports only
``actions.dns`` (which itself imports dnspython lazily). Entry points are scanned only when a name
is not built in, or when every action is listed, because scanning installed distributions costs start-up.
What validation needs of an action (its argument names, its output fields) is read from its models, the one
place an action's contract is written.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import BreakglassError

if TYPE_CHECKING:  # the base module imports pydantic; `list` and `--help` must not pay for it
    from actions.base import Action

ENTRY_POINT_GROUP = "breakglass.actions"

BUILTIN: dict[str, str] = {
    # core
    "shell.run": "actions.shell:ShellRun",
    "manual": "actions.manual:Manual",
    "wait.sleep": "actions.core:WaitSleep",
    "assert": "actions.core:Assert",
    "log.note": "actions.core:LogNote",
    "followup.add": "actions.core:FollowupAdd",
    "contacts.check": "actions.contacts:ContactsCheck",
    # DNS (issue 5)
    "dns.lookup": "actions.dns:DnsLookup",
    "dns.authoritative": "actions.dns:DnsAuthoritative",
    "dns.propagation": "actions.dns:DnsPropagation",
    "dns.update": "actions.dns_update:DnsUpdate",
    "dns.tsig_check": "actions.dns_tsig:DnsTsigCheck",
    # domains and registrars (issue 6)
    "domain.status": "actions.domain:DomainStatus",
    "domain.expiry_audit": "actions.domain_audit:DomainExpiryAudit",
    # mail (issue 7)
    "mail.blacklist": "actions.mail_blacklist:MailBlacklist",
    "mail.auth_records": "actions.mail_auth:MailAuthRecords",
    "mail.spf_check": "actions.mail_auth:MailSpfCheck",
    "mail.smtp_probe": "actions.smtp:SmtpProbe",
    "mail.rejections": "actions.mail_rejections:MailRejections",
    # hosts and web (issue 8)
    "ssh.run": "actions.ssh:SshRun",
    "ssh.upload": "actions.ssh:SshUpload",
    "ssh.download": "actions.ssh:SshDownload",
    "http.probe": "actions.http:HttpProbe",
    "http.request": "actions.http:HttpRequest",
    "notify.webhook": "actions.notify:NotifyWebhook",
    # telling customers: status page and notices from the runbook's `comms:` (issue 19)
    "comms.post": "actions.comms:CommsPost",
    # certificates and DNSSEC (issue 19)
    "tls.check": "actions.tls:TlsCheck",
    "dns.dnssec": "actions.dnssec:DnsDnssec",
    # runbooks that call runbooks (issue 16)
    "runbook.run": "actions.runbook:RunbookRun",
    # personal-data breaches (issue 19)
    "legal.deadlines": "actions.legal:LegalDeadlines",
}


class UnknownAction(BreakglassError):
    """No action is registered under that name."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.suggestion = next(iter(difflib.get_close_matches(name, known, n=1)), None)
        hint = f" (did you mean '{self.suggestion}'?)" if self.suggestion else ""
        super().__init__(f"unknown action '{name}'{hint}")


@dataclass(frozen=True)
class Arguments:
    """The ``with:`` keys of an action as a runbook writes them (aliases): what validation checks."""

    accepted: tuple[str, ...]
    required: tuple[str, ...]
    # Arguments that decide the step's effect, hence its gate: a literal true or false, never a template.
    literal_bools: tuple[str, ...] = ()
    # Arguments a language sidecar may translate (Action.text_params).
    texts: tuple[str, ...] = ()
    # Arguments that take one of a few words (a ``Literal``): a literal value is checked against them when the
    # runbook is validated, not first when its step runs (``stage: investigatin`` at 3 a.m.).
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, action: type[Action[Any]]) -> Arguments:
        from actions.base import renamed_arguments

        fields = action.Params.model_fields
        flag = action.read_only_flag
        # A renamed argument's old names stay accepted (the action says they are deprecated when it runs).
        old_names = tuple(renamed_arguments(action.Params))
        return cls(tuple(f.alias or n for n, f in fields.items()) + old_names,
                   tuple(f.alias or n for n, f in fields.items() if f.is_required()),
                   (flag,) if flag is not None else (), tuple(sorted(action.text_params)),
                   {f.alias or n: words for n, f in fields.items() if (words := _words(f.annotation))})


def _words(annotation: Any) -> tuple[str, ...]:
    """The strings a ``Literal[...]`` (or ``Literal[...] | None``) annotation allows; () for anything else."""
    import types
    import typing

    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = members[0] if len(members) == 1 else None
    if typing.get_origin(annotation) is not typing.Literal:
        return ()
    values = typing.get_args(annotation)
    return tuple(values) if all(isinstance(v, str) for v in values) else ()


def _load(target: str) -> type[Action[Any]]:
    from actions.base import Action

    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Action)):
        raise BreakglassError(f"{target} is not a breakglass Action class")
    return cls


@dataclass
class Registry:
    """Resolves action names; caches classes; a duplicate name from an entry point is an error."""

    builtin: dict[str, str] = field(default_factory=lambda: dict(BUILTIN))
    _classes: dict[str, type[Action[Any]]] = field(default_factory=dict)
    _plugins: dict[str, str] | None = None

    def plugins(self) -> dict[str, str]:
        if self._plugins is None:
            from importlib.metadata import entry_points

            found: dict[str, str] = {}
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                if ep.name in self.builtin or ep.name in found:
                    raise BreakglassError(
                        f"action '{ep.name}' is registered twice (entry point {ep.value}); "
                        "uninstall one of the packages that provide it"
                    )
                found[ep.name] = ep.value
            self._plugins = found
        return self._plugins

    def names(self) -> list[str]:
        return sorted({*self.builtin, *self.plugins()})

    def register(self, cls: type[Action[Any]]) -> None:
        """Add an action class directly (tests, embedding); a name already taken is an error."""
        if cls.name in self.builtin or cls.name in self._classes:
            raise BreakglassError(f"action '{cls.name}' is already registered")
        self._classes[cls.name] = cls

    def get(self, name: str) -> type[Action[Any]]:
        if name in self._classes:
            return self._classes[name]
        target = self.builtin.get(name)
        if target is None:
            target = self.plugins().get(name)
        if target is None:
            raise UnknownAction(name, self.names())
        cls = _load(target)
        self._classes[name] = cls
        return cls

    def arguments(self, name: str) -> Arguments:
        """The arguments ``name`` accepts; UnknownAction when no action has that name."""
        return Arguments.of(self.get(name))

    def output_fields(self, name: str) -> tuple[str, ...] | None:
        """The fields of ``steps.<id>.output`` for ``name``, None when open-ended; UnknownAction if unknown."""
        return self.get(name).output_fields()

    def describe(self, only: str | None = None) -> list[dict[str, Any]]:
        """Every action (or only the one named) with its arguments, output fields and effect, for
        ``breakglass actions``."""
        return [_describe(name, self.get(name)) for name in ([only] if only is not None else self.names())]


def _describe(name: str, cls: type[Action[Any]]) -> dict[str, Any]:
    from actions.base import can_undo

    output = None if cls.Output is None else _fields(cls.Output.model().model_json_schema(by_alias=True))
    return {"name": name, "effect": str(cls.effect), "summary": cls.summary,
            "arguments": _fields(cls.Params.model_json_schema(by_alias=True)), "output": output,
            "read_only_flag": cls.read_only_flag, "undo": can_undo(cls)}


def _fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    return [{"name": name, "type": _type_label(spec), "required": name in required,
             "description": spec.get("description", ""), "default": spec.get("default")}
            for name, spec in schema.get("properties", {}).items()]


def _type_label(spec: dict[str, Any]) -> str:
    """A field's type as a runbook author reads it: ``list of string``, ``integer``, ``mapping``."""
    if "anyOf" in spec or "oneOf" in spec:
        members = [s for s in spec.get("anyOf", spec.get("oneOf", [])) if s.get("type") != "null"]
        return " | ".join(_type_label(s) for s in members)
    if "enum" in spec:
        return "|".join(map(str, spec["enum"]))
    if "$ref" in spec:
        return str(spec["$ref"]).rsplit("/", 1)[-1]
    kind = spec.get("type")
    if kind == "array":
        return f"list of {_type_label(spec['items'])}" if spec.get("items") else "list"
    if kind == "object":
        return "mapping"
    return str(kind) if kind else "any"
