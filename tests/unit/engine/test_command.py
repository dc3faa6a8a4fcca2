"""Modes (Debug, FailurePause) and run commands (`koos.engine.command`), through the planner:
every transition, refusals that change nothing, consumption once, and rerun-from attempts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from koos.api.constants import (
    ANNOTATION_CANCEL,
    ANNOTATION_COMMANDS_CONSUMED,
    ANNOTATION_CONTINUE,
    ANNOTATION_RERUN_FROM,
    ANNOTATION_RETRY,
    ANNOTATION_SKIP,
)
from koos.api.execution import ExecutionStatus, StepStatus
from koos.api.template import TemplateSpec
from koos.engine.command import command_problem
from koos.engine.execution import plan
from koos.engine.facts import ExecutionSnapshot, JobFacts, JobPhase, Plan

from .snapshots import execution_snapshot

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KEY = b"k" * 32


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def template(*names: str, final: tuple[str, ...] = (), **extra: Any) -> TemplateSpec:
    def run_spec(name: str) -> dict[str, Any]:
        return {"name": name, "run": {"image": "busybox", "script": "true"}, **extra.get(name, {})}

    return TemplateSpec.model_validate(
        {"steps": [run_spec(n) for n in names], "finally": [run_spec(n) for n in final] or None}
    )


def snap(
    mode: str,
    status: ExecutionStatus | None = None,
    spec: TemplateSpec | None = None,
    jobs: tuple[JobFacts, ...] = (),
    annotations: dict[str, str] | None = None,
) -> ExecutionSnapshot:
    return execution_snapshot(
        spec=spec,
        status=status,
        jobs={j.name: j for j in jobs},
        mode=mode,
        annotations=annotations,
        signing_key=KEY,
        template_generation=7,
    )


def job(step: str, phase: JobPhase = "Active", attempt: int = 1, **facts: Any) -> JobFacts:
    return JobFacts(name=f"demo-{step}-{attempt}", phase=phase, created=T0, **facts)


def again(
    mode: str,
    previous: Plan,
    now: datetime,
    *jobs: JobFacts,
    annotations: dict[str, str] | None = None,
) -> Plan:
    """The next pass: the status `previous` wrote, its annotation writes, these Jobs."""
    return plan(snap(mode, previous.status, jobs=jobs, annotations=annotations), now)


def command(key: str, step: str, applied: int = 0) -> dict[str, str]:
    return {key: step, f"{key}-by": "alice", ANNOTATION_COMMANDS_CONSUMED: str(applied)}


def rec(result: Plan, name: str) -> StepStatus:
    return next(s for s in result.status.steps or [] if s.name == name)


def created(result: Plan) -> list[str]:
    return [m["metadata"]["name"] for m in result.create_jobs]


def reason(result: Plan) -> str | None:
    return next(c.reason for c in result.status.conditions or [] if c.type == "Succeeded")


# --- Debug -------------------------------------------------------------------------------


def test_debug_pauses_before_every_step_until_continue() -> None:
    spec = template("a", "b")
    first = plan(snap("Debug", spec=spec), T0)
    assert first.status.phase == "Waiting"
    assert reason(first) == "AwaitingContinue"
    assert rec(first, "a").awaiting_continue is True
    assert rec(first, "a").phase == "Pending"
    assert rec(first, "b").awaiting_continue is None  # b waits for a, not for continue yet
    assert created(first) == []
    assert "koos.io/continue=a" in (first.status.message or "")

    go = again("Debug", first, at(1), annotations=command(ANNOTATION_CONTINUE, "a"))
    assert created(go) == ["demo-a-1"]
    assert rec(go, "a").phase == "Running"
    assert rec(go, "a").awaiting_continue is None
    assert go.status.phase == "Running"
    assert go.status.commands_applied == 1
    assert set(go.consume_annotations) == {ANNOTATION_CONTINUE, f"{ANNOTATION_CONTINUE}-by"}
    assert go.set_annotations == {ANNOTATION_COMMANDS_CONSUMED: "1"}
    assert go.command_event is not None
    assert go.command_event.reason == "CommandContinue"
    assert "alice" in go.command_event.message

    done = again("Debug", go, at(2), job("a", "Succeeded"))
    assert rec(done, "a").phase == "Succeeded"
    assert rec(done, "b").awaiting_continue is True
    assert done.status.phase == "Waiting"
    assert created(done) == []


def test_debug_pauses_before_finally_steps_too_but_not_once_cancelled() -> None:
    spec = template("a", final=("report",))
    first = plan(snap("Debug", spec=spec), T0)
    cancelled = again("Debug", first, at(1), annotations={ANNOTATION_CANCEL: "true"})
    assert rec(cancelled, "a").phase == "Cancelled"
    assert rec(cancelled, "a").awaiting_continue is None
    assert created(cancelled) == ["demo-report-1"]  # cancel ends the run: no more pauses


def test_switching_a_debug_run_to_automatic_lets_paused_steps_go() -> None:
    first = plan(snap("Debug", spec=template("a")), T0)
    auto = again("Automatic", first, at(1))
    assert created(auto) == ["demo-a-1"]
    assert auto.status.phase == "Running"


# --- Refusals and consumption --------------------------------------------------------------


def test_a_command_that_does_not_apply_is_removed_with_a_warning_and_changes_nothing() -> None:
    first = plan(snap("Debug", spec=template("a", "b")), T0)
    quiet = again("Debug", first, at(1))
    for key, step, why in (
        (ANNOTATION_CONTINUE, "b", "not waiting for continue"),
        (ANNOTATION_CONTINUE, "nope", "has no step 'nope' (steps: a, b)"),
        (ANNOTATION_RETRY, "a", "apply in mode FailurePause"),
        (ANNOTATION_SKIP, "a", "apply in mode FailurePause"),
        (ANNOTATION_RERUN_FROM, "a", "rerun-from applies to a finished run"),
    ):
        refused = again("Debug", first, at(1), annotations=command(key, step))
        assert refused.status == quiet.status, key
        assert refused.create_jobs == ()
        assert key in refused.consume_annotations
        assert refused.set_annotations == {}
        assert refused.command_event is not None
        assert refused.command_event.type == "Warning"
        assert refused.command_event.reason == "CommandRefused"
        assert why in refused.command_event.message


def test_a_command_on_a_run_not_started_is_refused() -> None:
    annotations = {ANNOTATION_CONTINUE: "a"}
    result = plan(snap("Debug", spec=template("a"), annotations=annotations), T0)
    assert result.command_event is not None
    assert "has not started" in result.command_event.message
    assert rec(result, "a").awaiting_continue is True  # the run starts, the command is gone
    assert ANNOTATION_CONTINUE in result.consume_annotations


def test_a_command_left_over_by_a_crash_is_removed_not_applied_again() -> None:
    first = plan(snap("Debug", spec=template("a", "b")), T0)
    go = again("Debug", first, at(1), annotations=command(ANNOTATION_CONTINUE, "a"))
    # The status write landed, the removal did not: the annotation is still there, and the
    # count in koos.io/commands-consumed is behind status.commandsApplied.
    ended = again("Debug", go, at(2), job("a", "Succeeded"))
    leftover = again(
        "Debug", go, at(2), job("a", "Succeeded"), annotations=command(ANNOTATION_CONTINUE, "a")
    )
    assert leftover.status == ended.status
    assert leftover.command_event is None
    assert ANNOTATION_CONTINUE in leftover.consume_annotations
    assert leftover.set_annotations == {ANNOTATION_COMMANDS_CONSUMED: "1"}
    # The same command sent again after the removal landed is a new one.
    sent_again = again(
        "Debug", ended, at(3), annotations=command(ANNOTATION_CONTINUE, "b", applied=1)
    )
    assert created(sent_again) == ["demo-b-1"]
    assert sent_again.status.commands_applied == 2


def test_two_commands_at_once_are_applied_one_per_pass() -> None:
    spec = TemplateSpec.model_validate(
        {
            "steps": [
                {"name": "a", "dependsOn": [], "run": {"image": "busybox", "script": "true"}},
                {"name": "b", "dependsOn": [], "run": {"image": "busybox", "script": "true"}},
            ]
        }
    )
    first = plan(snap("Debug", spec=spec), T0)
    both = {ANNOTATION_CONTINUE: "a", ANNOTATION_SKIP: "b", ANNOTATION_COMMANDS_CONSUMED: "0"}
    result = again("Debug", first, at(1), annotations=both)
    assert created(result) == ["demo-a-1"]
    assert result.wake_at == at(1)  # the other one next
    assert ANNOTATION_SKIP not in result.consume_annotations


# --- FailurePause ---------------------------------------------------------------------------


def failed_and_paused(spec: TemplateSpec | None = None) -> Plan:
    first = plan(snap("FailurePause", spec=spec or template("a", "b")), T0)
    return again("FailurePause", first, at(5), job("a", "Failed", exit_code=3, message="boom"))


def test_a_failed_step_pauses_the_run_in_failure_pause() -> None:
    paused = failed_and_paused()
    a = rec(paused, "a")
    assert (a.phase, a.reason) == ("Running", "AwaitingFailureDecision")
    assert "exit code 3: boom" in (a.message or "")
    assert "koos.io/retry=a" in (a.message or "")
    assert paused.status.phase == "Waiting"
    assert reason(paused) == "AwaitingFailureDecision"
    assert rec(paused, "b").phase == "Pending"
    assert created(paused) == []
    assert paused.event is not None and paused.event.reason == "StepFailedPaused"
    # It stays so, pass after pass.
    still = again("FailurePause", paused, at(60), job("a", "Failed", exit_code=3))
    assert still.status == paused.status


def test_retry_runs_the_step_again_with_its_retries_counted_afresh() -> None:
    spec = template("a", "b", a={"retries": {"limit": 1, "backoff": "1s"}})
    first = plan(snap("FailurePause", spec=spec), T0)
    retrying = again("FailurePause", first, at(5), job("a", "Failed"))
    assert rec(retrying, "a").reason == "RetryScheduled"
    second = again("FailurePause", retrying, at(10), job("a", "Failed"))
    assert created(second) == ["demo-a-2"]
    paused = again("FailurePause", second, at(15), job("a", "Failed"), job("a", "Failed", 2))
    assert rec(paused, "a").reason == "AwaitingFailureDecision"

    jobs = (job("a", "Failed"), job("a", "Failed", 2))
    retried = again(
        "FailurePause", paused, at(20), *jobs, annotations=command(ANNOTATION_RETRY, "a")
    )
    assert created(retried) == ["demo-a-3"]
    assert rec(retried, "a").attempt == 3
    assert rec(retried, "a").attempt_base == 2
    assert retried.command_event is not None and retried.command_event.reason == "CommandRetry"
    assert retried.status.phase == "Running"
    # Attempt 3 fails: one retry is left again (limit 1, counted from the command).
    jobs = (*jobs, job("a", "Failed", 3))
    once_more = again("FailurePause", retried, at(25), *jobs)
    assert rec(once_more, "a").reason == "RetryScheduled"
    fourth = again("FailurePause", once_more, at(30), *jobs)
    assert created(fourth) == ["demo-a-4"]
    succeeded = again("FailurePause", fourth, at(35), *jobs, job("a", "Succeeded", 4))
    assert rec(succeeded, "a").phase == "Succeeded"
    assert created(succeeded) == ["demo-b-1"]


def test_skip_marks_the_failed_step_skipped_and_the_run_goes_on() -> None:
    paused = failed_and_paused()
    skipped = again(
        "FailurePause", paused, at(9), job("a", "Failed"), annotations=command(ANNOTATION_SKIP, "a")
    )
    assert (rec(skipped, "a").phase, rec(skipped, "a").reason) == ("Skipped", "SkippedByCommand")
    assert created(skipped) == ["demo-b-1"]
    done = again("FailurePause", skipped, at(10), job("a", "Failed"), job("b", "Succeeded"))
    assert done.status.phase == "Succeeded"


def test_cancel_while_paused_fails_the_step_and_cancels_the_run() -> None:
    paused = failed_and_paused()
    cancelled = again(
        "FailurePause", paused, at(9), job("a", "Failed"), annotations={ANNOTATION_CANCEL: "1"}
    )
    assert rec(cancelled, "a").phase == "Failed"
    assert rec(cancelled, "b").phase == "Cancelled"
    assert cancelled.status.phase == "Cancelled"


def test_retry_refused_for_a_step_that_has_not_failed() -> None:
    first = plan(snap("FailurePause", spec=template("a", "b")), T0)
    refused = again("FailurePause", first, at(1), annotations=command(ANNOTATION_RETRY, "b"))
    assert refused.command_event is not None
    assert "has not failed" in refused.command_event.message
    assert created(refused) == []


def test_retry_before_the_run_started_is_refused() -> None:
    status = ExecutionStatus(phase="Running", template=None)
    assert command_problem(ANNOTATION_RETRY, "x", "FailurePause", status) is not None


# --- rerun-from -------------------------------------------------------------------------------


def finished_run() -> Plan:
    spec = TemplateSpec.model_validate(
        {
            "steps": [
                {"name": "a", "run": {"image": "busybox", "script": "true"}},
                {"name": "b", "run": {"image": "busybox", "script": "true"}},
            ],
            "finally": [{"name": "report", "run": {"image": "busybox", "script": "true"}}],
            "outputs": {"id": "{{ steps.a.outputs.id }}"},
        }
    )
    first = plan(snap("Automatic", spec=spec), T0)
    ran = again("Automatic", first, at(1), job("a", "Succeeded", message=json.dumps({"id": 7})))
    b = again("Automatic", ran, at(2), job("a", "Succeeded"), job("b", "Failed", exit_code=1))
    end = again("Automatic", b, at(3), job("b", "Failed"), job("report", "Succeeded"))
    assert end.status.phase == "Failed"
    return end


def test_rerun_from_reuses_earlier_outputs_and_reruns_the_rest() -> None:
    end = finished_run()
    rerun = again("Automatic", end, at(10), annotations=command(ANNOTATION_RERUN_FROM, "b"))
    assert rerun.command_event is not None
    assert rerun.command_event.reason == "CommandRerunFrom"
    assert rerun.status.phase == "Running"
    assert rerun.status.attempt == 2
    assert rec(rerun, "a").phase == "Succeeded"
    assert rec(rerun, "a").outputs == {"id": 7}
    assert rec(rerun, "b").phase == "Running"
    assert created(rerun) == ["demo-b-2"]  # a new Job name: attempt 1's Job still exists
    assert rec(rerun, "report").phase == "Pending"
    (old,) = rerun.status.attempts or []
    assert (old.number, old.phase) == (1, "Failed")
    assert [(s.name, s.phase) for s in old.steps or []] == [
        ("a", "Succeeded"),
        ("b", "Failed"),
        ("report", "Succeeded"),
    ]
    # The seal still verifies: the next passes run on and the run succeeds.
    later = again("Automatic", rerun, at(11), job("b", "Succeeded", 2))
    assert created(later) == ["demo-report-2"]
    done = again(
        "Automatic", later, at(12), job("b", "Succeeded", 2), job("report", "Succeeded", 2)
    )
    assert done.status.phase == "Succeeded"
    assert done.status.outputs == {"id": 7}
    assert reason(done) == "Succeeded"


def test_six_reruns_keep_the_last_five_attempts() -> None:
    result = finished_run()
    for n in range(6):
        result = again(
            "Automatic",
            result,
            at(100 + n),
            annotations=command(ANNOTATION_RERUN_FROM, "report", n),
        )
        assert result.status.attempt == n + 2
        cancel = again("Automatic", result, at(100 + n), annotations={ANNOTATION_CANCEL: "1"})
        result = again("Automatic", cancel, at(100 + n), job("report", "Succeeded", n + 2))
        assert result.status.phase == "Cancelled"
    assert [a.number for a in result.status.attempts or []] == [2, 3, 4, 5, 6]
    size = len(result.status.model_dump_json(by_alias=True, exclude_none=True))
    assert size < 32 * 1024


def test_rerun_from_is_refused_on_a_running_run_an_unknown_step_or_an_approve_step() -> None:
    end = finished_run()
    status = end.status
    running = status.model_copy(update={"phase": "Running"})
    assert "finished run" in (
        command_problem(ANNOTATION_RERUN_FROM, "b", "Automatic", running) or ""
    )
    assert "no step 'zzz'" in (
        command_problem(ANNOTATION_RERUN_FROM, "zzz", "Automatic", status) or ""
    )
    assert command_problem(ANNOTATION_RERUN_FROM, "a", "Automatic", status) is None
    assert status.template is not None
    gated = status.template.spec.model_copy(
        update={
            "steps": [
                *status.template.spec.steps[:1],
                status.template.spec.steps[1].model_copy(
                    update={"run": None, "approve": {"approvers": {"users": ["x"]}}}
                ),
            ]
        }
    )
    template = status.template.model_copy(update={"spec": gated})
    with_gate = status.model_copy(update={"template": template})
    for start in ("a", "b", "report"):  # before the gate, the gate, past it
        problem = command_problem(ANNOTATION_RERUN_FROM, start, "Automatic", with_gate)
        assert "approve step b" in (problem or "")


def test_an_attempt_record_leaves_out_large_outputs() -> None:
    end = finished_run()
    big = end.status.model_copy(update={"outputs": {"blob": "x" * 5000}})
    rerun = plan(snap("Automatic", big, annotations=command(ANNOTATION_RERUN_FROM, "b")), at(9))
    (old,) = rerun.status.attempts or []
    assert old.outputs is None
    assert "left out" in (old.message or "")


def test_a_rerun_of_a_run_whose_status_someone_else_wrote_is_refused() -> None:
    end = finished_run()
    forged = end.status.model_copy(update={"seal": "0" * 64})
    result = plan(snap("Automatic", forged, annotations=command(ANNOTATION_RERUN_FROM, "b")), at(9))
    assert result.status == forged
    assert result.command_event is not None
    assert result.command_event.reason == "CommandRefused"
    assert "written by someone else" in result.command_event.message
    assert ANNOTATION_RERUN_FROM in result.consume_annotations
