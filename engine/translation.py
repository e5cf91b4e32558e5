"""A runbook's text in another language: the sidecar ``i18n/<runbook id>.<lang>.yaml`` next to the runbook.

The runbook stays the one source of logic and of the English text; a sidecar only gives other words for its
human text, keyed by what they belong to, never by position::

    title: DNS フェイルオーバー              # the runbook's title and description
    inputs:
      domain: 切り替えるドメイン             # an input's description
    steps:
      switch_a:                              # a step id
        title: A レコードを待機系に向ける
        description: ...
        confirm: "{{ inputs.domain }} を切り替えますか?"   # the gate's message
        with: {instructions: ..., checklist: [...], text: ...}  # the action's text_params only
        rollback: {title: ..., confirm: ..., with: {...}}
    scenarios:
      primary-down: {title: ..., description: ...}   # drill scenarios, by name

Only text is translated: what a step does, whether it is gated and what must be typed to pass a gate
(``type_to_confirm``) are the runbook's alone, so no language can change them. A translated template is put
where the English one was, so the runner renders it on the same path, in the same sandbox, once. ``check``
refuses what would drift from the runbook (unknown step ids and inputs, keys with nothing to translate,
template variables other than the original's, a checklist of another length) and warns about text the
sidecar does not give (shown in English): a runbook edited since its translation still runs, and
tests/runbooks fails until the shipped sidecars are complete again.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from engine import templates
from engine.errors import Problem, RunbookError, TemplateError
from engine.model import Gate, Group, Rollback, Runbook, Step
from engine.yamlsource import Path, Source, SourceError, parse, read_document

if TYPE_CHECKING:
    from actions.registry import Registry
    from engine.loader import LoadedRunbook
    from engine.scenario import Heading, Scenario

SOURCE_LANGUAGE = "en"  # the runbook's own text
FOLDER = "i18n"
TOP_KEYS = ("title", "description", "inputs", "steps", "scenarios")
STEP_KEYS = ("title", "description", "confirm", "with", "rollback")
GROUP_KEYS = ("title", "description")  # a parallel group's own text (its steps are keyed by their own ids)
ROLLBACK_KEYS = ("title", "confirm", "with")
SCENARIO_KEYS = ("title", "description")


def sidecar_path(runbook_path: str | FsPath, runbook_id: str, lang: str) -> FsPath:
    """Where the ``lang`` text of the runbook at ``runbook_path`` is kept."""
    return FsPath(runbook_path).resolve().parent / FOLDER / f"{runbook_id}.{lang}.yaml"


@dataclass(frozen=True)
class Translation:
    """A checked sidecar: the runbook's text in ``lang``, and the problems and gaps ``validate`` reports."""

    lang: str
    path: str
    sha256: str
    data: dict[str, Any]
    source: Source
    warnings: tuple[Problem, ...] = field(default=())

    def scenario(self, scenario: Scenario) -> Scenario:
        """The drill scenario with its title and description in this language, where given."""
        from dataclasses import replace

        given = _mapping(_mapping(self.data.get("scenarios")).get(scenario.name))
        title, description = given.get("title"), given.get("description")
        return replace(scenario, title=title if isinstance(title, str) else scenario.title,
                       description=description if isinstance(description, str) else scenario.description)


def read(runbook_path: str, runbook: Runbook, lang: str, registry: Registry,
         scenarios: Mapping[str, Heading | None] | None = None) -> Translation | None:
    """The checked ``lang`` sidecar of a runbook, None when there is none (or ``lang`` is the source's);
    RunbookError with every problem as file:line:col when it does not fit the runbook.

    ``scenarios`` maps the runbook's scenario names to the scenarios, for ``validate`` to check their text
    too; by default only their names are read (file names): parsing every scenario on every run and ``show``
    cost a quarter of a second."""
    if lang == SOURCE_LANGUAGE:
        return None
    path = sidecar_path(runbook_path, runbook.id, lang)
    if not path.is_file():
        return None
    try:
        text = read_document(path, kind="translation")
        src = parse(text, str(path), kind="translation")
    except SourceError as exc:
        raise RunbookError(exc.problems) from None
    if scenarios is None:
        scenarios = _scenario_names(runbook_path, runbook.id)
    problems, gaps = _Checker(src, runbook, registry, lang, scenarios).run()
    if problems:
        raise RunbookError(problems)
    return Translation(lang, str(path), hashlib.sha256(text.encode()).hexdigest(), _mapping(src.data), src,
                       tuple(gaps))


