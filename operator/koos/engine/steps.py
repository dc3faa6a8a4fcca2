"""Step progression: what each step does next, given its record, its Job and `now`.

`advance` walks the main steps, then (once every main step has settled) the finally steps,
repeating until nothing changes, so a step that finishes and the step it unblocks are decided
in the same pass (one status write, one Job created). Each step goes
Pending → Running → Succeeded | Failed | Skipped | Cancelled; a failed attempt with retries
left stays Running with a retryTime, and every attempt is a new Job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from koos.api.constants import OUTPUT_LIMIT
from koos.api.execution import ExecutionStatus, StepStatus
from koos.api.template import Step
from koos.engine import approval, expressions
from koos.engine.durations import parse_duration
from koos.engine.facts import EventSpec, ExecutionSnapshot, JobFacts
from koos.engine.jobs import JobRequest, build_job, job_name
from koos.engine.template import effective_dependencies
from koos.engine.timefmt import parse_rfc3339, rfc3339

SETTLED = ("Succeeded", "Failed", "Skipped", "Cancelled")
TIMEOUT_GRACE = timedelta(seconds=30)  # the Job's own deadline should fire first
MESSAGE_LIMIT = 512


@dataclass
class Progress:
    status: ExecutionStatus
    create_jobs: tuple[dict[str, Any], ...] = ()
    delete_jobs: tuple[str, ...] = ()
    create_approvals: tuple[dict[str, Any], ...] = ()
    cancel_approvals: tuple[str, ...] = ()
    event: EventSpec | None = None
    wake_at: datetime | None = None


@dataclass
class _Pass:
    """Mutable working state of one `advance` call."""

    snapshot: ExecutionSnapshot
    now: datetime
    records: dict[str, StepStatus]
    cancel: bool
    creates: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)  # Approvals whose run was cancelled
    notes: list[tuple[str, str, str]] = field(default_factory=list)  # type, reason, message
    wakes: list[datetime] = field(default_factory=list)

    def set(self, name: str, **update: Any) -> None:
        if update.get("message"):
            update["message"] = _short(str(update["message"]))
        self.records[name] = self.records[name].model_copy(update=update)

    def note(self, kind: str, reason: str, message: str) -> None:
        self.notes.append((kind, reason, message))


def advance(snapshot: ExecutionSnapshot, status: ExecutionStatus, now: datetime) -> Progress:
    assert status.template is not None
    spec = status.template.spec
    records = {s.name: s for s in status.steps or []}
    work = _Pass(snapshot, now, records, bool(status.cancel_requested))
    deps = effective_dependencies(spec)
    main, final = list(spec.steps), list(spec.finally_ or [])
    while True:
        before = dict(work.records)
        # Running steps first: a failure they report stops pending steps in this same pass,
        # wherever those stand in the list.
        for step in sorted(main, key=lambda s: work.records[s.name].phase != "Running"):
            aborted = _abort_cause(main, work.records)
            _step(
                work,
                step,
                deps[step.name],
                stopping=work.cancel or aborted is not None,
                stop_reason="Cancelled" if work.cancel else "Aborted",
            )
        if all(work.records[s.name].phase in SETTLED for s in main):
            for step in final:
                _step(work, step, deps[step.name], stopping=False, stop_reason="")
        if work.records == before:
            break
    _delete_strays(work)
    ordered = [work.records[s.name] for s in spec.all_steps()]
    return Progress(
        status=status.model_copy(update={"steps": ordered}),
        create_jobs=tuple(work.creates),
        delete_jobs=tuple(work.deletes),
        create_approvals=tuple(work.approvals),
        cancel_approvals=tuple(work.withdrawn),
        event=_event(work.notes),
        wake_at=min(work.wakes) if work.wakes else None,
    )


def _delete_strays(work: _Pass) -> None:
    """A live Job no running step names (its status write was lost, then the step was
    cancelled, skipped or finished otherwise) must not run on: delete it."""
    wanted = {r.job_name for r in work.records.values() if r.phase == "Running"}
    created = {j["metadata"]["name"] for j in work.creates}
    for name, job in sorted(work.snapshot.jobs.items()):
        stray = job.phase == "Active" and not job.deleting and name not in wanted | created
        if stray and name not in work.deletes:
            work.deletes.append(name)


def is_finished(status: ExecutionStatus) -> bool:
    return all(s.phase in SETTLED for s in status.steps or [])


def failure(status: ExecutionStatus) -> StepStatus | None:
    """The first step whose failure fails the run (onError Abort, or any finally step)."""
    assert status.template is not None
    spec = status.template.spec
    aborting = {s.name for s in spec.steps if s.on_error == "Abort"}
    finals = {s.name for s in spec.finally_ or []}
    for record in status.steps or []:
        if record.phase == "Failed" and (record.name in aborting or record.name in finals):
            return record
    return None


def context(snapshot: ExecutionSnapshot, status: ExecutionStatus) -> dict[str, Any]:
    """What expressions see: parameters (secret ones left out), step outputs, the run."""
    assert status.template is not None
    secret = {n for n, p in status.template.spec.parameters.items() if p.secret}
    params = {k: v for k, v in (status.parameters or {}).items() if k not in secret}
    return {
        "params": params,
        "steps": {
            s.name: {"outputs": dict(s.outputs or {}), "phase": s.phase} for s in status.steps or []
        },
        "execution": {"name": snapshot.name, "namespace": snapshot.namespace},
    }


def _abort_cause(main: list[Step], records: dict[str, StepStatus]) -> str | None:
    for step in main:
        if step.on_error == "Abort" and records[step.name].phase == "Failed":
            return step.name
    return None


def _step(
    work: _Pass, step: Step, deps: tuple[str, ...], *, stopping: bool, stop_reason: str
) -> None:
    record = work.records[step.name]
    if record.phase == "Pending":
        if stopping:
            phase = "Cancelled" if stop_reason == "Cancelled" else "Skipped"
            work.set(
                step.name,
                phase=phase,
                reason=stop_reason,
                completion_time=rfc3339(work.now),
                message="Not run: the execution was cancelled."
                if stop_reason == "Cancelled"
                else "Not run: an earlier step failed.",
            )
            return
        if any(work.records[d].phase not in SETTLED for d in deps):
            return
        _start(work, step)
    elif record.phase == "Running":
        job = work.snapshot.jobs.get(record.job_name or "")
        finished = job is not None and job.phase != "Active" and record.retry_time is None
        if stopping and stop_reason == "Cancelled" and not finished:
            if record.job_name and record.retry_time is None:
                work.deletes.append(record.job_name)
            if record.approval:
                work.withdrawn.append(record.approval)
            work.set(
                step.name,
                phase="Cancelled",
                reason="Cancelled",
                retry_time=None,
                completion_time=rfc3339(work.now),
                message="Cancelled while running.",
            )
            work.note("Warning", "StepCancelled", f"step {step.name} cancelled")
            return
        if step.sleep is not None:
            _sleeping(work, step, record)
        elif step.approve is not None:
            _awaiting(work, step, record)
        else:
            _running(work, step, record)


def _start(work: _Pass, step: Step) -> None:
    status_now = ExecutionStatus(
        template=work.snapshot.status.template,
        parameters=work.snapshot.status.parameters,
        steps=list(work.records.values()),
    )
    ctx = context(work.snapshot, status_now)
    if step.when is not None:
        try:
            go = expressions.is_true(expressions.render(step.when, ctx))
        except expressions.ExpressionError as error:
            _fail(work, step, "ExpressionFailed", f"when: {error}")
            return
        if not go:
            work.set(
                step.name,
                phase="Skipped",
                reason="ConditionFalse",
                completion_time=rfc3339(work.now),
                message=f"Skipped: when {step.when} is false.",
            )
            work.note("Normal", "StepSkipped", f"step {step.name} skipped")
            return
    work.set(
        step.name, phase="Running", start_time=rfc3339(work.now), reason="Started", message=None
    )
    if step.sleep is not None:
        _sleeping(work, step, work.records[step.name])
        return
    if step.approve is not None:
        _ask(work, step, ctx)
        return
    _launch(work, step, 1, ctx)


def _ask(work: _Pass, step: Step, ctx: dict[str, Any]) -> None:
    """Create the step's Approval; the run waits for people from here."""
    assert step.approve is not None
    snapshot = work.snapshot
    assert snapshot.status.template is not None
    secret = {n for n, p in snapshot.status.template.spec.parameters.items() if p.secret}
    try:
        spec = approval.request_spec(
            action=step.approve,
            execution=snapshot.name,
            uid=snapshot.uid,
            step=step.name,
            creator=snapshot.creator,
            parameters={
                k: v for k, v in (snapshot.status.parameters or {}).items() if k not in secret
            },
            render=lambda text: expressions.render(text, ctx),
            now=work.now,
        )
    except (expressions.ExpressionError, ValueError, TypeError) as error:
        _fail(work, step, "ExpressionFailed", str(error))
        return
    manifest = approval.build_approval(
        execution=snapshot.name,
        namespace=snapshot.namespace,
        uid=snapshot.uid,
        step=step.name,
        spec=spec,
    )
    name = manifest["metadata"]["name"]
    work.approvals.append(manifest)
    work.set(
        step.name,
        approval=name,
        reason="AwaitingApproval",
        message=f"Waiting for approval: kubectl annotate approval {name} "
        "koos.io/decision=approve (or reject, with koos.io/reason)",
    )
    work.note("Normal", "ApprovalRequested", f"step {step.name} waits for approval {name}")


