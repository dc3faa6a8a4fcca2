"""`{{ … }}` expressions: the names they read, native rendering, strictness and the sandbox."""

from __future__ import annotations

import re
from typing import Any

import pytest

from koos.engine.expressions import (
    ExpressionError,
    has_expression,
    is_true,
    references,
    render,
)

CONTEXT: dict[str, Any] = {
    "params": {"deployment": "web", "dryRun": False, "replicas": 3, "names": ["a", "b"]},
    "steps": {
        "restart": {
            "outputs": {"pods": ["web-1", "web-2"], "items": 7, "name": " Web "},
            "phase": "Succeeded",
        }
    },
    "execution": {"name": "restart-web-1", "namespace": "ops"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ params.x }}", True),
        ("a {% raw %}{{{% endraw %}", True),
        ("{# note #}", True),
        ("plain text", False),
        ('echo "${HOME}" { }', False),
    ],
)
def test_has_expression(text: str, expected: bool) -> None:
    assert has_expression(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ params.deployment }}", {("params", "deployment")}),
        ("{{ steps.restart.outputs.pods }}", {("steps", "restart", "outputs", "pods")}),
        ("{{ item }}", {("item",)}),
        (
            ("{{ execution.name }}-{{ execution.namespace }}"),
            {("execution", "name"), ("execution", "namespace")},
        ),
        ("{{ steps['my-step'].outputs['a b'] }}", {("steps", "my-step", "outputs", "a b")}),
        ("{{ steps.s.outputs.pods[0].name }}", {("steps", "s", "outputs", "pods")}),
        ("{{ params[key].x }}", {("params",), ("key",)}),
        ("{{ params.names | join(params.sep) }}", {("params", "names"), ("params", "sep")}),
        (
            ("{{ 'a' if not params.dryRun else execution.name }}"),
            {("params", "dryRun"), ("execution", "name")},
        ),
        ("{{ (params.names | first).x }}", {("params", "names")}),
        ("{{ [params.a, {'k': params.b}] }}", {("params", "a"), ("params", "b")}),
        ("{{ 1 + 2 }}", set()),
        ("no expression", set()),
    ],
)
def test_references_lists_the_name_paths_read(text: str, expected: set[tuple[str, ...]]) -> None:
    assert references(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{{ params.x ) }}", "does not parse (line 1)"),
        ("{{ params.x", "does not parse (line 1)"),
        ("line\n{{ a b }}", "does not parse (line 2)"),
        ("{{.metadata.name}}", "{% raw %}"),
        ("{% if params.x %}y{% endif %}", "not {% … %} statements"),
        ("{% set a = 1 %}", "not {% … %} statements"),
        ("{{ params.deployment.upper() }}", "calls are not allowed"),
        ("{{ range(10) }}", "calls are not allowed"),
        ("{{ params.x | attr('y') }}", "unknown filter 'attr'"),
        ("{{ params.x | urlize }}", "unknown filter 'urlize'"),
        ("{{ params.x is nonsense }}", "unknown test 'nonsense'"),
    ],
)
def test_references_refuses_what_does_not_parse(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as raised:
        references(text)
    assert fragment in str(raised.value)
    with pytest.raises(ExpressionError):
        render(text, CONTEXT)


def test_expression_error_is_a_value_error() -> None:
    assert issubclass(ExpressionError, ValueError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ not params.dryRun }}", True),
        ("{{ params.replicas }}", 3),
        ("{{ params.replicas * 1.5 }}", 4.5),
        ("{{ params.names }}", ["a", "b"]),
        ("{{ {'n': params.replicas} }}", {"n": 3}),
        ("{{ steps.restart.outputs.pods }}", ["web-1", "web-2"]),
        ("{{ steps.restart.outputs.items }}", 7),  # a key, not dict.items
        ("{{ steps.restart.phase == 'Succeeded' }}", True),
        ("{{ params.deployment }}", "web"),
        ("  {{ params.replicas }}\n", 3),
        ("{{ params.deployment }}\n", "web"),
        ("{{- params.replicas -}}", 3),
        ("{{ '}}' }}", "}}"),
        ("{{ (1, 2) }}", [1, 2]),
        ("{{ 10 % 3 }}", 1),
    ],
)
def test_render_gives_the_native_value_of_a_lone_expression(text: str, expected: Any) -> None:
    assert render(text, CONTEXT) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("deployment/{{ params.deployment }}", "deployment/web"),
        ("n={{ params.replicas }} dry={{ params.dryRun }}", "n=3 dry=false"),
        ("{{ params.names }} and {{ execution.name }}", '["a", "b"] and restart-web-1'),
        ("echo hi\n", "echo hi\n"),
        ("plain", "plain"),
        ("x{# comment #}y", "xy"),
        ("{% raw %}{{.metadata.name}}{% endraw %}", "{{.metadata.name}}"),
    ],
)
def test_render_gives_a_string_otherwise(text: str, expected: str) -> None:
    assert render(text, CONTEXT) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ params.missing | default('none') }}", "none"),
        ("{{ params.names | length }}", 2),
        ("{{ params.deployment | upper }}", "WEB"),
        ("{{ 'WEB' | lower }}", "web"),
        ("{{ params.names | join(',') }}", "a,b"),
        ("{{ {'b': 1, 'a': '<&>'} | tojson }}", '{"a": "<&>", "b": 1}'),
        ("{{ '42' | int }}", 42),
        ("{{ params.replicas | string }}", "3"),
        ("{{ steps.restart.outputs.name | trim }}", "Web"),
        ("{{ params.deployment | replace('w', 'W') }}", "Web"),
        ("{{ params.names | first }}", "a"),
        ("{{ params.names | last }}", "b"),
        ("{{ 'x' if steps.restart.outputs.nope is defined else 'y' }}", "y"),
    ],
)
def test_render_has_the_safe_filters(text: str, expected: Any) -> None:
    assert render(text, CONTEXT) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{{ params.nope }}", "params.nope is undefined (params has: deployment, dryRun, names"),
        ("x {{ params.nope }}", "params.nope is undefined"),
        ("{{ steps.restart.outputs.nope }}", "steps.restart.outputs.nope is undefined"),
        ("{{ steps.other.outputs.x }}", "steps.other is undefined"),
        ("{{ item }}", "item is undefined"),
        ("{{ [params.nope] }}", "params.nope is undefined"),
        ("{{ params.nope | length }}", "params.nope is undefined"),
        ("{{ params.names.__class__ }}", "has no attribute '__class__'"),
        ("{{ params.deployment.upper }}", "has no attribute 'upper'"),
        ("{{ 1 / 0 }}", "failed: division by zero"),
        ("{{ 'a' * 10000000 }}", "longer than"),
        ("{{ params.names * 10000000 }}", "longer than"),
        ("{{ 2 ** 100000 }}", "too large"),
        ("{{ '%s' % 1 }}", "% is not allowed"),
        ("{{ ('a' * 900000) | replace('a', 'aa') }}", "longer than"),
    ],
)
def test_render_refuses_undefined_names_and_unsafe_operations(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as raised:
        render(text, CONTEXT)
    assert fragment in str(raised.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("False", False),
        ("TRUE\n", True),
    ],
)
def test_is_true_reads_booleans(value: Any, expected: bool) -> None:
    assert is_true(value) is expected