def _scenario_names(runbook_path: str, runbook_id: str) -> dict[str, Heading | None]:
    from engine.scenario import scenario_files, scenario_name

    return {scenario_name(f): None for f in scenario_files(runbook_path, runbook_id)}


def _scenarios(runbook_path: str, runbook_id: str) -> dict[str, Heading | None]:
    from engine.scenario import heading, scenario_files, scenario_name

    # An unreadable scenario is reported by the drill that uses it; its name still counts.
    return {scenario_name(f): heading(f) for f in scenario_files(runbook_path, runbook_id)}


def apply(runbook: Runbook, translation: Translation | None) -> Runbook:
    """The runbook with its human text in the translation's language; the same runbook when there is none."""
    if translation is None:
        return runbook
    data = translation.data
    inputs = _mapping(data.get("inputs"))
    steps = _mapping(data.get("steps"))
    update: dict[str, Any] = {k: data[k] for k in ("title", "description") if isinstance(data.get(k), str)}
    update["inputs"] = {name: spec.model_copy(update={"description": inputs[name]})
                        if isinstance(inputs.get(name), str) else spec
                        for name, spec in runbook.inputs.items()}
    update["steps"] = [_unit(unit, steps) for unit in runbook.steps]
    return runbook.model_copy(update=update)


def _unit(unit: Step | Group, steps: Mapping[str, Any]) -> Step | Group:
    """A step, or a parallel group (its own title and description, and each of its steps, keyed by id)."""
    if not isinstance(unit, Group):
        return _step(unit, _mapping(steps.get(unit.id)))
    words = _mapping(steps.get(unit.id))
    update: dict[str, Any] = {k: words[k] for k in ("title", "description") if isinstance(words.get(k), str)}
    update["parallel"] = [_step(member, _mapping(steps.get(member.id))) for member in unit.parallel]
    return unit.model_copy(update=update)


def _step(step: Step, words: Mapping[str, Any]) -> Step:
    if not words:
        return step
    update: dict[str, Any] = {k: words[k] for k in ("title", "description") if isinstance(words.get(k), str)}
    update.update(_call(step.confirm, step.with_, words))
    rollback = _mapping(words.get("rollback"))
    if isinstance(step.rollback, Rollback) and rollback:
        rb_update: dict[str, Any] = {"title": rollback["title"]} if isinstance(rollback.get("title"), str) else {}
        rb_update.update(_call(step.rollback.confirm, step.rollback.with_, rollback))
        update["rollback"] = step.rollback.model_copy(update=rb_update)
    return step.model_copy(update=update)


def _call(confirm: bool | str | Gate | None, args: dict[str, Any], words: Mapping[str, Any]) -> dict[str, Any]:
    """The ``confirm`` and ``with`` of a step or rollback with their text replaced."""
    update: dict[str, Any] = {}
    message = words.get("confirm")
    if isinstance(message, str):
        if isinstance(confirm, str):
            update["confirm"] = message
        elif isinstance(confirm, Gate) and confirm.message is not None:
            update["confirm"] = confirm.model_copy(update={"message": message})
    texts = _mapping(words.get("with"))
    if texts:
        update["with_"] = {**args, **{k: v for k, v in texts.items() if k in args}}
    return update


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def loaded_with(loaded: LoadedRunbook, lang: str, registry: Registry | None = None) -> LoadedRunbook:
    """A LoadedRunbook speaking ``lang``: its runbook's text from the sidecar, the file's hash unchanged (the
    sidecar is words, not the contract a resume compares)."""
    from dataclasses import replace

    if lang == SOURCE_LANGUAGE:
        return replace(loaded, lang=lang)
    if registry is None:
        from actions.registry import Registry

        registry = Registry()
    translation = read(loaded.path, loaded.runbook, lang, registry)
    return replace(loaded, runbook=apply(loaded.runbook, translation), lang=lang, translation=translation)


