"""Pods that do not start (issue 10 item 7, the Pod half): the probe schedule, what surfaces
at once, and the start timeout, through the planner."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from koos.api.execution import ExecutionSpec, ExecutionStatus, StepStatus
from koos.api.template import TemplateSpec
from koos.engine.execution import plan
from koos.engine.facts import ExecutionSnapshot, JobFacts, Plan, TemplateFacts
from koos.engine.pod_start import FIRST_PROBE, is_probe_due, next_probe
from koos.engine.template import validate_template

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NO_SECRET = 'secret "db" not found'


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def spec_of(**step: Any) -> TemplateSpec:
    return TemplateSpec.model_validate(
        {"steps": [{"name": "a", "run": {"image": "busybox", "script": "true"}, **step}]}
    )


def snapshot(
    spec: TemplateSpec, status: ExecutionStatus | None, *jobs: JobFacts
) -> ExecutionSnapshot:
    return ExecutionSnapshot(
        name="demo",
        namespace="ops",
        uid="exe-uid",
        generation=1,
        spec=ExecutionSpec.model_validate({"templateRef": {"name": "tpl"}}),
        status=status or ExecutionStatus(),
        template=TemplateFacts("tpl", "tpl-uid", 7, spec),
        jobs={job.name: job for job in jobs},
    )


def job(**facts: Any) -> JobFacts:
    return JobFacts(name="demo-a-1", phase="Active", created=T0, **facts)


def waiting(reason: str = "CreateContainerConfigError", message: str = NO_SECRET) -> JobFacts:
    return job(ready=0, probed=True, waiting_reason=reason, waiting_message=message)


def record(result: Plan) -> StepStatus:
    return next(s for s in result.status.steps or [] if s.name == "a")


def test_the_probe_schedule_backs_off_and_is_bounded() -> None:
    times, now = [], T0
    while now < at(600):
        now = next_probe(T0, now)
        times.append((now - T0).total_seconds())
    assert times[:7] == [5, 15, 35, 75, 155, 275, 395]
    assert all(b - a <= 120 for a, b in itertools.pairwise(times))
    assert not is_probe_due(T0, at(4.9)) and is_probe_due(T0, T0 + FIRST_PROBE)
    assert not is_probe_due(None, at(100))


def test_a_new_job_is_looked_at_after_five_seconds() -> None:
    assert plan(snapshot(spec_of(), None), T0).wake_at == at(5)


@pytest.mark.parametrize(
    "reason",
    [
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
    ],
)
def test_a_pod_that_needs_a_person_surfaces_at_once(reason: str) -> None:
    spec = spec_of()
    first = plan(snapshot(spec, None), T0)
    result = plan(snapshot(spec, first.status, waiting(reason, "the detail")), at(5))
    a = record(result)
    assert (a.phase, a.reason) == ("Running", reason)
    assert a.message == (
        f"waiting: the detail ({reason}); the attempt fails at 2025-03-01T12:05:00Z "
        "unless this is fixed"
    )
    condition = next(c for c in result.status.conditions or [] if c.type == "Succeeded")
    assert (condition.status, condition.reason) == ("Unknown", reason)
    assert "Step a is waiting: the detail" in condition.message
    assert result.event is not None and result.event.reason == "StepWaiting"
    assert result.wake_at == at(15)
    again = plan(snapshot(spec, result.status, waiting(reason, "the detail")), at(15))
    assert again.status == result.status and again.event is None  # no Event per probe
    assert again.wake_at == at(35)


def test_a_pull_that_keeps_failing_makes_one_event() -> None:
    spec = spec_of()
    first = plan(snapshot(spec, None), T0)
    pulling = plan(snapshot(spec, first.status, waiting("ErrImagePull", "not found")), at(5))
    backoff = plan(snapshot(spec, pulling.status, waiting("ImagePullBackOff", "back-off")), at(15))
    assert pulling.event is not None and backoff.event is None
    assert record(backoff).reason == "ImagePullBackOff"


def test_the_attempt_fails_after_the_start_timeout_and_its_job_is_deleted() -> None:
    spec = spec_of()
    first = plan(snapshot(spec, None), T0)
    stuck = plan(snapshot(spec, first.status, waiting()), at(275))
    assert stuck.wake_at == at(300)  # the deadline comes before the next probe
    late = plan(snapshot(spec, stuck.status, waiting()), at(300))
    a = record(late)
    assert (a.phase, a.reason) == ("Failed", "NotStarted")
    assert a.message == f"its Pod did not start within 5m: {NO_SECRET} (CreateContainerConfigError)"
    assert late.delete_jobs == ("demo-a-1",)
    assert late.status.phase == "Failed"


def test_a_start_timeout_of_the_step_and_retries_apply() -> None:
    spec = spec_of(startTimeout="30s", retries={"limit": 1, "backoff": "1s"})
    first = plan(snapshot(spec, None), T0)
    late = plan(snapshot(spec, first.status, job(ready=0, probed=True)), at(30))
    a = record(late)
    assert (a.phase, a.reason) == ("Running", "RetryScheduled")
    assert "NotStarted: its Pod did not start within 30s: no Pod of Job demo-a-1" in (
        a.message or ""
    )


def test_a_fixed_pod_clears_the_message_and_stops_the_probes() -> None:
    spec = spec_of()
    first = plan(snapshot(spec, None), T0)
    blocked = plan(snapshot(spec, first.status, waiting()), at(5))
    fixed = plan(snapshot(spec, blocked.status, job(ready=1)), at(40))
    a = record(fixed)
    assert (a.phase, a.reason, a.message) == ("Running", "Started", None)
    assert fixed.wake_at is None
    condition = next(c for c in fixed.status.conditions or [] if c.type == "Succeeded")
    assert condition.reason == "Running"


def test_a_started_pod_found_by_a_probe_counts_as_started() -> None:
    spec = spec_of()
    first = plan(snapshot(spec, None), T0)
    result = plan(snapshot(spec, first.status, job(probed=True, pod_started=True)), at(400))
    assert record(result).phase == "Running" and result.wake_at is None


def test_no_failure_without_a_probe() -> None:
    spec = spec_of()
    first = plan(snapshot(spec, None), T0)
    result = plan(snapshot(spec, first.status, job()), at(400))
    assert record(result).phase == "Running" and result.wake_at == at(515)


def test_a_start_timeout_that_does_not_parse_is_refused() -> None:
    problems = [str(p) for p in validate_template(spec_of(startTimeout="soon"))]
    assert len(problems) == 1 and problems[0].startswith("spec.steps[0].startTimeout: ")
