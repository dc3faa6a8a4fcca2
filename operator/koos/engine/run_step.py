"""Run steps: launch a Job per attempt, read its outcome, retry, and parse the step's output.

Each attempt of a run step is a new Job (`jobs.job_name` of execution, step and attempt),
built from the step with its expressions rendered for that attempt (`launch`). While the step
is Running, each pass reads its Job (`running`): Succeeded parses the termination message as
the step's outputs (`parse_output`), Failed or a timeout fails the attempt, and a failed
attempt with retries left waits for its `retryTime` with exponential backoff (capped at
`maxBackoff`) before the next attempt is launched. A Job that vanished before it finished
(and is not being created in this same pass) fails the attempt as `JobLost`. The planner's own
timeout check allows `TIMEOUT_GRACE` past the step's timeout, so the Job's deadline fires
first. An Active Job whose Pod has not started is looked at and, past the step's
`startTimeout`, fails its attempt as `NotStarted` (`koos.engine.pod_start`).

Text copied from the Pod (the log tail in a failure message, the output, an invalid output
quoted in a message) goes through `koos.engine.masking` first: the values of the Secrets the
step can see never reach the status or an Event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from koos.api.constants import OUTPUT_LIMIT
from koos.api.execution import ExecutionStatus, StepStatus
from koos.api.template import Step
from koos.engine import expressions, pod_start
from koos.engine.durations import backoff_delay, format_duration, parse_duration
from koos.engine.facts import JobFacts
from koos.engine.jobs import JobRequest, build_job, job_name
from koos.engine.masking import Masker
from koos.engine.progress import Pass, context, fail, short
from koos.engine.timefmt import parse_rfc3339, rfc3339

TIMEOUT_GRACE = timedelta(seconds=30)  # the Job's own deadline should fire first


def launch(work: Pass, step: Step, attempt: int, ctx: dict[str, Any]) -> None:
    assert step.run is not None
    try:
        run = render_run(step, ctx)
    except expressions.ExpressionError as error:
        fail(work, step, "ExpressionFailed", str(error))
        return
    status = work.snapshot.status
    assert status.template is not None
    spec = status.template.spec
    snapshot = work.snapshot
    timeout = parse_duration(step.timeout) if step.timeout else None
    request = JobRequest(
        execution=snapshot.name,
        namespace=snapshot.namespace,
        uid=snapshot.uid,
        service_account_name=spec.service_account_name,
        step=step.model_copy(update={"run": run}),
        attempt=attempt,
        parameters=dict(status.parameters or {}),
        secret_names=frozenset(n for n, p in spec.parameters.items() if p.secret),
        deadline_seconds=int(timeout.total_seconds()) if timeout else None,
    )
    name = job_name(snapshot.name, step.name, attempt)
    work.creates.append(build_job(request))
    work.set(step.name, attempt=attempt, job_name=name, retry_time=None)
    work.note("Normal", "StepStarted", f"step {step.name} started (attempt {attempt}, Job {name})")
    if timeout is not None:
        work.wakes.append(work.now + timeout + TIMEOUT_GRACE)
    work.wakes.append(work.now + pod_start.FIRST_PROBE)  # a look at a Pod that may not start


def render_run(step: Step, ctx: dict[str, Any]) -> Any:
    """Expressions in env values, and (validation allows only enum- or pattern-bound
    parameters there) in the script, command and args, rendered for this attempt."""
    assert step.run is not None
    run = step.run

    def text(value: str) -> str:
        if not expressions.has_expression(value):
            return value
        rendered = expressions.render(value, ctx)
        return rendered if isinstance(rendered, str) else json.dumps(rendered)

    env = [
        var.model_copy(update={"value": text(var.value)}) if var.value is not None else var
        for var in run.env or []
    ]
    return run.model_copy(
        update={
            "env": env or None,
            "script": text(run.script) if run.script is not None else None,
            "command": [text(c) for c in run.command] if run.command is not None else None,
            "args": [text(a) for a in run.args] if run.args is not None else None,
        }
    )


def running(work: Pass, step: Step, record: StepStatus) -> None:
    if record.retry_time is not None:
        due = parse_rfc3339(record.retry_time)
        if work.now >= due:
            status_now = ExecutionStatus(
                template=work.snapshot.status.template,
                parameters=work.snapshot.status.parameters,
                steps=list(work.records.values()),
            )
            launch(work, step, record.attempt + 1, context(work.snapshot, status_now))
        else:
            work.wakes.append(due)
        return
    if record.job_name is None:
        return
    job = work.snapshot.jobs.get(record.job_name)
    if job is None:
        if record.job_name in {j.get("metadata", {}).get("name") for j in work.creates}:
            return
        _attempt_failed(
            work, step, record, "JobLost", f"Job {record.job_name} disappeared before it finished."
        )
        return
    if job.phase == "Succeeded":
        _succeeded(work, step, job)
    elif job.phase == "Failed":
        reason = "TimedOut" if job.reason == "DeadlineExceeded" else "Failed"
        detail = job.disrupted or pod_text(job) or job.reason or "the Job failed"
        if job.exit_code is not None and not job.disrupted:
            detail = f"exit code {job.exit_code}: {detail}"
        _attempt_failed(work, step, record, reason, detail)
    elif _not_started(work, step, record, job):
        return
    elif step.timeout and job.created is not None:
        limit = job.created + parse_duration(step.timeout) + TIMEOUT_GRACE
        if work.now >= limit:
            work.deletes.append(job.name)
            _attempt_failed(work, step, record, "TimedOut", f"ran longer than {step.timeout}")
        else:
            work.wakes.append(limit)


def _not_started(work: Pass, step: Step, record: StepStatus, job: JobFacts) -> bool:
    """For an Active Job: surface what its Pod waits for, fail the attempt once its Pod has
    not started within the step's start timeout (`koos.engine.pod_start`), and wake for the
    next look. True when the attempt failed."""
    if job.created is None or job.deleting:
        return False
    if pod_start.has_started(job):
        if record.reason in pod_start.NEEDS_A_PERSON:
            work.set(step.name, reason="Started", message=None)  # fixed: the Pod runs now
        return False
    limit = pod_start.start_timeout(step)
    deadline = job.created + limit
    if work.now >= deadline and job.probed:
        work.deletes.append(job.name)
        _attempt_failed(
            work,
            step,
            record,
            "NotStarted",
            f"its Pod did not start within {format_duration(limit)}: {pod_start.waiting_for(job)}",
        )
        return True
    if job.waiting_reason in pod_start.NEEDS_A_PERSON:
        message = (
            f"waiting: {pod_start.waiting_for(job)}; the attempt fails at "
            f"{rfc3339(deadline)} unless this is fixed"
        )
        if record.reason != job.waiting_reason or record.message != short(message):
            work.set(step.name, reason=job.waiting_reason, message=message)
        if record.reason not in pod_start.NEEDS_A_PERSON:  # one Event, not one per probe
            work.note("Warning", "StepWaiting", f"step {step.name} is {message}")
    probe = pod_start.next_probe(job.created, work.now)
    work.wakes.append(probe if work.now >= deadline else min(probe, deadline))
    return False


def pod_text(job: JobFacts) -> str:
    """The Job's message (the Pod's termination message or log tail), secrets masked."""
    if job.secrets_unread and job.message.strip():
        return f"the message is withheld: {job.secrets_unread}"
    return Masker(job.secrets).text(job.message)


def _succeeded(work: Pass, step: Step, job: JobFacts) -> None:
    if job.secrets_unread and job.message.strip():
        fail(work, step, "OutputWithheld", f"the output is withheld: {job.secrets_unread}")
        return
    masker = Masker(job.secrets)
    outputs, problem = parse_output(job.message, masker.text)
    if problem is not None:
        fail(work, step, problem[0], problem[1])
        return
    outputs = masker.value(outputs)
    work.set(
        step.name,
        phase="Succeeded",
        reason="Completed",
        outputs=outputs or None,
        completion_time=rfc3339(work.now),
        message=None,
    )
    work.note("Normal", "StepSucceeded", f"step {step.name} succeeded")


def _attempt_failed(work: Pass, step: Step, record: StepStatus, reason: str, detail: str) -> None:
    retries = step.retries
    # koos.io/retry and koos.io/rerun-from give the step its whole budget again.
    if retries is not None and record.attempt - (record.attempt_base or 0) <= retries.limit:
        delay = backoff_delay(
            parse_duration(retries.backoff),
            retries.factor,
            record.attempt,
            parse_duration(retries.max_backoff),
        )
        due = work.now + delay
        work.set(
            step.name,
            retry_time=rfc3339(due),
            reason="RetryScheduled",
            message=f"Attempt {record.attempt} failed ({reason}: {detail}); "
            f"retrying at {rfc3339(due)}.",
        )
        work.note(
            "Warning", "StepRetrying", f"step {step.name} attempt {record.attempt} failed: {detail}"
        )
        work.wakes.append(due)
        return
    fail(work, step, reason, detail)


def parse_output(
    text: str, masked: Callable[[str], str] = str
) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """A run step's output: one JSON object (or nothing) in its termination message. A
    problem quotes the text only as `masked` gives it.

    The kubelet keeps at most `OUTPUT_LIMIT` bytes of the file: an output of exactly that
    size is whole when it parses, and was cut from a longer one when it does not."""
    if not text.strip():
        return {}, None
    size = len(text.encode())
    if size > OUTPUT_LIMIT:
        return {}, _too_large(f"the output is {size} bytes, over the {OUTPUT_LIMIT}-byte limit")
    try:
        value = json.loads(text)
    except ValueError:
        if size == OUTPUT_LIMIT:
            return {}, _too_large(
                f"the output reached the {OUTPUT_LIMIT}-byte limit and was cut short"
            )
        return {}, (
            "InvalidOutput",
            "$KOOS_OUTPUT must hold one JSON object, got: " + short(masked(text.strip()), 80),
        )
    if not isinstance(value, dict):
        return {}, (
            "InvalidOutput",
            f"$KOOS_OUTPUT must hold a JSON object, got a {type(value).__name__}",
        )
    return value, None


def _too_large(what: str) -> tuple[str, str]:
    return (
        "OutputTooLarge",
        f"{what} (the kubelet keeps {OUTPUT_LIMIT} bytes of a termination message): "
        "write less to $KOOS_OUTPUT",
    )
