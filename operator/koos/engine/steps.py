"""Step progression: what each step does next, given its record, its Job and `now`.

`advance` walks the main steps, then (once every main step has settled) the finally steps,
until nothing changes, so a step that finishes and the step it unblocks are decided in the
same pass (one status write, one Job created); it visits a step again only when something
its visit reads has changed, so a pass costs time linear in the number of steps
(`_Progress`). Each step goes Pending → Running → Succeeded | Failed | Skipped | Cancelled;
a failed attempt with retries left stays Running with a retryTime, and every attempt is a
new Job.

This module holds the pass itself: dispatch of Pending and Running steps, `when`, sleep steps,
cancellation and aborts, stray Jobs, and the pass's one Event.

Nothing a step produced is lost: a step settles on its Job only when the Pods of that Job
were read (`JobFacts.pods_read`; `outcome_jobs` tells the k8s layer which Jobs a pass may
settle on, so it reads their Pods), and only live Jobs no step will wait on are deleted
(`_delete_strays`; a Job whose status write was lost is adopted by its step, not deleted).
A Job name taken by a Job that is not this Execution's (one left by an earlier Execution of
the same name) fails the step that needs it, saying which Job to delete; one that is being
deleted is waited for. Run steps live in
`koos.engine.run_step`, loop steps (a run step with `loop`) in `koos.engine.loop`, approve
steps in `koos.engine.approve_step`, and the pass's working
state (`Pass`, `context`) in `koos.engine.progress`; their public names are
re-exported here.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from koos.api.constants import LABEL_EXECUTION
from koos.api.execution import ExecutionStatus, StepStatus
from koos.api.template import Step, TemplateSpec
from koos.engine import expressions, loop
from koos.engine.approve_step import ask, awaiting
from koos.engine.command import is_failure_paused
from koos.engine.durations import parse_duration
from koos.engine.facts import EventSpec, ExecutionSnapshot, JobFacts, Plan
from koos.engine.jobs import job_name, label_value
from koos.engine.pause import debug_pause, failure_paused
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
from koos.engine.value_limits import value_problem

__all__ = [
    "MESSAGE_LIMIT",
    "SETTLED",
    "TIMEOUT_GRACE",
    "advance",
    "context",
    "failure",
    "is_finished",
    "outcome_jobs",
    "parse_output",
]

# How often a step whose Job name is held by a Job being deleted (an earlier Execution's,
# which may have no owner left to send its deletion our way) looks again.
FOREIGN_RECHECK = timedelta(seconds=5)


def advance(snapshot: ExecutionSnapshot, status: ExecutionStatus, now: datetime) -> Plan:
    assert status.template is not None
    spec = status.template.spec
    records = {s.name: s for s in status.steps or []}
    mode = snapshot.spec.mode if snapshot.spec is not None else "Automatic"
    work = Pass(snapshot, now, records, bool(status.cancel_requested), mode=mode)
    _Progress(work, spec).run()
    _delete_strays(work)
    ordered = [work.records[s.name] for s in spec.all_steps()]
    return Plan(
        status=status.model_copy(update={"steps": ordered}),
        create_jobs=tuple(work.creates),
        delete_jobs=tuple(work.deletes),
        release_jobs=tuple(dict.fromkeys(work.releases)),
        create_approvals=tuple(work.approvals),
        cancel_approvals=tuple(work.withdrawn),
        event=_event(work.notes),
        wake_at=min(work.wakes) if work.wakes else None,
    )


def _delete_strays(work: Pass) -> None:
    """A live Job no step will wait on must not run on: delete it. That is one of a settled
    step (cancelled, skipped, or finished otherwise after its status write was lost), an
    attempt other than its step's current one, or one no step knows. A Pending step's Job
    is kept: its create landed but the status write after it did not, and the step adopts
    it when it starts. The k8s layer deletes only after a fresh read shows it still live."""
    wanted = {r.job_name for r in work.records.values() if r.phase == "Running"}
    for record in work.records.values():
        wanted |= loop.live_jobs(work.snapshot.name, record).keys()
    created = {j["metadata"]["name"] for j in work.creates}
    candidates = [
        name
        for name, job in sorted(work.snapshot.jobs.items())
        if job.phase == "Active"
        and not job.deleting
        and not job.foreign
        and name not in wanted | created
        and name not in work.deletes
    ]
    if not candidates:
        return  # the usual pass: every live Job is a running step's
    owners: dict[str, tuple[StepStatus, int]] = {}
    for record in work.records.values():
        for attempt in range(1, record.attempt + 2):
            owners[job_name(work.snapshot.name, record.name, attempt)] = (record, attempt)
    for name in candidates:
        owner = owners.get(name)
        adoptable = owner is not None and (
            owner[0].phase == "Pending"
            or (owner[0].retry_time is not None and owner[1] == owner[0].attempt + 1)
        )
        if not adoptable:
            work.deletes.append(name)


def outcome_jobs(
    execution: str, status: ExecutionStatus, spec: TemplateSpec | None
) -> dict[str, str]:
    """The Jobs whose outcome a pass may settle a step on (Job name -> step name), so the
    k8s layer reads their Pods (and the Secret values to mask in their text) once they have
    ended: a running step's current Job, and the Job that a pending step, or a step whose
    retry is due, would launch. That one exists already when the status write after its
    create was lost; the step adopts it, and must read its output. `spec` is the template
    when the run has not started yet."""
    if status.template is not None:
        spec = status.template.spec
    if spec is None:
        return {}
    records = {r.name: r for r in status.steps or []}
    names: dict[str, str] = {}
    for step in spec.all_steps():
        if step.run is None:
            continue
        record = records.get(step.name)
        if step.loop is not None:
            if record is not None:
                names.update(loop.live_jobs(execution, record))
            continue
        if record is None or record.phase == "Pending":
            names[job_name(execution, step.name, (record.attempt if record else 0) + 1)] = step.name
        elif record.phase == "Running" and record.retry_time is not None:
            names[job_name(execution, step.name, record.attempt + 1)] = step.name
        elif record.phase == "Running" and record.job_name:
            names[record.job_name] = step.name
    return names


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
                awaiting_continue=None,
                completion_time=rfc3339(work.now),
                message="Not run: the execution was cancelled."
                if stop_reason == "Cancelled"
                else "Not run: an earlier step failed.",
            )
            return
        if any(work.records[d].phase not in SETTLED for d in deps):
            return
        if work.paused:
            return  # a failed step holds the run (FailurePause): nothing new starts
        _start(work, step)
    elif is_failure_paused(record):
        failure_paused(work, step, record, cancelled=stopping and stop_reason == "Cancelled")
    elif record.phase == "Running" and step.loop is not None:
        if record.loop is None:  # not a record koos wrote: nothing says which items ran
            fail(work, step, "InternalError", "the loop's record of its items is missing")
        elif stopping and stop_reason == "Cancelled":
            loop.cancel(work, step, record)
        else:
            loop.running(work, step, record, lambda: _live_context(work))
    elif record.phase == "Running":
        job = work.snapshot.jobs.get(record.job_name or "")
        if job is not None and job.foreign and record.retry_time is None:
            _name_taken(work, step, job)  # our Job was replaced by someone else's
            return
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
        elif record.retry_time is not None:
            if not _next_job_blocked(work, step, record):
                running(work, step, record)
        elif finished and job is not None and not job.pods_read:
            # Ended, but its output and exit code were not read with it: settle on the
            # next pass, which reads them (the status now names the Job as running).
            work.wakes.append(work.now)
        else:
            running(work, step, record)


def _next_job_blocked(work: Pass, step: Step, record: StepStatus) -> bool:
    """Whether the due retry of `step` cannot launch its Job, whose name a foreign Job
    holds (then the step waits for it to go, or fails saying which Job to delete)."""
    assert record.retry_time is not None
    if work.now < parse_rfc3339(record.retry_time):
        return False
    return _blocked(work, step, record.attempt + 1)


def _blocked(work: Pass, step: Step, attempt: int) -> bool:
    if step.run is None:
        return False
    taken = work.snapshot.jobs.get(job_name(work.snapshot.name, step.name, attempt))
    if taken is None or not taken.foreign:
        return False
    if taken.deleting:
        work.wakes.append(work.now + FOREIGN_RECHECK)
    else:
        _name_taken(work, step, taken)
    return True


def _name_taken(work: Pass, step: Step, job: JobFacts) -> None:
    snapshot = work.snapshot
    selector = f"{LABEL_EXECUTION}={label_value(snapshot.name)}"
    work.creates[:] = [m for m in work.creates if m["metadata"]["name"] != job.name]
    fail(
        work,
        step,
        "JobNameTaken",
        f"Job {job.name} exists and is not this Execution's: an earlier Execution named "
        f"{snapshot.name} left it (deleted with --cascade=orphan?). Delete the Jobs it left "
        f"(kubectl delete jobs -n {snapshot.namespace} -l {selector}), then delete and "
        "re-create this Execution.",
    )


def _start(work: Pass, step: Step) -> None:
    ctx = _live_context(work)
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
    if debug_pause(work, step):
        return
    record = work.records[step.name]
    # Attempts go on counting across koos.io/retry and koos.io/rerun-from: Job names never
    # repeat (an earlier attempt's Job may still exist).
    attempt = record.attempt + 1
    if step.loop is None and _blocked(work, step, attempt):
        return
    work.set(
        step.name,
        phase="Running",
        start_time=rfc3339(work.now),
        reason="Started",
        message=None,
        awaiting_continue=None,
    )
    if step.sleep is not None:
        _sleeping(work, step, work.records[step.name])
        return
    if step.approve is not None:
        ask(work, step, ctx)
        return
    if step.loop is not None:
        loop.start(work, step, lambda: _live_context(work))
        return
    launch(work, step, attempt, ctx)


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


class _Progress:
    """One pass's walk over the steps, in time linear in their number (issue 10, item 10).

    It decides exactly what visiting every step again and again until nothing changes
    would: rounds visit main steps (Running ones first, then in list order), then — once
    every main step has settled — the finally steps in list order. A visit depends only on
    the step's record, its dependencies' records, cancel and abort (and, for finally steps,
    whether the main steps have settled), so only steps for which one of these changed are
    visited again: the step itself and its dependents (still in this round when they come
    later in its order, else in the next), and every Pending main step once an Abort step
    fails. Abort and "main settled" are kept as running counts, not rescanned per step.
    """

    def __init__(self, work: Pass, spec: TemplateSpec) -> None:
        self.work = work
        self.main = list(spec.steps)
        self.final = list(spec.finally_ or [])
        self.deps = effective_dependencies(spec)
        self.dependents: dict[str, list[str]] = {name: [] for name in self.deps}
        for name, needed in self.deps.items():
            for dependency in needed:
                self.dependents.setdefault(dependency, []).append(name)
        self.index = {s.name: i for i, s in enumerate(self.main)}
        self.index.update({s.name: i for i, s in enumerate(self.final)})
        self.aborted = any(
            s.on_error == "Abort" and work.records[s.name].phase == "Failed" for s in self.main
        )
        self.unsettled = sum(1 for s in self.main if work.records[s.name].phase not in SETTLED)

    def run(self) -> None:
        main_dirty = set(range(len(self.main)))
        final_dirty = set(range(len(self.final)))
        while main_dirty or (self.unsettled == 0 and final_dirty):
            settled_before = self.unsettled == 0
            main_dirty = self._round(self.main, main_dirty, final=False)
            if self.unsettled == 0:
                if not settled_before:
                    final_dirty = set(range(len(self.final)))
                final_dirty = self._round(self.final, final_dirty, final=True)

    def _rank(self, steps: list[Step], i: int, final: bool) -> tuple[int, int]:
        if final:
            return (0, i)
        return (self.work.records[steps[i].name].phase != "Running", i)

    def _round(self, steps: list[Step], dirty: set[int], *, final: bool) -> set[int]:
        """Visit the `dirty` steps of one list in this round's order; the steps to visit
        in the next round."""
        heap = [self._rank(steps, i, final) for i in dirty]
        heapq.heapify(heap)
        visited: set[int] = set()
        later: set[int] = set()
        while heap:
            key = heapq.heappop(heap)
            i = key[1]
            if i in visited:
                continue
            visited.add(i)
            woken = self._visit(steps[i], final)

            def wake(j: int, key: tuple[int, int] = key) -> None:
                rank = self._rank(steps, j, final)
                if j not in visited and rank > key:
                    heapq.heappush(heap, rank)
                else:
                    later.add(j)

            for j in woken:
                wake(j)
        return later

    def _visit(self, step: Step, final: bool) -> list[int]:
        """Visit `step`; the indexes of the steps of its list to visit again."""
        work = self.work
        before = work.records[step.name]
        stopping = not final and (work.cancel or self.aborted)
        try:
            _step(
                work,
                step,
                self.deps[step.name],
                stopping=stopping,
                stop_reason="Cancelled" if work.cancel else "Aborted",
            )
        except RecursionError:
            # Data nested too deeply for Python to walk (an output of ~1,000 levels fits in
            # 4 KiB); the step fails saying so rather than the whole pass raising.
            fail(
                work,
                step,
                "InvalidOutput",
                "a value of this step is nested too deeply to read: write a flatter output",
            )
            work.set(step.name, outputs=None)
        after = work.records[step.name]
        if after is before or after == before:
            return []
        if after.outputs is not before.outputs and after.phase == "Succeeded":
            _check_outputs(work, step)
            after = work.records[step.name]
        woken = [self.index[step.name]]
        woken += [self.index[name] for name in self.dependents.get(step.name, [])]
        if not final:
            if before.phase not in SETTLED and after.phase in SETTLED:
                self.unsettled -= 1
            if not self.aborted and step.on_error == "Abort" and after.phase == "Failed":
                self.aborted = True
                woken += [
                    i for i, s in enumerate(self.main) if work.records[s.name].phase == "Pending"
                ]
        return woken


def _check_outputs(work: Pass, step: Step) -> None:
    """A step's outputs nested too deeply (or holding numbers out of bounds) would break
    every walk of the status; the step fails instead, saying why."""
    record = work.records[step.name]
    problem = value_problem(record.outputs or {})
    if problem is None:
        return
    fail(work, step, "InvalidOutput", f"the step's output {problem}: write a flatter object")
    work.set(step.name, outputs=None)


def _live_context(work: Pass) -> dict[str, Any]:
    """What expressions see (as `context` builds it), reading step records live from the
    pass: building it costs nothing per step, however many steps the run has."""
    status = work.snapshot.status
    assert status.template is not None
    secret = {n for n, p in status.template.spec.parameters.items() if p.secret}
    params = {k: v for k, v in (status.parameters or {}).items() if k not in secret}
    return {
        "params": params,
        "steps": _StepsView(work.records),
        "execution": {"name": work.snapshot.name, "namespace": work.snapshot.namespace},
    }


class _StepsView(Mapping[str, Any]):
    """`steps.<name>.outputs` and `steps.<name>.phase`, read from the records on access."""

    def __init__(self, records: dict[str, StepStatus]) -> None:
        self._records = records

    def __getitem__(self, name: str) -> dict[str, Any]:
        record = self._records[name]
        return {"outputs": dict(record.outputs or {}), "phase": record.phase}

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)
