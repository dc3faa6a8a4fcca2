"""Run commands: `koos.io/continue`, `retry`, `skip` and `rerun-from` (value: a step name),
checked and applied, pure. `koos.io/cancel` is handled by the planner itself.

Who uses this: the admission webhook asks `command_problem` for every command a request
adds (and refuses it with the reason); the planner asks `consume` on every pass, which
applies at most one command (the others wait for the next pass), or refuses it with a
Warning Event when it is not valid now (the webhooks are off, or the run moved on since
admission) and changes nothing else.

What each command does:
- continue=S: S is waiting for `continue` (`awaitingContinue`: Debug pauses before every
  step, a loop with `pause` at a batch boundary); the flag becomes False (continued: a Debug
  pause is not asked again) and S starts, or its loop starts the next batch.
- retry=S (FailurePause): S failed and the run is paused on it (reason
  `AwaitingFailureDecision`); S runs again as a new attempt (a new Job) and gets its whole
  `retries` budget again: `attemptBase` counts the attempts made before the command, and
  `attempt` keeps counting up so that Job names never repeat. A loop step with failed items
  runs only those again, in a new round (`koos.engine.loop_record.retry_failed_items`); one
  that failed otherwise (its settings, OutputsTooLarge) starts again from scratch.
- skip=S (FailurePause): as for retry; S ends Skipped (reason `SkippedByCommand`), and the
  steps after it go on.
- rerun-from=S (a finished run): the run's attempt is kept as a compact record (the last
  `ATTEMPTS_KEPT`), S and every step after it (in template order, finally steps included) go
  back to Pending, the steps before S keep their records and outputs, and the run is Running
  again (a loop step runs all its items again, in a round after its last one). The seal
  (template and parameters) does not change, so it stays valid. A run with an approve step
  cannot be rerun: an approval holds for one attempt, and a rerun would repeat what was
  approved, or run what was rejected, with nobody asked.

Consumed once: applying a step command bumps `status.commandsApplied` in the same status
write that carries its effect, and the removal of the annotation writes that count into the
`koos.io/commands-consumed` annotation. A command seen while the annotation is behind the
status (the operator died between the two writes) is a leftover: it is removed, not applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from koos.api.common import Condition
from koos.api.constants import (
    ANNOTATION_COMMANDS_CONSUMED,
    ANNOTATION_CONTINUE,
    ANNOTATION_RERUN_FROM,
    ANNOTATION_RETRY,
    ANNOTATION_SKIP,
    STEP_COMMANDS,
)
from koos.api.execution import (
    ATTEMPTS_KEPT,
    TERMINAL_PHASES,
    AttemptRecord,
    AttemptStep,
    ExecutionStatus,
    StepStatus,
)
from koos.engine.facts import EventSpec, ExecutionSnapshot
from koos.engine.loop_record import retry_failed_items
from koos.engine.timefmt import rfc3339

AWAITING_CONTINUE = "AwaitingContinue"
AWAITING_FAILURE_DECISION = "AwaitingFailureDecision"
ATTEMPT_OUTPUTS_LIMIT = 4096
ATTEMPT_MESSAGE_LIMIT = 256

REASONS = {
    ANNOTATION_CONTINUE: "CommandContinue",
    ANNOTATION_RETRY: "CommandRetry",
    ANNOTATION_SKIP: "CommandSkip",
    ANNOTATION_RERUN_FROM: "CommandRerunFrom",
}


def sender_annotation(command: str) -> str:
    """Where the admission webhook stamps who sent `command` (koos.io/retry-by, …)."""
    return f"{command}-by"


def is_failure_paused(record: StepStatus) -> bool:
    return record.phase == "Running" and record.reason == AWAITING_FAILURE_DECISION


@dataclass(frozen=True)
class Consumed:
    """What one pass did with the commands on the Execution."""

    status: ExecutionStatus
    remove: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    event: EventSpec | None = None
    more: bool = False  # another command waits for the next pass


def command_problem(
    command: str, step: str, mode: str, status: ExecutionStatus, cancel: bool = False
) -> str | None:
    """Why `command=step` cannot apply to a run in `status` now (None when it can)."""
    shown = f"{command}={step}"
    if status.template is None or not status.steps:
        return f"{shown}: the run has not started; commands apply to a run under way"
    records = {r.name: r for r in status.steps}
    record = records.get(step)
    if record is None:
        names = ", ".join(records)
        return f"{shown}: the run has no step {step!r} (steps: {names})"
    finished = status.phase in TERMINAL_PHASES
    if command == ANNOTATION_RERUN_FROM:
        if not finished:
            return (
                f"{shown}: the run is {status.phase}; rerun-from applies to a finished run "
                "(cancel it first with koos.io/cancel=true)"
            )
        # An approval is for one attempt: re-running steps after a gate would repeat what
        # was approved (or run what was rejected) with nobody asked.
        gates = [s.name for s in status.template.spec.all_steps() if s.approve]
        if gates:
            return (
                f"{shown}: the run has approve step {gates[0]}, and an approval holds for one "
                "attempt: start a new Execution instead"
            )
        return None
    if finished:
        return f"{shown}: the run is {status.phase}; use koos.io/rerun-from to run steps again"
    if cancel:
        return f"{shown}: the run is being cancelled"
    if command == ANNOTATION_CONTINUE:
        if record.awaiting_continue is not True:
            return (
                f"{shown}: step {step} is not waiting for continue (it is {record.phase}; "
                f"mode {mode}: only Debug runs and loop batches pause)"
            )
        return None
    if mode != "FailurePause":
        return f"{shown}: retry and skip apply in mode FailurePause, and this run's is {mode}"
    if not is_failure_paused(record):
        return (
            f"{shown}: step {step} has not failed and paused the run (it is {record.phase}"
            f"{', ' + record.reason if record.reason else ''})"
        )
    return None


def consume(snapshot: ExecutionSnapshot, status: ExecutionStatus, now: datetime) -> Consumed | None:
    """Apply, refuse or drop (a leftover) the first step command on the Execution."""
    present = [k for k in STEP_COMMANDS if k in snapshot.annotations]
    if not present:
        return None
    command = present[0]
    step = str(snapshot.annotations[command])
    sender_key = sender_annotation(command)
    sender = snapshot.annotations.get(sender_key) or "an unverified sender (no admission webhook)"
    remove = (command, sender_key) if sender_key in snapshot.annotations else (command,)
    more = len(present) > 1
    applied = status.commands_applied or 0
    if _consumed_count(snapshot) < applied:
        # Applied by the pass whose removal did not land: remove it, apply nothing.
        return Consumed(status, remove, {ANNOTATION_COMMANDS_CONSUMED: str(applied)}, None, more)
    mode = snapshot.spec.mode if snapshot.spec is not None else "Automatic"
    problem = command_problem(command, step, mode, status, bool(status.cancel_requested))
    if problem is not None:
        message = f"{command}={step} from {sender} was not applied: {problem}."
        return Consumed(status, remove, {}, EventSpec("Warning", "CommandRefused", message), more)
    updated, what = _apply(command, step, status, now)
    updated = updated.model_copy(update={"commands_applied": applied + 1})
    event = EventSpec("Normal", REASONS[command], f"{command}={step} from {sender}: {what}")
    return Consumed(updated, remove, {ANNOTATION_COMMANDS_CONSUMED: str(applied + 1)}, event, more)


def refuse_all(snapshot: ExecutionSnapshot, status: ExecutionStatus, why: str) -> Consumed:
    """Every step command removed unapplied, with one Warning saying `why`."""
    present = [k for k in STEP_COMMANDS if k in snapshot.annotations]
    remove = [*present, *(sender_annotation(k) for k in present)]
    shown = ", ".join(f"{k}={snapshot.annotations[k]}" for k in present)
    message = f"{shown} not applied: {why}"
    return Consumed(
        status,
        tuple(k for k in remove if k in snapshot.annotations),
        {},
        EventSpec("Warning", "CommandRefused", message[:1024]),
    )


def _consumed_count(snapshot: ExecutionSnapshot) -> int:
    text = str(snapshot.annotations.get(ANNOTATION_COMMANDS_CONSUMED, "0"))
    return int(text) if text.isdigit() and len(text) < 10 else 0


def _apply(
    command: str, step: str, status: ExecutionStatus, now: datetime
) -> tuple[ExecutionStatus, str]:
    records = list(status.steps or [])
    index = next(i for i, r in enumerate(records) if r.name == step)
    record = records[index]
    if command == ANNOTATION_RERUN_FROM:
        return _rerun(status, step, now), f"attempt {(status.attempt or 1) + 1} runs from {step}"
    if command == ANNOTATION_CONTINUE:
        records[index] = record.model_copy(
            update={"awaiting_continue": False, "reason": "Continued", "message": None}
        )
        what = f"step {step} goes on"
    elif command == ANNOTATION_SKIP:
        records[index] = record.model_copy(
            update={
                "phase": "Skipped",
                "reason": "SkippedByCommand",
                "retry_time": None,
                "completion_time": rfc3339(now),
                "message": _cut(f"Skipped by koos.io/skip after it failed: {record.message}", 512),
            }
        )
        what = f"step {step} is skipped after its failure; the run goes on"
    else:
        records[index], what = _retried(record, now)
    return status.model_copy(update={"steps": records}), what


def _retried(record: StepStatus, now: datetime) -> tuple[StepStatus, str]:
    """The record of failed step `record` sent to run again (koos.io/retry), and what that
    does. Attempts go on counting, so Job names never repeat (an earlier attempt's Job may
    still exist); the step's `retries` budget counts afresh from `attemptBase`."""
    name = record.name
    if record.loop is not None and record.loop.failed_indexes:
        failed = record.loop.failed
        return retry_failed_items(record), f"step {name} runs its {failed} failed items again"
    if record.loop is not None or record.job_name is None:
        # It failed before its first Job (an expression, the loop's settings), or a loop
        # failed with no failed item (OutputsTooLarge): the step starts again from scratch.
        fresh = StepStatus(
            name=name,
            phase="Pending",
            attempt=record.attempt,
            attempt_base=record.attempt,
            reason="RetryRequested",
        )
        return fresh, f"step {name} starts again"
    update = {
        "attempt_base": record.attempt,
        "message": None,
        "completion_time": None,
        "reason": "RetryRequested",
        "retry_time": rfc3339(now),
    }
    what = f"step {name} runs again (attempt {record.attempt + 1}, retries counted afresh)"
    return record.model_copy(update=update), what


