"""A loop step's record: which Jobs it names, and the changes commands make to it.

Pure functions of a `StepStatus` (or the `ExecutionStatus`), shared by the planner
(`koos.engine.loop_pass`), the k8s layer (which Jobs to read) and the run commands of
`koos.engine.loop`'s callers: `continue_step` clears `awaitingContinue` (koos.io/continue),
`retry_failed_items` sends a failed loop's failed items to run again (FailurePause retry).
"""

from __future__ import annotations

from koos.api.execution import ExecutionStatus, ItemFailure, LoopStatus, StepStatus
from koos.engine.jobs import job_name


def live_jobs(execution: str, record: StepStatus) -> dict[str, str]:
    """The Jobs of a running loop step's items in flight (Job name -> step name): each
    one's current attempt, and the next attempt of one waiting to retry (its Job exists
    already when the status write after its create was lost)."""
    names: dict[str, str] = {}
    if record.phase != "Running" or record.loop is None:
        return names
    for entry in record.loop.active or []:
        attempt = entry.attempt + (1 if entry.retry_time else 0)
        names[job_name(execution, record.name, attempt, entry.index)] = record.name
        if entry.retry_time:
            names[job_name(execution, record.name, entry.attempt, entry.index)] = record.name
    return names


def running_jobs(execution: str, record: StepStatus) -> set[str]:
    """The Jobs a running loop step's status names as running now (not waiting to retry)."""
    if record.phase != "Running" or record.loop is None:
        return set()
    return {
        job_name(execution, record.name, e.attempt, e.index)
        for e in record.loop.active or []
        if not e.retry_time
    }


def retry_failed_items(record: StepStatus) -> StepStatus:
    """The record of a failed loop step whose failed items run again (FailurePause retry):
    they become pending in a new round (fresh attempts, new Job names), the succeeded ones
    stay as they are."""
    loop = record.loop
    if loop is None or not loop.failed_indexes:
        return record
    again = loop.model_copy(
        update={
            "failed": 0,
            "failed_indexes": None,
            "failures": None,
            "pending": loop.pending + loop.failed,
            "round": loop.round + 1,
            "stopped": None,
        }
    )
    return record.model_copy(
        update={
            "phase": "Running",
            "reason": "RetryingFailedItems",
            "completion_time": None,
            "retry_time": None,
            "loop": again,
            "message": f"Running the {loop.failed} failed items again.",
        }
    )


def continue_step(status: ExecutionStatus, name: str) -> ExecutionStatus:
    """The status with step `name` no longer waiting for koos.io/continue."""
    steps = [
        s.model_copy(update={"awaiting_continue": None, "reason": "Continued", "message": None})
        if s.name == name and s.awaiting_continue
        else s
        for s in status.steps or []
    ]
    return status.model_copy(update={"steps": steps})


def counts(loop: LoopStatus) -> str:
    return (
        f"{loop.succeeded} succeeded, {loop.failed} failed, {loop.running} running, "
        f"{loop.pending} pending of {loop.total} items"
    )


def failures_text(failures: list[ItemFailure]) -> str:
    return "; ".join(f"#{f.index} ({f.item}): {f.message}" for f in failures[:3])
