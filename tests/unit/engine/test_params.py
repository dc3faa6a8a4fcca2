"""Resolving an Execution's parameters against its Template: defaults, schemas, secrets."""

from __future__ import annotations

from typing import Any

import pytest

from koos.api.template import Parameter, TemplateSpec
from koos.engine.params import (
    build_parameter_schema,
    param_env_name,
    param_env_value,
    resolve_parameters,
    validate_parameters,
)
from koos.engine.problem import Problem

SECRET_REF = {"valueFrom": {"secretKeyRef": {"name": "db", "key": "token"}}}
SPEC = TemplateSpec.model_validate(
    {
        "parameters": {
            "deployment": {"type": "string", "pattern": "^[a-z0-9-]+$", "maxLength": 20},
            "dryRun": {"type": "boolean", "default": False},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 2},
            "ratio": {"type": "number", "default": 0.5},
            "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
            "names": {"type": "array", "items": {"type": "string"}, "default": ["a"]},
            "labels": {"type": "object", "default": {"team": "sre"}},
            "note": {"type": "string", "minLength": 2, "default": "ok"},
            "token": {"type": "string", "secret": True},
        },
        "steps": [{"name": "a", "run": {"image": "busybox", "script": "true"}}],
    }
)
REQUIRED = {"deployment": "web", "token": SECRET_REF}


def test_resolve_applies_defaults_and_keeps_secret_references() -> None:
    values, problems = resolve_parameters(SPEC, REQUIRED)
    assert problems == []
    assert values == {
        "deployment": "web",
        "dryRun": False,
        "replicas": 2,
        "ratio": 0.5,
        "mode": "safe",
        "names": ["a"],
        "labels": {"team": "sre"},
        "note": "ok",
        "token": SECRET_REF,
    }


