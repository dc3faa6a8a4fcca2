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
- parameter schemas and defaults are valid (`koos.engine.params`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from koos.api.template import Parameter, RunAction, Step, TemplateSpec
from koos.engine.durations import parse_duration
from koos.engine.expressions import ExpressionError, has_expression, references
from koos.engine.params import Problem, is_safe_to_paste, param_env_name, validate_parameters

__all__ = [
    "STEP_NAME_MAX_LENGTH",
    "Problem",
    "effective_dependencies",
    "problems_from_pydantic",
    "step_expressions",
    "validate_template",
]

# Leaves room in a 63-character Job name for the execution's name and the attempt.
STEP_NAME_MAX_LENGTH = 40
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED_ENV_PREFIX = "KOOS_"
_STEP_FIELDS = ("outputs", "phase")
_EXECUTION_FIELDS = ("name", "namespace")


@dataclass(frozen=True)
class _Place:
    """A step and where it is: its path, and whether it is a `finally` step."""

    step: Step
    path: str
    final: bool


@dataclass(frozen=True)
class _Scope:
    """What the expressions of one field may read."""

    readable: frozenset[str]  # steps whose outputs and phase are known by then
    own: str | None  # the step the field belongs to
    final: bool  # the field belongs to a finally step
    outputs: bool  # the field is one of the template's outputs
    pasted: bool  # the text becomes part of a script, command or args


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


def step_expressions(step: Step) -> Iterator[tuple[str, str]]:
    """The fields of `step` that may hold expressions: (path below the step, text)."""
    if step.when is not None:
        yield "when", step.when
    approve = step.approve
    if approve is not None:
        if approve.message is not None:
            yield "approve.message", approve.message
        if isinstance(approve.min_approvals, str):
            yield "approve.minApprovals", approve.min_approvals
        for field, value in (
            ("users", approve.approvers.users),
            ("groups", approve.approvers.groups),
            ("serviceAccounts", approve.approvers.service_accounts),
        ):
            items = [value] if isinstance(value, str) else list(value or [])
            for index, text in enumerate(items):
                yield f"approve.approvers.{field}[{index}]", text
    run = step.run
    if run is None:
        return
    if run.script is not None:
        yield "run.script", run.script
    for field, values in (("command", run.command), ("args", run.args)):
        for index, text in enumerate(values or []):
            yield f"run.{field}[{index}]", text
    for index, env in enumerate(run.env or []):
        if env.value is not None:
            yield f"run.env[{index}].value", env.value


def validate_template(spec: TemplateSpec) -> list[Problem]:
    """Every problem of `spec`, [] when it is valid: parameters, then step by step, then
    cycles and the template's outputs."""
    places = [_Place(step, f"spec.steps[{i}]", False) for i, step in enumerate(spec.steps)]
    places += [
        _Place(step, f"spec.finally[{i}]", True) for i, step in enumerate(spec.finally_ or [])
    ]
    dependencies = effective_dependencies(spec)
    problems = validate_parameters(spec.parameters)
    names: dict[str, str] = {}
    for place in places:
        problems += _validate_name(place, names)
        problems += _validate_depends_on(place, places)
        problems += _validate_action(place)
        problems += _validate_durations(place)
        problems += _validate_env(place)
        problems += _validate_step_expressions(spec, place, places, dependencies)
    problems += _validate_cycles(places, dependencies)
    main = frozenset(place.step.name for place in places if not place.final)
    scope = _Scope(readable=main, own=None, final=False, outputs=True, pasted=False)
    for key, text in (spec.outputs or {}).items():
        problems += _validate_expression(f"spec.outputs.{key}", text, scope, spec, places)
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


def _validate_name(place: _Place, seen: dict[str, str]) -> list[Problem]:
    """Problems of the step's name; `seen` maps the names met so far to their step's path."""
    problems: list[Problem] = []
    name, path = place.step.name, f"{place.path}.name"
    if len(name) > STEP_NAME_MAX_LENGTH or not _DNS_LABEL.fullmatch(name):
        message = (
            f"step name {name!r} must be a DNS label of at most {STEP_NAME_MAX_LENGTH} "
            "characters: lowercase letters, digits and '-', starting and ending with a "
            "letter or digit (it goes into Job names)"
        )
        problems.append(Problem(path, message))
    if name in seen:
        problems.append(Problem(path, f"step name {name!r} is already used by {seen[name]}"))
    seen.setdefault(name, place.path)
    return problems


def _finals(places: list[_Place]) -> dict[str, bool]:
    """Whether each step name is a finally step (the first step of a duplicated name wins)."""
    finals: dict[str, bool] = {}
    for place in places:
        finals.setdefault(place.step.name, place.final)
    return finals


def _validate_depends_on(place: _Place, places: list[_Place]) -> list[Problem]:
    finals = _finals(places)
    problems: list[Problem] = []
    for index, name in enumerate(place.step.depends_on or []):
        if name not in finals:
            message = f"no step named {name!r}"
        elif finals[name] and not place.final:
            message = f"main steps may not depend on the finally step {name!r}"
        elif place.final and not finals[name]:
            message = f"finally steps run after all main steps: drop the main step {name!r}"
        elif name in (place.step.depends_on or [])[:index]:
            message = f"{name!r} is listed twice"
        else:
            continue
        problems.append(Problem(f"{place.path}.dependsOn[{index}]", message))
    return problems


def _validate_cycles(
    places: list[_Place], dependencies: Mapping[str, tuple[str, ...]]
) -> list[Problem]:
    """One problem per cycle, at the `dependsOn` of its step that comes first in the spec."""
    order: dict[str, int] = {}
    for index, place in enumerate(places):
        order.setdefault(place.step.name, index)
    problems: list[Problem] = []
    seen: set[frozenset[str]] = set()
    for cycle in _cycles(list(order), dependencies):
        if frozenset(cycle) in seen:
            continue
        seen.add(frozenset(cycle))
        start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
        ordered = cycle[start:] + cycle[:start]
        text = " → ".join([*ordered, ordered[0]])
        path = f"{places[order[ordered[0]]].path}.dependsOn"
        problems.append(Problem(path, f"dependsOn forms a cycle: {text}"))
    return problems


def _cycles(names: list[str], dependencies: Mapping[str, tuple[str, ...]]) -> Iterator[list[str]]:
    """Cycles met by a depth-first walk (iterative: a long chain of steps is no recursion)."""
    done: set[str] = set()
    for root in names:
        if root in done:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(dependencies.get(root, ())))]
        on_stack = {root}
        while stack:
            name, pending = stack[-1]
            following = next((n for n in pending if n in dependencies), None)
            if following is None:
                stack.pop()
                on_stack.discard(name)
                done.add(name)
            elif following in on_stack:
                path = [n for n, _ in stack]
                yield path[path.index(following) :]
            elif following not in done:
                stack.append((following, iter(dependencies[following])))
                on_stack.add(following)


