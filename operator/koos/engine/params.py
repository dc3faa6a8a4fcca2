"""Parameters: their JSON-Schemas, the values an Execution gives, and how containers see them.

Invariants:
- every declared parameter has a JSON-Schema built from its fields (`build_parameter_schema`);
  a declaration whose schema or default is wrong is a `Problem` of the Template, a given value
  that does not satisfy it is a `Problem` of the Execution — each with the field path to fix;
- a secret parameter is never a literal: its resolved value is the reference
  `{"valueFrom": {"secretKeyRef": {"name": …, "key": …}}}`, it has no default, and no message
  here ever quotes what was given for it;
- a parameter reaches containers as the environment variable `param_env_name(name)`, whose
  value is `param_env_value(value)`; two parameters never share that variable.

What a value that does not satisfy its schema is told comes from `koos.engine.schema_check`.
Every `pattern` in a declaration (the parameter's own, and those inside `items`) must compile
with RE2 (`koos.engine.patterns`), which evaluates it in linear time; defaults, enums, schemas
and given values stay within `koos.engine.value_limits` (nesting, integer size). A Template
declares at most `MAX_PATTERNS` distinct patterns (counted before any is compiled: RE2 may
take tens of milliseconds to refuse one), and `validate_parameters` stops between parameters
when its caller's `stop()` says the time is up.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from koos.api.constants import PARAM_ENV_PREFIX
from koos.api.execution import SecretParameter
from koos.api.template import Parameter, TemplateSpec
from koos.engine.patterns import pattern_problem
from koos.engine.problem import Problem
from koos.engine.schema_check import A_TYPE, value_problems
from koos.engine.value_limits import value_problem

__all__ = [
    "MAX_PATTERNS",
    "build_parameter_schema",
    "param_env_name",
    "param_env_value",
    "resolve_parameters",
    "validate_parameters",
]

# Far above what a runbook declares; bounds what compiling a Template's patterns costs.
MAX_PATTERNS = 256

_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
_PARAMETER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
_SCHEMA_KEYS = ("enum", "pattern", "minimum", "maximum", "min_length", "max_length", "items")
_ONLY_FOR = {
    "pattern": ("string",),
    "min_length": ("string",),
    "max_length": ("string",),
    "minimum": ("integer", "number"),
    "maximum": ("integer", "number"),
    "items": ("array",),
}


def param_env_name(name: str) -> str:
    """`KOOS_PARAM_` and `name` in upper snake case: dryRun → KOOS_PARAM_DRY_RUN."""
    return PARAM_ENV_PREFIX + _NOT_ALNUM.sub("_", _CAMEL_HUMP.sub("_", name)).upper()


def param_env_value(value: Any) -> str:
    """How a parameter value reads in an environment variable: strings as is, else JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def build_parameter_schema(parameter: Parameter) -> dict[str, Any]:
    """The JSON-Schema (draft 2020-12) a value of `parameter` must satisfy."""
    schema: dict[str, Any] = {"type": parameter.type}
    for field in _SCHEMA_KEYS:
        value = getattr(parameter, field)
        if value is not None:
            # The schema keywords are the fields' camelCase names (min_length → minLength).
            schema[Parameter.model_fields[field].alias or field] = value
    return schema


