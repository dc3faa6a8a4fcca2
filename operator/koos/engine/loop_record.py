"""A loop step's record: which Jobs it names, and the changes commands make to it.

Pure functions of a `StepStatus`, shared by the planner (`koos.engine.loop_pass`), the k8s
layer (which Jobs to read) and the run commands (`koos.engine.command`):
`retry_failed_items` sends a failed loop's failed items to run again (koos.io/retry in mode
FailurePause). koos.io/continue needs nothing of a loop's own: the command clears the step's
`awaitingContinue`, and the next pass starts the next batch.

Rounds: a loop step's `attempt` counts the rounds it has started (the first is 1) and
`loop.round` is that count less one; round r gives its items the attempts
r * (retries.limit + 1) + 1 onwards, so no round, and no run of the step after a
koos.io/rerun-from (which keeps `attempt`), reuses a Job name of an earlier one.
"""

from __future__ import annotations

from koos.api.execution import ItemFailure, LoopStatus, StepStatus
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
            "attempt": record.attempt + 1,
            "reason": "RetryingFailedItems",
            "completion_time": None,
            "retry_time": None,
            "loop": again,
            "message": f"Running the {loop.failed} failed items again.",
        }
    )


def counts(loop: LoopStatus) -> str:
    return (
        f"{loop.succeeded} succeeded, {loop.failed} failed, {loop.running} running, "
        f"{loop.pending} pending of {loop.total} items"
    )


def failures_text(failures: list[ItemFailure]) -> str:
    return "; ".join(f"#{f.index} ({f.item}): {f.message}" for f in failures[:3])
