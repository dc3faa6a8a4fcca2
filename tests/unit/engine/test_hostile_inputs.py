"""Property: no Template or parameters, however hostile, leave a run stuck (issue 10, item 4).

hypothesis generates templates and parameters from hostile pieces — huge and deeply nested
values, integers of thousands of digits, odd and overflowing durations, odd names, patterns
that backtrack or that RE2 lacks, expressions that build huge values — and for each asserts:

- either validation refuses it (the CRD schema's model, or the template's validation), each
  problem with a message; or
- planning it (`engine.execution.plan`) over repeated passes, with simulated outcomes of its
  Jobs (successes with hostile outputs, failures) and Approvals, never raises, and reaches a
  terminal phase with a message within a bounded number of passes.

Derandomized, with a bounded number of examples, so CI runs the same cases in seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from koos.api.execution import TERMINAL_PHASES, ExecutionSpec, ExecutionStatus
from koos.api.template import TemplateSpec
from koos.engine.execution import plan
from koos.engine.facts import ApprovalFacts, ExecutionSnapshot, JobFacts, TemplateFacts
from koos.engine.template import problems_from_pydantic, validate_template

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)


def nested(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


VALUES = st.one_of(
    st.sampled_from(
        [
            "web",
            "",
            "a" * 30,
            "a" * 40 + "b",
            "x" * 200_000,
            "hi; touch /tmp/pwned",
            "\x00nul",
            10**4000,
            2**63,
            -(2**70),
            1e308,
            float("inf"),
            True,
            None,
        ]
    ),
    st.builds(nested, st.sampled_from([1, 10, 63, 64, 65, 300, 900])),
    st.integers(),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=5),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)

VALID_DURATIONS = ["1s", "10m", "365d", "1.5h", ".5s", "2d", "30s"]
HOSTILE_DURATIONS = ["0s", "366d", "100000000d", "1e400s", "9" * 400 + "d", "30", "-1s", "1h1h"]


def mostly(valid: list[Any], hostile: list[Any]) -> st.SearchStrategy[Any]:
    """One of `valid` about nine times in ten, else one of `hostile`: most cases pass
    validation and reach the planner, some probe the validation."""
    # hypothesis favours the ends of a range, so the hostile pick sits in its middle.
    return st.integers(0, 9).flatmap(
        lambda n: st.sampled_from(hostile if n == 4 else valid)  # type: ignore[no-any-return]
    )


DURATIONS = mostly(VALID_DURATIONS, HOSTILE_DURATIONS)

# Expressions that pass validation and are hostile when rendered (or fine), and expressions
# validation refuses.
RENDERED = [
    "{{ true }}",
    "{{ false }}",
    "{{ params.p }}",
    "{{ params.p | length > 3 }}",
    "{{ ([('a' * 999999)] * 300) | join }}",
    "{{ ('a' * 999999) ~ ('a' * 999999) }}",
    "{{ ('9' * 4000) | int }}",
    "{{ ('9' * 4000) | int > 1 }}",
    "{{ 2 ** 4000 * 2 ** 4000 }}",
    "{{ 1e308 * 10 }}",
    "{{ [1] * 10000000 }}",
    "{{ (params.p | string) * 100000 }}",
    "{{ params.p | tojson(indent=16) }}",
    "{{ steps.s0.outputs.v }}",
    "{{ steps.s0.outputs.v == 1 }}",
    "{{ steps.s0.phase == 'Succeeded' }}",
    "plain text",
]
REFUSED = [
    "{{ " + "(" * 300 + "1" + ")" * 300 + " }}",
    "{{ " + "9" * 5000 + " }}",
    "{% for x in y %}{% endfor %}",
    "{{ x.__class__ }}",
    "{{ params.nope }}",
    "{{ 'x' }}" * 10000,
]
EXPRESSIONS = st.integers(0, 9).flatmap(
    lambda n: st.sampled_from(REFUSED if n == 4 else RENDERED)  # type: ignore[no-any-return]
)
# The first step reads no step.
OWN_EXPRESSIONS = st.integers(0, 9).flatmap(
    lambda n: st.sampled_from(  # type: ignore[no-any-return]
        REFUSED if n == 4 else [e for e in RENDERED if "steps." not in e]
    )
)

PATTERNS = mostly(
    [None, "^[a-z]+$", "^(a+)+$", "^.*$", "^a*$"],
    ["(a)\\1", "^(?=a).*$", "^(a{1000}){1000}$", "["],
)

HOSTILE_NAMES = ["Bad_Name", "x" * 41, "", "-a"]

OUTPUTS = st.sampled_from(
    [
        "",
        '{"v": 1}',
        '{"v": "x"}',
        '{"v": ' + "[" * 100 + "]" * 100 + "}",
        '{"v": ' + "[" * 1500 + "]" * 1500 + "}",
        '{"v": ' + "9" * 4000 + "}",
        '{"v": 1e999}',
        '{"v": NaN}',
        "not json",
        "[1, 2]",
        "x" * 5000,
    ]
)


@st.composite
def steps(draw: st.DrawFn, index: int, final: bool = False) -> dict[str, Any]:
    name = draw(mostly([f"s{index}"], HOSTILE_NAMES))
    expressions = EXPRESSIONS if index > 0 else OWN_EXPRESSIONS
    kind = draw(st.sampled_from(["run", "sleep", "approve"]))
    step: dict[str, Any] = {"name": name}
    if kind == "run":
        step["run"] = {
            "image": "busybox",
            "script": "true",
            "env": [{"name": "V", "value": draw(expressions)}],
        }
    elif kind == "sleep":
        step["sleep"] = {"duration": draw(DURATIONS)}
    else:
        step["approve"] = {"approvers": {"users": ["alice"]}, "timeout": draw(DURATIONS)}
    if draw(st.booleans()):
        step["when"] = draw(expressions)
    if draw(st.booleans()):
        step["timeout"] = draw(DURATIONS)
    if draw(st.booleans()):
        step["retries"] = {
            "limit": draw(mostly([0, 1, 3], [100, 101, -1])),
            "backoff": draw(mostly(["1s", "10s"], HOSTILE_DURATIONS)),
            "maxBackoff": draw(mostly(["365d", "10m"], HOSTILE_DURATIONS)),
            "factor": draw(mostly([1, 2, 100], [1e300, 0.5])),
        }
    if index > 0 and not final and draw(st.booleans()):
        earlier = [f"s{i}" for i in range(index)]
        step["dependsOn"] = draw(st.lists(mostly(earlier, ["s9", *HOSTILE_NAMES]), max_size=2))
    step["onError"] = draw(st.sampled_from(["Abort", "Continue"]))
    return step


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    kind = draw(st.sampled_from(list(FITTING)))
    parameter: dict[str, Any] = {"type": kind}
    pattern = draw(PATTERNS)
    if pattern is not None and kind == "string":
        parameter["pattern"] = pattern
    value = st.integers(0, 9).flatmap(
        lambda n: VALUES if n == 4 else st.sampled_from(FITTING[kind])
    )
    parameter["default"] = draw(value)
    count = draw(st.integers(min_value=1, max_value=4))
    template = {
        "parameters": {draw(mostly(["p"], ["p-1", "P", "9p", "p" * 64])): parameter},
        "steps": [draw(steps(index)) for index in range(count)],
    }
    if draw(st.booleans()):
        template["finally"] = [draw(steps(count, final=True))]
    if draw(st.booleans()):
        template["outputs"] = {"o": draw(EXPRESSIONS)}
    given = {"p": draw(value)} if draw(st.booleans()) else {}
    return template, given


# Values of each type that its parameter accepts (when no pattern refuses them).
FITTING: dict[str, list[Any]] = {
    "string": ["web", "aaaa", "a" * 30, "hi; touch /tmp/pwned"],
    "integer": [0, 3, 2**62],
    "number": [1.5, -2],
    "array": [["a"], [], nested(60)],
    "object": [{"a": 1}, {}],
}


def snapshot(
    spec: TemplateSpec, given: dict[str, Any], status: ExecutionStatus, jobs: Any, approvals: Any
) -> ExecutionSnapshot:
    return ExecutionSnapshot(
        name="demo",
        namespace="ops",
        uid="exe-uid",
        generation=1,
        spec=ExecutionSpec.model_validate({"templateRef": {"name": "tpl"}, "parameters": given}),
        status=status,
        template=TemplateFacts("tpl", "tpl-uid", 1, spec),
        jobs=jobs,
        approvals=approvals,
        creator="bob",
    )


@settings(
    max_examples=300,
    database=None,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases(), outcomes=st.lists(st.tuples(st.booleans(), OUTPUTS), min_size=40))
def test_every_hostile_input_is_refused_or_ends_with_a_message(
    case: tuple[dict[str, Any], dict[str, Any]], outcomes: list[tuple[bool, str]]
) -> None:
    data, given = case
    try:
        spec = TemplateSpec.model_validate(data)
    except ValidationError as error:
        problems = problems_from_pydantic(error)
        assert problems and all(p.message for p in problems)
        event("refused by the schema")
        return
    problems = validate_template(spec)
    if problems:
        assert all(p.message for p in problems)
        event("refused by validation")
        return
    # Each attempt takes a pass to start and one to end; retries wait a pass or more.
    attempts = sum((s.retries.limit if s.retries else 0) + 1 for s in spec.all_steps())
    passes = 3 * attempts + 5
    status, jobs, approvals, now = ExecutionStatus(), {}, {}, T0
    for index in range(passes):
        result = plan(snapshot(spec, given, status, jobs, approvals), now)
        status = result.status
        if status.phase in TERMINAL_PHASES:
            assert status.message, status
            assert status.completion_time
            event(f"planned: {status.phase} ({(status.conditions or [])[0].reason})")
            return
        succeeded, output = outcomes[index % len(outcomes)]
        for manifest in result.create_jobs:
            name = manifest["metadata"]["name"]
            jobs[name] = JobFacts(
                name=name,
                phase="Succeeded" if succeeded else "Failed",
                message=output if succeeded else "boom",
                exit_code=None if succeeded else 1,
                created=now,
            )
        for manifest in result.create_approvals:
            name = manifest["metadata"]["name"]
            approvals[name] = ApprovalFacts(name=name, phase="Rejected", message="Rejected: no.")
        jobs = {n: j for n, j in jobs.items() if n not in result.delete_jobs}
        now = max(now + timedelta(seconds=1), result.wake_at or now)
    raise AssertionError(f"no terminal phase after {passes} passes: {status}")
