"""The Execution resource: one run of a Template, all of whose progress lives in its status.

These models are the single source of truth for the Execution CRD's schema (`make crds`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from koos.api.common import PRESERVE, Condition, KeySelector, KoosModel
from koos.api.template import TemplateSpec

ExecutionPhase = Literal["Pending", "Running", "Waiting", "Succeeded", "Failed", "Cancelled"]
StepPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Skipped", "Cancelled"]
ExecutionMode = Literal["Automatic", "Debug", "FailurePause"]
TERMINAL_PHASES = ("Succeeded", "Failed", "Cancelled")
# How many earlier attempts of a run (`koos.io/rerun-from`) the status keeps.
ATTEMPTS_KEPT = 5


class TemplateRef(KoosModel):
    name: str = Field(description="Name of a Template in the Execution's namespace.")


class ParameterSource(KoosModel):
    secret_key_ref: KeySelector = Field(description="A key of a Secret in this namespace.")


class SecretParameter(KoosModel):
    """How an Execution gives a `secret: true` parameter: never as a literal value."""

    value_from: ParameterSource = Field(description="Where the secret value is.")


class ExecutionSpec(KoosModel):
    template_ref: TemplateRef = Field(description="The Template to run.")
    parameters: dict[str, Any] | None = Field(
        default=None,
        description="Parameter values by name. A secret parameter is given as "
        "{valueFrom: {secretKeyRef: {name, key}}}.",
        json_schema_extra=PRESERVE,
    )
    mode: ExecutionMode = Field(
        default="Automatic",
        description="Automatic runs every step; Debug pauses before each step until "
        "`koos.io/continue=<step>`; FailurePause pauses the run on a failed step until "
        "`koos.io/retry=<step>`, `koos.io/skip=<step>` or `koos.io/cancel=true`.",
    )


class LoopItem(KoosModel):
    """An item in flight: its Job is `<execution>-<step>-<index>-<attempt>`."""

    index: int = Field(description="Position of the item in the list, from 0.")
    attempt: int = Field(description="Attempt of the item running now (or that failed).")
    retry_time: str | None = Field(
        default=None, description="When the item's next attempt starts (after a failed one)."
    )


class ItemFailure(KoosModel):
    """One of the first failed items of a loop."""

    index: int = Field(description="Position of the item in the list, from 0.")
    item: str = Field(description="The item (as JSON when not a string), shortened.")
    message: str = Field(description="Why it failed: the reason and the tail of its log.")


class LoopStatus(KoosModel):
    """Progress of a loop step: counts and compact index ranges, never a record per item."""

    total: int = Field(description="Number of items.")
    succeeded: int = Field(default=0, description="Items that succeeded.")
    failed: int = Field(default=0, description="Items that failed (after their retries).")
    running: int = Field(default=0, description="Items in flight.")
    pending: int = Field(default=0, description="Items not started yet.")
    completed_indexes: str | None = Field(
        default=None, description="Indexes of the items that succeeded, as ranges: 0-4999,5002."
    )
    failed_indexes: str | None = Field(
        default=None, description="Indexes of the items that failed, as ranges."
    )
    active: list[LoopItem] | None = Field(
        default=None, description="Items in flight (at most `concurrency`)."
    )
    failures: list[ItemFailure] | None = Field(
        default=None, description="The first failed items, with their messages."
    )
    concurrency: int = Field(default=1, description="Items in flight at most, as resolved.")
    max_errors: int = Field(default=0, description="Failed items tolerated, as a count.")
    batch_size: int = Field(default=0, description="Items per batch (0: no batches).")
    stopped: str | None = Field(
        default=None,
        description="Why no new item starts (TooManyErrors, OutputsTooLarge): the items in "
        "flight finish, then the step fails.",
    )
    paused_batch: int | None = Field(
        default=None, description="The last batch after which the loop paused."
    )
    round: int = Field(
        default=0,
        description="Rounds the step ran before this one: its failed items sent to run again "
        "(koos.io/retry), or the step started again (koos.io/rerun-from). Each round's item "
        "attempts, and so its Job names, are new.",
    )


class StepStatus(KoosModel):
    """Compact record of one step (loops keep counts, not a record per item)."""

    name: str = Field(description="Name of the step.")
    phase: StepPhase = Field(description="Pending, Running, Succeeded, Failed, Skipped, Cancelled.")
    attempt: int = Field(default=0, description="Attempts started so far.")
    job_name: str | None = Field(default=None, description="The Job of the current attempt.")
    approval: str | None = Field(default=None, description="The Approval an approve step waits on.")
    start_time: str | None = Field(default=None, description="When the first attempt started.")
    completion_time: str | None = Field(default=None, description="When the step finished.")
    retry_time: str | None = Field(
        default=None, description="When the next attempt starts (after a failed one)."
    )
    reason: str | None = Field(default=None, description="CamelCase reason of the last change.")
    message: str | None = Field(default=None, description="What happened, in a sentence.")
    outputs: dict[str, Any] | None = Field(
        default=None,
        description="Outputs the step wrote to $KOOS_OUTPUT.",
        json_schema_extra=PRESERVE,
    )
    loop: LoopStatus | None = Field(default=None, description="Progress of a loop step.")
    awaiting_continue: bool | None = Field(
        default=None, description="Waiting for `koos.io/continue=<step>`"
    )
    attempt_base: int | None = Field(
        default=None,
        description="Attempts made before the last `koos.io/retry` or `koos.io/rerun-from`: "
        "the step's retry limit counts from here.",
    )
    proof: str | None = Field(
        default=None,
        description="koos's signature of a settled approve step: a record without a valid one "
        "was not written by koos, and the run fails (StatusTampered).",
    )


class AttemptStep(KoosModel):
    """How one step ended in an earlier attempt of the run."""

    name: str = Field(description="Name of the step.")
    phase: StepPhase = Field(description="The step's phase when the attempt ended.")
    reason: str | None = Field(default=None, description="CamelCase reason.")
    message: str | None = Field(default=None, description="What happened (shortened).")


class AttemptRecord(KoosModel):
    """A compact record of an earlier attempt of the run (before a `koos.io/rerun-from`)."""

    number: int = Field(description="The attempt's number (the first run is 1).")
    phase: ExecutionPhase | None = Field(default=None, description="How the attempt ended.")
    start_time: str | None = Field(default=None, description="When the attempt started.")
    completion_time: str | None = Field(default=None, description="When the attempt ended.")
    message: str | None = Field(default=None, description="Why it ended (shortened).")
    steps: list[AttemptStep] | None = Field(default=None, description="Per-step outcomes.")
    outputs: dict[str, Any] | None = Field(
        default=None,
        description="The template's outputs of that attempt (left out when over 4 KiB).",
        json_schema_extra=PRESERVE,
    )


class ResolvedTemplate(KoosModel):
    """The template as it was when the Execution started: later edits do not change a run."""

    name: str = Field(description="Name of the Template.")
    uid: str = Field(description="uid of the Template.")
    generation: int = Field(description="metadata.generation of the Template.")
    hash: str = Field(description="sha256 of the resolved spec.")
    spec: TemplateSpec = Field(description="The resolved spec this run follows.")


class ExecutionStatus(KoosModel):
    phase: ExecutionPhase | None = Field(
        default=None, description="Pending, Running, Waiting, Succeeded, Failed or Cancelled."
    )
    observed_generation: int | None = Field(
        default=None, description="The generation the status was computed for."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Succeeded (Unknown while running; True; False with the reason) and Ready, "
        "which mirrors it for GitOps health checks.",
    )
    start_time: str | None = Field(default=None, description="When the run started.")
    completion_time: str | None = Field(default=None, description="When the run ended.")
    progress: str | None = Field(default=None, description="Finished steps / all steps, e.g. 3/5.")
    message: str | None = Field(default=None, description="What the run is doing or why it ended.")
    cancel_requested: bool | None = Field(
        default=None,
        description="koos.io/cancel was received: pending steps are cancelled, running Jobs "
        "deleted, finally steps still run.",
    )
    template: ResolvedTemplate | None = Field(
        default=None, description="Snapshot of the template this run follows."
    )
    parameters: dict[str, Any] | None = Field(
        default=None,
        description="Parameter values after defaults (secret ones as references only).",
        json_schema_extra=PRESERVE,
    )
    steps: list[StepStatus] | None = Field(default=None, description="Per-step records.")
    seal: str | None = Field(
        default=None,
        description="koos's signature over the run's uid, template snapshot and parameters, "
        "written at start; a run whose seal does not verify is stopped (StatusTampered).",
    )
    outputs: dict[str, Any] | None = Field(
        default=None, description="The template's outputs, rendered.", json_schema_extra=PRESERVE
    )
    attempt: int | None = Field(
        default=None, description="The run's attempt: 1, then one more per koos.io/rerun-from."
    )
    attempts: list[AttemptRecord] | None = Field(
        default=None, description="Compact records of the last 5 earlier attempts, oldest first."
    )
    commands_applied: int | None = Field(
        default=None,
        description="Commands (continue, retry, skip, rerun-from) applied so far; with the "
        "koos.io/commands-consumed annotation it makes each command apply once.",
    )


class Execution(KoosModel):
    """One run of a Template with parameters; its progress is in its status."""

    api_version: str = Field(default="koos.io/v1alpha1", description="koos.io/v1alpha1")
    kind: str = Field(default="Execution", description="Execution")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard metadata.")
    spec: ExecutionSpec = Field(description="What to run.")
    status: ExecutionStatus | None = Field(default=None, description="Progress of the run.")