# --- checks ------------------------------------------------------------------------------------------------


class _Checker:
    """Walks a sidecar against its runbook: problems (what does not fit) and gaps (what is not translated)."""

    def __init__(self, src: Source, runbook: Runbook, registry: Registry, lang: str,
                 scenarios: Mapping[str, Heading | None]) -> None:
        self.src = src
        self.runbook = runbook
        self.registry = registry
        self.lang = lang
        self.scenarios = scenarios
        self.problems: list[Problem] = []
        self.gaps: list[Problem] = []

    def run(self) -> tuple[list[Problem], list[Problem]]:
        data = self.src.data
        if not isinstance(data, dict):
            self.problems.append(self.src.problem((), "a translation is a mapping with title, description, "
                                                      "inputs, steps and scenarios"))
            return self.problems, self.gaps
        self._keys(data, (), TOP_KEYS, "here")
        rb = self.runbook
        self._text(rb.title, data.get("title"), ("title",), "the runbook's title")
        self._text(rb.description, data.get("description"), ("description",), "the runbook's description")
        self._section(data, "inputs", {n: s.description for n, s in rb.inputs.items()}, "input", self._input)
        known: dict[str, Step | Group] = {}
        for unit in rb.steps:  # a parallel group: its own text, then each of its steps by its own id
            known[unit.id] = unit
            if isinstance(unit, Group):
                known.update({member.id: member for member in unit.parallel})
        self._section(data, "steps", known, "step", self._step)
        self._section(data, "scenarios", dict(self.scenarios), "scenario", self._scenario)
        return self.problems, self.gaps

    # Each section: unknown names are problems (with the closest known one), names not given are gaps.
    def _section(self, data: dict[str, Any], key: str, known: Mapping[str, Any], what: str, check: Any) -> None:
        given = data.get(key)
        if given is None:
            given = {}
        elif not isinstance(given, dict):
            self.problems.append(self.src.problem((key,), f"'{key}' must be a mapping of {what} names"))
            return
        for name, words in given.items():
            path: Path = (key, name)
            if name not in known:
                near = difflib.get_close_matches(str(name), list(known), n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                self.problems.append(self.src.problem(path, f"the runbook has no {what} '{name}'{hint}",
                                                      key=True))
                continue
            check(known[name], words, path)
        for name, original in known.items():
            if name not in given:
                check(original, None, (key, name))

    def _input(self, description: str, words: Any, path: Path) -> None:
        self._text(description, words, path, f"the description of input '{path[-1]}'")

    def _scenario(self, scenario: Heading | None, words: Any, path: Path) -> None:
        words = self._fields(words, path, SCENARIO_KEYS, f"scenario '{path[-1]}'")
        if scenario is None:  # known by name only: its text is checked by `validate`
            for key, value in words.items():
                if key in SCENARIO_KEYS and not isinstance(value, str):
                    self.problems.append(self.src.problem((*path, key), f"the {key} of scenario '{path[-1]}' "
                                                          "must be text"))
            return
        self._text(scenario.title, words.get("title"), (*path, "title"), f"the title of scenario '{path[-1]}'")
        self._text(scenario.description, words.get("description"), (*path, "description"),
                   f"the description of scenario '{path[-1]}'")

    def _step(self, step: Step | Group, words: Any, path: Path) -> None:
        if isinstance(step, Group):
            name = f"group '{step.id}'"
            words = self._fields(words, path, GROUP_KEYS, name)
            self._text(step.title, words.get("title"), (*path, "title"), f"the title of {name}")
            self._text(step.description, words.get("description"), (*path, "description"),
                       f"the description of {name}")
            return
        name = f"step '{step.id}'"
        words = self._fields(words, path, STEP_KEYS, name)
        self._text(step.title, words.get("title"), (*path, "title"), f"the title of {name}")
        self._text(step.description, words.get("description"), (*path, "description"),
                   f"the description of {name}")
        self._gate(step.confirm, words, path, name)
        self._with(step.action, step.with_, words, path, name)
        rb_words = words.get("rollback")
        if not isinstance(step.rollback, Rollback):  # none, or `auto`: the undo has no text of its own
            if rb_words is not None:
                self.problems.append(self.src.problem((*path, "rollback"), f"{name} has no rollback text to "
                                                      "translate", key=True))
            return
        self._rollback(step.rollback, rb_words, (*path, "rollback"), f"the rollback of {name}")

    def _rollback(self, rollback: Rollback, words: Any, path: Path, name: str) -> None:
        words = self._fields(words, path, ROLLBACK_KEYS, name)
        self._text(rollback.title or "", words.get("title"), (*path, "title"), f"the title of {name}")
        self._gate(rollback.confirm, words, path, name)
        self._with(rollback.action, rollback.with_, words, path, name)

    def _gate(self, confirm: bool | str | Gate | None, words: Mapping[str, Any], path: Path, name: str) -> None:
        message = confirm if isinstance(confirm, str) else confirm.message if isinstance(confirm, Gate) else None
        if message is None and "confirm" in words:
            # A message where the runbook has none would give the step a gate, or a gate another meaning.
            self.problems.append(self.src.problem((*path, "confirm"), f"{name} has no gate message to translate "
                                                  "(only `confirm: MESSAGE` or `confirm: {message: ...}` has one)",
                                                  key=True))
            return
        self._text(message or "", words.get("confirm"), (*path, "confirm"), f"the gate message of {name}")

    def _with(self, action: str, args: dict[str, Any], words: Mapping[str, Any], path: Path, name: str) -> None:
        texts = set(self.registry.arguments(action).texts)
        given = words.get("with")
        if given is not None and not isinstance(given, dict):
            self.problems.append(self.src.problem((*path, "with"), "'with' must be a mapping of the action's "
                                                  "text arguments"))
            given = None
        for arg in given or {}:
            where: Path = (*path, "with", arg)
            if arg not in texts:
                shown = ", ".join(sorted(texts)) or "none"
                self.problems.append(self.src.problem(where, f"'{arg}' of action '{action}' is not text to "
                                                      f"translate; its text arguments: {shown}", key=True))
            elif arg not in args:
                self.problems.append(self.src.problem(where, f"{name} does not give '{arg}'; there is nothing "
                                                      "to translate", key=True))
        for arg in sorted(texts & set(args)):
            self._value(args[arg], (given or {}).get(arg), (*path, "with", arg), f"'{arg}' of {name}")

    def _value(self, original: Any, words: Any, path: Path, what: str) -> None:
        if isinstance(original, list):
            if words is None:
                if original:
                    self._gap(path, what)
                return
            if not isinstance(words, list) or len(words) != len(original):
                self.problems.append(self.src.problem(path, f"{what}: give a list of {len(original)} item(s), "
                                                      "one for each in the runbook, in the same order"))
                return
            for i, (o, w) in enumerate(zip(original, words, strict=True)):
                self._text(str(o), w, (*path, i), f"item {i + 1} of {what}")
            return
        if isinstance(original, str):
            self._text(original, words, path, what)

    def _text(self, original: str, words: Any, path: Path, what: str) -> None:
        if words is None:
            if original.strip():
                self._gap(path, what)
            return
        if not isinstance(words, str):
            self.problems.append(self.src.problem(path, f"{what} must be text"))
            return
        if not original.strip():
            self.problems.append(self.src.problem(path, f"{what} is empty in the runbook; there is nothing to "
                                                  "translate", key=True))
            return
        problem = _variables_differ(original, words)
        if problem:
            self.problems.append(self.src.problem(path, f"{what}: {problem}"))

    def _fields(self, words: Any, path: Path, allowed: tuple[str, ...], name: str) -> dict[str, Any]:
        if words is None:
            return {}
        if not isinstance(words, dict):
            self.problems.append(self.src.problem(path, f"{name}: give a mapping of {', '.join(allowed)}"))
            return {}
        self._keys(words, path, allowed, f"for {name}")
        return words

    def _keys(self, words: dict[str, Any], path: Path, allowed: tuple[str, ...], where: str) -> None:
        for key in words:
            if key not in allowed:
                near = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else f"; allowed: {', '.join(allowed)}"
                self.problems.append(self.src.problem((*path, key), f"unknown key '{key}' {where}{hint}",
                                                      key=True))

    def _gap(self, path: Path, what: str) -> None:
        # Located where the entry belongs: the closest part of the sidecar that exists.
        self.gaps.append(self.src.problem(path, f"no {self.lang} text for {what} ({'.'.join(map(str, path))}); "
                                          "it is shown in English", key=True))


def _variables_differ(original: str, words: str) -> str | None:
    """Why a translated template reads other data than the original, or None when both read the same."""
    try:
        theirs = _reads(original)
    except TemplateError:
        theirs = frozenset()  # the runbook's own check reports it
    try:
        if templates.is_template(words) and (unsafe := templates.facts(words, False, frozenset()).unsafe):
            return f"template reaches for '{unsafe}', which the sandbox refuses: templates may only read inputs, " \
                   "steps and run"
        ours = _reads(words)
    except TemplateError as exc:
        return f"{exc} in {words!r}"
    if ours == theirs:
        return None
    missing = ", ".join(sorted(theirs - ours))
    extra = ", ".join(sorted(ours - theirs))
    said = "; ".join(x for x in (f"the original reads {missing}" if missing else "",
                                 f"the translation reads {extra}" if extra else "") if x)
    return f"template variables differ from the original ({said}): a translation shows the same facts"


def _reads(text: str) -> frozenset[str]:
    """The data a template reads, as dotted names (``inputs.domain``, ``steps.probe.output.status``)."""
    if not templates.is_template(text):
        return frozenset()
    found = templates.facts(text, False, frozenset())
    names = {".".join(chain) for chain in found.chains if chain[0] not in found.local}
    names |= {f"{root}.{attr}" if attr else root for root, attr in found.references if root not in found.local}
    # A chain's prefixes are implied by the chain: compare only the longest reads.
    return frozenset(n for n in names if not any(o != n and o.startswith(n + ".") for o in names))


def problems_and_gaps(runbook_path: str, runbook: Runbook, registry: Registry) -> Iterator[tuple[str, list[Problem],
                                                                                                  list[Problem]]]:
    """For ``validate``: each sidecar of the runbook as (language, problems, gaps)."""
    folder = FsPath(runbook_path).resolve().parent / FOLDER
    if not folder.is_dir():
        return
    scenarios = _scenarios(runbook_path, runbook.id)
    for f in sorted(folder.glob(f"{runbook.id}.*.yaml")):
        lang = f.name[len(runbook.id) + 1: -len(".yaml")]
        if "." in lang:
            continue  # another runbook's sidecar (`a.b.ja.yaml` is not `a`'s)
        from engine.i18n import LANGUAGES

        if lang not in LANGUAGES:
            yield lang, [Problem(str(f), 1, 1, f"no such language '{lang}'; breakglass speaks "
                                 f"{', '.join(LANGUAGES)}")], []
            continue
        try:
            translation = read(runbook_path, runbook, lang, registry, scenarios)
        except RunbookError as exc:
            yield lang, list(exc.problems), []
        else:
            yield lang, [], list(translation.warnings) if translation else []
