"""The Schedule resource: Executions of a Template on cron, in a time zone, exactly once.

These models are the single source of truth for the Schedule CRD's schema (`make crds`);
`koos.engine.schedule` decides when to fire.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from koos.api.common import Condition, KoosModel
from koos.api.execution import ExecutionSpec

ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]
CatchUp = Literal["None", "Latest", "All"]


class ExecutionMetadata(KoosModel):
    labels: dict[str, str] | None = Field(default=None, description="Labels of each Execution.")
    annotations: dict[str, str] | None = Field(
        default=None, description="Annotations of each Execution."
    )


class ExecutionTemplate(KoosModel):
    """What each fire creates."""

    metadata: ExecutionMetadata | None = Field(
        default=None, description="Labels and annotations of the Executions."
    )
    spec: ExecutionSpec = Field(description="The Execution's spec: templateRef, parameters.")


class ScheduleSpec(KoosModel):
    schedule: str = Field(
        description="5-field cron expression (minute hour day-of-month month day-of-week) or a "
        "macro: @yearly, @monthly, @weekly, @daily, @hourly."
    )
    time_zone: str = Field(
        default="UTC", description="IANA time zone the schedule is read in, e.g. Europe/Berlin."
    )
    start_time: str | None = Field(
        default=None, description="Fire nothing before this time (RFC 3339)."
    )
    end_time: str | None = Field(
        default=None, description="Fire nothing after this time (RFC 3339); then Completed."
    )
    suspend: bool = Field(default=False, description="Fire nothing while true.")
    concurrency_policy: ConcurrencyPolicy = Field(
        default="Allow",
        description="Allow: runs may overlap. Forbid: skip a fire while a run is active. "
        "Replace: cancel the active run (its finally steps run), then start the new one.",
    )
    starting_deadline_seconds: int | None = Field(
        default=None,
        ge=0,
        description="A fire later than this many seconds after its time is missed.",
    )
    catch_up: CatchUp = Field(
        default="Latest",
        description="Missed fires (operator down, suspended, clock jump): None skips them, "
        "Latest runs the most recent one, All runs each in order up to maxCatchUp.",
    )
    max_catch_up: int = Field(
        default=10, ge=0, le=1000, description="At most this many missed fires run (All)."
    )
    successful_executions_history_limit: int = Field(
        default=3, ge=0, description="Finished successful Executions kept."
    )
    failed_executions_history_limit: int = Field(
        default=3, ge=0, description="Finished failed or cancelled Executions kept."
    )
    execution_template: ExecutionTemplate = Field(description="What each fire creates.")


class ActiveExecution(KoosModel):
    name: str = Field(description="Name of an Execution of this Schedule still running.")
    scheduled_time: str | None = Field(default=None, description="The fire it belongs to.")


class ScheduleStatus(KoosModel):
    observed_generation: int | None = Field(default=None, description="Generation observed.")
    conditions: list[Condition] | None = Field(
        default=None, description="Ready (False with InvalidSpec on a bad spec), Completed."
    )
    last_schedule_time: str | None = Field(default=None, description="The last fire handled.")
    last_successful_time: str | None = Field(
        default=None, description="When the last successful Execution finished."
    )
    next_schedule_time: str | None = Field(default=None, description="The next fire.")
    active: list[ActiveExecution] | None = Field(default=None, description="Runs not finished.")
    active_count: int | None = Field(default=None, description="How many runs are active.")
    fired: int | None = Field(default=None, description="Executions created.")
    skipped: int | None = Field(
        default=None, description="Fires skipped (Forbid while active, catch-up limits)."
    )
    missed: int | None = Field(default=None, description="Fires missed (past their deadline).")
    message: str | None = Field(default=None, description="What happened last.")


class Schedule(KoosModel):
    """Runs a Template on cron, in a time zone, exactly once per fire."""

    api_version: str = Field(default="koos.io/v1alpha1", description="koos.io/v1alpha1")
    kind: str = Field(default="Schedule", description="Schedule")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard metadata.")
    spec: ScheduleSpec = Field(description="When and what to run.")
    status: ScheduleStatus | None = Field(default=None, description="What it has done.")
