"""Loop steps: one Job per item and attempt, rate control, batches, and a status that stays
small whatever the number of items.

A loop step resolves its items and rate control when it starts (`koos.engine.loop_settings`;
a problem fails the step, reason InvalidSpec; no items: it succeeds at once and says so).
Each pass then (`running`):

1. adopts the Jobs of items the status does not know to be in flight (their create landed,
   the status write after it did not), so no item runs twice;
2. settles the items in flight whose Job ended (its Pods read): the outputs go into the
   step's `outputs`, one list per key in item order; a failure goes to the item's retry
   policy, then into `failedIndexes` with the tail of its log;
3. releases (deletes, after the status write: `Plan.release_jobs`) every ended Job whose
   outcome the status records; new items start only while the Jobs not yet deleted stay
   within `concurrency` + `LIVE_SLACK`, so a wave of items that end frees its slots on the
   pass after their release;
4. starts the next pending items in list order, up to `concurrency` in flight, batch by
   batch (`batchSize`; a batch starts once the previous one has settled, and `pause` waits
   for `koos.io/continue=<step>` at the boundary: `awaitingContinue`), unless more items
   failed than `maxErrors` allows or the collected outputs passed `OUTPUTS_LIMIT` (then
   items in flight finish and the step fails: TooManyErrors, OutputsTooLarge);
5. settles the step once nothing is in flight and nothing more may start.

Invariants: the status holds counts, the succeeded and the failed indexes as disjoint
ranges (`koos.engine.index_set`), a record per item in flight only (at most
`concurrency`), and the first `FAILURES_KEPT` failures: its size does not grow with the
items but with the runs of consecutive failures. A Job's name is fixed by its item and
attempt (`jobs.job_name`); attempts go on counting across rounds (`retry_failed_items`
starts a round, and so does every start of the step, a rerun's included), so a retried or
rerun item never meets an old Job. Items are rendered again from
the sealed template and the settled steps when needed, never stored.

This module starts, runs and cancels a loop step; one pass's work is
`koos.engine.loop_pass`, the record's pure functions (and koos.io/retry's change to it,
`retry_failed_items`) `koos.engine.loop_record`. The run commands themselves are
`koos.engine.command`'s, as for every step.
"""

from __future__ import annotations

from koos.api.execution import LoopStatus, StepStatus
from koos.api.template import Step
from koos.engine.loop_pass import FAILURES_KEPT, LIVE_SLACK, Context, LoopPass
from koos.engine.loop_record import (
    counts,
    live_jobs,
    retry_failed_items,
    running_jobs,
)
from koos.engine.loop_settings import resolve, resolve_items
from koos.engine.progress import Pass, fail
from koos.engine.timefmt import rfc3339

__all__ = [
    "FAILURES_KEPT",
    "LIVE_SLACK",
    "cancel",
    "live_jobs",
    "retry_failed_items",
    "running",
    "running_jobs",
    "start",
]


def start(work: Pass, step: Step, context: Context) -> None:
    """The step has just gone Running: resolve its items and rate control, then start."""
    assert step.loop is not None
    ctx = context()
    items = resolve_items(step.loop, ctx)
    if isinstance(items, str):
        fail(work, step, "InvalidSpec", items)
        return
    settings = resolve(step.loop, len(items), ctx)
    if isinstance(settings, str):
        fail(work, step, "InvalidSpec", settings)
        return
    if not items:
        work.set(
            step.name,
            phase="Succeeded",
            reason="NoItems",
            completion_time=rfc3339(work.now),
            loop=LoopStatus(total=0, concurrency=settings.concurrency),
            message="The loop has no items: nothing ran.",
        )
        work.note("Normal", "StepSucceeded", f"step {step.name} succeeded (no items)")
        return
    # A step started again (koos.io/retry of a loop that failed otherwise than by its
    # items, koos.io/rerun-from) goes on from the rounds it ran: its Jobs' names are new.
    rounds = work.records[step.name].attempt
    loop = LoopStatus(
        total=len(items),
        pending=len(items),
        concurrency=settings.concurrency,
        max_errors=settings.max_errors,
        batch_size=settings.batch_size,
        round=rounds,
    )
    work.set(step.name, loop=loop, attempt=rounds + 1)
    LoopPass(work, step, work.records[step.name], context, items).run()


def running(work: Pass, step: Step, record: StepStatus, context: Context) -> None:
    LoopPass(work, step, record, context).run()


def cancel(work: Pass, step: Step, record: StepStatus) -> None:
    """koos.io/cancel: delete the items' live Jobs, release the ended ones, stop the step."""
    state = LoopPass(work, step, record, dict)
    for key in sorted(state.jobs):
        fact = state.jobs[key]
        if fact.deleting:
            continue
        (work.deletes if fact.phase == "Active" else work.releases).append(fact.name)
    loop = state.status(active={})
    work.set(
        step.name,
        phase="Cancelled",
        reason="Cancelled",
        completion_time=rfc3339(work.now),
        awaiting_continue=None,
        loop=loop,
        message=f"Cancelled while running: {counts(loop)}.",
    )
    work.note("Warning", "StepCancelled", f"step {step.name} cancelled")
