"""Semantic validation of Templates (issue 3): one case per rule, exact paths and messages."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from koos.api.template import TemplateSpec
from koos.engine.template import (
    Problem,
    effective_dependencies,
    problems_from_pydantic,
    step_expressions,
    validate_template,
)

Spec = dict[str, Any]

# A valid runbook that touches every rule; each case below breaks it in one place.
BASE: Spec = {
    "parameters": {
        "deployment": {"type": "string", "pattern": "^[a-z0-9-]+$"},
        "dryRun": {"type": "boolean", "default": False},
        "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
        "message": {"type": "string", "default": "hello"},
        "token": {"type": "string", "secret": True},
    },
    "steps": [
        {
            "name": "restart",
            "when": "{{ not params.dryRun }}",
            "run": {
                "image": "bitnami/kubectl:1.32",
                "script": "kubectl rollout restart deployment/{{ params.deployment }}",
                "env": [
                    {"name": "DEPLOYMENT", "value": "{{ params.deployment }}"},
                    {"name": "MESSAGE", "value": "{{ params.message }} from {{ execution.name }}"},
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "t"}}},
                ],
                "volumes": [{"name": "cfg", "mountPath": "/cfg", "configMap": {"name": "cfg"}}],
            },
            "retries": {"limit": 2, "backoff": "10s", "maxBackoff": "1m"},
            "timeout": "10m",
        },
        {
            "name": "check",
            "dependsOn": ["restart"],
            "run": {
                "image": "busybox",
                "command": ["echo", "$(PODS)"],
                "args": ["--mode={{ params.mode }}"],
                # Outputs are never pasted into a command: they reach it through env.
                "env": [{"name": "PODS", "value": "{{ steps.restart.outputs.pods | join(' ') }}"}],
            },
        },
        {"name": "wait", "dependsOn": [], "sleep": {"duration": "30s"}},
        {
            "name": "verify",  # reads restart through check: a transitive dependency
            "dependsOn": ["check", "wait"],
            "when": "{{ steps.restart.outputs.pods | length > 0 }}",
            "run": {"image": "busybox", "script": "true"},
        },
    ],
    "finally": [
        {
            "name": "report",
            "run": {
                "image": "busybox",
                "script": "echo report",
                "env": [{"name": "PHASE", "value": "{{ steps.wait.phase }}"}],
            },
        },
        {"name": "cleanup", "sleep": {"duration": "1s"}},
    ],
    "outputs": {
        "restarted": "{{ steps.restart.outputs.name }}",
        "namespace": "{{ execution.namespace }}",
        "waited": "{{ steps.wait.phase }}",
    },
}


def spec_of(data: Spec) -> TemplateSpec:
    return TemplateSpec.model_validate(data)


def changed(change: Callable[[Spec], Any]) -> Spec:
    data = copy.deepcopy(BASE)
    change(data)
    return data


def step(data: Spec, index: int) -> dict[str, Any]:
    return data["steps"][index]  # type: ignore[no-any-return]


def sleeps(*names_and_deps: tuple[str, list[str] | None]) -> Spec:
    steps = []
    for name, deps in names_and_deps:
        entry: dict[str, Any] = {"name": name, "sleep": {"duration": "1s"}}
        if deps is not None:
            entry["dependsOn"] = deps
        steps.append(entry)
    return {"steps": steps}


def test_the_base_template_is_valid() -> None:
    assert validate_template(spec_of(BASE)) == []


CASES: list[tuple[str, Spec, list[tuple[str, str]]]] = [
    # --- step names
    (
        "duplicate name across steps and finally",
        changed(lambda d: d["finally"][1].update(name="wait")),
        [("spec.finally[1].name", "step name 'wait' is already used by spec.steps[2]")],
    ),
    (
        "name is not a DNS label",
        changed(lambda d: d["finally"][1].update(name="Clean_up")),
        [("spec.finally[1].name", "must be a DNS label of at most 40 characters")],
    ),
    (
        "name longer than 40",
        changed(lambda d: d["finally"][1].update(name="c" * 41)),
        [("spec.finally[1].name", "DNS label of at most 40")],
    ),
    # --- dependsOn
    (
        "dependsOn a missing step",
        changed(lambda d: step(d, 1).update(dependsOn=["restart", "nope"])),
        [("spec.steps[1].dependsOn[1]", "no step named 'nope'")],
    ),
    (
        "main step depends on a finally step",
        changed(lambda d: step(d, 2).update(dependsOn=["report"])),
        [("spec.steps[2].dependsOn[0]", "main steps may not depend on the finally step 'report'")],
    ),
    (
        "finally step depends on a main step",
        changed(lambda d: d["finally"][1].update(dependsOn=["wait"])),
        [("spec.finally[1].dependsOn[0]", "finally steps run after all main steps")],
    ),
    (
        "dependsOn lists a step twice",
        changed(lambda d: step(d, 1).update(dependsOn=["restart", "restart"])),
        [("spec.steps[1].dependsOn[1]", "'restart' is listed twice")],
    ),
    (
        "cycle in dependsOn",
        sleeps(("a", ["b"]), ("b", ["c"]), ("c", ["a"])),
        [("spec.steps[0].dependsOn", "dependsOn forms a cycle: a → b → c → a")],
    ),
    (
        "cycle through an implicit dependency",
        sleeps(("a", None), ("b", ["c"]), ("c", None)),
        [("spec.steps[1].dependsOn", "dependsOn forms a cycle: b → c → b")],
    ),
    (
        "a step depends on itself",
        sleeps(("a", None), ("b", ["b"])),
        [("spec.steps[1].dependsOn", "dependsOn forms a cycle: b → b")],
    ),
    (
        "two cycles, each named once",
        sleeps(("a", ["b"]), ("b", ["a"]), ("c", ["d"]), ("d", ["c"])),
        [
            ("spec.steps[0].dependsOn", "cycle: a → b → a"),
            ("spec.steps[2].dependsOn", "cycle: c → d → c"),
        ],
    ),
    # --- actions
    (
        "no action",
        changed(lambda d: step(d, 2).pop("sleep")),
        [("spec.steps[2]", "a step needs exactly one action: run, sleep or approve")],
    ),
    (
        "two actions",
        changed(lambda d: step(d, 2).update(run={"image": "busybox", "script": "true"})),
        [("spec.steps[2]", "give one of run, sleep")],
    ),
    (
        "run without script or command",
        changed(lambda d: step(d, 3)["run"].pop("script")),
        [("spec.steps[3].run", "give script or command")],
    ),
    (
        "run with script and command",
        changed(lambda d: step(d, 3)["run"].update(command=["true"])),
        [("spec.steps[3].run", "give script or command, not both")],
    ),
    # --- durations
    (
        "timeout is a bare number",
        changed(lambda d: step(d, 0).update(timeout="600")),
        [("spec.steps[0].timeout", "invalid duration '600': use a number and a unit")],
    ),
    (
        "timeout is zero",
        changed(lambda d: step(d, 0).update(timeout="0s")),
        [("spec.steps[0].timeout", "timeout must be longer than 0s")],
    ),
    (
        "sleep duration does not parse",
        changed(lambda d: step(d, 2).update(sleep={"duration": "5 minutes"})),
        [("spec.steps[2].sleep.duration", "use a number and a unit")],
    ),
    (
        "retries backoff does not parse",
        changed(lambda d: step(d, 0)["retries"].update(backoff="soon")),
        [("spec.steps[0].retries.backoff", "invalid duration 'soon'")],
    ),
    (
        "retries maxBackoff does not parse",
        changed(lambda d: step(d, 0)["retries"].update(maxBackoff="10")),
        [("spec.steps[0].retries.maxBackoff", "invalid duration '10'")],
    ),
    (
        "sleep past the limit (its date would overflow)",
        changed(lambda d: step(d, 2).update(sleep={"duration": "100000000d"})),
        [("spec.steps[2].sleep.duration", "longer than the limit of 365d")],
    ),
    (
        "timeout past the limit",
        changed(lambda d: step(d, 0).update(timeout="9000h")),
        [("spec.steps[0].timeout", "longer than the limit of 365d")],
    ),
    (
        "backoff past the limit",
        changed(lambda d: step(d, 0)["retries"].update(backoff="400d", maxBackoff="500d")),
        [
            ("spec.steps[0].retries.backoff", "longer than the limit of 365d"),
            ("spec.steps[0].retries.maxBackoff", "longer than the limit of 365d"),
        ],
    ),
    (
        "maxBackoff shorter than backoff",
        changed(lambda d: step(d, 0)["retries"].update(backoff="5m")),
        [("spec.steps[0].retries.maxBackoff", "maxBackoff is shorter than backoff")],
    ),
    # --- expressions: parsing
    (
        "an expression that does not parse",
        changed(lambda d: step(d, 0).update(when="{{ not params.dryRun ) }}")),
        [("spec.steps[0].when", "expression does not parse (line 1)")],
    ),
    (
        "a statement instead of an expression",
        changed(lambda d: step(d, 0).update(when="{% if true %}true{% endif %}")),
        [("spec.steps[0].when", "not {% … %} statements")],
    ),
    (
        "a method call",
        changed(
            lambda d: step(d, 0)["run"]["env"][0].update(value=("{{ params.deployment.upper() }}"))
        ),
        [("spec.steps[0].run.env[0].value", "calls are not allowed")],
    ),
    (
        "an unknown filter",
        changed(lambda d: d["outputs"].update(x="{{ execution.name | attr('x') }}")),
        [("spec.outputs.x", "unknown filter 'attr'")],
    ),
    # --- expressions: names
    (
        "an unknown parameter",
        changed(lambda d: step(d, 0)["run"]["env"][0].update(value="{{ params.nope }}")),
        [
            (
                "spec.steps[0].run.env[0].value",
                ("unknown parameter 'nope' (declared: deployment, dryRun"),
            )
        ],
    ),
    (
        "params alone",
        changed(lambda d: step(d, 0)["run"]["env"][0].update(value="{{ params }}")),
        [("spec.steps[0].run.env[0].value", "read a parameter as params.<name>")],
    ),
    (
        "an unknown step",
        changed(lambda d: step(d, 1)["run"].update(command=["echo", "{{ steps.nope.outputs.x }}"])),
        [("spec.steps[1].run.command[1]", "no step named 'nope'")],
    ),
    (
        "a step field that is neither outputs nor phase",
        changed(lambda d: step(d, 3).update(when="{{ steps.restart.output.pods }}")),
        [("spec.steps[3].when", "steps.restart has outputs and phase, not 'output'")],
    ),
    (
        "a step alone",
        changed(lambda d: step(d, 3).update(when="{{ steps.restart }}")),
        [("spec.steps[3].when", "read a step as steps.<name>.outputs.<key> or steps.<name>.phase")],
    ),
    (
        "outputs of a step it does not depend on",
        changed(lambda d: step(d, 2).update(when="{{ steps.restart.phase == 'Succeeded' }}")),
        [
            (
                "spec.steps[2].when",
                (
                    "steps.restart is read but this step does not "
                    "depend on restart: add it to dependsOn"
                ),
            )
        ],
    ),
    (
        "outputs of a later step",
        changed(lambda d: step(d, 0)["run"]["env"][0].update(value="{{ steps.check.outputs.x }}")),
        [("spec.steps[0].run.env[0].value", "does not depend on check")],
    ),
    (
        "a main step reads a finally step",
        changed(lambda d: step(d, 3).update(when="{{ steps.report.phase }}")),
        [("spec.steps[3].when", "main steps run before finally steps: report has not run yet")],
    ),
    (
        "a step reads itself",
        changed(lambda d: step(d, 3).update(when="{{ steps.verify.phase }}")),
        [("spec.steps[3].when", "step verify cannot read its own outputs or phase")],
    ),
    (
        "template outputs read a finally step",
        changed(lambda d: d["outputs"].update(x="{{ steps.report.outputs.y }}")),
        [
            (
                "spec.outputs.x",
                ("template outputs may read only main steps, not the finally step report"),
            )
        ],
    ),
    (
        "a finally step reads a later finally step",
        changed(lambda d: d["finally"][0].update(when="{{ steps.cleanup.phase }}")),
        [("spec.finally[0].when", "does not depend on cleanup")],
    ),
    (
        "item outside a loop",
        changed(lambda d: step(d, 0)["run"]["env"][0].update(value="{{ item }}")),
        [
            (
                "spec.steps[0].run.env[0].value",
                ("item is defined only in the run of a step with a loop"),
            )
        ],
    ),
    (
        "an unknown root name",
        changed(lambda d: step(d, 0).update(when="{{ dryRun }}")),
        [
            (
                "spec.steps[0].when",
                ("unknown name 'dryRun': expressions read params, steps and execution"),
            )
        ],
    ),
    (
        "an unknown execution field",
        changed(lambda d: d["outputs"].update(x="{{ execution.uid }}")),
        [("spec.outputs.x", "execution has only name and namespace")],
    ),
    (
        "several problems in one field, each once",
        changed(lambda d: step(d, 0).update(when="{{ params.a or params.b or params.a }}")),
        [
            ("spec.steps[0].when", "unknown parameter 'a'"),
            ("spec.steps[0].when", "unknown parameter 'b'"),
        ],
    ),
    # --- secrets and scripts
    (
        "a secret parameter in an env value",
        changed(lambda d: step(d, 0)["run"]["env"][0].update(value="{{ params.token }}")),
        [
            (
                "spec.steps[0].run.env[0].value",
                (
                    "parameter token is secret and may not appear in expressions: it reaches "
                    "containers only as the environment variable KOOS_PARAM_TOKEN"
                ),
            )
        ],
    ),
    (
        "a secret parameter in template outputs",
        changed(lambda d: d["outputs"].update(token="{{ params.token }}")),
        [("spec.outputs.token", "parameter token is secret")],
    ),
    (
        "a parameter without enum or pattern in a script",
        changed(lambda d: step(d, 3)["run"].update(script="echo {{ params.message }}")),
        [
            (
                "spec.steps[3].run.script",
                (
                    "parameter message may not be pasted into a script, command or args: "
                    "read the environment variable KOOS_PARAM_MESSAGE instead"
                ),
            )
        ],
    ),
    (
        "a parameter without enum or pattern in a command",
        changed(lambda d: step(d, 1)["run"].update(command=["echo", "{{ params.message }}"])),
        [("spec.steps[1].run.command[1]", "KOOS_PARAM_MESSAGE")],
    ),
    (
        "a parameter without enum or pattern in args",
        changed(lambda d: step(d, 1)["run"].update(args=["{{ params.dryRun }}"])),
        [("spec.steps[1].run.args[0]", "KOOS_PARAM_DRY_RUN")],
    ),
    (
        "a parameter with an unanchored pattern in a script",
        changed(lambda d: d["parameters"]["deployment"].update(pattern="[a-z0-9-]+")),
        [("spec.steps[0].run.script", "an enum or a pattern anchored with ^ and $")],
    ),
    # --- parameter declarations
    (
        "a parameter schema that is not valid JSON-Schema",
        changed(
            lambda d: d["parameters"].update(names={"type": "array", "items": {"type": "strng"}})
        ),
        [("spec.parameters.names.items.type", "not a valid JSON-Schema")],
    ),
    (
        "a default of the wrong type",
        changed(lambda d: d["parameters"].update(replicas={"type": "integer", "default": "three"})),
        [("spec.parameters.replicas.default", 'must be an integer, got string "three"')],
    ),
    (
        "a default outside the enum",
        changed(lambda d: d["parameters"]["mode"].update(default="slow")),
        [("spec.parameters.mode.default", 'must be one of "fast", "safe", got string "slow"')],
    ),
    (
        "a default that does not match the pattern",
        changed(lambda d: d["parameters"]["deployment"].update(default="Web")),
        [("spec.parameters.deployment.default", "must match the pattern ^[a-z0-9-]+$")],
    ),
    (
        "an enum value of the wrong type",
        changed(lambda d: d["parameters"].update(n={"type": "integer", "enum": [1, "two"]})),
        [("spec.parameters.n.enum[1]", 'must be an integer, got string "two"')],
    ),
    (
        "a pattern on an integer",
        changed(lambda d: d["parameters"].update(n={"type": "integer", "pattern": "^1$"})),
        [("spec.parameters.n.pattern", "pattern applies only to type string")],
    ),
    (
        "items on a string",
        changed(lambda d: d["parameters"].update(n={"items": {"type": "string"}})),
        [("spec.parameters.n.items", "items applies only to type array")],
    ),
    (
        "a pattern that is not a regular expression",
        changed(lambda d: d["parameters"].update(n={"pattern": "^[a-z$"})),
        [("spec.parameters.n.pattern", "not a valid regular expression")],
    ),
    (
        "minimum greater than maximum",
        changed(lambda d: d["parameters"].update(n={"type": "number", "minimum": 5, "maximum": 1})),
        [("spec.parameters.n.minimum", "minimum is greater than maximum")],
    ),
    (
        "minLength greater than maxLength",
        changed(lambda d: d["parameters"].update(n={"minLength": 5, "maxLength": 1})),
        [("spec.parameters.n.minLength", "minLength is greater than maxLength")],
    ),
    (
        "a secret parameter with a default",
        changed(lambda d: d["parameters"]["token"].update(default="s3cr3t")),
        [("spec.parameters.token.default", "a secret parameter may not have a default")],
    ),
    (
        "a secret parameter that is not a string",
        changed(lambda d: d["parameters"]["token"].update(type="integer")),
        [("spec.parameters.token.type", "a secret parameter is a string")],
    ),
    (
        "a secret parameter with a constraint koos cannot check",
        changed(lambda d: d["parameters"]["token"].update(pattern="^x$")),
        [("spec.parameters.token.pattern", "a secret parameter may not have pattern")],
    ),
    (
        "a parameter name that is not usable",
        changed(lambda d: d["parameters"].update({"1st": {"default": "x"}})),
        [("spec.parameters.1st", "parameter name '1st' must start with a letter")],
    ),
    (
        "two parameters with the same environment variable",
        changed(lambda d: d["parameters"].update({"dry-run": {"default": "x"}})),
        [
            (
                "spec.parameters.dry-run",
                ("parameters dryRun and dry-run would both reach containers as KOOS_PARAM_DRY_RUN"),
            )
        ],
    ),
    # --- environment and volumes
    (
        "an env name that is not a C identifier",
        changed(lambda d: step(d, 0)["run"]["env"][1].update(name="MY-VAR")),
        [("spec.steps[0].run.env[1].name", "'MY-VAR' is not a valid environment variable name")],
    ),
    (
        "an env name reserved for koos",
        changed(lambda d: step(d, 0)["run"]["env"][1].update(name="KOOS_OUTPUT")),
        [("spec.steps[0].run.env[1].name", "KOOS_OUTPUT is reserved: names starting with KOOS_")],
    ),
    (
        "an env name set twice",
        changed(lambda d: step(d, 0)["run"]["env"][1].update(name="DEPLOYMENT")),
        [("spec.steps[0].run.env[1].name", "DEPLOYMENT is already set by env[0]")],
    ),
    (
        "an env var with value and valueFrom",
        changed(lambda d: step(d, 0)["run"]["env"][2].update(value="x")),
        [("spec.steps[0].run.env[2]", "give value or valueFrom, not both")],
    ),
    (
        "an env valueFrom without a source",
        changed(lambda d: step(d, 0)["run"]["env"][2].update(valueFrom={})),
        [
            (
                "spec.steps[0].run.env[2].valueFrom",
                ("give exactly one of secretKeyRef, configMapKeyRef"),
            )
        ],
    ),
    (
        "a volume without a source",
        changed(lambda d: step(d, 0)["run"]["volumes"][0].pop("configMap")),
        [("spec.steps[0].run.volumes[0]", "give exactly one of configMap, secret")],
    ),
    (
        "a volume listed twice",
        changed(
            lambda d: step(d, 0)["run"]["volumes"].append(dict(step(d, 0)["run"]["volumes"][0]))
        ),
        [("spec.steps[0].run.volumes[1].name", "volume 'cfg' is listed twice")],
    ),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_template_names_each_problem(data: Spec, expected: list[tuple[str, str]]) -> None:
    problems = validate_template(spec_of(data))
    assert [p.path for p in problems] == [path for path, _ in expected], problems
    for problem, (_, fragment) in zip(problems, expected, strict=True):
        assert fragment in problem.message


def test_problems_read_as_path_colon_message() -> None:
    data = changed(lambda d: step(d, 1).update(dependsOn=["nope"]))
    assert [str(p) for p in validate_template(spec_of(data))] == [
        "spec.steps[1].dependsOn[0]: no step named 'nope'",
        "spec.steps[1].run.env[0].value: steps.restart is read but this step does not depend on "
        "restart: add it to dependsOn (directly or through another step)",
        # verify read restart through check, which no longer depends on it
        "spec.steps[3].when: steps.restart is read but this step does not depend on restart: "
        "add it to dependsOn (directly or through another step)",
    ]


def test_every_problem_is_reported_at_once() -> None:
    data = changed(lambda d: d["finally"][1].update(name="wait", sleep={"duration": "x"}))
    data["steps"][0]["when"] = "{{ params.nope }}"
    assert [p.path for p in validate_template(spec_of(data))] == [
        "spec.steps[0].when",
        "spec.finally[1].name",
        "spec.finally[1].sleep.duration",
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (sleeps(("a", None), ("b", None), ("c", None)), {"a": (), "b": ("a",), "c": ("b",)}),
        (sleeps(("a", None), ("b", []), ("c", None)), {"a": (), "b": (), "c": ("b",)}),
        (sleeps(("a", ["b"]), ("b", [])), {"a": ("b",), "b": ()}),
        (sleeps(("a", None), ("b", ["a", "a"])), {"a": (), "b": ("a",)}),
        (
            {
                **sleeps(("a", None), ("b", None)),
                "finally": sleeps(("f", None), ("g", None))["steps"],
            },
            {"a": (), "b": ("a",), "f": (), "g": ("f",)},
        ),
    ],
)
def test_effective_dependencies(data: Spec, expected: dict[str, tuple[str, ...]]) -> None:
    assert effective_dependencies(spec_of(data)) == expected


def test_step_expressions_lists_the_rendered_fields() -> None:
    assert [field for field, _ in step_expressions(spec_of(BASE).steps[0])] == [
        "when",
        "run.script",
        "run.env[0].value",
        "run.env[1].value",
    ]
    assert [field for field, _ in step_expressions(spec_of(BASE).steps[1])] == [
        "run.command[0]",
        "run.command[1]",
        "run.args[0]",
        "run.env[0].value",
    ]


@pytest.mark.parametrize(
    ("data", "prefix", "expected"),
    [
        ({"steps": []}, "spec", [("spec.steps", "at least 1 item")]),
        ({}, "spec", [("spec.steps", "is required")]),
        (
            {"steps": [{"name": "a", "dependsOn": "b", "run": {}, "onError": "Retry"}]},
            "spec",
            [
                ("spec.steps[0].dependsOn", "valid list"),
                ("spec.steps[0].run.image", "is required"),
                ("spec.steps[0].onError", "'Abort' or 'Continue'"),
            ],
        ),
        (
            {"steps": [{"name": "a"}], "finally": [{}], "parameters": {"x": {"type": "str"}}},
            "spec",
            [
                ("spec.parameters.x.type", "Input should be 'string'"),
                ("spec.finally[0].name", "is required"),
            ],
        ),
        (
            {"steps": [{"name": "a", "retries": {"maxBackoff": 5, "limit": -1}}]},
            "template.spec",
            [
                ("template.spec.steps[0].retries.limit", "greater than or equal to 0"),
                ("template.spec.steps[0].retries.maxBackoff", "valid string"),
            ],
        ),
    ],
)
def test_problems_from_pydantic_use_camel_case_paths(
    data: Spec, prefix: str, expected: list[tuple[str, str]]
) -> None:
    with pytest.raises(ValidationError) as raised:
        TemplateSpec.model_validate(data)
    problems = problems_from_pydantic(raised.value, prefix=prefix)
    assert [p.path for p in problems] == [path for path, _ in expected]
    for problem, (_, fragment) in zip(problems, expected, strict=True):
        assert fragment in problem.message
    assert all(isinstance(p, Problem) for p in problems)