def _awaiting(work: _Pass, step: Step, record: StepStatus) -> None:
    assert step.approve is not None and record.approval is not None
    facts = work.snapshot.approvals.get(record.approval)
    if facts is None:
        if record.approval in {a["metadata"]["name"] for a in work.approvals}:
            return
        _fail(
            work,
            step,
            "ApprovalLost",
            f"Approval {record.approval} was deleted before it was decided.",
        )
        return
    if facts.phase == "Approved" or (
        facts.phase == "Expired" and step.approve.on_timeout == "Approve" and not facts.cancelled
    ):
        by = list(facts.approved_by)
        work.set(
            step.name,
            phase="Succeeded",
            reason="ApprovedOnTimeout" if facts.phase == "Expired" else "Approved",
            completion_time=rfc3339(work.now),
            message=facts.message,
            outputs={"approvedBy": by},
        )
        work.note("Normal", "StepSucceeded", f"step {step.name} approved: {facts.message}")
    elif facts.phase == "Rejected":
        _fail(work, step, "Rejected", facts.message)
    elif facts.phase == "Expired":
        _fail(work, step, "ApprovalExpired", facts.message)


def _launch(work: _Pass, step: Step, attempt: int, ctx: dict[str, Any]) -> None:
    assert step.run is not None
    try:
        run = _render_run(step, ctx)
    except expressions.ExpressionError as error:
        _fail(work, step, "ExpressionFailed", str(error))
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


