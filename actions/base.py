"""The one interface every action implements, and the values it exchanges with the engine.

An action is a small class: a name, an argument model, its effect, and either ``run`` (read-only actions)
or ``plan`` + ``apply`` (actions that change the world or notify people). The engine walks
render → plan → gate → apply → record; a dry-run stops after ``plan`` and a drill swaps the world, so there
is no second code path that could lie.

Rules an action follows:
- everything arrives through ``params`` and ``ctx``: no globals, so tests point it at local servers;
- heavy libraries (dnspython, paramiko, httpx) are imported inside methods, never at module import: the
  modules of the actions a runbook uses are imported to validate it, and `breakglass actions` imports them all;
- an unexpected world (SERVFAIL, timeout, 429, a refused host key) is a result with a status and a message;
  raise ``ActionError`` only when the step cannot produce a meaningful result at all;
- output is plain data (dicts, lists, str, int, float, bool, None): it becomes ``steps.<id>.output`` in
  templates and is written to the audit log, and it is never rendered as a template. Its fields are declared
  in the action's ``Output`` declaration, so ``validate`` catches ``steps.probe.output.status_code`` on an action
  that has no such field, and ``breakglass actions NAME`` documents them.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, TypeVar, get_args, get_origin

from pydantic import AliasChoices, BaseModel, ConfigDict, PrivateAttr, model_validator

from engine.errors import ActionError


class Effect(StrEnum):
    """What running an action does to the world; decides dry-run behaviour and gating."""

    READ = "read"  # diagnostics: run for real in a dry-run
    WRITE = "write"  # changes the world: planned only in a dry-run, gated in a live run
    NOTIFY = "notify"  # tells people: shown, not sent, in a dry-run


class Params(BaseModel):
    """Base of every action's argument model: unknown arguments are an error, values are immutable.

    A renamed argument keeps its old name as an accepted alias, written as the field's
    ``validation_alias=AliasChoices(new, old, ...)``: runbooks written before the rename still run, and
    ``deprecations()`` says what to write instead.

    An empty list or mapping is written ``Field(default=[])``: pydantic copies a mutable default for each
    instance, while ``default_factory=list`` has it read a builtin's signature (Python tokenizes its text
    signature), which costs `validate` and `run` ~5 ms.
    """

    # defer_build: validating a runbook needs only the field names; the validator is built on first use.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    _old_names_used: tuple[tuple[str, str], ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _note_old_names(cls, data: Any, handler: Any) -> Any:
        model = handler(data)
        if isinstance(data, Mapping) and isinstance(model, Params):
            renamed = renamed_arguments(cls)
            model._old_names_used = tuple((old, renamed[old]) for old in data if old in renamed)
        return model

    def deprecations(self) -> tuple[str, ...]:
        """One line per old argument name these arguments were written with."""
        return tuple(f"argument '{old}' is deprecated: write '{new}' (same meaning)"
                     for old, new in self._old_names_used)

    def deprecation_note(self) -> str:
        """``deprecations()`` as a suffix for a result's or plan's one-line message; empty when none."""
        return "".join(f" [{line}]" for line in self.deprecations())


def can_undo(action: type[Action[Any]]) -> bool:
    """Whether ``rollback: auto`` works for this action: it overrides ``Action.undo``."""
    return action.undo.__func__ is not Action.undo.__func__  # type: ignore[attr-defined]


@functools.cache  # asked on every validation of arguments: once per item of a loop
def renamed_arguments(model: type[BaseModel]) -> dict[str, str]:
    """Old argument name → current name, from the fields' ``AliasChoices`` (the first choice is current);
    read-only."""
    renamed = {}
    for name, info in model.model_fields.items():
        if isinstance(info.validation_alias, AliasChoices):
            for old in info.validation_alias.choices[1:]:
                if isinstance(old, str):
                    renamed[old] = name
    return renamed


class Output:
    """Base of every action's output declaration: the fields of ``steps.<id>.output``, each described.

    Written like a pydantic model (``status: str = Field(description=...)``) but a declaration, not a
    validator: outputs stay plain dicts (a failed attempt may carry fewer fields). So it is not built as a
    model when defined (a millisecond each, paid by every ``validate`` that imports the action): ``fields()``
    reads the names, and ``model()`` builds the pydantic model only when ``breakglass actions`` shows types.
    """

    @classmethod
    def fields(cls) -> dict[str, Any]:
        """Each field's name and its ``Field(...)``, a base class's first, in the order written."""
        return {name: info for name, (_, info) in cls._declared().items()}

    @classmethod
    def model(cls) -> type[BaseModel]:
        """This declaration as a pydantic model: its JSON Schema gives each field's type for the docs."""
        return _with_fields(BaseModel, cls, cls._declared())

    @classmethod
    def _declared(cls) -> dict[str, tuple[Any, Any]]:
        """Each field's name, annotation and ``Field(...)``, a base class's first."""
        declared: dict[str, tuple[Any, Any]] = {}
        for klass in reversed(cls.__mro__):
            for name, annotation in vars(klass).get("__annotations__", {}).items():
                declared[name] = (annotation, vars(klass).get(name))
        return declared


