"""Pauses of a run that wait for a person: Debug's pause before each step, FailurePause's
hold on a failed step, and what the run says while it waits.

- Debug: a step whose dependencies have settled (and whose `when` holds) is not started but
  marked `awaitingContinue` (reason `AwaitingContinue`) until `koos.io/continue=<step>`
  clears the flag (`koos.engine.command`); a run being cancelled does not pause.
- FailurePause: a failed step (`koos.engine.progress.fail`) stays Running with reason
  `AwaitingFailureDecision` and nothing new starts until retry or skip; it ends Failed when
  the run is cancelled, or the mode changed meanwhile.
- The same `awaitingContinue` flag is what a loop step sets at a batch boundary.
"""

from __future__ import annotations

from collections.abc import Sequence

from koos.api.execution import StepStatus
from koos.api.template import Step
from koos.engine.command import AWAITING_CONTINUE, AWAITING_FAILURE_DECISION, is_failure_paused
from koos.engine.progress import Pass
from koos.engine.timefmt import rfc3339


def debug_pause(work: Pass, step: Step) -> bool:
    """Whether `step`, about to start, waits for continue instead (marking it so once)."""
    record = work.records[step.name]
    if work.mode != "Debug" or work.cancel or record.awaiting_continue is False:
        return False
    if record.awaiting_continue is None:
        message = (
            f"Waiting for kubectl annotate exe {work.snapshot.name} koos.io/continue={step.name}"
        )
        work.set(step.name, awaiting_continue=True, reason=AWAITING_CONTINUE, message=message)
        work.note("Normal", AWAITING_CONTINUE, f"step {step.name}: {message}")
    return True


def failure_paused(work: Pass, step: Step, record: StepStatus, *, cancelled: bool) -> None:
    """A failed step holding the run waits for retry or skip; it ends Failed when the run
    is cancelled or no longer in mode FailurePause."""
    if not cancelled and work.mode == "FailurePause":
        return
    work.set(
        step.name,
        phase="Failed",
        reason="Failed",
        completion_time=rfc3339(work.now),
        message=record.message,
    )
    why = "the run was cancelled" if cancelled else f"the mode is now {work.mode}"
    work.note("Warning", "StepFailed", f"step {step.name} failed ({why} while it was paused)")


def waiting_for_a_person(
    execution: str, records: Sequence[StepStatus], approvals: Sequence[str]
) -> list[tuple[str, str]]:
    """What the run says (reason, sentence) for each thing it waits for a person to do, the
    most pressing first: a failed step's decision (FailurePause), the `approvals` pending,
    then each step waiting for continue (Debug before it starts, a loop at a batch boundary).
    Empty when the run waits for nobody."""
    asks: list[tuple[str, str]] = []
    for record in records:
        if is_failure_paused(record):
            name = record.name
            asks.append(
                (
                    AWAITING_FAILURE_DECISION,
                    f"Step {name} failed and the run is paused: kubectl annotate exe "
                    f"{execution} koos.io/retry={name} (or koos.io/skip={name}, or "
                    "koos.io/cancel=true).",
                )
            )
    if approvals:
        lines = [f"kubectl annotate approval {name} koos.io/decision=approve" for name in approvals]
        asks.append(("AwaitingApproval", "Waiting for approval: " + "; ".join(lines)))
    for record in records:
        if not record.awaiting_continue:
            continue
        command = f"kubectl annotate exe {execution} koos.io/continue={record.name}"
        if record.phase == "Pending":
            asks.append(
                (AWAITING_CONTINUE, f"Step {record.name} waits to start (mode Debug): {command}.")
            )
        elif record.loop is not None:
            batch = (record.loop.paused_batch or 0) + 1
            asks.append(
                (
                    AWAITING_CONTINUE,
                    f"Step {record.name} paused after batch {batch} of its items: {command}.",
                )
            )
    return asks
