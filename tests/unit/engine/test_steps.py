"""Step progression through the planner (`koos.engine.execution.plan` → `koos.engine.steps`).

What one step does next given its record, its Job and `now`: outputs, `when`, dependencies
and parallel branches, retries and their backoff, timeouts, lost, disrupted and stray Jobs,
sleeps. Run-level behaviour is in test_execution.py. The helpers are repeated there because
pytest's importlib mode lets no test module import another.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from koos.api.constants import LABEL_ATTEMPT
from koos.api.execution import ExecutionSpec, ExecutionStatus, StepStatus
from koos.api.template import TemplateSpec
from koos.engine.execution import plan
from koos.engine.facts import ExecutionSnapshot, JobFacts, JobPhase, Plan, TemplateFacts

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def step(name: str, **fields: Any) -> dict[str, Any]:
    """A step as a template holds it; a `run` of busybox unless the fields give an action."""
    if "run" not in fields and "sleep" not in fields:
        fields["run"] = {"image": "busybox", "script": "true"}
    return {"name": name, **fields}


def template(*steps: dict[str, Any], **spec: Any) -> TemplateSpec:
    return TemplateSpec.model_validate({"steps": steps, **spec})


def snapshot(
    spec: TemplateSpec | None = None,
    *,
    status: ExecutionStatus | None = None,
    params: dict[str, Any] | None = None,
    jobs: tuple[JobFacts, ...] = (),
) -> ExecutionSnapshot:
    """Execution `demo` in namespace `ops` of Template `tpl`, which holds `spec`."""
    return ExecutionSnapshot(
        name="demo",
        namespace="ops",
        uid="exe-uid",
        generation=1,
        spec=ExecutionSpec.model_validate({"templateRef": {"name": "tpl"}, "parameters": params}),
        status=status or ExecutionStatus(),
        template=None if spec is None else TemplateFacts("tpl", "tpl-uid", 7, spec),
        jobs={job.name: job for job in jobs},
    )


def job(step: str, phase: JobPhase = "Active", attempt: int = 1, **facts: Any) -> JobFacts:
    return JobFacts(name=f"demo-{step}-{attempt}", phase=phase, created=T0, **facts)


def replan(previous: Plan, now: datetime, *jobs: JobFacts) -> Plan:
    """The plan for the next snapshot: the status `previous` wrote, and these Jobs."""
    return plan(snapshot(status=previous.status, jobs=jobs), now)


def record(result: Plan, name: str) -> StepStatus:
    return next(s for s in result.status.steps or [] if s.name == name)


def created(result: Plan) -> list[str]:
    return [manifest["metadata"]["name"] for manifest in result.create_jobs]


def env_of(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {var["name"]: var for var in container["env"]}


def at_attempt(spec: TemplateSpec, attempt: int) -> ExecutionStatus:
    """A started run of `spec` whose first step `a` runs attempt `attempt` (Job demo-a-<n>)."""
    status = plan(snapshot(spec), T0).status
    update = {"attempt": attempt, "job_name": f"demo-a-{attempt}"}
    steps = [s.model_copy(update=update) if s.name == "a" else s for s in status.steps or []]
    return status.model_copy(update={"steps": steps})


# --- Outputs ------------------------------------------------------------------------------

BIG = '{"k": "' + "x" * 4087 + '"}'  # 4096 bytes
WIDE = '{"k": "' + "é" * 2045 + '"}'  # 2054 characters, 4099 bytes
OUTPUTS: dict[str, tuple[str, str, str, dict[str, Any] | None]] = {
    "an object": ('{"a": 1}', "Succeeded", "Completed", {"a": 1}),
    "nested values": ('{"a": [1, {"b": null}]}', "Succeeded", "Completed", {"a": [1, {"b": None}]}),
    "nothing": ("", "Succeeded", "Completed", None),
    "blank lines": ("\n  \n", "Succeeded", "Completed", None),
    "an empty object": ("{}", "Succeeded", "Completed", None),
    "just under 4 KiB": (BIG[:-4] + '"}', "Succeeded", "Completed", {"k": "x" * 4085}),
    "invalid JSON": ("{a: 1", "Failed", "InvalidOutput", None),
    "a JSON array": ("[1, 2]", "Failed", "InvalidOutput", None),
    "a JSON string": ('"done"', "Failed", "InvalidOutput", None),
    "exactly 4096 bytes": (BIG, "Succeeded", "Completed", {"k": "x" * 4087}),
    "cut at 4096 bytes by the kubelet": (BIG[:-1] + "x", "Failed", "OutputTooLarge", None),
    "over 4 KiB in bytes, not in characters": (WIDE, "Failed", "OutputTooLarge", None),
}


@pytest.mark.parametrize(
    ("message", "phase", "reason", "outputs"), OUTPUTS.values(), ids=OUTPUTS.keys()
)
def test_the_output_of_a_succeeded_job(
    message: str, phase: str, reason: str, outputs: dict[str, Any] | None
) -> None:
    assert len(BIG.encode()) == 4096 and len(WIDE.encode()) > 4096 > len(WIDE)
    first = plan(snapshot(template(step("a"), step("b"))), T0)
    result = replan(first, at(10), job("a", "Succeeded", message=message))
    a = record(result, "a")
    assert (a.phase, a.reason, a.outputs) == (phase, reason, outputs)
    assert a.completion_time == "2025-03-01T12:00:10Z"
    assert created(result) == (["demo-b-1"] if phase == "Succeeded" else [])


def test_an_invalid_output_is_quoted_briefly() -> None:
    first = plan(snapshot(template(step("a"))), T0)
    result = replan(first, at(10), job("a", "Succeeded", message="oops " * 100))
    message = record(result, "a").message or ""
    assert message.startswith("$KOOS_OUTPUT must hold one JSON object, got: oops oops")
    assert len(message) < 200


def test_outputs_of_a_step_reach_a_later_steps_environment() -> None:
    env = [
        {"name": "HOST", "value": "{{ steps.a.outputs.host }}:5432"},
        {"name": "PORTS", "value": "{{ steps.a.outputs.ports }}"},
        {"name": "RUN", "value": "{{ execution.name }}"},
    ]
    spec = template(step("a"), step("b", run={"image": "busybox", "script": "true", "env": env}))
    first = plan(snapshot(spec), T0)
    result = replan(first, at(10), job("a", "Succeeded", message='{"host": "db", "ports": [1]}'))
    assert created(result) == ["demo-b-1"]
    values = {k: v.get("value") for k, v in env_of(result.create_jobs[0]).items()}
    assert (values["HOST"], values["PORTS"], values["RUN"]) == ("db:5432", "[1]", "demo")


# --- when, dependencies, parallel branches ------------------------------------------------

WHEN = template(
    step("a", when="{{ params.go }}"),
    step("b"),
    parameters={"go": {"type": "boolean"}},
)


@pytest.mark.parametrize(
    ("go", "a_phase", "jobs"), [(True, "Running", ["demo-a-1"]), (False, "Skipped", ["demo-b-1"])]
)
def test_when_false_skips_the_step_and_its_dependants_still_run(
    go: bool, a_phase: str, jobs: list[str]
) -> None:
    result = plan(snapshot(WHEN, params={"go": go}), T0)
    assert record(result, "a").phase == a_phase
    assert created(result) == jobs


def test_a_skipped_step_has_reason_condition_false_and_no_outputs() -> None:
    result = plan(snapshot(WHEN, params={"go": False}), T0)
    a = record(result, "a")
    assert (a.reason, a.outputs, a.job_name) == ("ConditionFalse", None, None)
    assert a.completion_time == "2025-03-01T12:00:00Z"


def test_a_when_that_is_not_a_boolean_fails_the_step() -> None:
    spec = template(step("a", when="{{ 'maybe' }}"), step("b"))
    result = plan(snapshot(spec), T0)
    a = record(result, "a")
    assert (a.phase, a.reason) == ("Failed", "ExpressionFailed")
    assert "when must be true or false" in (a.message or "")
    assert result.create_jobs == ()


def test_a_skipped_steps_missing_output_fails_the_step_that_reads_it() -> None:
    env = [{"name": "N", "value": "{{ steps.a.outputs.n }}"}]
    spec = template(
        step("a", when="{{ false }}"),
        step("b", run={"image": "busybox", "script": "true", "env": env}),
    )
    b = record(plan(snapshot(spec), T0), "b")
    assert (b.phase, b.reason) == ("Failed", "ExpressionFailed")
    assert "steps.a.outputs.n is undefined" in (b.message or "")


def test_parallel_branches_start_together_and_join() -> None:
    spec = template(
        step("a"),
        step("b", dependsOn=["a"]),
        step("c", dependsOn=["a"]),
        step("d", dependsOn=["b", "c"]),
    )
    first = plan(snapshot(spec), T0)
    assert created(first) == ["demo-a-1"]
    branches = replan(first, at(10), job("a", "Succeeded"))
    assert created(branches) == ["demo-b-1", "demo-c-1"]
    half = replan(branches, at(20), job("b", "Succeeded"), job("c"))
    assert created(half) == [] and record(half, "d").phase == "Pending"
    joined = replan(half, at(30), job("b", "Succeeded"), job("c", "Succeeded"))
    assert created(joined) == ["demo-d-1"]


def test_depends_on_empty_starts_at_once() -> None:
    spec = template(step("a"), step("b"), step("c", dependsOn=[]))
    assert created(plan(snapshot(spec), T0)) == ["demo-a-1", "demo-c-1"]


def test_a_sleep_step_wakes_the_planner_when_it_is_due() -> None:
    spec = template(step("nap", sleep={"duration": "30s"}), step("b"))
    first = plan(snapshot(spec), T0)
    assert (record(first, "nap").phase, first.create_jobs, first.wake_at) == ("Running", (), at(30))
    early = replan(first, at(29))
    assert early.status == first.status and early.wake_at == at(30)
    due = replan(first, at(30))
    assert (record(due, "nap").phase, record(due, "nap").reason) == ("Succeeded", "Slept")
    assert created(due) == ["demo-b-1"]


# --- Retries ------------------------------------------------------------------------------

RETRIED = template(
    step("a", retries={"limit": 2, "backoff": "10s", "factor": 2, "maxBackoff": "15s"}),
    step("b"),
)


def test_a_failed_attempt_is_retried_with_a_new_job_after_the_backoff() -> None:
    first = plan(snapshot(RETRIED), T0)
    failed = replan(first, at(5), job("a", "Failed", exit_code=1, message="boom"))
    a = record(failed, "a")
    assert (a.phase, a.reason, a.attempt) == ("Running", "RetryScheduled", 1)
    assert a.retry_time == "2025-03-01T12:00:15Z"
    assert failed.wake_at == at(15)
    assert "Attempt 1 failed (Failed: exit code 1: boom)" in (a.message or "")
    assert failed.create_jobs == () and failed.delete_jobs == ()
    assert failed.event is not None
    assert (failed.event.type, failed.event.reason) == ("Warning", "StepRetrying")

    waiting = replan(failed, at(14), job("a", "Failed"))
    assert waiting.status == failed.status and waiting.create_jobs == ()
    assert waiting.wake_at == at(15)

    retried = replan(failed, at(15), job("a", "Failed"))
    assert created(retried) == ["demo-a-2"]
    manifest = retried.create_jobs[0]
    assert manifest["metadata"]["labels"][LABEL_ATTEMPT] == "2"
    assert env_of(manifest)["KOOS_ATTEMPT"]["value"] == "2"
    a = record(retried, "a")
    assert (a.phase, a.attempt, a.job_name, a.retry_time) == ("Running", 2, "demo-a-2", None)
    assert a.start_time == "2025-03-01T12:00:00Z"  # of the first attempt

    again = replan(retried, at(20), job("a", "Failed"), job("a", "Failed", attempt=2))
    assert record(again, "a").retry_time == "2025-03-01T12:00:35Z"  # 10s * 2, capped at 15s

    third = replan(again, at(35), job("a", "Failed"), job("a", "Failed", attempt=2))
    assert created(third) == ["demo-a-3"]
    out = replan(third, at(40), job("a", "Failed", attempt=3, exit_code=4))
    a = record(out, "a")
    assert (a.phase, a.reason, a.attempt, a.retry_time) == ("Failed", "Failed", 3, None)
    assert out.status.phase == "Failed" and out.create_jobs == ()


BACKOFF = {
    "first retry waits the backoff": (1, {"factor": 2}, 10),
    "second retry waits backoff * factor": (2, {"factor": 2}, 20),
    "third retry waits backoff * factor^2": (3, {"factor": 2}, 40),
    "capped by maxBackoff": (4, {"factor": 2, "maxBackoff": "1m"}, 60),
    "factor 1 keeps the wait": (5, {"factor": 1}, 10),
    "fractional factor": (3, {"factor": 1.5}, 22.5),
}


@pytest.mark.parametrize(("attempt", "policy", "seconds"), BACKOFF.values(), ids=BACKOFF.keys())
def test_backoff_grows_by_the_factor_up_to_max_backoff(
    attempt: int, policy: dict[str, Any], seconds: float
) -> None:
    spec = template(step("a", retries={"limit": 10, "backoff": "10s", **policy}))
    given = snapshot(status=at_attempt(spec, attempt), jobs=(job("a", "Failed", attempt),))
    result = plan(given, at(100))
    due = at(100 + seconds).replace(microsecond=0)  # status times are to the second
    assert record(result, "a").retry_time == due.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result.wake_at == due


@pytest.mark.parametrize(("limit", "attempt"), [(0, 1), (1, 2), (3, 4)])
def test_out_of_retries_the_step_fails(limit: int, attempt: int) -> None:
    spec = template(step("a", retries={"limit": limit}))
    given = snapshot(status=at_attempt(spec, attempt), jobs=(job("a", "Failed", attempt),))
    result = plan(given, at(100))
    assert (record(result, "a").phase, record(result, "a").retry_time) == ("Failed", None)
    assert result.status.phase == "Failed"


# --- Failures, timeouts, lost and disrupted Jobs ------------------------------------------

DETAILS = {
    "exit code and message": ({"exit_code": 2, "message": "boom"}, "exit code 2: boom"),
    "the Job's reason": ({"reason": "BackoffLimitExceeded"}, "BackoffLimitExceeded"),
    "nothing known": ({}, "the Job failed"),
    "a disruption": (
        {"disrupted": "the Pod was evicted", "exit_code": 137, "reason": "PodFailurePolicy"},
        "the Pod was evicted",
    ),
}


@pytest.mark.parametrize(("facts", "message"), DETAILS.values(), ids=DETAILS.keys())
def test_a_failed_job_fails_the_step_saying_why(facts: dict[str, Any], message: str) -> None:
    first = plan(snapshot(template(step("a"))), T0)
    a = record(replan(first, at(10), job("a", "Failed", **facts)), "a")
    assert (a.phase, a.reason, a.message) == ("Failed", "Failed", message)


def test_a_disrupted_job_is_a_failed_attempt_that_is_retried() -> None:
    first = plan(snapshot(RETRIED), T0)
    evicted = job("a", "Failed", disrupted="the Pod was evicted", exit_code=137)
    a = record(replan(first, at(10), evicted), "a")
    assert (a.phase, a.reason) == ("Running", "RetryScheduled")
    assert "the Pod was evicted" in (a.message or "") and "137" not in (a.message or "")


def test_a_job_that_hit_its_deadline_times_the_step_out() -> None:
    spec = template(step("a", timeout="1m", retries={"limit": 1, "backoff": "5s"}))
    first = plan(snapshot(spec), T0)
    assert first.create_jobs[0]["spec"]["activeDeadlineSeconds"] == 60
    retrying = replan(first, at(61), job("a", "Failed", reason="DeadlineExceeded"))
    assert "Attempt 1 failed (TimedOut:" in (record(retrying, "a").message or "")
    second = replan(retrying, at(66), job("a", "Failed", reason="DeadlineExceeded"))
    out = replan(second, at(130), job("a", "Failed", attempt=2, reason="DeadlineExceeded"))
    assert (record(out, "a").phase, record(out, "a").reason) == ("Failed", "TimedOut")


def test_a_job_that_outlives_its_timeout_is_deleted_and_times_out() -> None:
    spec = template(step("a", timeout="1m"), step("b"))
    first = plan(snapshot(spec), T0)
    assert first.wake_at == at(5)  # a first look at whether its Pod started
    before = replan(first, at(89), job("a", ready=1))
    # the Job's own deadline, plus grace for it to fire first
    assert (before.delete_jobs, before.wake_at) == ((), at(90))
    assert before.status == first.status
    late = replan(first, at(90), job("a", ready=1))
    assert late.delete_jobs == ("demo-a-1",)
    a = record(late, "a")
    assert (a.phase, a.reason, a.message) == ("Failed", "TimedOut", "ran longer than 1m")
    assert late.status.phase == "Failed" and late.create_jobs == ()


def test_a_step_without_timeout_sets_no_wake_up() -> None:
    first = plan(snapshot(template(step("a"))), T0)
    assert first.wake_at == at(5)  # only a look at whether its Pod started
    assert "activeDeadlineSeconds" not in first.create_jobs[0]["spec"]
    assert replan(first, at(86400), job("a", ready=1)).wake_at is None


LOST = "Job demo-a-1 disappeared before it finished."


@pytest.mark.parametrize(
    ("spec", "phase", "reason", "message"),
    [
        (template(step("a")), "Failed", "JobLost", LOST),
        (RETRIED, "Running", "RetryScheduled", f"Attempt 1 failed (JobLost: {LOST});"),
    ],
    ids=["no retries", "retries left"],
)
def test_a_job_that_vanished_is_a_failed_attempt(
    spec: TemplateSpec, phase: str, reason: str, message: str
) -> None:
    first = plan(snapshot(spec), T0)
    a = record(replan(first, at(10)), "a")  # the status names demo-a-1; no Job is there
    assert (a.phase, a.reason) == (phase, reason)
    assert (a.message or "").startswith(message)


def test_a_deleting_job_is_still_waited_for() -> None:
    first = plan(snapshot(template(step("a"))), T0)
    result = replan(first, at(10), job("a", deleting=True))
    assert result.status == first.status and result.delete_jobs == ()


# --- Stray Jobs ---------------------------------------------------------------------------


def test_an_active_job_no_running_step_names_is_deleted() -> None:
    first = plan(snapshot(template(step("a"), step("b"))), T0)
    jobs = (
        job("a"),  # the running step's Job
        job("a", attempt=7),  # a stray attempt whose status write was lost
        job("b", deleting=True),  # already going
        job("old", "Succeeded"),  # finished: kept for its logs
        job("gone", "Failed"),
    )
    result = replan(first, at(10), *jobs)
    assert result.delete_jobs == ("demo-a-7",)
    assert result.status == first.status


def test_the_job_of_a_step_skipped_by_an_abort_is_deleted() -> None:
    spec = template(step("a", dependsOn=[]), step("b", dependsOn=[]), step("c"))
    first = plan(snapshot(spec), T0)
    # c's Job exists (created, then its status write was lost) but a failed: c is skipped.
    result = replan(first, at(10), job("a", "Failed"), job("b"), job("c"))
    assert record(result, "c").phase == "Skipped"
    assert result.delete_jobs == ("demo-c-1",)


# --- Idempotence of step decisions --------------------------------------------------------

WAITING = {
    "retry pending": (RETRIED, job("a", "Failed"), 5),
    "job running": (template(step("a", timeout="1h")), job("a"), 600),
}


@pytest.mark.parametrize(("spec", "seen", "seconds"), WAITING.values(), ids=WAITING.keys())
def test_replanning_a_waiting_step_changes_nothing(
    spec: TemplateSpec, seen: JobFacts, seconds: int
) -> None:
    first = plan(snapshot(spec), T0)
    settled = replan(first, at(seconds), seen)
    again = replan(settled, at(seconds + 1), seen)
    assert again.status == settled.status
    assert (again.create_jobs, again.delete_jobs, again.event) == ((), (), None)
    assert settled.wake_at is not None and again.wake_at == settled.wake_at


# Issue 10, item 10: one planning pass visits each step a bounded number of times.
def _count_visits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from koos.engine import steps as steps_module

    visits: list[str] = []
    original = steps_module._step

    def counting(work: Any, step: Any, *args: Any, **kwargs: Any) -> None:
        visits.append(step.name)
        original(work, step, *args, **kwargs)

    monkeypatch.setattr(steps_module, "_step", counting)
    return visits


def test_a_pass_visits_steps_linearly_even_when_they_settle_in_reverse_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each step depends on the one listed after it and is skipped: all settle in one pass,
    # from the last listed to the first. Revisiting every step until nothing changes took
    # n rounds of n visits.
    n = 200
    steps = [
        step(f"s{i}", when="{{ false }}", dependsOn=[f"s{i + 1}"] if i + 1 < n else [])
        for i in range(n)
    ]
    visits = _count_visits(monkeypatch)
    result = plan(snapshot(template(*steps)), T0)
    assert {s.phase for s in result.status.steps or []} == {"Skipped"}
    assert len(visits) <= 3 * n


def test_a_pass_over_a_long_chain_visits_each_step_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    n = 300
    spec = template(*[step(f"s{i}") for i in range(n)], finally_=[step("report")])
    first = plan(snapshot(spec), T0)
    visits = _count_visits(monkeypatch)
    second = replan(first, at(1), job("s0", "Succeeded"))
    assert record(second, "s1").phase == "Running"
    assert len(visits) <= 3 * (n + 1)


def test_an_abort_skips_pending_steps_listed_before_and_after_it() -> None:
    spec = template(
        step("late", dependsOn=["fails"]),
        step("fails", dependsOn=[]),
        step("other", dependsOn=["fails"]),
        finally_=[step("report")],
    )
    first = plan(snapshot(spec), T0)
    second = replan(first, at(1), job("fails", "Failed"))
    assert [(s.name, s.phase) for s in second.status.steps or []] == [
        ("late", "Skipped"),
        ("fails", "Failed"),
        ("other", "Skipped"),
        ("report", "Running"),
    ]


def test_outputs_nested_too_deeply_fail_the_step_with_a_reason() -> None:
    deep = "[" * 100 + "]" * 100
    spec = template(step("a"), step("b"))
    first = plan(snapshot(spec), T0)
    second = replan(first, at(1), job("a", "Succeeded", message='{"v": ' + deep + "}"))
    failed = record(second, "a")
    assert failed.phase == "Failed"
    assert failed.reason == "InvalidOutput"
    assert "nested deeper than 64 levels" in (failed.message or "")
    assert failed.outputs is None
    assert second.status.phase == "Failed"


def test_an_output_too_deep_to_decode_fails_the_step_instead_of_the_pass() -> None:
    deep = "[" * 1500 + "]" * 1500  # fits in 4 KiB; json.loads raises RecursionError
    spec = template(step("a"), step("b"))
    first = plan(snapshot(spec), T0)
    second = replan(first, at(1), job("a", "Succeeded", message='{"v": ' + deep + "}"))
    failed = record(second, "a")
    assert (failed.phase, failed.reason) == ("Failed", "InvalidOutput")
    assert "nested too deeply" in (failed.message or "")
    assert second.status.phase == "Failed"
