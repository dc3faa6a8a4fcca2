"""What a Template's expressions may read: each expression field checked against its scope.

Part of `koos.engine.template`'s validation (which see for the invariants of a valid spec).
An expression may read declared, non-secret parameters, the outputs and phase of steps that
have finished before it is rendered (its step's dependencies, transitively; for a `finally`
step also every main step; for the template's outputs only main steps),
`execution.name`/`.namespace`, and in the `run` of a loop step `item` and `index` (not in its
`when` nor its `loop` fields, rendered once for the whole step). In a script, command or args
(text the shell parses) only what `koos.engine.paste` calls pasteable may appear: never a
step's outputs nor a loop item (`index`, a number, may), and a parameter only with an enum or
an inert pattern. A field gets one problem per distinct reason, at its path; an expression
that does not parse gets its parse error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from koos.api.template import Parameter, Step, TemplateSpec
from koos.engine.expressions import ExpressionError, has_expression, references
from koos.engine.params import param_env_name
from koos.engine.paste import is_safe_to_paste
from koos.engine.problem import Problem
from koos.engine.template_structure import Place, finals_by_name

_STEP_FIELDS = ("outputs", "phase")
_EXECUTION_FIELDS = ("name", "namespace")


@dataclass(frozen=True)
class Scope:
    """What the expressions of one field may read."""

    readable: frozenset[str]  # steps whose outputs and phase are known by then
    own: str | None  # the step the field belongs to
    final: bool  # the field belongs to a finally step
    outputs: bool  # the field is one of the template's outputs
    pasted: bool  # the text becomes part of a script, command or args
    loop: bool = False  # the text is rendered per item of a loop (`item`, `index`)


def step_expressions(step: Step) -> Iterator[tuple[str, str]]:
    """The fields of `step` that may hold expressions: (path below the step, text)."""
    if step.when is not None:
        yield "when", step.when
    loop = step.loop
    if loop is not None:
        loop_fields: tuple[tuple[str, object], ...] = (
            ("items", loop.items),
            ("concurrency", loop.concurrency),
            ("maxErrors", loop.max_errors),
            ("batchSize", loop.batch_size),
        )
        for name, setting in loop_fields:
            if isinstance(setting, str):
                yield f"loop.{name}", setting
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


def validate_step_expressions(
    spec: TemplateSpec,
    place: Place,
    places: list[Place],
    dependencies: Mapping[str, tuple[str, ...]],
) -> list[Problem]:
    readable = _ancestors(place.step.name, dependencies)
    if place.final:
        # Finally steps start once every main step has settled.
        readable |= {p.step.name for p in places if not p.final}
    problems: list[Problem] = []
    for field, text in step_expressions(place.step):
        scope = Scope(
            readable=frozenset(readable - {place.step.name}),
            own=place.step.name,
            final=place.final,
            outputs=False,
            pasted=field.startswith(("run.script", "run.command", "run.args")),
            loop=place.step.loop is not None and field.startswith("run."),
        )
        problems += validate_expression(f"{place.path}.{field}", text, scope, spec, places)
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


def validate_expression(
    path: str, text: str, scope: Scope, spec: TemplateSpec, places: list[Place]
) -> list[Problem]:
    if not has_expression(text):
        return []
    try:
        found = references(text)
    except ExpressionError as error:
        return [Problem(path, str(error))]
    finals = finals_by_name(places)
    messages: list[str] = []
    for reference in sorted(found):
        message = _check_reference(reference, scope, spec.parameters, finals)
        if message is not None and message not in messages:
            messages.append(message)
    return [Problem(path, message) for message in messages]


def _check_reference(
    reference: tuple[str, ...],
    scope: Scope,
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
        if scope.pasted and field == "outputs":
            return _not_pasteable(
                f"steps.{name}.outputs",
                "text a container wrote",
                "Pass it as an environment variable (env: [{name: VALUE, value: "
                f'"{{{{ steps.{name}.outputs.<key> }}}}"}}]) and read "$VALUE" instead',
            )
        return None
    if root == "execution":
        if not rest or rest[0] not in _EXECUTION_FIELDS:
            return "execution has only name and namespace"
        return None
    if root in ("item", "index"):
        if scope.pasted and root == "item":
            return _not_pasteable(
                "item", "text from the loop's list", 'Read "$KOOS_ITEM" in the script instead'
            )
        if not scope.loop:
            return (
                f"{root} is defined only in the run of a step with a loop (not in its when "
                "nor its loop fields, which are rendered once for the whole step)"
            )
        return None
    return (
        f"unknown name {root!r}: expressions read params, steps and execution (and item "
        "and index in a loop)"
    )


def _check_parameter(
    name: str | None, scope: Scope, parameters: Mapping[str, Parameter]
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
            "anchored with ^ and $ that admits only letters, digits and _.,:/=+@%-)"
        )
    return None


def _not_pasteable(what: str, holds: str, how: str) -> str:
    return (
        f"{what} may not be pasted into a script, command or args: it holds {holds}, which "
        f"the shell would run as code. {how}"
    )
