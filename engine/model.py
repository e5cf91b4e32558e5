"""The runbook as frozen data: Runbook, InputSpec, Step, Gate, Retry, Rollback.

These models are the one source of the runbook format: ``validate`` checks files with them (engine.loader
turns their errors into file:line:col advice), a run executes what they build, and ``breakglass schema``
generates the JSON Schema editors read (committed as engine/runbook.schema.json; a test keeps it current).
Everything here is structure; meaning that needs more than one field (step references, action arguments
and outputs, templates) is checked by ``engine.checks``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from engine.input_types import InputType

RUNBOOK_ID = r"^[a-z0-9]+(-[a-z0-9]+)*$"
STEP_ID = r"^[a-z][a-z0-9_]*$"


class Frozen(BaseModel):
    # strict: a runbook says what it means. `attempts: "3"` or `required: "yes"` is a mistake to report, and
    # strict types are what the generated JSON Schema tells editors. Fields are read by their alias only: a
    # file writes `with`, never the Python name `with_`. defer_build: `list` and `--help` never validate.
    # Empty defaults are `default=[]`, not `default_factory=list`: see actions.base.Params.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class InputSpec(Frozen):
    """One typed parameter of a runbook."""

    type: InputType = Field(InputType.STRING, strict=False,  # strict enums take only members, not "domain"
                            description="The value's type; checked before any step runs.")
    description: str = Field("", description="What the operator should enter (markdown).")
    default: Any = Field(None, description="Default value; a string may be a template over other inputs.")
    required: bool | None = Field(
        None, description="Whether a value must be given; by default, required when there is no default."
    )
    choices: list[str | int] | None = Field(None, description="Allowed values (type: choice).")
    env: str | None = Field(
        None, description="Read the value from this environment variable (the natural home of secrets)."
    )

    @property
    def is_required(self) -> bool:
        # An input read from `env:` is still required when the variable is unset and there is no default:
        # a missing TSIG secret must stop the run before it starts, not surface as None mid-run.
        if self.required is not None:
            return self.required
        return self.default is None


APPROVER = r"^@?[A-Za-z0-9][A-Za-z0-9._@+-]*$"  # a name or an @group of the team's allowed_signers file


class Announce(Frozen):
    """A message sent when a four-eyes gate opens, so the approvers learn of it where they are (a chat channel)."""

    action: str = Field(description="A notify action, e.g. notify.webhook.")
    with_: dict[str, Any] = Field(
        default={}, alias="with",
        description="Its arguments. Templates may also use `gate`: run, step, digest, needed, approvers, "
                    "seconds (its timeout) and approve, the exact `breakglass approve RUN STEP --digest HASH`.",
    )


class Gate(Frozen):
    """A confirmation gate: the operator must approve before the step runs; with ``approvals``, N other
    people must first approve it too, each with a signature by their own SSH key (four-eyes)."""

    message: str | None = Field(None, description="What the operator is asked (a template).")
    type_to_confirm: str | None = Field(
        None, description="A value the operator must type to approve, e.g. '{{ inputs.domain }}'."
    )
    approvals: int | None = Field(
        None, ge=1, le=20,
        description="How many distinct people other than the operator must approve (signed with their SSH keys).",
    )
    approvers: list[Annotated[str, Field(pattern=APPROVER)]] = Field(
        default=[],
        description="Who may approve: names or @groups of the team's allowed_signers file (needs `approvals`).",
    )
    timeout: float | None = Field(
        None, gt=0, description="Seconds the other approvers have; when they run out the gate says no."
    )
    announce: Announce | None = Field(
        None, description="Tell the approvers the gate is open (needs `approvals`): a notify action's call."
    )
    each: bool = Field(
        False, description="On a `for_each` step: ask for every item on its own instead of once for all.",
    )

    @model_validator(mode="after")
    def _approvers_need_approvals(self) -> Gate:
        # Either half alone is a runbook that reads as guarded by other people and is not.
        if self.approvers and self.approvals is None:
            raise ValueError("`approvers` needs `approvals: N` (how many of them must approve)")
        if self.approvals is not None and not self.approvers:
            raise ValueError("`approvals` needs `approvers`: the names or @groups who may approve")
        if self.announce is not None and self.approvals is None:
            raise ValueError("`announce` tells other approvers of the gate: it needs `approvals` and `approvers`")
        return self


def _confirm_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "str"
    return "Gate" if isinstance(value, (dict, Gate)) else None


# `confirm` takes a boolean, a message or a gate mapping, chosen by the kind of value written: a misspelt key
# in the mapping is then reported as that, not as "should be a boolean or a string or ...".
Confirm = Annotated[
    Annotated[bool, Tag("bool")] | Annotated[str, Tag("str")] | Annotated[Gate, Tag("Gate")],
    Discriminator(_confirm_kind, custom_error_type="confirm_type",
                  custom_error_message="input should be a valid boolean or a valid string or a valid mapping"),
]


class Retry(Frozen):
    """How often a step is tried and how long to wait between attempts."""

    attempts: int = Field(3, ge=1, le=10_000, description="Total attempts, the first included.")
    delay: float = Field(1.0, ge=0, description="Seconds before the second attempt.")
    backoff: float = Field(1.0, ge=1, description="Multiplier applied to the delay after each attempt.")
    max_delay: float = Field(300.0, ge=0, description="Upper bound of one wait, in seconds.")


class Rollback(Frozen):
    """An action that undoes a completed step; run in reverse order when a later step fails with rollback.

    The engine runs it on the same path as a step, so it takes the same keys for how its action is called."""

    title: str | None = Field(None, description="What the rollback does, for the operator.")
    action: str = Field(description="A registered action's name.")
    with_: dict[str, Any] = Field(default={}, alias="with", description="The action's arguments.")
    confirm: Confirm | None = Field(
        None, description="Gate for the rollback itself; mutating rollbacks are gated unless false."
    )
    retries: Retry | None = Field(None, description="Retry policy of the undo, as for a step.")
    until: str | None = Field(None, description="Retry the undo until this expression over `result` is true.")
    timeout: float | None = Field(None, gt=0, description="Seconds the undo may take; the step's by default.")
    expect: str | None = Field(None, description="The undo fails unless this expression over `result` holds.")


AUTO = "auto"  # `rollback: auto`: the action undoes itself from what its step recorded (engine.rollbacks)


def _rollback_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "auto"
    return "Rollback" if isinstance(value, (dict, Rollback)) else None


# `rollback` takes `auto` or a rollback mapping, chosen by the kind of value written, so a misspelt key in the
# mapping is reported as that, and `rollback: autoo` as "should be 'auto'".
RollbackSpec = Annotated[
    Annotated[Literal["auto"], Tag("auto")] | Annotated[Rollback, Tag("Rollback")],
    Discriminator(_rollback_kind, custom_error_type="rollback_type",
                  custom_error_message="input should be 'auto' or a valid mapping"),
]


class Step(Frozen):
    """One step of a runbook: an action with its arguments, conditions, gate and failure policy."""

    id: str = Field(pattern=STEP_ID, description="Unique snake_case id; steps.<id> in templates.")
    title: str = Field(description="One line shown on the operator's terminal.")
    description: str = Field("", description="Markdown instructions shown to the operator.")
    action: str = Field(description="A registered action's name, e.g. dns.lookup (see `breakglass actions`).")
    with_: dict[str, Any] = Field(
        default={}, alias="with", description="The action's arguments; strings are templates."
    )
    when: str | bool | None = Field(None, description="Skip the step unless this expression is true.")
    confirm: Confirm | None = Field(
        None,
        description="Gate: true, a message, or {message, type_to_confirm, approvals, approvers, timeout}. "
        "Mutating steps are gated in live runs unless this is false.",
    )
    retries: Retry | None = Field(None, description="Retry policy: {attempts, delay, backoff}.")
    until: str | None = Field(None, description="Retry until this expression over `result` is true.")
    timeout: float | None = Field(None, gt=0, description="Seconds the step may take.")
    expect: str | None = Field(None, description="The step fails unless this expression over `result` holds.")
    on_failure: Literal["abort", "continue", "rollback"] = Field(
        "abort", description="abort (default), continue, or rollback every completed step in reverse order."
    )
    rollback: RollbackSpec | None = Field(
        None, description="An {action, with} that undoes this step, or `auto` for an action that can undo itself "
        "from what it recorded (see `breakglass actions`).")
    for_each: str | list[Any] | dict[str, Any] | None = Field(
        None, description="Run the step once per item of this list or mapping (usually a template); each item "
        "is a step of its own, `step[key]`, with `item` (and `item_key`) in its templates.",
    )
    concurrency: int | None = Field(
        None, ge=1, le=1000,
        description="How many items of a read-only `for_each` step run at once (default 1: one at a time).",
    )


class Group(Frozen):
    """Read-only steps run at once (``parallel``): e.g. the RDAP, DNS, HTTP and DNSBL checks at the start of
    an incident. Each is a step of its own (``steps.<id>``); a step that changes the world or asks a gate is
    refused here at validation, since they run together."""

    id: str = Field(pattern=STEP_ID, description="Unique snake_case id of the group (its steps keep their own).")
    title: str = Field(description="One line shown on the operator's terminal.")
    description: str = Field("", description="Markdown instructions shown to the operator.")
    parallel: list[Step] = Field(min_length=1, description="The read-only steps to run at once.")


def _step_kind(value: Any) -> str:
    return "group" if isinstance(value, Group) or (isinstance(value, dict) and "parallel" in value) else "step"


# A step, or a group of steps run at once, chosen by the `parallel` key: a misspelt key in a step is then
# reported as that, not as "or a group".
StepOrGroup = Annotated[
    Annotated[Step, Tag("step")] | Annotated[Group, Tag("group")],
    Discriminator(_step_kind),
]


CADENCE = r"^[1-9][0-9]*(m|h)$"  # minutes or hours: "30m", "1h"


class CommsText(Frozen):
    """One message in both languages the runbook's audience reads, each a template over inputs and steps."""

    en: str = Field(description="The English text (a template).")
    ja: str = Field(description="The Japanese text (a template); a sidecar never translates it.")