def test_resolved_defaults_are_copies() -> None:
    values, _ = resolve_parameters(SPEC, REQUIRED)
    values["names"].append("b")
    assert SPEC.parameters["names"].default == ["a"]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("replicas", 3, 3),
        ("replicas", 3.0, 3),  # JSON-Schema counts 3.0 as an integer
        ("ratio", 2, 2),
        ("mode", "fast", "fast"),
        ("names", [], []),
        ("labels", {"valueFrom": 1, "other": 2}, {"valueFrom": 1, "other": 2}),
        ("dryRun", None, False),  # null means "not given": the default applies
    ],
)
def test_resolve_accepts_values_that_satisfy_the_schema(
    name: str, value: Any, expected: Any
) -> None:
    values, problems = resolve_parameters(SPEC, {**REQUIRED, name: value})
    assert problems == []
    assert values[name] == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            {**REQUIRED, "foo": 1},
            [("spec.parameters.foo", "unknown parameter 'foo': the template declares deployment")],
        ),
        (
            {"token": SECRET_REF},
            [("spec.parameters.deployment", "missing required parameter deployment (a string)")],
        ),
        (
            {"deployment": "web"},
            [
                (
                    "spec.parameters.token",
                    (
                        "missing required parameter token (a string): "
                        "give it as valueFrom.secretKeyRef"
                    ),
                )
            ],
        ),
        (
            {**REQUIRED, "replicas": "3"},
            [("spec.parameters.replicas", 'must be an integer, got string "3"')],
        ),
        (
            {**REQUIRED, "replicas": True},
            [("spec.parameters.replicas", "must be an integer, got boolean true")],
        ),
        (
            {**REQUIRED, "replicas": 2.5},
            [("spec.parameters.replicas", "must be an integer, got number 2.5")],
        ),
        (
            {**REQUIRED, "ratio": False},
            [("spec.parameters.ratio", "must be a number, got boolean false")],
        ),
        (
            {**REQUIRED, "dryRun": "true"},
            [("spec.parameters.dryRun", 'must be a boolean (true or false), got string "true"')],
        ),
        (
            {**REQUIRED, "names": "a,b"},
            [("spec.parameters.names", 'must be an array, got string "a,b"')],
        ),
        (
            {**REQUIRED, "labels": ["x"]},
            [("spec.parameters.labels", 'must be an object, got array ["x"]')],
        ),
        (
            {**REQUIRED, "mode": "slow"},
            [("spec.parameters.mode", 'must be one of "fast", "safe", got string "slow"')],
        ),
        (
            {**REQUIRED, "deployment": "Web App"},
            [
                (
                    "spec.parameters.deployment",
                    'must match the pattern ^[a-z0-9-]+$, got string "Web App"',
                )
            ],
        ),
        (
            {**REQUIRED, "deployment": "web\n"},  # Python's $ alone would accept it
            [
                (
                    "spec.parameters.deployment",
                    'must match the pattern ^[a-z0-9-]+$, got string "web\\n"',
                )
            ],
        ),
        (
            {**REQUIRED, "deployment": "a" * 21},
            [("spec.parameters.deployment", "must be at most 20 characters long, got 21")],
        ),
        (
            {**REQUIRED, "note": "x"},
            [("spec.parameters.note", "must be at least 2 characters long, got 1")],
        ),
        (
            {**REQUIRED, "replicas": 0},
            [("spec.parameters.replicas", "must be at least 1, got integer 0")],
        ),
        (
            {**REQUIRED, "replicas": 11},
            [("spec.parameters.replicas", "must be at most 10, got integer 11")],
        ),
        (
            {**REQUIRED, "names": ["a", 5, "c", None]},
            [
                ("spec.parameters.names[1]", "must be a string, got integer 5"),
                ("spec.parameters.names[3]", "must be a string, got null null"),
            ],
        ),
        (
            {**REQUIRED, "mode": 1},
            [("spec.parameters.mode", "must be a string, got integer 1")],
        ),
        (
            {**REQUIRED, "token": "s3cr3t"},
            [
                (
                    "spec.parameters.token",
                    (
                        "parameter token is secret: give it as "
                        "valueFrom.secretKeyRef, not as a value"
                    ),
                )
            ],
        ),
        (
            {**REQUIRED, "token": {"valueFrom": {"secretKeyRef": {"name": "db"}}}},
            [
                (
                    "spec.parameters.token",
                    ("give it as {valueFrom: {secretKeyRef: {name: <Secret>, key: <key>}}}"),
                )
            ],
        ),
        (
            {**REQUIRED, "token": {"valueFrom": {"secretKeyRef": {"name": "", "key": "k"}}}},
            [("spec.parameters.token", "give it as {valueFrom")],
        ),
        (
            {**REQUIRED, "token": {**SECRET_REF, "value": "s3cr3t"}},
            [("spec.parameters.token", "parameter token is secret: give only {valueFrom")],
        ),
        (
            {**REQUIRED, "deployment": SECRET_REF},
            [
                (
                    "spec.parameters.deployment",
                    ("parameter deployment is not secret: give its value, not valueFrom"),
                )
            ],
        ),
        (
            {"foo": 1, "bar": 2},
            [
                ("spec.parameters.foo", "unknown parameter 'foo'"),
                ("spec.parameters.bar", "unknown parameter 'bar'"),
                ("spec.parameters.deployment", "missing required parameter deployment"),
                ("spec.parameters.token", "missing required parameter token"),
            ],
        ),
    ],
)
def test_resolve_reports_what_to_fix(
    given: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    _, problems = resolve_parameters(SPEC, given)
    assert [p.path for p in problems] == [path for path, _ in expected]
    for problem, (_, fragment) in zip(problems, expected, strict=True):
        assert fragment in problem.message


def test_secret_values_never_appear_in_messages() -> None:
    _, problems = resolve_parameters(SPEC, {**REQUIRED, "token": "s3cr3t"})
    assert problems and all("s3cr3t" not in str(p) for p in problems)


@pytest.mark.parametrize("given", [None, {}])
def test_resolve_without_parameters(given: dict[str, Any] | None) -> None:
    spec = TemplateSpec.model_validate(
        {"steps": [{"name": "a", "run": {"image": "busybox", "script": "true"}}]}
    )
    assert resolve_parameters(spec, given) == ({}, [])
    _, problems = resolve_parameters(spec, {"x": 1})
    assert [str(p) for p in problems] == [
        "spec.parameters.x: unknown parameter 'x': it declares none"
    ]


def test_problem_reads_as_path_and_message() -> None:
    assert str(Problem("spec.parameters.x", "is wrong")) == "spec.parameters.x: is wrong"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("x", "KOOS_PARAM_X"),
        ("deployment", "KOOS_PARAM_DEPLOYMENT"),
        ("dryRun", "KOOS_PARAM_DRY_RUN"),
        ("log-level", "KOOS_PARAM_LOG_LEVEL"),
        ("max_surge", "KOOS_PARAM_MAX_SURGE"),
        ("HTTPServer", "KOOS_PARAM_HTTP_SERVER"),
        ("v2Name", "KOOS_PARAM_V2_NAME"),
        ("a.b", "KOOS_PARAM_A_B"),
    ],
)
def test_param_env_name(name: str, expected: str) -> None:
    assert param_env_name(name) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("web", "web"),
        ("", ""),
        (True, "true"),
        (3, "3"),
        (0.5, "0.5"),
        (["a", "b"], '["a", "b"]'),
        ({"team": "sre"}, '{"team": "sre"}'),
        (None, "null"),
    ],
)
def test_param_env_value(value: Any, expected: str) -> None:
    assert param_env_value(value) == expected