@pytest.mark.parametrize("value", ["yes", "1", "", 1, 0, None, [], "truthy"])
def test_is_true_refuses_anything_else(value: Any) -> None:
    with pytest.raises(ExpressionError, match="when must be true or false, got"):
        is_true(value)


# Issue 10, item 3: every way to build a large value is refused before it is built.
@pytest.mark.parametrize(
    "text",
    [
        "{{ ([('a' * 999999)] * 300) | join }}",
        "{{ [('a' * 999999)] * 300 }}",
        "{{ ('a' * 999999) ~ ('a' * 999999) }}",
        "x{{ ('a' * 999999) }}{{ ('a' * 999999) }}",
        "{{ ('a' * 999999) + ('a' * 999999) }}",
        "{{ [('a' * 999999)] + [('a' * 999999)] }}",
        "{{ ([('a' * 999999)] * 1) | string | length }}",
        "{{ [[('a' * 999999)], [('a' * 999999)]] | string }}",
        "{{ [('a' * 600000), ('a' * 600000)] | tojson }}",
        "{{ (['a'] * 99999) | tojson(indent=16) }}",
        "{{ ('a' * 999999) | replace('a', 'bb') }}",
        "{{ ('ab' * 10) | join('x' * 999999) }}",
        "{{ [('a' * 999999)] * 300 == [] }}",
    ],
)
def test_render_refuses_results_past_the_size_bound(text: str) -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ExpressionError, match=r"longer than|too much work"):
            render(text, CONTEXT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Refused before the big value was built: a few copies of the 1 MB operand at most.
    assert peak < 16 * 1024 * 1024


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{{ ('9' * 4000) | int }}", "over 4096 bits"),
        ("{{ 2 ** 4000 * 2 ** 4000 }}", "over 4096 bits"),
        ("{{ [2 ** 4000 * 2 ** 200] }}", "over 4096 bits"),
        ("{{ [params.big] }}", "over 4096 bits"),
        ("{{ " + "9" * 5000 + " }}", "does not parse"),
        ("{{ 1e308 * 10 }}", "not a finite number"),
        ("{{ 1e308 + 1e308 }}", "not a finite number"),
        ("{{ params.names | join(attribute='x') }}", "not supported"),
        ("{{ params.names | tojson(indent=100) }}", "indent"),
        ("{{ " + "(" * 400 + "1" + ")" * 400 + " }}", "nested too deeply"),
        ("{{ 'x' }}" * 40000, "over the limit"),
    ],
)
def test_render_refuses_numbers_and_texts_past_the_bounds(text: str, fragment: str) -> None:
    context = {**CONTEXT, "params": {**CONTEXT["params"], "big": 2**5000}}
    with pytest.raises(ExpressionError, match=re.escape(fragment)):
        render(text, context)