def _rerun_steps(status: ExecutionStatus, step: str) -> set[str]:
    assert status.template is not None
    names = [s.name for s in status.template.spec.all_steps()]
    return set(names[names.index(step) :]) if step in names else set()


def _rerun(status: ExecutionStatus, step: str, now: datetime) -> ExecutionStatus:
    rerun = _rerun_steps(status, step)
    number = status.attempt or 1
    kept = [*(status.attempts or []), attempt_record(status, number)][-ATTEMPTS_KEPT:]
    records = [
        StepStatus(name=r.name, phase="Pending", attempt=r.attempt, attempt_base=r.attempt)
        if r.name in rerun
        else r
        for r in status.steps or []
    ]
    message = f"Attempt {number + 1} of the run, from step {step} (koos.io/rerun-from)."
    return status.model_copy(
        update={
            "phase": "Running",
            "attempt": number + 1,
            "attempts": kept,
            "steps": records,
            "start_time": rfc3339(now),
            "completion_time": None,
            "outputs": None,
            "cancel_requested": None,
            "message": message,
            "conditions": [
                c.model_copy(
                    update={
                        "status": "Unknown",
                        "reason": "Running",
                        "message": message,
                        "last_transition_time": rfc3339(now),
                    }
                )
                for c in status.conditions or []
            ]
            or [
                Condition(
                    type=kind,
                    status="Unknown",
                    last_transition_time=rfc3339(now),
                    reason="Running",
                    message=message,
                )
                for kind in ("Succeeded", "Ready")
            ],
        }
    )


def attempt_record(status: ExecutionStatus, number: int) -> AttemptRecord:
    """The compact, bounded record of the run's attempt as it is in `status`."""
    outputs = status.outputs
    size = len(json.dumps(outputs or {}, separators=(",", ":"), default=str).encode())
    message = _cut(status.message or "", ATTEMPT_MESSAGE_LIMIT) or None
    if outputs and size > ATTEMPT_OUTPUTS_LIMIT:
        outputs = None
        message = _cut(f"{message or ''} (outputs of {size} bytes left out)", 512)
    return AttemptRecord(
        number=number,
        phase=status.phase,
        start_time=status.start_time,
        completion_time=status.completion_time,
        message=message,
        steps=[
            AttemptStep(
                name=r.name,
                phase=r.phase,
                reason=r.reason,
                message=_cut(r.message, ATTEMPT_MESSAGE_LIMIT) if r.message else None,
            )
            for r in status.steps or []
        ],
        outputs=outputs or None,
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