@pytest.mark.parametrize(
    ("parameter", "expected"),
    [
        ({}, {"type": "string"}),
        (
            {"type": "integer", "minimum": 1, "maximum": 5, "enum": [1, 5]},
            {"type": "integer", "minimum": 1, "maximum": 5, "enum": [1, 5]},
        ),
        (
            {"pattern": "^a+$", "minLength": 1, "maxLength": 3, "description": "d"},
            {"type": "string", "pattern": "^a+$", "minLength": 1, "maxLength": 3},
        ),
        (
            {"type": "array", "items": {"type": "integer"}},
            {"type": "array", "items": {"type": "integer"}},
        ),
        ({"secret": True}, {"type": "string"}),
    ],
)
def test_build_parameter_schema(parameter: dict[str, Any], expected: dict[str, Any]) -> None:
    assert build_parameter_schema(Parameter.model_validate(parameter)) == expected


@pytest.mark.parametrize(
    ("pattern", "value", "valid"),
    [
        ("^[a-z]+$", "abc", True),
        ("^[a-z]+$", "abc\n", False),
        ("^(blue|green)$", "blue\n", False),
        ("^[a-z$]+$", "a$b", True),
        ("^a\\$$", "a$", True),
        ("^a\\$$", "a$\n", False),
        ("b$", "ab", True),
        ("[a-z]", "1a2", True),
    ],
)
def test_patterns_follow_json_schema_semantics(pattern: str, value: str, valid: bool) -> None:
    spec = TemplateSpec.model_validate(
        {
            "parameters": {"p": {"pattern": pattern}},
            "steps": [{"name": "a", "run": {"image": "busybox", "script": "true"}}],
        }
    )
    _, problems = resolve_parameters(spec, {"p": value})
    assert (problems == []) is valid


# Issue 10, item 3: patterns run in linear time (RE2); what RE2 lacks is refused at apply.
def _spec(parameters: dict[str, Any]) -> TemplateSpec:
    return TemplateSpec.model_validate(
        {
            "parameters": parameters,
            "steps": [{"name": "a", "run": {"image": "busybox", "script": "true"}}],
        }
    )


