"""One pass over one running loop step (`LoopPass`): adopt, settle, release, start, write.

See `koos.engine.loop` for what a pass does and the invariants it keeps. A `LoopPass` reads
the step's record (item sets parsed from their ranges) and the Jobs of its items in the
snapshot, records into the planner's `Pass`, and never outlives the call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from koos.api.execution import ItemFailure, LoopItem, LoopStatus, StepStatus
from koos.api.template import Loop, Step
from koos.engine import expressions, pod_start
from koos.engine.command import is_failure_paused
from koos.engine.durations import backoff_delay, format_duration, parse_duration
from koos.engine.facts import JobFacts
from koos.engine.index_set import format_ranges, parse_ranges
from koos.engine.jobs import JobRequest, build_job, job_name
from koos.engine.loop_record import counts, failures_text
from koos.engine.loop_settings import OUTPUTS_LIMIT, resolve_items
from koos.engine.masking import Masker
from koos.engine.progress import Pass, fail, short, tail
from koos.engine.run_step import TIMEOUT_GRACE, parse_output, pod_text, render_run
from koos.engine.timefmt import parse_rfc3339, rfc3339

FAILURES_KEPT = 5
LIVE_SLACK = 5  # ended Jobs awaiting deletion allowed beside the `concurrency` live ones
ITEM_SHOWN = 100  # characters of an item in a failure record
FAILURE_TAIL = 300  # characters of a failed item's message (the end of its log)
_NULL = len("null,")  # what an item without a value adds to a collected list

Context = Callable[[], dict[str, Any]]


@dataclass
class LoopPass:
    """One pass's view of one loop step: its item sets, as read from its record, and the
    Jobs of its items in the snapshot."""

    work: Pass
    step: Step
    record: StepStatus
    context: Context
    items: list[Any] | None = None
    completed: set[int] = field(init=False)
    failed: set[int] = field(init=False)
    active: dict[int, LoopItem] = field(init=False)
    failures: list[ItemFailure] = field(init=False)
    outputs: dict[str, list[Any]] = field(init=False)
    jobs: dict[tuple[int, int], JobFacts] = field(init=False)
    stopped: str | None = field(init=False)

    def __post_init__(self) -> None:
        loop = self.record.loop
        assert loop is not None
        self.loop = loop
        self.completed = parse_ranges(loop.completed_indexes, loop.total)
        self.failed = parse_ranges(loop.failed_indexes, loop.total)
        self.active = {e.index: e for e in loop.active or []}
        self.failures = list(loop.failures or [])
        self.outputs = {k: list(v) for k, v in (self.record.outputs or {}).items()}
        self.stopped = loop.stopped
        self.paused_now = loop.paused_batch
        self.blocked: tuple[int, JobFacts, datetime] | None = None
        self.limit = self.step.retries.limit if self.step.retries is not None else 0
        self.base = loop.round * (self.limit + 1)  # attempts of earlier rounds
        self.jobs = {
            (f.index, f.attempt): f
            for f in self.work.snapshot.jobs.values()
            if f.step == self.step.name
            and f.index is not None
            and f.attempt is not None
            and not f.foreign
        }

    @property
    def loop_spec(self) -> Loop:
        assert self.step.loop is not None
        return self.step.loop

    # -- the pass ------------------------------------------------------------------------

    def run(self) -> None:
        self._adopt()
        for index in sorted(self.active):
            self._settle(index)
        self._release()
        waiting = self._start_items()
        if self._ended():
            # A launch failed the step: its record says why (FailurePause may hold it), and
            # gets the counts only.
            self.work.set(self.step.name, loop=self.status())
            return
        self._write(waiting)

    def _ended(self) -> bool:
        """Whether the step failed in this pass (Failed, or held by FailurePause)."""
        record = self.work.records[self.step.name]
        return record.phase != "Running" or is_failure_paused(record)

    def _adopt(self) -> None:
        """Jobs of this round for items not known to be in flight: their status write was
        lost. They are in flight now (and settle below if they have ended)."""
        for index, attempt in sorted(self.jobs):
            if (
                index < self.loop.total
                and attempt > self.base
                and index not in self.completed | self.failed
                and (index not in self.active or self.active[index].attempt < attempt)
            ):
                self.active[index] = LoopItem(index=index, attempt=attempt)

    def _settle(self, index: int) -> None:
        entry = self.active[index]
        work = self.work
        if entry.retry_time is not None:
            due = parse_rfc3339(entry.retry_time)
            if self.stopped is not None:
                self._failed(index, "NotRetried", "not retried: the loop stopped starting items")
            elif work.now >= due:
                self._launch(index, entry.attempt + 1)
            else:
                work.wakes.append(due)
            return
        name = job_name(work.snapshot.name, self.step.name, entry.attempt, index)
        fact = work.snapshot.jobs.get(name)
        if fact is None:
            if any(m["metadata"]["name"] == name for m in work.creates):
                return
            self._attempt_failed(index, "JobLost", f"Job {name} disappeared before it finished")
            return
        if fact.foreign:
            self._failed(index, "JobNameTaken", f"Job {name} exists and is not this run's")
            return
        if fact.phase == "Active":
            if not self._watch_start(index, fact):
                self._watch_timeout(index, fact)
        elif not fact.pods_read:
            work.wakes.append(work.now)  # its output is read on the next pass
        elif fact.phase == "Succeeded":
            self._succeeded(index, fact)
        else:
            reason = "TimedOut" if fact.reason == "DeadlineExceeded" else "Failed"
            detail = fact.disrupted or pod_text(fact) or fact.reason or "the Job failed"
            if fact.exit_code is not None and not fact.disrupted:
                detail = f"exit code {fact.exit_code}: {detail}"
            self._attempt_failed(index, reason, detail)

    def _watch_start(self, index: int, fact: JobFacts) -> bool:
        """As for a run step (`koos.engine.pod_start`): an item whose Pod has not started
        within the step's start timeout fails its attempt (NotStarted); meanwhile the first
        item whose Pod waits for a person shows in the step's reason and message. True when
        the attempt failed."""
        if fact.created is None or fact.deleting or pod_start.has_started(fact):
            return False
        work = self.work
        limit = pod_start.start_timeout(self.step)
        deadline = fact.created + limit
        if work.now >= deadline and fact.probed:
            work.deletes.append(fact.name)
            self._attempt_failed(
                index,
                "NotStarted",
                f"its Pod did not start within {format_duration(limit)}: "
                f"{pod_start.waiting_for(fact)}",
            )
            return True
        if fact.waiting_reason in pod_start.NEEDS_A_PERSON and self.blocked is None:
            self.blocked = (index, fact, deadline)
        probe = pod_start.next_probe(fact.created, work.now)
        work.wakes.append(probe if work.now >= deadline else min(probe, deadline))
        return False

    def _watch_timeout(self, index: int, fact: JobFacts) -> None:
        if not self.step.timeout or fact.created is None:
            return
        limit = fact.created + parse_duration(self.step.timeout) + TIMEOUT_GRACE
        if self.work.now >= limit:
            self.work.deletes.append(fact.name)
            self._attempt_failed(index, "TimedOut", f"ran longer than {self.step.timeout}")
        else:
            self.work.wakes.append(limit)

    def _succeeded(self, index: int, fact: JobFacts) -> None:
        if fact.secrets_unread and fact.message.strip():
            self._failed(index, "OutputWithheld", f"the output is withheld: {fact.secrets_unread}")
            return
        masker = Masker(fact.secrets)
        values, problem = parse_output(fact.message, masker.text)
        if problem is not None:
            self._failed(index, problem[0], problem[1])
            return
        del self.active[index]
        self.completed.add(index)
        if self.loop_spec.collect_outputs and values and self.stopped != "OutputsTooLarge":
            self._collect(index, masker.value(values))

    def _collect(self, index: int, values: dict[str, Any]) -> None:
        for key, value in values.items():
            column = self.outputs.setdefault(key, [])
            if len(column) <= index:
                column.extend([None] * (index + 1 - len(column)))
            column[index] = value
        if self._outputs_size() > OUTPUTS_LIMIT:
            self.outputs = {}
            self.stopped = "OutputsTooLarge"

    def _outputs_size(self) -> int:
        """The collected outputs as they will be at the end (every list `total` long)."""
        text = json.dumps(self.outputs, separators=(",", ":"), ensure_ascii=False)
        missing = sum(self.loop.total - len(column) for column in self.outputs.values())
        return len(text.encode()) + missing * _NULL

    def _attempt_failed(self, index: int, reason: str, detail: str) -> None:
        entry = self.active[index]
        if entry.attempt - self.base <= self.limit and self.stopped is None:
            retries = self.step.retries
            assert retries is not None
            delay = backoff_delay(
                parse_duration(retries.backoff),
                retries.factor,
                entry.attempt - self.base,
                parse_duration(retries.max_backoff),
            )
            due = self.work.now + delay
            self.active[index] = entry.model_copy(update={"retry_time": rfc3339(due)})
            self.work.wakes.append(due)
            return
        self._failed(index, reason, detail)

    def _failed(self, index: int, reason: str, detail: str) -> None:
        self.active.pop(index, None)
        self.failed.add(index)
        if len(self.failures) < FAILURES_KEPT:
            self.failures.append(
                ItemFailure(
                    index=index,
                    item=short(self._item_text(index), ITEM_SHOWN),
                    message=tail(f"{reason}: {detail}", FAILURE_TAIL),
                )
            )
        if len(self.failed) > self.loop.max_errors and self.stopped is None:
            self.stopped = "TooManyErrors"

    def _item_text(self, index: int) -> str:
        items = self._items()
        if items is None or index >= len(items):
            return "?"
        item = items[index]
        return item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)

    def _items(self) -> list[Any] | None:
        if self.items is None:
            found = resolve_items(self.loop_spec, self.context())
            self.items = found if isinstance(found, list) else None
        return self.items

    def _release(self) -> None:
        """Ended Jobs whose outcome the status (as this pass writes it) records: a settled
        item's, an earlier round's or attempt's, and a failed attempt's whose retry is
        scheduled. An ended Job of an attempt in flight is kept until it is settled."""
        settled = self.completed | self.failed
        for index, attempt in sorted(self.jobs):
            fact = self.jobs[(index, attempt)]
            if fact.phase == "Active" or fact.deleting or fact.name in self.work.releases:
                continue
            entry = self.active.get(index)
            if entry is None:
                recorded = index in settled or attempt <= self.base
            else:
                recorded = attempt < entry.attempt or entry.retry_time is not None
            if recorded:
                self.work.releases.append(fact.name)

    # -- starting items ------------------------------------------------------------------

    def _start_items(self) -> bool:
        """Start what may start now; True when the loop waits for koos.io/continue."""
        if self.stopped is not None or self.record.awaiting_continue:
            return bool(self.record.awaiting_continue)
        # Ended Jobs not deleted yet (those released by this pass go after its status write)
        # still count: live Jobs stay within concurrency + LIVE_SLACK.
        lingering = sum(1 for f in self.jobs.values() if f.phase != "Active" and not f.deleting)
        slots = min(
            self.loop.concurrency - len(self.active),
            self.loop.concurrency + LIVE_SLACK - len(self.active) - lingering,
        )
        if slots <= 0:
            return False
        settled = self.completed | self.failed
        first_open = next((i for i in range(self.loop.total) if i not in settled), None)
        if first_open is None:
            return False
        end = self.loop.total
        size = self.loop.batch_size
        if size:
            batch = first_open // size
            end = min(end, (batch + 1) * size)
            if batch > 0 and self._pauses_after(batch - 1):
                return True
        for index in range(first_open, end):
            if slots == 0:
                break
            if index in settled or index in self.active:
                continue
            self._launch(index, self.base + 1)
            slots -= 1
            if self._ended():
                break
        return False

    def _pauses_after(self, batch: int) -> bool:
        """Whether the boundary after `batch` waits for koos.io/continue (and, the first
        time it is reached, start waiting)."""
        pause = self.loop_spec.pause
        if pause == "None" or (pause == "AfterFirstBatch" and batch != 0):
            return False
        if self.loop.paused_batch is not None and self.loop.paused_batch >= batch:
            return False  # continued already
        if any(i // self.loop.batch_size == batch + 1 for i in self.active):
            return False
        self.paused_now = batch
        return True

    def _launch(self, index: int, attempt: int) -> None:
        items = self._items()
        if items is None or len(items) != self.loop.total:
            fail(
                self.work,
                self.step,
                "InvalidSpec",
                f"loop.items no longer renders to the {self.loop.total} items the loop started "
                "with",
            )
            return
        work, step = self.work, self.step
        ctx = {**self.context(), "item": items[index], "index": index}
        self.active[index] = LoopItem(index=index, attempt=attempt)
        try:
            run = render_run(step, ctx)
        except expressions.ExpressionError as error:
            self._failed(index, "ExpressionFailed", str(error))
            return
        status = work.snapshot.status
        assert status.template is not None
        spec = status.template.spec
        timeout = parse_duration(step.timeout) if step.timeout else None
        request = JobRequest(
            execution=work.snapshot.name,
            namespace=work.snapshot.namespace,
            uid=work.snapshot.uid,
            service_account_name=spec.service_account_name,
            step=step.model_copy(update={"run": run}),
            attempt=attempt,
            parameters=dict(status.parameters or {}),
            secret_names=frozenset(n for n, p in spec.parameters.items() if p.secret),
            deadline_seconds=int(timeout.total_seconds()) if timeout else None,
            index=index,
            item=items[index],
        )
        manifest = build_job(request)
        if work.snapshot.jobs.get(manifest["metadata"]["name"]) is None:
            work.creates.append(manifest)
        elif work.snapshot.jobs[manifest["metadata"]["name"]].foreign:
            self._failed(index, "JobNameTaken", f"Job {manifest['metadata']['name']} is not ours")
            return
        if timeout is not None:
            work.wakes.append(work.now + timeout + TIMEOUT_GRACE)

    # -- the record ----------------------------------------------------------------------

    def status(self, active: dict[int, LoopItem] | None = None) -> LoopStatus:
        active = self.active if active is None else active
        done = len(self.completed) + len(self.failed)
        return self.loop.model_copy(
            update={
                "succeeded": len(self.completed),
                "failed": len(self.failed),
                "running": len(active),
                "pending": self.loop.total - done - len(active),
                "completed_indexes": format_ranges(self.completed),
                "failed_indexes": format_ranges(self.failed),
                "active": [active[i] for i in sorted(active)] or None,
                "failures": self.failures or None,
                "stopped": self.stopped,
                "paused_batch": self.paused_now,
            }
        )

    def _write(self, waiting: bool) -> None:
        work, step = self.work, self.step
        loop = self.status()
        update: dict[str, Any] = {"loop": loop}
        if self.loop_spec.collect_outputs:
            update["outputs"] = {k: list(v) for k, v in self.outputs.items()} or None
        finished = not self.active and (
            self.stopped is not None or loop.succeeded + loop.failed == loop.total
        )
        if finished:
            self._finish(loop, update)
            return
        if waiting:
            if not self.record.awaiting_continue:
                batch = loop.paused_batch or 0
                update.update(
                    awaiting_continue=True,
                    reason="AwaitingContinue",
                    message=f"Batch {batch + 1} is done ({counts(loop)}): continue with "
                    f"kubectl annotate exe {work.snapshot.name} koos.io/continue={step.name}",
                )
                work.note("Normal", "AwaitingContinue", f"step {step.name} waits for continue")
        elif self.stopped is not None:
            update.update(
                reason=self.stopped,
                message=f"No new item starts ({self.stopped}); waiting for the items in "
                f"flight: {counts(loop)}.",
            )
        elif self.blocked is not None:
            index, fact, deadline = self.blocked
            update.update(
                reason=fact.waiting_reason,
                message=f"waiting: item {index}'s Pod waits for {pod_start.waiting_for(fact)}; "
                f"its attempt fails at {rfc3339(deadline)} unless this is fixed ({counts(loop)})",
            )
            if self.record.reason != fact.waiting_reason:  # one Event, not one per probe
                work.note("Warning", "StepWaiting", f"step {step.name} is {update['message']}")
        else:
            update.update(reason="Running", message=f"{counts(loop)}.")
        work.set(step.name, **update)

    def _finish(self, loop: LoopStatus, update: dict[str, Any]) -> None:
        work, step = self.work, self.step
        if update.get("outputs"):
            update["outputs"] = {
                k: v + [None] * (loop.total - len(v)) for k, v in update["outputs"].items()
            }
        update["loop"] = loop.model_copy(update={"active": None})
        if self.stopped == "OutputsTooLarge":
            work.set(step.name, **{**update, "outputs": None})
            fail(
                work,
                step,
                "OutputsTooLarge",
                f"the items' outputs, collected, would pass {OUTPUTS_LIMIT // 1024} KiB (status "
                "must stay small): write less to $KOOS_OUTPUT, or set loop.collectOutputs: false "
                f"to keep none ({counts(loop)})",
            )
            return
        if self.stopped == "TooManyErrors":
            work.set(step.name, **update)
            fail(
                work,
                step,
                "TooManyErrors",
                f"{loop.failed} of {loop.total} items failed, more than maxErrors "
                f"({loop.max_errors}) allows, so no new item started ({counts(loop)}). "
                f"First failures: {failures_text(self.failures)}",
            )
            return
        tolerated = f" ({loop.failed} failed, within maxErrors {loop.max_errors})"
        work.set(
            step.name,
            **update,
            phase="Succeeded",
            reason="Completed",
            completion_time=rfc3339(work.now),
            message=f"{loop.succeeded} of {loop.total} items succeeded"
            + (tolerated if loop.failed else "")
            + ".",
        )
        work.note("Normal", "StepSucceeded", f"step {step.name} succeeded")
