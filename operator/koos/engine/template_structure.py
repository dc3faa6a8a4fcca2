"""Structural checks of a Template's steps: names, dependencies, actions, durations, env.

Part of `koos.engine.template`'s validation (which see for the invariants of a valid spec);
these checks read one step at a time (`Place`: the step, its field path, and whether it is a
`finally` step), except that `validate_name` remembers the names met so far and
`validate_depends_on` and `validate_cycles` read the whole list. Each returns problems, []
when there are none, with field paths as the user wrote them; none raises.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from koos.api.template import RunAction, Step
from koos.engine.durations import parse_duration
from koos.engine.problem import Problem

# Leaves room in a 63-character Job name for the execution's name and the attempt.
STEP_NAME_MAX_LENGTH = 40
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED_ENV_PREFIX = "KOOS_"


@dataclass(frozen=True)
class Place:
    """A step and where it is: its path, and whether it is a `finally` step."""

    step: Step
    path: str
    final: bool


def validate_name(place: Place, seen: dict[str, str]) -> list[Problem]:
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


def finals_by_name(places: list[Place]) -> dict[str, bool]:
    """Whether each step name is a finally step (the first step of a duplicated name wins)."""
    finals: dict[str, bool] = {}
    for place in places:
        finals.setdefault(place.step.name, place.final)
    return finals


def validate_depends_on(place: Place, places: list[Place]) -> list[Problem]:
    finals = finals_by_name(places)
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


def validate_cycles(
    places: list[Place], dependencies: Mapping[str, tuple[str, ...]]
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


def validate_action(place: Place) -> list[Problem]:
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


def validate_durations(place: Place) -> list[Problem]:
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
    if step.start_timeout is not None:
        parsed("startTimeout", step.start_timeout)
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


def validate_env(place: Place) -> list[Problem]:
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
