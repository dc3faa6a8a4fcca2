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

    def set(self, name: str, **update: Any) -> None:
        if update.get("message"):
            update["message"] = short(str(update["message"]))
        self.records[name] = self.records[name].model_copy(update=update)

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