def _validate_action(place: _Place) -> list[Problem]:
    step, path = place.step, place.path
    actions = [name for name in ("run", "sleep", "approve") if getattr(step, name) is not None]
    if not actions:
        return [Problem(path, "a step needs exactly one action: run, sleep or approve")]
    if len(actions) > 1:
        return [Problem(path, f"a step has exactly one action: give one of {', '.join(actions)}")]
    approve = step.approve
    if approve is not None:
        approvers = approve.approvers
        if not any((approvers.users, approvers.groups, approvers.service_accounts)):
            return [
                Problem(
                    f"{path}.approve.approvers",
                    "name at least one user, group or serviceAccount who may approve",
                )
            ]
        if isinstance(approve.min_approvals, int) and approve.min_approvals < 1:
            return [Problem(f"{path}.approve.minApprovals", "must be at least 1")]
    run = step.run
    if run is None:
        return []
    if run.script is None and run.command is None:
        return [Problem(f"{path}.run", "give script or command")]
    if run.script is not None and run.command is not None:
        return [Problem(f"{path}.run", "give script or command, not both")]
    return []


def _validate_durations(place: _Place) -> list[Problem]:
    step, path = place.step, place.path
    problems: list[Problem] = []

    def parsed(field: str, text: str) -> datetime.timedelta | None:
        try:
            return parse_duration(text)
        except ValueError as error:
            problems.append(Problem(f"{path}.{field}", str(error)))
            return None

    if step.timeout is not None:
        timeout = parsed("timeout", step.timeout)
        if timeout is not None and timeout <= datetime.timedelta():
            problems.append(Problem(f"{path}.timeout", "timeout must be longer than 0s"))
    if step.sleep is not None:
        parsed("sleep.duration", step.sleep.duration)
    if step.approve is not None:
        parsed("approve.timeout", step.approve.timeout)
    if step.retries is not None:
        backoff = parsed("retries.backoff", step.retries.backoff)
        longest = parsed("retries.maxBackoff", step.retries.max_backoff)
        if backoff is not None and longest is not None and longest < backoff:
            problems.append(
                Problem(f"{path}.retries.maxBackoff", "maxBackoff is shorter than backoff")
            )
    return problems


def _validate_env(place: _Place) -> list[Problem]:
    run = place.step.run
    if run is None:
        return []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, env in enumerate(run.env or []):
        path = f"{place.path}.run.env[{index}]"
        if not _ENV_NAME.fullmatch(env.name):
            message = (
                f"{env.name!r} is not a valid environment variable name: use letters, digits "
                "and '_', not starting with a digit"
            )
        elif env.name.startswith(_RESERVED_ENV_PREFIX):
            message = (
                f"{env.name} is reserved: names starting with {_RESERVED_ENV_PREFIX} belong to "
                "koos (parameters arrive as KOOS_PARAM_<NAME>)"
            )
        elif env.name in seen:
            message = f"{env.name} is already set by env[{seen[env.name]}]"
        else:
            message = ""
        if message:
            problems.append(Problem(f"{path}.name", message))
        seen.setdefault(env.name, index)
        if env.value is not None and env.value_from is not None:
            problems.append(Problem(path, "give value or valueFrom, not both"))
        source = env.value_from
        if source and (source.secret_key_ref is None) == (source.config_map_key_ref is None):
            problems.append(
                Problem(f"{path}.valueFrom", "give exactly one of secretKeyRef, configMapKeyRef")
            )
    return problems + _validate_volumes(place.path, run)


