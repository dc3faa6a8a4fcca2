"""The working state of one step-progression pass, and what the pass yields.

`Pass` is the only mutable thing in the planner: `koos.engine.steps.advance` creates one per
call, the step modules (`steps`, `run_step`, `approve_step`) record into it, and it never
outlives the call. The pass hands back a `Plan` (without commands) to
`koos.engine.execution`.

Invariants: a step's record is replaced, never mutated (`Pass.set` builds a new model), and
every message written into a record is at most `MESSAGE_LIMIT` characters. A step that
settles is in one of `SETTLED` and leaves it no more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from koos.api.execution import ExecutionStatus, StepStatus
from koos.api.template import Step
from koos.engine.command import AWAITING_FAILURE_DECISION, is_failure_paused
from koos.engine.facts import ExecutionSnapshot
from koos.engine.timefmt import rfc3339

SETTLED = ("Succeeded", "Failed", "Skipped", "Cancelled")
MESSAGE_LIMIT = 512


@dataclass
class Pass:
    """Mutable working state of one `advance` call."""

    snapshot: ExecutionSnapshot
    now: datetime
    records: dict[str, StepStatus]
    cancel: bool
    creates: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    releases: list[str] = field(default_factory=list)  # ended Jobs, deleted after the write
    approvals: list[dict[str, Any]] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)  # Approvals whose run was cancelled
    notes: list[tuple[str, str, str]] = field(default_factory=list)  # type, reason, message
    wakes: list[datetime] = field(default_factory=list)
    mode: str = "Automatic"  # the Execution's spec.mode, read on every pass
    # Steps that failed and hold the run (FailurePause) until retry, skip or cancel.
    paused: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.paused = {n for n, r in self.records.items() if is_failure_paused(r)}

    def set(self, name: str, **update: Any) -> None:
        if update.get("message"):
            update["message"] = short(str(update["message"]))
        record = self.records[name].model_copy(update=update)
        self.records[name] = record
        if is_failure_paused(record):
            self.paused.add(name)
        else:
            self.paused.discard(name)

    def note(self, kind: str, reason: str, message: str) -> None:
        self.notes.append((kind, reason, message))


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


def fail(work: Pass, step: Step, reason: str, detail: str) -> None:
    """The step failed: it ends Failed, or (mode FailurePause, a step that is not an approve
    step, a run not being cancelled) it holds the run until retry, skip or cancel."""
    if work.mode == "FailurePause" and not work.cancel and step.approve is None:
        name = work.snapshot.name
        work.set(
            step.name,
            phase="Running",
            reason=AWAITING_FAILURE_DECISION,
            retry_time=None,
            message=f"Failed ({reason}: {short(detail, 300)}). The run is paused: "
            f"kubectl annotate exe {name} koos.io/retry={step.name} "
            f"(or koos.io/skip={step.name}, or koos.io/cancel=true)",
        )
        work.note(
            "Warning",
            "StepFailedPaused",
            f"step {step.name} failed ({reason}): {detail}; the run is paused",
        )
        return
    work.set(
        step.name,
        phase="Failed",
        reason=reason,
        retry_time=None,
        completion_time=rfc3339(work.now),
        message=detail,
    )
    work.note("Warning", "StepFailed", f"step {step.name} failed ({reason}): {detail}")


def short(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tail(text: str, limit: int) -> str:
    """The end of `text` (of a log, where the error usually is), at most `limit` characters."""
    return text if len(text) <= limit else "…" + text[len(text) - limit + 1 :]
