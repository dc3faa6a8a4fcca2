"""A value against a parameter's JSON-Schema (draft 2020-12), with problems that say what to
fix: the type first, then each keyword in plain words, quoting a short rendering of the value.

`pattern` is evaluated with RE2 (`koos.engine.patterns`): linear in the value's length
whatever the pattern, and with ECMA-262's `$` as JSON-Schema says (it ends the string, not
a final newline). A pattern RE2 refuses never matches (the Template's validation has
refused it already). `patternProperties`, whose keys jsonschema would match with Python's
backtracking engine, is refused in declarations (`koos.engine.params`) and matches nothing
here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError as SchemaViolation

from koos.engine.patterns import PatternError, search
from koos.engine.problem import Problem

__all__ = ["A_TYPE", "value_problems"]

A_TYPE = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


def _pattern_keyword(
    validator: Any, pattern: str, instance: Any, schema: Any
) -> Iterator[SchemaViolation]:
    if not validator.is_type(instance, "string"):
        return
    try:
        matched = search(pattern, instance)
    except PatternError as error:
        yield SchemaViolation(str(error))
        return
    if not matched:
        yield SchemaViolation(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Any, instance: Any, schema: Any
) -> Iterator[SchemaViolation]:
    if validator.is_type(instance, "object") and patterns:
        yield SchemaViolation("patternProperties is not supported: use properties")


_Validator = validators.extend(
    Draft202012Validator,
    {"pattern": _pattern_keyword, "patternProperties": _pattern_properties},
)


def value_problems(path: str, value: Any, schema: Mapping[str, Any]) -> list[Problem]:
    """Why `value` does not satisfy `schema`, one problem per place, saying what to fix."""
    errors = list(_Validator(schema).iter_errors(value))
    # A value of the wrong type fails other keywords too; the type is what to fix first.
    mistyped = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    problems: list[Problem] = []
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        where = tuple(error.absolute_path)
        if where in mistyped and error.validator != "type":
            continue
        suffix = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where)
        problem = Problem(
            path + suffix,
            _describe(error.validator, error.validator_value, error.instance, error.message),
        )
        if problem not in problems:
            problems.append(problem)
    return problems


def _describe(keyword: Any, expected: Any, value: Any, fallback: str) -> str:
    got = _show(value)
    if keyword == "type":
        wanted = expected if isinstance(expected, list) else [expected]
        return f"must be {' or '.join(A_TYPE.get(str(t), str(t)) for t in wanted)}, got {got}"
    if keyword == "enum":
        return f"must be one of {', '.join(_json(v) for v in expected)}, got {got}"
    if keyword == "pattern":
        return f"must match the pattern {expected}, got {got}"
    if keyword == "minimum":
        return f"must be at least {_number(expected)}, got {got}"
    if keyword == "maximum":
        return f"must be at most {_number(expected)}, got {got}"
    if keyword == "minLength":
        return f"must be at least {expected} characters long, got {len(value)}"
    if keyword == "maxLength":
        return f"must be at most {expected} characters long, got {len(value)}"
    return str(fallback)


def _show(value: Any) -> str:
    """`value` in a message: its JSON type and a short JSON rendering."""
    return f"{_json_type(value)} {_json(value)}"


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: Any) -> str:
    for kind, types in _JSON_TYPES:
        if isinstance(value, types):
            return kind
    return type(value).__name__


_JSON_TYPES: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("boolean", bool),
    ("integer", int),
    ("number", float),
    ("string", str),
    ("array", (list, tuple)),
    ("object", Mapping),
    ("null", type(None)),
)


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