@pytest.mark.timeout(60)
def test_a_backtracking_pattern_is_evaluated_in_linear_time() -> None:
    # Python's re would try 2^60 ways here (years); RE2 answers at once. The timeout only
    # turns the old hang into a failure.
    spec = _spec({"p": {"pattern": "^(a+)+$", "default": "a" * 30}})
    assert validate_parameters(spec.parameters) == []
    _, problems = resolve_parameters(spec, {"p": "a" * 60 + "b"})
    assert [p.path for p in problems] == ["spec.parameters.p"]
    assert "must match the pattern" in problems[0].message


@pytest.mark.parametrize(
    ("declaration", "path", "fragment"),
    [
        ({"pattern": "^(a)\\1$"}, "spec.parameters.p.pattern", "backreferences"),
        ({"pattern": "^(?=a)a$"}, "spec.parameters.p.pattern", "RE2"),
        ({"pattern": "^(?<!b)a$"}, "spec.parameters.p.pattern", "RE2"),
        ({"pattern": "^(a{1000}){1000}$"}, "spec.parameters.p.pattern", "RE2"),
        (
            {"type": "array", "items": {"type": "string", "pattern": "(x)\\1"}},
            "spec.parameters.p.items.pattern",
            "RE2",
        ),
        (
            {"type": "array", "items": {"type": "object", "patternProperties": {"^a": {}}}},
            "spec.parameters.p.items.patternProperties",
            "not supported",
        ),
    ],
)
def test_patterns_re2_cannot_run_are_refused_at_apply(
    declaration: dict[str, Any], path: str, fragment: str
) -> None:
    problems = validate_parameters(_spec({"p": declaration}).parameters)
    assert [p.path for p in problems] == [path]
    assert fragment in problems[0].message


def test_a_pattern_inside_items_is_evaluated_with_re2() -> None:
    spec = _spec({"p": {"type": "array", "items": {"type": "string", "pattern": "^(a+)+$"}}})
    assert validate_parameters(spec.parameters) == []
    _, problems = resolve_parameters(spec, {"p": ["aaa", "a" * 60 + "b"]})
    assert [p.path for p in problems] == ["spec.parameters.p[1]"]


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


# Issue 10, item 4: values nested too deeply or integers too long are refused with a message.
@pytest.mark.parametrize(
    ("declaration", "path", "fragment"),
    [
        ({"type": "array", "default": _nested(300)}, "spec.parameters.p.default", "nested"),
        ({"type": "integer", "default": 10**5000}, "spec.parameters.p.default", "2^63"),
        ({"type": "array", "enum": [_nested(100)]}, "spec.parameters.p.enum", "nested"),
        ({"type": "array", "items": {"enum": _nested(100)}}, "spec.parameters.p.items", "nested"),
    ],
)
def test_declarations_out_of_bounds_are_refused(
    declaration: dict[str, Any], path: str, fragment: str
) -> None:
    problems = validate_parameters(_spec({"p": declaration}).parameters)
    assert [p.path for p in problems] == [path]
    assert fragment in problems[0].message


@pytest.mark.parametrize(
    ("declaration", "value", "fragment"),
    [
        ({"type": "array"}, _nested(300), "nested deeper than 64 levels"),
        ({"type": "object"}, {"a": _nested(65)}, "nested deeper than 64 levels"),
        ({"type": "integer"}, 10**4000, "beyond ±2^63"),
        ({"type": "number"}, float("inf"), "not finite"),
    ],
)
def test_given_values_out_of_bounds_are_refused(
    declaration: dict[str, Any], value: Any, fragment: str
) -> None:
    _, problems = resolve_parameters(_spec({"p": declaration}), {"p": value})
    assert [p.path for p in problems] == ["spec.parameters.p"]
    assert fragment in problems[0].message


def test_values_within_bounds_are_accepted() -> None:
    spec = _spec({"p": {"type": "array"}, "n": {"type": "integer"}})
    values, problems = resolve_parameters(spec, {"p": _nested(60), "n": 2**62})
    assert problems == []
    assert values["n"] == 2**62
