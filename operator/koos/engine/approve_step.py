"""Approve steps: ask for an Approval, then wait for people to decide it.

A started approve step creates one Approval (`ask`) and stays Running, its record naming the
Approval; each later pass reads the Approval's facts (`awaiting`). Approved (or Expired with
`onTimeout: Approve`, unless the Approval was cancelled) succeeds the step with the approvers
as its `approvedBy` output; Rejected or Expired fails it; an Approval deleted before it was
decided fails it as `ApprovalLost`, unless this same pass is creating it; an Approval of
that name that koos did not create for this run (`ApprovalFacts.problem`) fails it as
`ApprovalNameTaken`. The Approval is named after the execution and the step
(`approval.approval_name`) and signed with the operator's key; its outcome is what the signed
record of decisions says (`approval_proof.approval_facts`), never its status. Every approve
step koos settles carries a proof (`approval_proof.sealed`, in `koos.engine.execution`).
"""

from __future__ import annotations

from typing import Any

from koos.api.execution import StepStatus
from koos.api.template import Step
from koos.engine import approval, expressions
from koos.engine.progress import Pass, fail
from koos.engine.timefmt import rfc3339


def ask(work: Pass, step: Step, ctx: dict[str, Any]) -> None:
    """Create the step's Approval; the run waits for people from here."""
    assert step.approve is not None
    snapshot = work.snapshot
    assert snapshot.status.template is not None
    secret = {n for n, p in snapshot.status.template.spec.parameters.items() if p.secret}
    try:
        spec = approval.request_spec(
            action=step.approve,
            execution=snapshot.name,
            uid=snapshot.uid,
            step=step.name,
            creator=snapshot.creator,
            parameters={
                k: v for k, v in (snapshot.status.parameters or {}).items() if k not in secret
            },
            render=lambda text: expressions.render(text, ctx),
            now=work.now,
        )
    except (expressions.ExpressionError, ValueError, TypeError) as error:
        fail(work, step, "ExpressionFailed", str(error))
        return
    manifest = approval.build_approval(
        execution=snapshot.name,
        namespace=snapshot.namespace,
        uid=snapshot.uid,
        step=step.name,
        spec=spec,
        key=snapshot.signing_key,
    )
    name = manifest["metadata"]["name"]
    work.approvals.append(manifest)
    work.set(
        step.name,
        approval=name,
        reason="AwaitingApproval",
        message=f"Waiting for approval: kubectl annotate approval {name} "
        "koos.io/decision=approve (or reject, with koos.io/reason)",
    )
    work.note("Normal", "ApprovalRequested", f"step {step.name} waits for approval {name}")


def awaiting(work: Pass, step: Step, record: StepStatus) -> None:
    assert step.approve is not None and record.approval is not None
    facts = work.snapshot.approvals.get(record.approval)
    if facts is None:
        if record.approval in {a["metadata"]["name"] for a in work.approvals}:
            return
        fail(
            work,
            step,
            "ApprovalLost",
            f"Approval {record.approval} was deleted before it was decided.",
        )
        return
    if facts.problem:
        fail(
            work,
            step,
            "ApprovalNameTaken",
            f"Approval {record.approval} exists but koos did not create it for this run "
            f"({facts.problem}): its decisions cannot count. Delete it, then create the "
            "Execution again.",
        )
        return
    if facts.phase == "Approved" or (
        facts.phase == "Expired" and step.approve.on_timeout == "Approve" and not facts.cancelled
    ):
        by = list(facts.approved_by)
        work.set(
            step.name,
            phase="Succeeded",
            reason="ApprovedOnTimeout" if facts.phase == "Expired" else "Approved",
            completion_time=rfc3339(work.now),
            message=facts.message,
            outputs={"approvedBy": by},
        )
        work.note("Normal", "StepSucceeded", f"step {step.name} approved: {facts.message}")
    elif facts.phase == "Rejected":
        fail(work, step, "Rejected", facts.message)
    elif facts.phase == "Expired":
        fail(work, step, "ApprovalExpired", facts.message)