def validate_parameters(
    parameters: Mapping[str, Parameter],
    stop: Callable[[], bool] | None = None,
    max_problems: int | None = None,
) -> list[Problem]:
    """Problems of the Template's parameter declarations, under `spec.parameters.<name>`;
    it returns early (with what it found) as soon as `stop()` is true or it found more than
    `max_problems`, checked between parameters."""
    distinct = _distinct_patterns(parameters)
    if distinct > MAX_PATTERNS:
        return [
            Problem(
                "spec.parameters",
                f"the template declares {distinct} distinct patterns, over the limit of "
                f"{MAX_PATTERNS}: use an enum, or share one pattern between parameters",
            )
        ]
    problems: list[Problem] = []
    env_names: dict[str, str] = {}
    for name, parameter in parameters.items():
        if (stop is not None and stop()) or (
            max_problems is not None and len(problems) > max_problems
        ):
            break
        path = f"spec.parameters.{name}"
        if not _PARAMETER_NAME.fullmatch(name):
            problems.append(
                Problem(
                    path,
                    f"parameter name {name!r} must start with a letter and hold at most 63 "
                    "letters, digits, '-' and '_'",
                )
            )
        env = param_env_name(name)
        if env in env_names:
            problems.append(
                Problem(
                    path,
                    f"parameters {env_names[env]} and {name} would both reach containers as "
                    f"{env}: rename one",
                )
            )
        env_names.setdefault(env, name)
        problems.extend(_validate_declaration(path, parameter))
    return problems


def _validate_declaration(path: str, parameter: Parameter) -> list[Problem]:
    problems: list[Problem] = []
    for field, types in _ONLY_FOR.items():
        if getattr(parameter, field) is not None and parameter.type not in types:
            alias = Parameter.model_fields[field].alias or field
            problems.append(
                Problem(f"{path}.{alias}", f"{alias} applies only to type {' or '.join(types)}")
            )
    if (
        parameter.minimum is not None
        and parameter.maximum is not None
        and parameter.minimum > parameter.maximum
    ):
        problems.append(Problem(f"{path}.minimum", "minimum is greater than maximum"))
    if (
        parameter.min_length is not None
        and parameter.max_length is not None
        and parameter.min_length > parameter.max_length
    ):
        problems.append(Problem(f"{path}.minLength", "minLength is greater than maxLength"))
    if parameter.secret:
        problems.extend(_validate_secret_declaration(path, parameter))
    for field in ("default", "enum", "items"):
        found = value_problem(getattr(parameter, field))
        if found is not None:
            problems.append(Problem(f"{path}.{field}", f"{field} {found}"))
    if problems:
        return problems
    schema = build_parameter_schema(parameter)
    regex_problems = list(_pattern_problems(path, schema))
    if regex_problems:
        return problems + regex_problems
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
        problems.append(Problem(path + where, f"not a valid JSON-Schema: {error.message}"))
        return problems
    if parameter.enum is not None:
        plain = {key: value for key, value in schema.items() if key != "enum"}
        for index, value in enumerate(parameter.enum):
            problems.extend(value_problems(f"{path}.enum[{index}]", value, plain))
    if parameter.default is not None and not parameter.secret:
        problems.extend(value_problems(f"{path}.default", parameter.default, schema))
    return problems


def _distinct_patterns(parameters: Mapping[str, Parameter]) -> int:
    """How many distinct `pattern` texts the declarations hold, `items` schemas included
    (walked without recursion: nesting is checked later, per parameter)."""
    found: set[str] = set()
    stack: list[Any] = []
    for parameter in parameters.values():
        if parameter.pattern is not None:
            found.add(parameter.pattern)
        stack.append(parameter.items)
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            pattern = node.get("pattern")
            if isinstance(pattern, str):
                found.add(pattern)
            stack.extend(
                value
                for key, value in node.items()
                if key not in ("enum", "const", "default", "examples")
            )
        elif isinstance(node, list):
            stack.extend(node)
    return len(found)


def _pattern_problems(path: str, schema: Any) -> Any:
    """Problems of every pattern in `schema` (nesting is bounded by `value_problem` first)."""
    if isinstance(schema, Mapping):
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            problem = pattern_problem(pattern)
            if problem is not None:
                yield Problem(f"{path}.pattern", problem)
        if "patternProperties" in schema:
            yield Problem(
                f"{path}.patternProperties",
                "patternProperties is not supported: list the keys under properties",
            )
        for key, value in schema.items():
            if key not in ("enum", "const", "default", "examples"):
                yield from _pattern_problems(f"{path}.{key}", value)
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _pattern_problems(f"{path}[{index}]", value)