class CommsTemplates(Frozen):
    """The messages a `comms.post` step sends, by kind."""

    status_page: CommsText | None = Field(None, description="The status page entry (short, public).")
    customer_notice: CommsText | None = Field(
        None, description="The notice mailed to affected customers (what happened, what to do, what not).")


class Comms(Frozen):
    """How this incident is told to customers: the templates and how often an update is owed (issue 19).

    A `comms.post` step renders one kind with a stage (investigating, identified, monitoring, resolved),
    records the exact text and promises the next update; the engine reminds the operator when `cadence` has
    passed since the last update (or the run's start) without one."""

    cadence: str = Field(pattern=CADENCE, description='How often customers get an update: "30m", "1h".')
    templates: CommsTemplates = Field(description="status_page and customer_notice, each in en and ja.")

    @property
    def cadence_s(self) -> int:
        number, unit = int(self.cadence[:-1]), self.cadence[-1]
        return number * (3600 if unit == "h" else 60)

    def kinds(self) -> list[str]:
        return [k for k, text in self.templates if text is not None]


class Runbook(Frozen):
    """A runbook file."""

    id: str = Field(pattern=RUNBOOK_ID, description="kebab-case id, equal to the file's name without .yaml.")
    title: str = Field(description="One line naming the outage this runbook handles.")
    description: str = Field("", description="Markdown: when to use this runbook and what it does.")
    severity: Literal["critical", "high", "medium", "low"] = Field(
        "high", description="How bad the outage this runbook handles usually is."
    )
    tags: list[str] = Field(default=[], description="Free-form labels for `breakglass list`.")
    inputs: dict[str, InputSpec] = Field(default={}, description="Typed parameters of the run.")
    comms: Comms | None = Field(
        None, description="Status-page and customer-notice templates (en, ja) and the update cadence; "
        "`comms.post` steps send them and the run reminds the operator when an update is due.")
    defaults: dict[str, dict[str, Any]] = Field(
        default={},
        description="Arguments per action ({dns.update: {server: ..., zone: ...}}), merged under the `with` of "
        "every step and rollback of that action; the step's own arguments win. Templates may read inputs and run.",
    )
    steps: list[StepOrGroup] = Field(min_length=1, description="The ordered steps; `parallel` groups among them.")
    outputs: dict[str, Any] = Field(
        default={},
        description="What this runbook gives a runbook that calls it (`action: runbook.run`): names to templates "
        "over its inputs and steps, rendered after its last step; the call step's output.",
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        # Merged before the steps are built, so every reader of a step (the runner, effect_of, `show`, the
        # secrets an action declares) sees the arguments the step runs with, and none can forget the defaults.
        if not isinstance(data, dict) or not isinstance(data.get("defaults"), dict) or not isinstance(
                data.get("steps"), list):
            return data  # the fields' own validation reports what is wrong
        defaults = data["defaults"]
        return {**data, "steps": [_group_with_defaults(defaults, raw) for raw in data["steps"]]}

    @model_validator(mode="before")
    @classmethod
    def _fill_comms(cls, data: Any) -> Any:
        # The loader fills them before its checks too (same function): a step's templates are checked where
        # the step stands, and every reader of the model sees the arguments the step runs with.
        from engine.comms import with_comms

        return with_comms(data)


def with_defaults(defaults: Any, action: Any, args: Any) -> Any:
    """A call's arguments as it runs: ``defaults[action]`` with the call's own ``with`` over it (one level:
    a step that gives ``headers`` replaces the default ``headers`` whole). Anything malformed is returned as
    it is, for validation to report where it was written."""
    base = defaults.get(action) if isinstance(defaults, dict) and isinstance(action, str) else None
    if not isinstance(base, dict) or not isinstance(args, dict):
        return args
    return {**base, **args}


def _group_with_defaults(defaults: dict[str, Any], raw: Any) -> Any:
    if isinstance(raw, dict) and isinstance(raw.get("parallel"), list):
        return {**raw, "parallel": [_step_with_defaults(defaults, member) for member in raw["parallel"]]}
    return _step_with_defaults(defaults, raw)


def _step_with_defaults(defaults: dict[str, Any], raw: Any) -> Any:
    if not isinstance(raw, dict):
        return raw
    step = {**raw, "with": with_defaults(defaults, raw.get("action"), raw.get("with", {}))}
    rollback = raw.get("rollback")  # `auto` is built from the step's own arguments, defaults included
    if isinstance(rollback, dict):
        step["rollback"] = {**rollback, "with": with_defaults(defaults, rollback.get("action"),
                                                              rollback.get("with", {}))}
    return step


def action_steps(steps: list[Step | Group]) -> list[Step]:
    """Every step that calls an action, in order: a group's steps where the group is."""
    return [s for unit in steps for s in (unit.parallel if isinstance(unit, Group) else [unit])]


def members(unit: Step | Group) -> list[Step]:
    """The steps a unit of ``runbook.steps`` stands for: a group's, or the step itself."""
    return list(unit.parallel) if isinstance(unit, Group) else [unit]


def step_ids(runbook: Runbook) -> list[str]:
    """The ids the run's state machine and audit log know, in order (a group is its steps)."""
    return [s.id for s in action_steps(runbook.steps)]


def gate_of(confirm: bool | str | Gate | None) -> Gate | None:
    """The gate a ``confirm`` value asks for, or None when it asks for none."""
    if confirm is None or confirm is False:
        return None
    if confirm is True:
        return Gate()
    if isinstance(confirm, str):
        return Gate(message=confirm)
    return confirm


def gate_for(confirm: bool | str | Gate | None, mutating: bool) -> Gate | None:
    """The gate a step meets in a live run: the one it asks for, else a plain one when it changes the world,
    unless the runbook says ``confirm: false``. The runner and ``show`` both ask this, so they cannot differ."""
    gate = gate_of(confirm)
    if gate is None and mutating and confirm is not False:
        return Gate()
    return gate


# `until` without `retries`: poll for about a minute.
UNTIL_RETRY = Retry(attempts=10, delay=5.0)


def retry_policy(step: Step | Rollback) -> Retry:
    """How often one start of a step (or its undo) may call its action: after one approval, if it mutates."""
    return step.retries or (UNTIL_RETRY if step.until else Retry(attempts=1))


def repeat_note(step: Step | Rollback) -> str | None:
    """What the operator must know when one approval may apply a change more than once, else None."""
    times = retry_policy(step).attempts
    if times == 1:
        return None
    return f"may apply up to {times} times ({'retries' if step.retries else 'until'})"


def json_schema() -> dict[str, Any]:
    """JSON Schema of runbook files, for YAML editors (yaml-language-server)."""
    schema = Runbook.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://breakglass.invalid/schema/runbook.json"
    schema["title"] = "breakglass runbook"
    # The exact JSON pydantic writes differs between its releases (e.g. `allOf` around a `$ref`); the stamp
    # tells a check of the committed file which release wrote it.
    schema["$comment"] = f"Generated from the model by `breakglass schema` (pydantic {pydantic_version()})."
    return schema


def pydantic_version() -> str:
    from pydantic.version import VERSION

    return str(VERSION)
