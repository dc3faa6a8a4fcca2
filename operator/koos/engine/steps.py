"""Step progression: what each step does next, given its record, its Job and `now`.

`advance` walks the main steps, then (once every main step has settled) the finally steps,
repeating until nothing changes, so a step that finishes and the step it unblocks are decided
in the same pass (one status write, one Job created). Each step goes
Pending → Running → Succeeded | Failed | Skipped | Cancelled; a failed attempt with retries
left stays Running with a retryTime, and every attempt is a new Job.

This module holds the pass itself: dispatch of Pending and Running steps, `when`, sleep steps,
cancellation and aborts, stray Jobs, and the pass's one Event. Run steps live in
`koos.engine.run_step`, approve steps in `koos.engine.approve_step`, and the pass's working
state (`Pass`, `context`) in `koos.engine.progress`; their public names are
re-exported here.
"""

from __future__ import annotations

from datetime import datetime

from koos.api.execution import ExecutionStatus, StepStatus
from koos.api.template import Step
from koos.engine import expressions
from koos.engine.approve_step import ask, awaiting
from koos.engine.durations import parse_duration
from koos.engine.facts import EventSpec, ExecutionSnapshot, Plan
from koos.engine.progress import (
    MESSAGE_LIMIT,
    SETTLED,
    Pass,
    context,
    fail,
    short,
)
from koos.engine.run_step import TIMEOUT_GRACE, launch, parse_output, running
from koos.engine.template import effective_dependencies
from koos.engine.timefmt import parse_rfc3339, rfc3339

__all__ = [
    "MESSAGE_LIMIT",
    "SETTLED",
    "TIMEOUT_GRACE",
    "advance",
    "context",
    "failure",
    "is_finished",
    "parse_output",
]


def advance(snapshot: ExecutionSnapshot, status: ExecutionStatus, now: datetime) -> Plan:
    assert status.template is not None
    spec = status.template.spec
    records = {s.name: s for s in status.steps or []}
    work = Pass(snapshot, now, records, bool(status.cancel_requested))
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
    return Plan(
        status=status.model_copy(update={"steps": ordered}),
        create_jobs=tuple(work.creates),
        delete_jobs=tuple(work.deletes),
        create_approvals=tuple(work.approvals),
        cancel_approvals=tuple(work.withdrawn),
        event=_event(work.notes),
        wake_at=min(work.wakes) if work.wakes else None,
    )


def _delete_strays(work: Pass) -> None:
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


def _abort_cause(main: list[Step], records: dict[str, StepStatus]) -> str | None:
    for step in main:
        if step.on_error == "Abort" and records[step.name].phase == "Failed":
            return step.name
    return None


def _step(
    work: Pass, step: Step, deps: tuple[str, ...], *, stopping: bool, stop_reason: str
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
            awaiting(work, step, record)
        else:
            running(work, step, record)


def _start(work: Pass, step: Step) -> None:
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
            fail(work, step, "ExpressionFailed", f"when: {error}")
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
        ask(work, step, ctx)
        return
    launch(work, step, 1, ctx)


def _sleeping(work: Pass, step: Step, record: StepStatus) -> None:
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


def _event(notes: list[tuple[str, str, str]]) -> EventSpec | None:
    """One Event per pass: the most telling transition, with the others in its message."""
    if not notes:
        return None
    warning = next((n for n in notes if n[0] == "Warning"), None)
    kind, reason, _ = warning or notes[-1]
    message = "; ".join(n[2] for n in notes)
    return EventSpec(kind, reason, short(message))  # type: ignore[arg-type]