def _validate_volumes(path: str, run: RunAction) -> list[Problem]:
    problems: list[Problem] = []
    names: set[str] = set()
    for index, volume in enumerate(run.volumes or []):
        where = f"{path}.run.volumes[{index}]"
        if volume.name in names:
            problems.append(Problem(f"{where}.name", f"volume {volume.name!r} is listed twice"))
        names.add(volume.name)
        if (volume.config_map is None) == (volume.secret is None):
            problems.append(Problem(where, "give exactly one of configMap, secret"))
    return problems


def _validate_step_expressions(
    spec: TemplateSpec,
    place: _Place,
    places: list[_Place],
    dependencies: Mapping[str, tuple[str, ...]],
) -> list[Problem]:
    readable = _ancestors(place.step.name, dependencies)
    if place.final:
        # Finally steps start once every main step has settled.
        readable |= {p.step.name for p in places if not p.final}
    problems: list[Problem] = []
    for field, text in step_expressions(place.step):
        scope = _Scope(
            readable=frozenset(readable - {place.step.name}),
            own=place.step.name,
            final=place.final,
            outputs=False,
            pasted=field.startswith(("run.script", "run.command", "run.args")),
        )
        problems += _validate_expression(f"{place.path}.{field}", text, scope, spec, places)
    return problems


def _ancestors(name: str, dependencies: Mapping[str, tuple[str, ...]]) -> set[str]:
    found: set[str] = set()
    pending = list(dependencies.get(name, ()))
    while pending:
        current = pending.pop()
        if current in found or current not in dependencies:
            continue
        found.add(current)
        pending.extend(dependencies[current])
    return found


def _validate_expression(
    path: str, text: str, scope: _Scope, spec: TemplateSpec, places: list[_Place]
) -> list[Problem]:
    if not has_expression(text):
        return []
    try:
        found = references(text)
    except ExpressionError as error:
        return [Problem(path, str(error))]
    finals = _finals(places)
    messages: list[str] = []
    for reference in sorted(found):
        message = _check_reference(reference, scope, spec.parameters, finals)
        if message is not None and message not in messages:
            messages.append(message)
    return [Problem(path, message) for message in messages]


def _check_reference(
    reference: tuple[str, ...],
    scope: _Scope,
    parameters: Mapping[str, Parameter],
    finals: Mapping[str, bool],
) -> str | None:
    """Why an expression may not read `reference` here, or None when it may."""
    root, rest = reference[0], reference[1:]
    if root == "params":
        return _check_parameter(rest[0] if rest else None, scope, parameters)
    if root == "steps":
        if len(rest) < 2:
            return "read a step as steps.<name>.outputs.<key> or steps.<name>.phase"
        name, field = rest[0], rest[1]
        if name == scope.own:
            return f"step {name} cannot read its own outputs or phase"
        if name not in finals:
            return f"no step named {name!r}"
        if name not in scope.readable:
            if scope.outputs:
                return f"template outputs may read only main steps, not the finally step {name}"
            if finals[name] and not scope.final:
                return f"main steps run before finally steps: {name} has not run yet"
            return (
                f"steps.{name} is read but this step does not depend on {name}: "
                "add it to dependsOn (directly or through another step)"
            )
        if field not in _STEP_FIELDS:
            return f"steps.{name} has outputs and phase, not {field!r}"
        return None
    if root == "execution":
        if not rest or rest[0] not in _EXECUTION_FIELDS:
            return "execution has only name and namespace"
        return None
    if root == "item":
        return "item is defined only inside a loop, and steps have no loop yet"
    return f"unknown name {root!r}: expressions read params, steps and execution"


def _check_parameter(
    name: str | None, scope: _Scope, parameters: Mapping[str, Parameter]
) -> str | None:
    if name is None:
        return "read a parameter as params.<name>"
    parameter = parameters.get(name)
    if parameter is None:
        declared = ", ".join(parameters) or "none"
        return f"unknown parameter {name!r} (declared: {declared})"
    env = param_env_name(name)
    if parameter.secret:
        return (
            f"parameter {name} is secret and may not appear in expressions: it reaches "
            f"containers only as the environment variable {env}"
        )
    if scope.pasted and not is_safe_to_paste(parameter):
        return (
            f"parameter {name} may not be pasted into a script, command or args: read the "
            f"environment variable {env} instead (or give {name} an enum or a pattern "
            "anchored with ^ and $)"
        )
    return None