def _with_fields(base: type[Any], like: type[Any], fields: Mapping[str, tuple[Any, Any]]) -> type[Any]:
    """A subclass of ``base`` named and documented as ``like`` and in its module (where annotations written as
    strings name their types), with ``fields``: name → (annotation, ``Field(...)``)."""
    return type(like.__name__, (base,), {
        "__module__": like.__module__, "__doc__": like.__doc__,
        "__annotations__": {name: annotation for name, (annotation, _) in fields.items()},
        **{name: info for name, (_, info) in fields.items()}})


# The output key through which an action leaves something for after the run (a legal deadline, a renewal
# date): a list of {"text": ..., "due": ISO 8601 or null}. The engine lists every one at the end of the run and
# in the report (engine/followups.py), so a deadline found at step 3 is not lost by step 30.
OPEN_ITEMS = "open_items"


# The names `Params` and `Output` are also each action's class attributes; these aliases keep annotations in
# Action pointing at the model classes, not at those attributes.
ParamsModel = Params
OutputModel = Output
P = TypeVar("P", bound=ParamsModel)


@dataclass(frozen=True)
class Plan:
    """What a mutating action would change, computed from the current state of the world; changes nothing.

    ``summary`` is one line for the operator ("A www.example.com 192.0.2.10 → 198.51.100.7"), ``changes``
    the structured diff for reports and ``--json``, ``state`` whatever ``apply`` needs from the plan (for
    example the RRset read before the change, so the output can carry it for a rollback).
    """

    summary: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    refused: str | None = None  # set when the plan itself is unsafe (e.g. over the blast-radius cap)


@dataclass(frozen=True)
class ActionResult:
    """What a step produced. ``ok`` False fails the step (subject to retries and ``on_failure``)."""

    output: dict[str, Any]
    ok: bool = True
    message: str = ""
    secrets: tuple[str, ...] = ()  # values to redact wherever this result is recorded or shown


def _no_progress(_message: str) -> None:
    return None


class OperatorTerminal(Protocol):
    """The operator's terminal, for actions that talk to a person (``manual``): implemented by the engine,
    which words its own questions in the operator's language and reads their answers (an action imports no
    engine module for that)."""

    @property
    def interactive(self) -> bool: ...
    def say(self, text: str) -> None: ...
    def ask(self, prompt: str, timeout: float | None = None, echo: bool = True) -> str | None: ...

    def tick(self, item: str) -> bool | None:
        """Ask whether checklist ``item`` is done: True for yes, False for anything else, None at end of input."""
        ...

    def note(self) -> str:
        """Ask for a note for the report; empty for none (or at end of input)."""
        ...


@dataclass
class ActionContext:
    """Everything an action may use besides its arguments."""

    run_id: str = "adhoc"
    step_id: str = "adhoc"
    mode: str = "live"  # live | dry-run | drill
    timeout: float | None = None  # seconds this step may take, if the runbook set one
    settings: Mapping[str, Any] = field(default_factory=dict)
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Callable[[str], None] = _no_progress  # a line for the operator while a long step works
    operator: str = "unknown"
    runbook_id: str = ""
    terminal: OperatorTerminal | None = None  # None: nobody to ask (a test, an embedding)
    started: float = field(default_factory=time.monotonic)

    def remaining(self, default: float) -> float:
        """Seconds left before the step's timeout, or ``default`` when the step has none."""
        if self.timeout is None:
            return default
        return max(0.05, self.timeout - (time.monotonic() - self.started))


