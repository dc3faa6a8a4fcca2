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


def waiting_for_a_person(execution: str, records: Sequence[StepStatus]) -> tuple[str, str] | None:
    """What the run says (message, reason) while a step waits for a command, if one does."""
    failed = [s for s in records if is_failure_paused(s)]
    if failed:
        first = failed[0].name
        return (
            f"Step {first} failed and the run is paused: kubectl annotate exe {execution} "
            f"koos.io/retry={first} (or koos.io/skip={first}, or koos.io/cancel=true).",
            AWAITING_FAILURE_DECISION,
        )
    held = [s for s in records if s.awaiting_continue]
    if held:
        lines = [f"kubectl annotate exe {execution} koos.io/continue={s.name}" for s in held]
        text = "; ".join(lines)
        return f"Waiting for {text}", AWAITING_CONTINUE
    return None
