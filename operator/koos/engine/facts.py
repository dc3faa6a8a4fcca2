"""What the planner knows about the world: a frozen snapshot, and the plan it returns.

The k8s layer gathers a snapshot (the Execution as just read, its Template when the run has
not started yet, and the facts of its Jobs) and applies the plan: create and delete Jobs,
post at most one Event, remove consumed command annotations, patch the status, and wake the
planner again at `wake_at`. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from koos.api.execution import ExecutionSpec, ExecutionStatus
from koos.api.template import TemplateSpec

JobPhase = Literal["Active", "Succeeded", "Failed"]


@dataclass(frozen=True)
class JobFacts:
    """One Job of the Execution, reduced to what decisions need."""

    name: str
    phase: JobPhase
    reason: str = ""  # of the Job's Failed condition: DeadlineExceeded, BackoffLimitExceeded
    message: str = ""  # the step container's termination message, or the Job's condition text
    exit_code: int | None = None
    created: datetime | None = None
    deleting: bool = False
    disrupted: str = ""  # why the Pod was disrupted: eviction, node lost, deleted
    # Whether a Pod has started, for an Active Job (`koos.engine.pod_start`): the Job's
    # `status.ready` (None: not reported), and what a probe of its Pods found.
    ready: int | None = None
    probed: bool = False  # its Pods were listed in this pass
    pod_started: bool = False  # a probe found the step's container running or ended
    waiting_reason: str = ""  # the step container's waiting reason (CreateContainerConfigError)
    waiting_message: str = ""  # the kubelet's message with it, or why the Pod is not scheduled
    # Values to mask in what is copied from the Pod (`koos.engine.masking`), read only for a
    # Job that ended with text; never shown (repr=False) nor logged.
    secrets: tuple[str, ...] = field(default=(), repr=False)
    secrets_unread: str = ""  # why some could not be read: the text is then withheld
    # False for an ended Job whose Pods were not read: its exit code and output are unknown,
    # so no step may be settled on it (the planner reads it again instead).
    pods_read: bool = True
    # Not this Execution's: the name is taken by a Job another owner has (an earlier
    # Execution of the same name, deleted with --cascade=orphan or still being deleted).
    foreign: bool = False
    uid: str = ""
    # From its labels: the step it runs, and for a loop item its index and attempt.
    step: str = ""
    index: int | None = None
    attempt: int | None = None


@dataclass(frozen=True)
class ApprovalFacts:
    """An approve step's Approval, reduced to its outcome as the operator can verify it: from
    its spec and the signed record of decisions, never from its status."""

    name: str
    phase: str  # Pending, Approved, Rejected, Expired ("" before the controller saw it)
    message: str = ""
    approved_by: tuple[str, ...] = ()
    cancelled: bool = False
    # Why this is not the Approval koos created for this run and step ("" when it is): its
    # outcome then counts for nothing.
    problem: str = ""


@dataclass(frozen=True)
class TemplateFacts:
    name: str
    uid: str
    generation: int
    spec: TemplateSpec | None  # None when the stored spec does not parse
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecutionSnapshot:
    name: str
    namespace: str
    uid: str
    generation: int
    spec: ExecutionSpec | None  # None when the stored spec does not parse
    status: ExecutionStatus
    resource_version: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    spec_problems: tuple[str, ...] = ()
    template: TemplateFacts | None = None  # looked up only before the run starts
    jobs: Mapping[str, JobFacts] = field(default_factory=dict)
    approvals: Mapping[str, ApprovalFacts] = field(default_factory=dict)
    creator: str | None = None  # stamped at CREATE by the admission webhook
    # The operator's signing key: Approvals are signed with it, and so is the record of a
    # settled approve step (None in tests only: nothing is signed nor checked).
    signing_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class EventSpec:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    status: ExecutionStatus
    create_jobs: tuple[dict[str, Any], ...] = ()
    delete_jobs: tuple[str, ...] = ()
    # Ended Jobs whose outcome this plan's status records (a loop's finished items): deleted
    # only after the status write, so no result is lost and live Jobs stay few.
    release_jobs: tuple[str, ...] = ()
    create_approvals: tuple[dict[str, Any], ...] = ()
    cancel_approvals: tuple[str, ...] = ()
    event: EventSpec | None = None
    consume_annotations: tuple[str, ...] = ()
    # Set in the same write that removes `consume_annotations` (koos.io/commands-consumed).
    set_annotations: Mapping[str, str] = field(default_factory=dict)
    # The Event of a run command (applied or refused), posted besides the pass's `event`.
    command_event: EventSpec | None = None
    wake_at: datetime | None = None
