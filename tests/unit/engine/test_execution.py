"""The Execution planner (`koos.engine.execution.plan`): snapshot + `now` → plan, run level.

Starting a run (template and parameters resolved once, or the run refused with InvalidSpec),
the run's phase, conditions, Events and outputs, onError, cancel, terminal runs, idempotence,
secrets and the size of the status. Step-level decisions (outputs, retries, timeouts, lost
Jobs) are in test_steps.py. Every case builds its snapshot directly and passes a fixed clock.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from koos.api.common import Condition
from koos.api.constants import ANNOTATION_CANCEL, LABEL_ATTEMPT
from koos.api.execution import ExecutionSpec, ExecutionStatus, StepStatus
from koos.api.template import TemplateSpec
from koos.engine.execution import MESSAGE_LIMIT, plan
from koos.engine.facts import ExecutionSnapshot, JobFacts, JobPhase, Plan, TemplateFacts

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CANCEL = {ANNOTATION_CANCEL: "true"}
DB_PASSWORD = {"valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def step(name: str, **fields: Any) -> dict[str, Any]:
    """A step as a template holds it; a `run` of busybox unless the fields give an action."""
    if "run" not in fields and "sleep" not in fields:
        fields["run"] = {"image": "busybox", "script": "true"}
    return {"name": name, **fields}


def template(
    *steps: dict[str, Any], final: tuple[dict[str, Any], ...] = (), **spec: Any
) -> TemplateSpec:
    return TemplateSpec.model_validate({"steps": steps, "finally": final or None, **spec})


def snapshot(
    spec: TemplateSpec | None = None,
    *,
    status: ExecutionStatus | None = None,
    params: dict[str, Any] | None = None,
    jobs: tuple[JobFacts, ...] = (),
    annotations: dict[str, str] | None = None,
    ref: str = "tpl",
    generation: int = 1,
) -> ExecutionSnapshot:
    """Execution `demo` in namespace `ops` running Template `ref`, which holds `spec`."""
    return ExecutionSnapshot(
        name="demo",
        namespace="ops",
        uid="exe-uid",
        generation=generation,
        spec=ExecutionSpec.model_validate({"templateRef": {"name": ref}, "parameters": params}),
        status=status or ExecutionStatus(),
        annotations=annotations or {},
        template=None if spec is None else TemplateFacts(ref, "tpl-uid", 7, spec),
        jobs={job.name: job for job in jobs},
    )


def job(step: str, phase: JobPhase = "Active", attempt: int = 1, **facts: Any) -> JobFacts:
    return JobFacts(name=f"demo-{step}-{attempt}", phase=phase, created=T0, **facts)


def replan(
    previous: Plan, now: datetime, *jobs: JobFacts, annotations: dict[str, str] | None = None
) -> Plan:
    """The plan for the next snapshot: the status `previous` wrote, and these Jobs."""
    return plan(snapshot(status=previous.status, jobs=jobs, annotations=annotations), now)


def record(result: Plan, name: str) -> StepStatus:
    return next(s for s in result.status.steps or [] if s.name == name)


def created(result: Plan) -> list[str]:
    return [manifest["metadata"]["name"] for manifest in result.create_jobs]


def conditions(result: Plan) -> dict[str, Condition]:
    return {c.type: c for c in result.status.conditions or []}


def env_of(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {var["name"]: var for var in container["env"]}


# --- Starting a run -----------------------------------------------------------------------

PARAMS = {
    "target": {"type": "string"},
    "replicas": {"type": "integer", "default": 3, "maximum": 10},
    "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
}
WITH_PARAMS = template(step("a"), step("b"), parameters=PARAMS)


def unparseable(problem: str) -> ExecutionSnapshot:
    broken = TemplateFacts("tpl", "tpl-uid", 7, spec=None, problems=(problem,))
    return dataclasses.replace(snapshot(WITH_PARAMS), template=broken)


REFUSED: dict[str, tuple[ExecutionSnapshot, str]] = {
    "template missing": (
        snapshot(None, ref="nightly"),
        'Template "nightly" not found in namespace "ops"',
    ),
    "template with a cycle": (
        snapshot(template(step("a", dependsOn=["b"]), step("b", dependsOn=["a"]))),
        'Template "tpl" is invalid: spec.steps[0].dependsOn: dependsOn forms a cycle: a → b → a',
    ),
    "template depends on a missing step": (
        snapshot(template(step("a", dependsOn=["nope"]))),
        "spec.steps[0].dependsOn[0]: no step named 'nope'",
    ),
    "template that does not parse": (
        unparseable("spec.steps: is required"),
        'Template "tpl" is invalid: spec.steps: is required',
    ),
    "missing required parameter": (
        snapshot(WITH_PARAMS, params={}),
        "spec.parameters.target: missing required parameter target",
    ),
    "wrong parameter type": (
        snapshot(WITH_PARAMS, params={"target": "web", "replicas": "three"}),
        'spec.parameters.replicas: must be an integer, got string "three"',
    ),
    "unknown parameter": (
        snapshot(WITH_PARAMS, params={"target": "web", "colour": "red"}),
        "spec.parameters.colour: unknown parameter 'colour'",
    ),
    "parameter not in its enum": (
        snapshot(WITH_PARAMS, params={"target": "web", "mode": "reckless"}),
        'spec.parameters.mode: must be one of "fast", "safe"',
    ),
    "parameter out of bounds": (
        snapshot(WITH_PARAMS, params={"target": "web", "replicas": 11}),
        "spec.parameters.replicas: must be at most 10, got integer 11",
    ),
}


@pytest.mark.parametrize(("given", "problem"), REFUSED.values(), ids=REFUSED.keys())
def test_a_bad_start_fails_the_run_with_invalid_spec_and_runs_nothing(
    given: ExecutionSnapshot, problem: str
) -> None:
    result = plan(given, at(5))

    assert result.status.phase == "Failed"
    assert problem in (result.status.message or "")
    assert result.create_jobs == () and result.delete_jobs == ()
    assert result.status.steps is None and result.status.template is None
    assert result.status.completion_time == "2025-03-01T12:00:05Z"
    for kind in ("Succeeded", "Ready"):
        condition = conditions(result)[kind]
        assert (condition.status, condition.reason) == ("False", "InvalidSpec")
        assert problem in condition.message
    assert result.event is not None
    assert (result.event.type, result.event.reason) == ("Warning", "InvalidSpec")
    assert problem in result.event.message


def test_an_unparseable_execution_spec_fails_with_its_problems() -> None:
    given = ExecutionSnapshot(
        name="demo",
        namespace="ops",
        uid="exe-uid",
        generation=1,
        spec=None,
        status=ExecutionStatus(),
        spec_problems=("spec.templateRef: is required",),
    )
    result = plan(given, T0)
    assert result.status.phase == "Failed"
    assert result.status.message == "spec.templateRef: is required"
    assert conditions(result)["Succeeded"].reason == "InvalidSpec"


def test_a_valid_start_snapshots_the_template_and_starts_the_first_step() -> None:
    result = plan(snapshot(WITH_PARAMS, params={"target": "web"}, generation=4), T0)
    status = result.status

    assert status.phase == "Running"
    assert status.start_time == "2025-03-01T12:00:00Z" and status.completion_time is None
    assert status.observed_generation == 4
    assert status.template is not None
    assert (status.template.name, status.template.uid, status.template.generation) == (
        "tpl",
        "tpl-uid",
        7,
    )
    assert status.template.spec == WITH_PARAMS
    assert re.fullmatch(r"[0-9a-f]{64}", status.template.hash)
    assert status.parameters == {"target": "web", "replicas": 3, "mode": "safe"}
    assert [(s.name, s.phase, s.attempt, s.job_name) for s in status.steps or []] == [
        ("a", "Running", 1, "demo-a-1"),
        ("b", "Pending", 0, None),
    ]
    assert created(result) == ["demo-a-1"]
    assert result.create_jobs[0]["metadata"]["labels"][LABEL_ATTEMPT] == "1"
    assert env_of(result.create_jobs[0])["KOOS_PARAM_REPLICAS"] == {
        "name": "KOOS_PARAM_REPLICAS",
        "value": "3",
    }
    assert result.event is not None
    assert (result.event.type, result.event.reason) == ("Normal", "Started")
    assert "template tpl" in result.event.message
    assert status.progress == "0/2"
    for kind in ("Succeeded", "Ready"):
        condition = conditions(result)[kind]
        assert (condition.status, condition.reason) == ("Unknown", "Running")
        assert condition.last_transition_time == "2025-03-01T12:00:00Z"
        assert condition.observed_generation == 4


def test_the_template_hash_follows_the_spec() -> None:
    def hash_of(spec: TemplateSpec) -> str:
        resolved = plan(snapshot(spec), T0).status.template
        assert resolved is not None
        return resolved.hash

    one, same, other = template(step("a")), template(step("a")), template(step("b"))
    assert hash_of(one) == hash_of(same) != hash_of(other)


def test_a_running_run_follows_its_snapshot_not_the_current_template() -> None:
    started = plan(snapshot(template(step("a"), step("b"))), T0)
    edited = template(step("x"), step("y"))  # the Template was edited since
    result = plan(snapshot(edited, status=started.status, jobs=(job("a", "Succeeded"),)), at(5))
    assert created(result) == ["demo-b-1"]
    assert [s.name for s in result.status.steps or []] == ["a", "b"]


def test_a_run_finishes_from_its_snapshot_after_its_template_is_deleted() -> None:
    started = plan(snapshot(template(step("a"))), T0)
    result = plan(snapshot(None, status=started.status, jobs=(job("a", "Succeeded"),)), at(5))
    assert result.status.phase == "Succeeded"


# --- Finishing a run ----------------------------------------------------------------------


def test_a_run_whose_steps_succeed_ends_succeeded_with_its_outputs() -> None:
    spec = template(
        step("a"),
        step("b"),
        outputs={"count": "{{ steps.a.outputs.n }}", "where": "{{ execution.namespace }}"},
    )
    first = plan(snapshot(spec), T0)
    second = replan(first, at(10), job("a", "Succeeded", message='{"n": 2}'))
    assert second.status.phase == "Running" and second.status.progress == "1/2"
    assert conditions(second)["Succeeded"].last_transition_time == "2025-03-01T12:00:00Z"

    done = replan(second, at(20), job("a", "Succeeded"), job("b", "Succeeded"))
    status = done.status
    assert status.phase == "Succeeded"
    assert status.outputs == {"count": 2, "where": "ops"}
    assert status.completion_time == "2025-03-01T12:00:20Z"
    assert status.progress == "2/2"
    for kind in ("Succeeded", "Ready"):
        condition = conditions(done)[kind]
        assert (condition.status, condition.reason) == ("True", "Succeeded")
        assert condition.last_transition_time == "2025-03-01T12:00:20Z"
    assert done.event is not None
    assert (done.event.type, done.event.reason) == ("Normal", "Succeeded")
    assert done.wake_at is None and done.create_jobs == ()


def test_an_output_that_cannot_be_rendered_is_left_out_and_said() -> None:
    spec = template(
        step("a", when="{{ false }}"),
        step("b"),
        outputs={"from_a": "{{ steps.a.outputs.n }}", "b_phase": "{{ steps.b.phase }}"},
    )
    first = plan(snapshot(spec), T0)  # a is skipped at once, b starts
    done = replan(first, at(5), job("b", "Succeeded"))
    assert done.status.phase == "Succeeded"
    assert done.status.outputs == {"b_phase": "Succeeded"}
    assert "Output from_a was not set: steps.a.outputs.n is undefined" in (
        done.status.message or ""
    )


# --- onError ------------------------------------------------------------------------------


def test_on_error_abort_skips_what_has_not_started_and_lets_running_steps_finish() -> None:
    spec = template(
        step("a", dependsOn=[]),
        step("b", dependsOn=[]),
        step("c", dependsOn=["a", "b"]),
        step("d"),
        final=(step("report"),),
    )
    first = plan(snapshot(spec), T0)
    assert created(first) == ["demo-a-1", "demo-b-1"]

    failed = replan(first, at(10), job("a", "Failed", exit_code=3), job("b"))
    assert [(s.name, s.phase, s.reason) for s in failed.status.steps or []] == [
        ("a", "Failed", "Failed"),
        ("b", "Running", "Started"),
        ("c", "Skipped", "Aborted"),
        ("d", "Skipped", "Aborted"),
        ("report", "Pending", None),
    ]
    assert failed.create_jobs == () and failed.delete_jobs == ()
    assert failed.status.phase == "Running"

    settled = replan(failed, at(20), job("a", "Failed"), job("b", "Succeeded"))
    assert created(settled) == ["demo-report-1"]
    assert settled.status.phase == "Running"

    done = replan(settled, at(30), job("report", "Succeeded"))
    assert done.status.phase == "Failed"
    succeeded = conditions(done)["Succeeded"]
    assert (succeeded.status, succeeded.reason) == ("False", "Failed")
    assert "Step a failed: exit code 3" in succeeded.message
    assert done.event is not None and (done.event.type, done.event.reason) == ("Warning", "Failed")


def test_on_error_abort_stops_steps_unblocked_in_the_same_snapshot() -> None:
    spec = template(
        step("a", dependsOn=[]),
        step("c", dependsOn=["a"]),
        step("b", dependsOn=[]),
    )
    first = plan(snapshot(spec), T0)
    result = replan(first, at(10), job("a", "Succeeded"), job("b", "Failed"))
    assert created(result) == []
    assert record(result, "c").phase == "Skipped"


def test_on_error_continue_carries_on_and_the_run_succeeds() -> None:
    spec = template(step("a", onError="Continue"), step("b"))
    first = plan(snapshot(spec), T0)
    failed = replan(first, at(10), job("a", "Failed", exit_code=1))
    assert record(failed, "a").phase == "Failed"
    assert created(failed) == ["demo-b-1"]

    done = replan(failed, at(20), job("a", "Failed"), job("b", "Succeeded"))
    assert done.status.phase == "Succeeded"
    assert conditions(done)["Succeeded"].status == "True"


def test_a_timed_out_step_ends_the_run_with_reason_timed_out() -> None:
    first = plan(snapshot(template(step("a", timeout="1m"))), T0)
    done = replan(first, at(70), job("a", "Failed", reason="DeadlineExceeded"))
    assert done.status.phase == "Failed"
    assert record(done, "a").reason == "TimedOut"
    assert conditions(done)["Succeeded"].reason == "TimedOut"
    assert conditions(done)["Ready"].reason == "TimedOut"


# --- Cancel -------------------------------------------------------------------------------


def test_cancel_deletes_running_jobs_cancels_steps_and_still_runs_finally() -> None:
    spec = template(
        step("a", dependsOn=[]),
        step("w", dependsOn=[], sleep={"duration": "1h"}),
        step("b", dependsOn=["a"]),
        final=(step("cleanup"),),
    )
    first = plan(snapshot(spec), T0)
    result = replan(first, at(10), job("a"), annotations=CANCEL)

    assert result.consume_annotations == (ANNOTATION_CANCEL,)
    assert result.status.cancel_requested is True
    assert result.delete_jobs == ("demo-a-1",)
    assert [(s.name, s.phase, s.reason) for s in result.status.steps or []] == [
        ("a", "Cancelled", "Cancelled"),
        ("w", "Cancelled", "Cancelled"),
        ("b", "Cancelled", "Cancelled"),
        ("cleanup", "Running", "Started"),
    ]
    assert created(result) == ["demo-cleanup-1"]
    assert result.status.phase == "Running"
    assert conditions(result)["Succeeded"].reason == "Cancelling"
    assert result.event is not None and result.event.type == "Warning"

    done = replan(result, at(20), job("a", deleting=True), job("cleanup", "Succeeded"))
    assert done.status.phase == "Cancelled"
    assert done.delete_jobs == ()
    for kind in ("Succeeded", "Ready"):
        condition = conditions(done)[kind]
        assert (condition.status, condition.reason) == ("False", "Cancelled")
    assert done.event is not None
    assert (done.event.type, done.event.reason) == ("Warning", "Cancelled")


def test_cancel_without_finally_steps_ends_the_run_at_once() -> None:
    first = plan(snapshot(template(step("a"), step("b"))), T0)
    result = replan(first, at(10), job("a"), annotations=CANCEL)
    assert result.status.phase == "Cancelled"
    assert result.delete_jobs == ("demo-a-1",)
    assert result.consume_annotations == (ANNOTATION_CANCEL,)
    assert result.event is not None and "koos.io/cancel" in result.event.message


def test_cancel_before_the_run_starts_runs_only_finally() -> None:
    spec = template(step("a"), final=(step("cleanup"),))
    result = plan(snapshot(spec, annotations=CANCEL), T0)
    assert result.status.cancel_requested is True
    assert created(result) == ["demo-cleanup-1"]
    assert record(result, "a").phase == "Cancelled"


def test_cancel_does_not_delete_a_job_that_already_finished() -> None:
    first = plan(snapshot(template(step("a"), step("b"))), T0)
    result = replan(first, at(10), job("a", "Succeeded", message='{"n": 1}'), annotations=CANCEL)
    assert result.delete_jobs == ()


def test_cancel_during_finally_is_recorded_as_an_event() -> None:
    spec = template(step("a"), final=(step("cleanup"),))
    first = plan(snapshot(spec), T0)
    in_finally = replan(first, at(10), job("a", "Succeeded"))
    assert created(in_finally) == ["demo-cleanup-1"]
    result = replan(in_finally, at(20), job("a", "Succeeded"), job("cleanup"), annotations=CANCEL)
    assert result.consume_annotations == (ANNOTATION_CANCEL,)
    assert result.event is not None


# --- Terminal runs and idempotence --------------------------------------------------------


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled"])
def test_a_terminal_run_is_left_alone(phase: str) -> None:
    first = plan(snapshot(template(step("a"))), T0)
    final = first.status.model_copy(
        update={"phase": phase, "completion_time": "2025-03-01T12:00:50Z"}
    )
    given = snapshot(template(step("z")), status=final, jobs=(job("a"),), annotations=CANCEL)
    result = plan(given, at(60))
    assert result.status == final
    assert (result.create_jobs, result.delete_jobs, result.event, result.wake_at) == (
        (),
        (),
        None,
        None,
    )
    assert result.consume_annotations == (ANNOTATION_CANCEL,)


def test_an_unchanged_running_run_plans_nothing_and_plans_it_again() -> None:
    first = plan(snapshot(template(step("a"), step("b"))), T0)
    given = snapshot(status=first.status, jobs=(job("a"),))
    result = plan(given, at(30))
    assert result.status == first.status  # nothing to write
    assert (result.create_jobs, result.delete_jobs, result.event) == ((), (), None)
    assert plan(given, at(30)) == result


SNAPSHOTS = {
    "fresh": snapshot(template(step("a"), step("b", dependsOn=[]))),
    "cancelled": snapshot(template(step("a"), final=(step("f"),)), annotations=CANCEL),
    "refused": snapshot(None),
}


@pytest.mark.parametrize("given", SNAPSHOTS.values(), ids=SNAPSHOTS.keys())
def test_planning_is_deterministic(given: ExecutionSnapshot) -> None:
    assert plan(given, T0) == plan(given, T0)


# --- Secrets ------------------------------------------------------------------------------

SECRET_SPEC = template(
    step("a", run={"image": "busybox", "script": 'login "$KOOS_PARAM_TOKEN"'}),
    parameters={"token": {"type": "string", "secret": True}},
)


def test_a_secret_parameter_travels_only_as_a_reference() -> None:
    result = plan(snapshot(SECRET_SPEC, params={"token": DB_PASSWORD}), T0)
    assert result.status.phase == "Running"
    assert result.status.parameters == {"token": DB_PASSWORD}
    assert env_of(result.create_jobs[0])["KOOS_PARAM_TOKEN"] == {
        "name": "KOOS_PARAM_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
    }


SECRET_LEAKS = {
    "a literal value": {"token": "hunter2"},
    "a reference with a value beside it": {"token": {**DB_PASSWORD, "value": "hunter2"}},
    "a malformed reference": {"token": {"valueFrom": "hunter2"}},
}


@pytest.mark.parametrize("params", SECRET_LEAKS.values(), ids=SECRET_LEAKS.keys())
def test_a_secret_given_in_clear_is_refused_without_repeating_it(params: dict[str, Any]) -> None:
    result = plan(snapshot(SECRET_SPEC, params=params), T0)
    assert result.status.phase == "Failed"
    assert conditions(result)["Succeeded"].reason == "InvalidSpec"
    assert "spec.parameters.token: parameter token is secret" in (result.status.message or "")
    assert result.create_jobs == ()
    written = json.dumps(result.status.model_dump(mode="json")) + repr(result.event)
    assert "hunter2" not in written


def test_a_secret_parameter_in_an_expression_refuses_the_template() -> None:
    env = [{"name": "TOKEN", "value": "{{ params.token }}"}]
    spec = template(
        step("a", run={"image": "busybox", "script": "true", "env": env}),
        parameters={"token": {"type": "string", "secret": True}},
    )
    result = plan(snapshot(spec, params={"token": DB_PASSWORD}), T0)
    assert result.status.phase == "Failed"
    assert "parameter token is secret and may not appear in expressions" in (
        result.status.message or ""
    )
    assert result.create_jobs == ()


# --- Bounded status -----------------------------------------------------------------------


def test_a_long_refusal_is_truncated_everywhere() -> None:
    result = plan(snapshot(None, ref="x" * 3000), T0)
    texts = [result.status.message or "", *(c.message for c in conditions(result).values())]
    assert result.event is not None
    for text in [*texts, result.event.message]:
        assert len(text) == MESSAGE_LIMIT and text.endswith("…")


def test_a_long_step_failure_is_truncated_in_the_run() -> None:
    first = plan(snapshot(template(step("a"))), T0)
    done = replan(first, at(10), job("a", "Failed", message="boom " * 1000))
    assert done.status.phase == "Failed"
    assert len(record(done, "a").message or "") <= 512
    assert len(done.status.message or "") <= MESSAGE_LIMIT
    assert done.event is not None and len(done.event.message) <= MESSAGE_LIMIT


def test_the_running_message_stays_bounded_with_many_parallel_steps() -> None:
    names = [f"step-{i:02d}-" + "x" * 30 for i in range(40)]
    result = plan(snapshot(template(*(step(n, dependsOn=[]) for n in names))), T0)
    assert len(result.create_jobs) == 40
    assert len(result.status.message or "") <= MESSAGE_LIMIT


PROGRESS = {
    "started": ((), "0/3"),
    "one done": ((job("a", "Succeeded"),), "1/3"),
    "one failed, rest skipped": ((job("a", "Failed"),), "3/3"),
}


@pytest.mark.parametrize(("jobs", "expected"), PROGRESS.values(), ids=PROGRESS.keys())
def test_progress_counts_settled_steps(jobs: tuple[JobFacts, ...], expected: str) -> None:
    first = plan(snapshot(template(step("a"), step("b"), step("c"))), T0)
    result = replan(first, at(10), *jobs) if jobs else first
    assert result.status.progress == expected


# --- Issue 10: inputs that left a run stuck are refused at start -----------------------------


def test_approve_steps_whose_approval_names_collide_fail_the_run_at_start() -> None:
    approve = {"approvers": {"users": ["alice"]}}
    spec = template(
        {"name": "confirm-a", "approve": approve}, {"name": "confirm-b", "approve": approve}
    )
    long_name = "x" * 250  # cut to 253 characters, both Approvals are "xxx…x-co"
    start = dataclasses.replace(snapshot(spec), name=long_name)
    result = plan(start, T0)
    assert result.status.phase == "Failed"
    assert conditions(result)["Succeeded"].reason == "InvalidSpec"
    assert "steps confirm-a and confirm-b would both ask for Approval" in (
        result.status.message or ""
    )
    assert result.create_approvals == ()


def test_a_template_over_the_size_limit_is_refused_at_start() -> None:
    big = template(step("a", description="d" * (130 * 1024)))
    result = plan(snapshot(big), T0)
    assert result.status.phase == "Failed"
    assert "over the limit of 128 KiB" in (result.status.message or "")
    assert "1.5 MiB" in (result.status.message or "")


def test_parameters_over_the_size_limit_are_refused_at_start() -> None:
    spec = template(step("a"), parameters={"blob": {"type": "string"}})
    result = plan(snapshot(spec, params={"blob": "b" * (129 * 1024)}), T0)
    assert result.status.phase == "Failed"
    assert "spec.parameters: the parameters are 129 KiB, over the limit of 128 KiB" in (
        result.status.message or ""
    )


def test_plan_failure_ends_the_run_and_stops_what_it_started() -> None:
    from koos.engine.execution import plan_failure

    approve = {"approvers": {"users": ["bob"]}}
    spec = template(step("a"), {"name": "ok", "approve": approve, "dependsOn": []})
    started = plan(snapshot(spec), T0)
    running = snapshot(status=started.status, jobs=(job("a"),))
    result = plan_failure(running, at(5), "planning failed: RecursionError: too deep")
    assert result.status.phase == "Failed"
    assert conditions(result)["Succeeded"].reason == "InternalError"
    assert "planning failed: RecursionError" in (result.status.message or "")
    assert result.delete_jobs == ("demo-a-1",)
    assert result.cancel_approvals == ("demo-ok",)
    assert {s.phase for s in result.status.steps or []} == {"Failed"}
    assert plan(dataclasses.replace(running, status=result.status), at(6)).status == result.status