def _validate_secret_declaration(path: str, parameter: Parameter) -> list[Problem]:
    problems: list[Problem] = []
    if parameter.default is not None:
        problems.append(
            Problem(
                f"{path}.default",
                "a secret parameter may not have a default: its value comes from a Secret",
            )
        )
    if parameter.type != "string":
        problems.append(
            Problem(f"{path}.type", "a secret parameter is a string (a key of a Secret)")
        )
    # koos never reads the Secret, so a constraint on its value could never be checked.
    for field in ("enum", "pattern", "minimum", "maximum", "min_length", "max_length"):
        if getattr(parameter, field) is not None:
            alias = Parameter.model_fields[field].alias or field
            problems.append(
                Problem(
                    f"{path}.{alias}",
                    f"a secret parameter may not have {alias}: koos never reads its value",
                )
            )
    return problems


def resolve_parameters(
    spec: TemplateSpec, given: Mapping[str, Any] | None
) -> tuple[dict[str, Any], list[Problem]]:
    """The parameter values of a run: `given` checked against `spec`, defaults applied.

    Problems are under `spec.parameters.<name>` of the Execution.
    """
    given = given or {}
    problems: list[Problem] = []
    declared = ", ".join(spec.parameters)
    for name in given:
        if name not in spec.parameters:
            known = f"the template declares {declared}" if declared else "it declares none"
            problems.append(
                Problem(f"spec.parameters.{name}", f"unknown parameter {name!r}: {known}")
            )
    values: dict[str, Any] = {}
    for name, parameter in spec.parameters.items():
        path = f"spec.parameters.{name}"
        if name not in given or given[name] is None:
            if parameter.default is None or parameter.secret:
                how = "as valueFrom.secretKeyRef " if parameter.secret else ""
                problems.append(
                    Problem(
                        path,
                        f"missing required parameter {name} ({A_TYPE[parameter.type]}): "
                        f"give it {how}in the Execution's spec.parameters",
                    )
                )
            else:
                values[name] = copy.deepcopy(parameter.default)
            continue
        value = given[name]
        if parameter.secret:
            reference, problem = _resolve_secret(name, path, value)
            if problem is not None:
                problems.append(problem)
            else:
                values[name] = reference
            continue
        if isinstance(value, Mapping) and set(value) == {"valueFrom"}:
            problems.append(
                Problem(
                    path,
                    f"parameter {name} is not secret: give its value, not valueFrom",
                )
            )
            continue
        bounds = value_problem(value)
        if bounds is not None:
            problems.append(Problem(path, f"the value {bounds}"))
            continue
        found = value_problems(path, value, build_parameter_schema(parameter))
        problems.extend(found)
        if not found:
            values[name] = _normalized(parameter, value)
    return values, problems


def _resolve_secret(name: str, path: str, value: Any) -> tuple[dict[str, Any], Problem | None]:
    if not isinstance(value, Mapping) or "valueFrom" not in value:
        return {}, Problem(
            path,
            f"parameter {name} is secret: give it as valueFrom.secretKeyRef, not as a value",
        )
    shape = "{valueFrom: {secretKeyRef: {name: <Secret>, key: <key>}}}"
    if set(value) != {"valueFrom"}:
        return {}, Problem(path, f"parameter {name} is secret: give only {shape}")
    try:
        reference = SecretParameter.model_validate(value)
    except ValidationError:
        return {}, Problem(path, f"parameter {name} is secret: give it as {shape}")
    selector = reference.value_from.secret_key_ref
    if not selector.name or not selector.key:
        return {}, Problem(path, f"parameter {name} is secret: give it as {shape}")
    return {"valueFrom": {"secretKeyRef": {"name": selector.name, "key": selector.key}}}, None


def _normalized(parameter: Parameter, value: Any) -> Any:
    # JSON-Schema counts 3.0 as an integer; the container should see "3", not "3.0".
    if parameter.type == "integer" and isinstance(value, float):
        return int(value)
    return copy.deepcopy(value)