def _render_run(step: Step, ctx: dict[str, Any]) -> Any:
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


def _sleeping(work: _Pass, step: Step, record: StepStatus) -> None:
    assert step.sleep is not None
    due = parse_rfc3339(record.start_time or rfc3339(work.now)) + parse_duration(
        step.sleep.duration
    )
    if work.now >= due:
        work.set(
            step.name,
            phase="Succeeded",
            reason="Slept",
            completion_time=rfc3339(work.now),
            message=f"Slept {step.sleep.duration}.",
        )
        work.note("Normal", "StepSucceeded", f"step {step.name} succeeded")
    else:
        work.wakes.append(due)


def _running(work: _Pass, step: Step, record: StepStatus) -> None:
    if record.retry_time is not None:
        due = parse_rfc3339(record.retry_time)
        if work.now >= due:
            status_now = ExecutionStatus(
                template=work.snapshot.status.template,
                parameters=work.snapshot.status.parameters,
                steps=list(work.records.values()),
            )
            _launch(work, step, record.attempt + 1, context(work.snapshot, status_now))
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
        detail = job.disrupted or job.message or job.reason or "the Job failed"
        if job.exit_code is not None and not job.disrupted:
            detail = f"exit code {job.exit_code}: {detail}"
        _attempt_failed(work, step, record, reason, detail)
    elif step.timeout and job.created is not None:
        limit = job.created + parse_duration(step.timeout) + TIMEOUT_GRACE
        if work.now >= limit:
            work.deletes.append(job.name)
            _attempt_failed(work, step, record, "TimedOut", f"ran longer than {step.timeout}")
        else:
            work.wakes.append(limit)


def _succeeded(work: _Pass, step: Step, job: JobFacts) -> None:
    outputs, problem = parse_output(job.message)
    if problem is not None:
        _fail(work, step, problem[0], problem[1])
        return
    work.set(
        step.name,
        phase="Succeeded",
        reason="Completed",
        outputs=outputs or None,
        completion_time=rfc3339(work.now),
        message=None,
    )
    work.note("Normal", "StepSucceeded", f"step {step.name} succeeded")


def _attempt_failed(work: _Pass, step: Step, record: StepStatus, reason: str, detail: str) -> None:
    retries = step.retries
    if retries is not None and record.attempt <= retries.limit:
        delay = parse_duration(retries.backoff) * (retries.factor ** (record.attempt - 1))
        delay = min(delay, parse_duration(retries.max_backoff))
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
    _fail(work, step, reason, detail)


def _fail(work: _Pass, step: Step, reason: str, detail: str) -> None:
    work.set(
        step.name,
        phase="Failed",
        reason=reason,
        retry_time=None,
        completion_time=rfc3339(work.now),
        message=detail,
    )
    work.note("Warning", "StepFailed", f"step {step.name} failed ({reason}): {detail}")


def parse_output(text: str) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """A run step's output: one JSON object (or nothing) in its termination message."""
    if not text.strip():
        return {}, None
    if len(text.encode()) >= OUTPUT_LIMIT:
        return {}, (
            "OutputTooLarge",
            f"the output is over {OUTPUT_LIMIT} bytes (the kubelet "
            "keeps 4 KiB): write less to $KOOS_OUTPUT",
        )
    try:
        value = json.loads(text)
    except ValueError:
        return {}, (
            "InvalidOutput",
            "$KOOS_OUTPUT must hold one JSON object, got: " + _short(text.strip(), 80),
        )
    if not isinstance(value, dict):
        return {}, (
            "InvalidOutput",
            f"$KOOS_OUTPUT must hold a JSON object, got a {type(value).__name__}",
        )
    return value, None


def _event(notes: list[tuple[str, str, str]]) -> EventSpec | None:
    """One Event per pass: the most telling transition, with the others in its message."""
    if not notes:
        return None
    warning = next((n for n in notes if n[0] == "Warning"), None)
    kind, reason, _ = warning or notes[-1]
    message = "; ".join(n[2] for n in notes)
    return EventSpec(kind, reason, _short(message))  # type: ignore[arg-type]


def _short(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
