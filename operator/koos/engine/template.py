"""Semantic validation of a Template's spec: what the CRD schema cannot say (issue 3).

`koos.api.template` checks shape; this module checks meaning and reports every problem at
once, each with the field path as the user wrote it ("spec.steps[1].dependsOn[0]: …"), so a
Template's `Ready` condition (reason `InvalidSpec`) and the admission webhook can list them.

Invariants of a valid spec, relied upon by the planner and the Job builder:
- step names are unique across `steps` and `finally`, and are DNS labels of at most 40
  characters (they go into Job names and label values);
- dependencies (`effective_dependencies`) stay within one list and form no cycle;
- each step has exactly one action, a `run` exactly one of `script`/`command`, and every
  duration parses;
- every expression parses and reads only declared, non-secret parameters, outputs and phases
  of steps that finish before it is rendered, and `execution.name`/`execution.namespace`;
  a parameter is pasted into a script, command or args only when an `enum` or an anchored
  `pattern` makes that safe;
- parameter schemas and defaults are valid (`koos.engine.params`);
- the spec, as JSON, is at most `MAX_SPEC_BYTES` (`size_problem`): every Execution keeps a
  copy of it in its status, which must stay under the API server's object limit (1.5 MiB
  in etcd) beside the step records, and `kubectl apply` keeps the whole manifest in an
  annotation of at most 256 KiB. A spec over the limit is refused before anything else is
  checked, so a huge spec costs no further validation.

Validation's own cost is bounded too (review of issue 10): it lists at most `MAX_PROBLEMS`
problems (then "…and more"), and stops between parameters and between steps as soon as the
caller's `stop()` is true (the admission webhook's deadline: the engine has no clock), so
validation that ran out of time gives its worker back instead of holding it.

The checks of each step's own fields live in `koos.engine.template_structure`, those of
expressions and what they read in `koos.engine.template_reference`; this module runs them in
order and re-exports `STEP_NAME_MAX_LENGTH` and `step_expressions`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pydantic import ValidationError

from koos.api.template import TemplateSpec
from koos.engine.loop_settings import literal_problems
from koos.engine.params import validate_parameters
from koos.engine.problem import Problem
from koos.engine.template_reference import (
    Scope,
    step_expressions,
    validate_expression,
    validate_step_expressions,
)
from koos.engine.template_structure import (
    STEP_NAME_MAX_LENGTH,
    Place,
    validate_action,
    validate_cycles,
    validate_depends_on,
    validate_durations,
    validate_env,
    validate_name,
)
from koos.engine.value_limits import MAX_NESTING

__all__ = [
    "MAX_PROBLEMS",
    "MAX_SPEC_BYTES",
    "STEP_NAME_MAX_LENGTH",
    "Problem",
    "effective_dependencies",
    "problems_from_pydantic",
    "size_problem",
    "spec_bytes",
    "step_expressions",
    "validate_template",
]


MAX_SPEC_BYTES = 128 * 1024
# Enough to fix a template by; more only costs (each may be an RE2 refusal) and reads worse.
MAX_PROBLEMS = 50
STOPPED = (
    "validation ran out of time and stopped here: make the template smaller or simpler "
    "(fewer steps, parameters, patterns and expressions)"
)
_DEPTH_HINT = f"keep defaults, enums and schemas within {MAX_NESTING} levels of nesting"


def spec_bytes(spec: TemplateSpec) -> int:
    """The size of `spec` as the status keeps it (compact JSON, UTF-8)."""
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def size_problem(size: int, what: str = "spec") -> Problem | None:
    """The problem of a Template spec of `size` bytes, if it is over the limit."""
    if size <= MAX_SPEC_BYTES:
        return None
    return Problem(
        what,
        f"the template is {size // 1024} KiB, over the limit of {MAX_SPEC_BYTES // 1024} KiB "
        "(as compact JSON): each Execution keeps a copy in its status, which must stay under "
        "the API server's object limit of 1.5 MiB, and kubectl apply keeps the manifest in "
        "an annotation of at most 256 KiB; split it into smaller templates",
    )


def effective_dependencies(spec: TemplateSpec) -> dict[str, tuple[str, ...]]:
    """What each step waits for: its `dependsOn`, or, when unset, the previous step of its list.

    The first step of `steps` and of `finally` waits for nothing unless it says otherwise.
    """
    dependencies: dict[str, tuple[str, ...]] = {}
    for steps in (spec.steps, spec.finally_ or []):
        for index, step in enumerate(steps):
            if step.depends_on is not None:
                found = tuple(dict.fromkeys(step.depends_on))
            else:
                found = (steps[index - 1].name,) if index else ()
            dependencies.setdefault(step.name, found)
    return dependencies


def validate_template(spec: TemplateSpec, stop: Callable[[], bool] | None = None) -> list[Problem]:
    """Every problem of `spec` (at most MAX_PROBLEMS, then "…and more"), [] when it is valid:
    its size, parameters, then step by step, then cycles and the template's outputs. As soon
    as `stop()` is true (checked between parameters and steps) it ends with STOPPED."""
    try:
        too_large = size_problem(spec_bytes(spec))
    except (ValueError, RecursionError):
        # pydantic refuses to serialize past its own depth limit: a default, an enum or an
        # items schema nested hundreds of levels deep.
        return [Problem("spec", f"the template is nested too deeply: {_DEPTH_HINT}")]
    if too_large is not None:
        return [too_large]
    places = [Place(step, f"spec.steps[{i}]", False) for i, step in enumerate(spec.steps)]
    places += [
        Place(step, f"spec.finally[{i}]", True) for i, step in enumerate(spec.finally_ or [])
    ]
    dependencies = effective_dependencies(spec)
    problems: list[Problem] = []
    stopped = False

    def done() -> bool:
        nonlocal stopped
        stopped = stopped or (stop is not None and stop())
        return stopped or len(problems) > MAX_PROBLEMS

    problems += validate_parameters(spec.parameters, done, MAX_PROBLEMS)
    names: dict[str, str] = {}
    for place in places:
        if done():
            return _capped(problems, stopped)
        problems += validate_name(place, names)
        problems += validate_depends_on(place, places)
        problems += validate_action(place)
        problems += validate_durations(place)
        problems += validate_env(place)
        problems += literal_problems(place.step, place.path)
        problems += validate_step_expressions(spec, place, places, dependencies)
    if done():
        return _capped(problems, stopped)
    problems += validate_cycles(places, dependencies)
    problems += _item_name_clashes(places)
    main = frozenset(place.step.name for place in places if not place.final)
    scope = Scope(readable=main, own=None, final=False, outputs=True, pasted=False)
    for key, text in (spec.outputs or {}).items():
        problems += validate_expression(f"spec.outputs.{key}", text, scope, spec, places)
    return _capped(problems, stopped)


def _item_name_clashes(places: list[Place]) -> list[Problem]:
    """A step named `<loop step>-<number>` would share Job names with the loop's items
    (`<execution>-<step>-<index>-<attempt>`)."""
    loops = {p.step.name for p in places if p.step.loop is not None}
    problems: list[Problem] = []
    for place in places:
        head, _, number = place.step.name.rpartition("-")
        if number.isdigit() and head in loops:
            problems.append(
                Problem(
                    f"{place.path}.name",
                    f"a step may not be named {place.step.name!r}: its Jobs would share names "
                    f"with those of the items of the loop step {head!r}; rename it",
                )
            )
    return problems


def _capped(problems: list[Problem], stopped: bool) -> list[Problem]:
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], Problem("spec", "…and more")]
    if stopped:
        problems = [*problems, Problem("spec", STOPPED)]
    return problems


def problems_from_pydantic(error: ValidationError, prefix: str = "spec") -> list[Problem]:
    """The errors of a model validation as problems with camelCase field paths."""
    problems: list[Problem] = []
    for item in error.errors(include_url=False):
        path = prefix + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"]
        )
        message = "is required" if item["type"] == "missing" else item["msg"]
        problems.append(Problem(path.lstrip(".") or prefix, message))
    return problems
