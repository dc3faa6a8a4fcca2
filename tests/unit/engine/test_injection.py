"""Injection through scripts (issue 10 item 8): only inert text may be pasted into a script,
command or args; outputs and items reach scripts only as environment variables."""

from __future__ import annotations

from typing import Any

import pytest

from koos.api.template import Parameter, TemplateSpec
from koos.engine.paste import is_safe_to_paste, pattern_is_inert
from koos.engine.template import validate_template

SHELL_PROBES = ["a;b", "$(x)", "`x`", "a|b", "a&b", "a\nb", "'", '"', ">", "<", "a b", "*", "~"]

INERT = [
    r"^[a-z0-9-]+$",
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    r"^\d+$",
    r"^\w+$",
    r"^(web|api)-[0-9]{1,3}$",
    r"^(?:[a-z]+|[0-9]+)$",
    r"^v[0-9]+\.[0-9]+\.[0-9]+$",
    r"^[A-Za-z0-9_.:/=+@%-]*\Z",
]
NOT_INERT = [
    r"^.*$",
    r".*",
    r"^.+$",
    r"[a-z]+",  # unanchored: searched, so "ok; rm" matches
    r"^[a-z]+",
    r"[a-z]+$",
    r"^a|b$",  # the | splits the anchors
    r"^[^;]+$",  # a negated class admits almost everything
    r"^\S+$",
    r"^[a-z ]+$",  # a space splits words
    r"^[a-z;]+$",
    r"^[0-9]+;[0-9]+$",  # a fixed ';' still separates commands
    r"^[!-~]+$",  # a range over punctuation
    r"(?m)^[a-z]+$",  # multi-line: any line may match
    r"^(?m:[a-z]+)$",
    r"^(a)\1$",  # a back-reference
    r"^(?=a)[a-z]+$",  # look-around
    r"^[a-z]+\$",  # an escaped $ anchors nothing
    r"^[",  # does not parse
    r"^$(x)",
]


@pytest.mark.parametrize("pattern", INERT)
def test_inert_patterns_may_be_pasted(pattern: str) -> None:
    assert pattern_is_inert(pattern)


@pytest.mark.parametrize("pattern", NOT_INERT)
def test_patterns_that_admit_shell_text_may_not(pattern: str) -> None:
    assert not pattern_is_inert(pattern)


@pytest.mark.parametrize("pattern", INERT)
def test_no_inert_pattern_admits_a_shell_metacharacter(pattern: str) -> None:
    import re

    assert not [p for p in SHELL_PROBES if re.search(pattern, p)]


def test_an_enum_is_pasteable_and_a_bare_string_is_not() -> None:
    assert is_safe_to_paste(Parameter(enum=["a; b"]))  # the author wrote every value
    assert not is_safe_to_paste(Parameter())
    assert not is_safe_to_paste(Parameter(pattern="^.*$"))
    assert is_safe_to_paste(Parameter(pattern="^[a-z]+$"))


def template(script: str, *, first_outputs: bool = True, **parameters: Any) -> TemplateSpec:
    steps: list[dict[str, Any]] = [
        {"name": "a", "run": {"image": "busybox", "script": "true"}},
        {"name": "b", "run": {"image": "busybox", "script": script}},
    ]
    return TemplateSpec.model_validate({"parameters": parameters, "steps": steps})


def problems(spec: TemplateSpec) -> list[str]:
    return [str(p) for p in validate_template(spec)]


def test_an_output_pasted_into_a_script_is_refused_with_how_to_pass_it() -> None:
    found = problems(template('echo "{{ steps.a.outputs.v }}"'))
    assert len(found) == 1, found
    assert found[0].startswith("spec.steps[1].run.script: steps.a.outputs may not be pasted")
    assert 'value: "{{ steps.a.outputs.<key> }}"' in found[0]
    assert '"$VALUE"' in found[0]


@pytest.mark.parametrize(
    "field",
    [
        {"command": ["sh", "-c", "echo {{ steps.a.outputs.v }}"]},
        {"command": ["echo"], "args": ["{{ steps.a.outputs.v | upper }}"]},
        {"script": "echo {{ params.x ~ steps.a.outputs.v }}"},
    ],
)
def test_outputs_are_refused_in_command_and_args_too(field: dict[str, Any]) -> None:
    spec = TemplateSpec.model_validate(
        {
            "parameters": {"x": {"enum": ["1"]}},
            "steps": [
                {"name": "a", "run": {"image": "busybox", "script": "true"}},
                {"name": "b", "run": {"image": "busybox", **field}},
            ],
        }
    )
    assert any("steps.a.outputs may not be pasted" in p for p in problems(spec))


def test_an_output_in_an_env_value_is_the_way() -> None:
    spec = TemplateSpec.model_validate(
        {
            "steps": [
                {"name": "a", "run": {"image": "busybox", "script": "true"}},
                {
                    "name": "b",
                    "run": {
                        "image": "busybox",
                        "script": 'echo "$V"',
                        "env": [{"name": "V", "value": "{{ steps.a.outputs.v }}"}],
                    },
                },
            ]
        }
    )
    assert problems(spec) == []


def test_phase_and_the_execution_name_may_be_pasted() -> None:
    script = "echo {{ steps.a.phase }} {{ execution.name }} {{ execution.namespace }}"
    assert problems(template(script)) == []


def test_a_parameter_with_a_catch_all_pattern_is_refused_in_a_script() -> None:
    found = problems(template("echo {{ params.x }}", x={"pattern": "^.*$"}))
    assert len(found) == 1 and "parameter x may not be pasted" in found[0], found
    assert "KOOS_PARAM_X" in found[0]
    assert problems(template("echo {{ params.x }}", x={"pattern": "^[a-z]+$"})) == []


def test_an_item_pasted_into_a_script_says_to_read_koos_item() -> None:
    found = problems(template("echo {{ item }}"))
    assert any("item may not be pasted" in p and "$KOOS_ITEM" in p for p in found), found