def test_render_bounds_the_work_of_one_rendering() -> None:
    # Each part is under the size bound; together they are far over the work bound.
    text = (
        "{{ (('a' * 900000) | length) + " * 1
        + " + ".join(["(('a' * 900000) | upper | length)"] * 40)
        + " }}"
    )
    with pytest.raises(ExpressionError, match="too much work"):
        render(text, CONTEXT)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ (['ab'] * 3) | join('-') }}", "ab-ab-ab"),
        ("{{ 'a' ~ 1 ~ [2] }}", "a1[2]"),
        ("{{ [1, 2] + [3] }}", [1, 2, 3]),
        ("{{ {'b': [1], 'a': 2} | tojson(indent=2) }}", '{\n  "a": 2,\n  "b": [\n    1\n  ]\n}'),
        ("{{ 2 ** 64 }}", 2**64),
        ("{{ -(3) }}", -3),
        ("{{ 'x' * 3 }}", "xxx"),
        ("{{ params.names | string }}", "['a', 'b']"),
    ],
)
def test_render_keeps_ordinary_uses_within_the_bounds(text: str, expected: Any) -> None:
    assert render(text, CONTEXT) == expected


def test_is_true_shows_a_large_value_shortly() -> None:
    with pytest.raises(ExpressionError) as raised:
        is_true(10**1000)
    assert len(str(raised.value)) < 200


# Review of issue 10: checks counted sizes, not CPU; every item walked is now charged.
def test_render_refuses_lists_past_the_item_bound_before_walking_them() -> None:
    with pytest.raises(ExpressionError, match=r"over 100000 items"):
        render("{{ (([1]*499999)+([1]*499999))|length }}", CONTEXT)
    with pytest.raises(ExpressionError, match=r"over 100000 items"):
        render("{{ [[0] * 60000, [0] * 60000] | tojson }}", CONTEXT)
    # Strings keep their bound of 10^6 characters.
    assert render("{{ ('a' * 999999) | length }}", CONTEXT) == 999999


def test_render_charges_every_item_walked_to_one_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from koos.engine import expression_limits as limits

    charged: list[int] = []
    original = limits._charge

    def counting(amount: int) -> None:
        charged.append(amount)
        original(amount)

    monkeypatch.setattr(limits, "_charge", counting)
    # Each term is within the bounds; twelve of them walk ~3.6 million items in checks.
    term = "(([1]*49999)+([1]*49999))|length"
    with pytest.raises(ExpressionError, match="too much work"):
        render("{{ " + " + ".join([term] * 12) + " }}", CONTEXT)
    # The walk stopped at the budget: at most one more walk of the largest value past it.
    assert sum(charged) <= limits.MAX_WORK + (limits.MAX_ITEMS + 1) * limits.ITEM_COST
    assert sum(charged) > limits.MAX_WORK
    charged.clear()
    # A single term is well within the budget.
    assert render("{{ " + term + " }}", CONTEXT) == 99998
    assert sum(charged) < limits.MAX_WORK
