"""The Approval resource: a human gate created by an `approve` step, decided with
`kubectl annotate approval NAME koos.io/decision=approve|reject [koos.io/reason=…]`.

Who decided is taken from the API server (the admission webhook's userInfo), never from a
field a user writes: the webhook records each verified decision, signed, in the
`koos.io/decisions` annotation, and the controller mirrors them into the status.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from koos.api.common import PRESERVE, Condition, KeySelector, KoosModel

ApprovalPhase = Literal["Pending", "Approved", "Rejected", "Expired"]
ReasonRule = Literal["Always", "Rejections", "Never"]


class Approvers(KoosModel):
    """Who may decide. In a Template each list may also be one expression that renders to a
    list, e.g. users: "{{ params.approvers }}"."""

    users: list[str] | str | None = Field(default=None, description="User names.")
    groups: list[str] | str | None = Field(default=None, description="Group names.")
    service_accounts: list[str] | str | None = Field(
        default=None,
        description="ServiceAccounts as namespace/name, or name in the Execution's namespace.",
    )


class WebhookNotification(KoosModel):
    url: str = Field(description="Where to POST a JSON message (Slack, DingTalk, Teams…).")
    secret_ref: KeySelector | None = Field(
        default=None,
        description="A Secret key whose value signs the body (X-Koos-Signature: "
        "sha256=<HMAC-SHA256 hex>).",
    )


class Notify(KoosModel):
    webhook: WebhookNotification | None = Field(
        default=None, description="Notified when the Approval is pending, decided or expired."
    )


class ApproveAction(KoosModel):
    """Wait for people to approve (or reject) before the run goes on."""

    approvers: Approvers = Field(description="Who may decide.")
    min_approvals: int | str = Field(
        default=1,
        description="Distinct approvals needed (a number, or an expression that renders to one).",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    )
    message: str | None = Field(
        default=None, description="What the approvers are asked; expressions allowed."
    )
    timeout: str = Field(default="24h", description="How long to wait for a decision.")
    on_timeout: Literal["Reject", "Approve"] = Field(
        default="Reject", description="What an expired Approval means for the step."
    )
    allow_self_approval: bool = Field(
        default=False,
        description="Whether the Execution's creator may approve it (and, when the approvers "
        "come from parameters, whether a ServiceAccount may).",
    )
    require_reason: ReasonRule = Field(
        default="Rejections",
        description="When a koos.io/reason is required: Always, Rejections or Never.",
    )
    notify: Notify | None = Field(default=None, description="Where to announce the Approval.")


class ExecutionRef(KoosModel):
    name: str = Field(description="Name of the Execution.")
    uid: str = Field(description="uid of the Execution.")


class ApprovalSpec(KoosModel):
    """Written by the operator when the step starts; nobody else may change it."""

    execution_ref: ExecutionRef = Field(description="The Execution waiting for this decision.")
    step: str = Field(description="The approve step.")
    approvers: Approvers = Field(description="Who may decide (rendered lists).")
    min_approvals: int = Field(default=1, ge=1, description="Distinct approvals needed.")
    message: str | None = Field(default=None, description="What the approvers are asked.")
    parameters: dict[str, Any] | None = Field(
        default=None,
        description="The run's parameters (secret ones as references only).",
        json_schema_extra=PRESERVE,
    )
    requested_by: str | None = Field(
        default=None,
        description="Who asked for the run, from the API server: the Execution's creator, or "
        "the creator of the Schedule that created it.",
    )
    deadline: str = Field(description="When the Approval expires (RFC 3339).")
    on_timeout: Literal["Reject", "Approve"] = Field(
        default="Reject", description="What expiry means for the step."
    )
    allow_self_approval: bool = Field(default=False, description="May the creator approve.")
    approvers_from_parameters: bool | None = Field(
        default=None,
        description="The approvers were rendered from expressions (the run's creator chose "
        "them): no ServiceAccount may approve unless allowSelfApproval.",
    )
    require_reason: ReasonRule = Field(default="Rejections", description="When a reason is needed.")
    cancelled: bool | None = Field(
        default=None, description="The Execution was cancelled: the Approval expires."
    )
    notify: Notify | None = Field(default=None, description="Where to announce it.")


class Decision(KoosModel):
    """One person's recorded decision."""

    user: str = Field(description="Who decided, as the API server authenticated them.")
    groups: list[str] | None = Field(default=None, description="Their groups at the time.")
    decision: Literal["approve", "reject"] = Field(description="approve or reject.")
    reason: str | None = Field(default=None, description="Why.")
    time: str = Field(description="When (RFC 3339).")
    verified: bool = Field(
        default=False, description="Whether the admission webhook checked the caller."
    )


class ApprovalStatus(KoosModel):
    phase: ApprovalPhase | None = Field(
        default=None, description="Pending, Approved, Rejected or Expired."
    )
    observed_generation: int | None = Field(default=None, description="Generation observed.")
    conditions: list[Condition] | None = Field(
        default=None, description="Approved: True once decided in favour, False otherwise."
    )
    approvals: int | None = Field(default=None, description="Distinct approvals received.")
    progress: str | None = Field(default=None, description="Approvals received / required.")
    required: int | None = Field(default=None, description="Approvals required.")
    deadline: str | None = Field(default=None, description="When the Approval expires.")
    decisions: list[Decision] | None = Field(default=None, description="Recorded decisions.")
    message: str | None = Field(default=None, description="What to do, or how it ended.")


class Approval(KoosModel):
    """A human gate of an Execution: decide it with kubectl annotate."""

    api_version: str = Field(default="koos.io/v1alpha1", description="koos.io/v1alpha1")
    kind: str = Field(default="Approval", description="Approval")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard metadata.")
    spec: ApprovalSpec = Field(description="The request, written by the operator.")
    status: ApprovalStatus | None = Field(default=None, description="The decision so far.")