class Action(Generic[P]):
    """Base class of every action. Subclasses name their argument model as the type parameter
    (``class DnsLookup(Action[DnsLookupParams])``), set the other class attributes and implement run or
    plan+apply. The engine builds arguments with ``Params``, taken from that parameter (a class may also
    set ``Params`` itself)."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    effect: ClassVar[Effect] = Effect.READ
    Params: ClassVar[type[ParamsModel]] = ParamsModel
    # The fields of this action's output; None when they are open-ended (a third-party action that does not
    # say), and then `validate` does not check reads of them.
    Output: ClassVar[type[OutputModel] | None] = None
    # Argument names whose values are secrets (a TSIG secret, a password): redacted before any record.
    secret_params: ClassVar[frozenset[str]] = frozenset()
    # A boolean argument whose literal ``true`` makes this invocation a read (``read_only``). It decides
    # gating, so validation accepts only a literal true or false there: never a template, never "yes" or 1.
    read_only_flag: ClassVar[str | None] = None
    # Arguments that are text for people (instructions, a message): a runbook's language sidecar may give
    # them in another language (engine.translation). Never an argument that decides what the action does.
    text_params: ClassVar[frozenset[str]] = frozenset()
    # Arguments a gate does not list because the plan shows what they make (comms.post's message bodies: the
    # gate shows the texts customers will read, not the parts they were made from).
    shown_by_plan: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("Output")
        if isinstance(declared, type) and issubclass(declared, BaseModel):
            # An output written as a pydantic model (third-party actions before Output became a declaration):
            # the same fields, declared.
            cls.Output = _with_fields(OutputModel, declared, {
                info.alias or name: (info.annotation, info) for name, info in declared.model_fields.items()})
        if "Params" in cls.__dict__:
            return
        for base in cls.__dict__.get("__orig_bases__", ()):
            model = get_args(base)[0] if get_origin(base) is Action and get_args(base) else None
            if isinstance(model, type) and issubclass(model, ParamsModel):
                cls.Params = model

    @classmethod
    def output_fields(cls) -> tuple[str, ...] | None:
        """The names ``steps.<id>.output`` has for this action, or None when its output is open-ended."""
        return None if cls.Output is None else tuple(cls.Output.fields())

    def secrets_for(self, params: P) -> tuple[str, ...]:
        """Secret values in these arguments, redacted before the arguments are recorded or shown.

        The default returns the ``secret_params`` values; actions with secrets inside structures (an
        Authorization header, a token in a URL) override it.
        """
        return tuple(str(v) for n in self.secret_params if (v := getattr(params, n, None)) not in (None, ""))

    @classmethod
    def effect_of(cls, args: Mapping[str, Any]) -> Effect:
        """The effect of one invocation, decided from its ``with`` arguments as the runbook wrote them.

        The only place an effect is decided: ``show``, the gate and the dry-run all ask it. It reads the
        arguments before rendering, so nothing an earlier step printed can decide whether a step is gated;
        an action whose effect depends on a templated argument (``mail.smtp_probe``'s ``send_to``) takes the
        larger effect as soon as the argument is written at all. The default: ``read_only_flag`` set to the
        literal ``true`` makes a read, anything else is the declared ``effect``.
        """
        if cls.read_only_flag is not None and args.get(cls.read_only_flag) is True:
            return Effect.READ
        return cls.effect

    @classmethod
    def undo(cls, args: Mapping[str, Any], recorded: str) -> dict[str, Any] | None:
        """The ``with`` of a call of this same action that puts back what one call with ``args`` changed, or
        None when this action cannot undo itself (then ``rollback: auto`` is refused at validation).

        ``args`` are the step's arguments as written (defaults merged); ``recorded`` is the template path of
        what the step recorded (``steps.switch_a.output``). What the world said reaches the undo only through
        templates over that path, so it is inserted as data and never rendered as a template itself."""
        return None

    def run(self, params: P, ctx: ActionContext) -> ActionResult:
        """Perform a read-only action."""
        raise ActionError(f"{self.name} is a mutating action: it has a plan and an apply, not a run")

    def plan(self, params: P, ctx: ActionContext) -> Plan:
        """Describe what ``apply`` would change. The default names the action and its arguments."""
        shown = {k: v for k, v in params.model_dump(mode="json").items() if v is not None}
        return Plan(summary=f"{self.name} {shown}")

    def apply(self, params: P, ctx: ActionContext, plan: Plan) -> ActionResult:
        """Make the change the plan describes. Read-only actions never get here."""
        return self.run(params, ctx)
