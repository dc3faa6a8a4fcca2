"""Approvals: the controller that turns recorded decisions into a status, and the admission
webhooks that verify who decides (kopf's `userinfo`, from the API server).

- Only the operator creates Approvals and writes their status (validating webhooks on CREATE
  and on `approvals/status`; their matchConditions skip the operator's own requests). The
  gate never reads the status anyway: the Execution derives the outcome from the signed
  record (`engine.approval_proof`).
- A deleted Approval wakes its Execution at once (the step fails ApprovalLost).
- The mutating webhook on Approval UPDATE consumes `koos.io/decision`/`koos.io/reason`,
  checks the caller with `engine.approval.decide_vote`, and appends the signed record to
  `koos.io/decisions`. Any other change to that record, or to the spec by anyone but the
  operator, is refused, and so is a vote on an Approval koos did not sign. With
  `failurePolicy: Fail` nothing gets through while the operator is down, and a record that
  was not signed with the operator's key never counts.
- Without webhooks (`--no-webhooks`), the controller records annotation decisions itself as
  unverified; they count only with `--trust-unverified-approvals`.
- The controller writes the status only when it changes, wakes at the deadline, posts an
  Event per decision and notifies the optional webhook.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import kopf
from pydantic import ValidationError

from koos.api.approval import ApprovalSpec, ApprovalStatus, Decision
from koos.api.constants import (
    ANNOTATION_DECISION,
    ANNOTATION_DECISIONS,
    ANNOTATION_REASON,
    ANNOTATION_REQUEST_SIGNATURE,
    GROUP,
    VERSION,
)
from koos.engine import approval as policy
from koos.engine.timefmt import parse_rfc3339, rfc3339
from koos.handlers import metrics
from koos.handlers.notify import Notifier
from koos.handlers.queue import WorkQueue
from koos.k8s.apply import merge_diff, post_object_event
from koos.k8s.client import Kube, custom_path

log = logging.getLogger("koos.approval")


@dataclass
class ApprovalController:
    kube: Kube
    key: bytes | None
    webhooks: bool = True
    trust_unverified: bool = False
    on_decided: Any = None  # callback(namespace, execution) to wake the Execution
    notifier: Notifier | None = None
    queue: WorkQueue = field(init=False)

    def __post_init__(self) -> None:
        self.queue = WorkQueue(self.reconcile, workers=4)

    async def reconcile(self, key: Any) -> datetime | None:
        namespace, name = str(key[0]), str(key[1])
        body = await self.kube.find(custom_path("approvals", namespace, name))
        if body is None:
            return None
        meta = body.get("metadata") or {}
        try:
            spec = ApprovalSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            log.error("Approval with an invalid spec approval=%s/%s: %s", namespace, name, error)
            return None
        annotations = dict(meta.get("annotations") or {})
        decisions, signed = policy.decode_record(
            self.key, str(meta.get("uid", "")), annotations.get(ANNOTATION_DECISIONS)
        )
        if not signed:
            decisions = [d.model_copy(update={"verified": False}) for d in decisions]
        if not self.webhooks and annotations.get(ANNOTATION_DECISION):
            await self._record_unverified(namespace, name, body, decisions)
            return None  # the annotation change brings us back
        try:
            previous = ApprovalStatus.model_validate(body.get("status") or {})
        except ValidationError:
            previous = None
        now = datetime.now(UTC)
        decide = partial(
            policy.decide_approval,
            name=name,
            spec=spec,
            decisions=decisions,
            generation=int(meta.get("generation", 1)),
            now=now,
            accept_unverified=self.trust_unverified,
        )
        held = previous if previous and previous.phase else None
        if held is not None and decide(previous=None)[0].phase != held.phase:
            # A phase the signed record does not give (a status written by hand) is not
            # kept: only its condition's transition time is.
            held = held.model_copy(update={"phase": None})
        status, wake = decide(previous=held)
        old = previous.model_dump(mode="json", exclude_none=True) if previous else {}
        diff = merge_diff(old, status.model_dump(mode="json", exclude_none=True))
        if diff is not None:
            await self.kube.merge_patch(
                custom_path("approvals", namespace, name, "status"),
                {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": diff},
            )
            await self._record_events(namespace, name, body, previous, status)
            self._transition(namespace, name, body, previous, status, now)
        return wake

    async def _record_events(
        self,
        namespace: str,
        name: str,
        body: dict[str, Any],
        previous: ApprovalStatus | None,
        status: ApprovalStatus,
    ) -> None:
        """An Event for every new decision, and one for the outcome."""
        uid = str((body.get("metadata") or {}).get("uid", ""))
        seen = len(previous.decisions or []) if previous else 0
        for decision in (status.decisions or [])[seen:]:
            verified = "verified" if decision.verified else "UNVERIFIED"
            text = f"{decision.user} decided {decision.decision} ({verified})"
            if decision.reason:
                text += f": {decision.reason}"
            await post_object_event(
                self.kube, namespace, "Approval", name, "Normal", "DecisionRecorded", text, uid
            )
        if status.phase != (previous.phase if previous else None) and status.phase != "Pending":
            kind = "Normal" if status.phase == "Approved" else "Warning"
            await post_object_event(
                self.kube,
                namespace,
                "Approval",
                name,
                kind,
                str(status.phase),
                status.message or "",
                uid,
            )

    def _transition(
        self,
        namespace: str,
        name: str,
        body: dict[str, Any],
        previous: ApprovalStatus | None,
        status: ApprovalStatus,
        now: datetime,
    ) -> None:
        before = previous.phase if previous else None
        if before == status.phase:
            return
        log.info("Approval phase=%s approval=%s/%s", status.phase, namespace, name)
        if status.phase == "Pending":
            metrics.APPROVALS_PENDING.inc()
        elif before == "Pending":
            metrics.APPROVALS_PENDING.dec()
            created = (body.get("metadata") or {}).get("creationTimestamp")
            if created:
                waited = (now - parse_rfc3339(created)).total_seconds()
                metrics.APPROVAL_SECONDS.labels(status.phase).observe(waited)
        if self.notifier is not None:
            self.notifier.announce(namespace, name, body, status)
        execution = ((body.get("spec") or {}).get("executionRef") or {}).get("name")
        if self.on_decided is not None and execution:
            self.on_decided(namespace, execution)

    async def _record_unverified(
        self, namespace: str, name: str, body: dict[str, Any], decisions: list[Decision]
    ) -> None:
        """Without the webhook nobody can say who annotated: keep it, marked unverified."""
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        value = annotations.get(ANNOTATION_DECISION)
        record = Decision(
            user=f"unverified-{len(decisions) + 1}",
            decision="approve" if value == "approve" else "reject",
            reason=annotations.get(ANNOTATION_REASON),
            time=rfc3339(datetime.now(UTC)),
            verified=False,
        )
        kept = [*decisions, record] if value in policy.VOTES else decisions
        text = json.dumps(
            {
                "decisions": [d.model_dump(mode="json", exclude_none=True) for d in kept],
                "signature": "",
            }
        )
        await self.kube.merge_patch(
            custom_path("approvals", namespace, name),
            {
                "metadata": {
                    "annotations": {
                        ANNOTATION_DECISION: None,
                        ANNOTATION_REASON: None,
                        ANNOTATION_DECISIONS: text,
                    }
                }
            },
        )


def register(
    registry: kopf.OperatorRegistry,
    controller: ApprovalController,
    operator_user: str,
) -> None:
    @kopf.on.event(GROUP, VERSION, "approvals", id="koos-approval", registry=registry)
    async def approval_changed(
        type: str | None, body: kopf.Body, namespace: str | None, name: str, **_: Any
    ) -> None:
        controller.queue.add((namespace, name))
        execution = execution_of(body)
        if type == "DELETED" and execution and controller.on_decided is not None:
            # A pending Approval deleted by hand: its step fails (ApprovalLost) at once,
            # not when something else happens to wake the run.
            controller.on_decided(namespace, execution)

    if not controller.webhooks:
        return

    @kopf.on.validate(
        GROUP,
        VERSION,
        "approvals",
        operations=["CREATE"],
        id="approval-created",
        registry=registry,
        persistent=True,
    )
    async def only_koos_creates(name: str, userinfo: Any, **_: Any) -> None:
        refuse_unless_operator(
            userinfo,
            operator_user,
            f"approvals are created by koos only, for the approve steps of Executions: "
            f"approval {name} was not created",
        )

    @kopf.on.validate(
        GROUP,
        VERSION,
        "approvals",
        subresource="status",
        operations=["UPDATE"],
        id="approval-status",
        registry=registry,
        persistent=True,
    )
    async def only_koos_writes_status(name: str, userinfo: Any, **_: Any) -> None:
        refuse_unless_operator(
            userinfo,
            operator_user,
            f"the status of approval {name} is written by koos only, from the recorded "
            f"decisions: decide with kubectl annotate approval {name} "
            "koos.io/decision=approve|reject",
        )

    @kopf.on.mutate(
        GROUP,
        VERSION,
        "approvals",
        operations=["UPDATE"],
        id="decision",
        registry=registry,
        persistent=True,
    )
    async def verify_decision(
        name: str, namespace: str | None, userinfo: Any, patch: kopf.Patch, **kwargs: Any
    ) -> None:
        refuse_or_record(
            controller.key,
            operator_user,
            name or "",
            namespace or "",
            kwargs.get("old"),
            kwargs.get("new"),
            userinfo,
            patch,
        )


def execution_of(body: Any) -> str | None:
    """The name of the Execution an Approval belongs to (its controller owner)."""
    for ref in ((body or {}).get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Execution" and str(ref.get("apiVersion", "")).startswith(GROUP):
            return str(ref.get("name"))
    return None


def refuse_unless_operator(userinfo: Any, operator_user: str, message: str) -> None:
    """Refuse (403) a request not made by the operator's own user, as the API server
    names the caller."""
    if str((userinfo or {}).get("username", "")) != operator_user:
        raise kopf.AdmissionError(message, code=403)


def refuse_or_record(
    key: bytes | None,
    operator_user: str,
    name: str,
    namespace: str,
    old: Any,
    new: Any,
    userinfo: Any,
    patch: kopf.Patch,
) -> None:
    """The admission decision for an UPDATE of an Approval (kopf raises AdmissionError)."""
    caller = policy.Caller(
        str((userinfo or {}).get("username", "")), tuple((userinfo or {}).get("groups") or ())
    )
    old_meta, new_meta = (old or {}).get("metadata") or {}, (new or {}).get("metadata") or {}
    old_notes = dict(old_meta.get("annotations") or {})
    new_notes = dict(new_meta.get("annotations") or {})
    is_operator = caller.username == operator_user
    if (old or {}).get("spec") != (new or {}).get("spec") and not is_operator:
        raise kopf.AdmissionError(
            f"the spec of approval {name} is written by koos only: decide with "
            f"kubectl annotate approval {name} koos.io/decision=approve|reject",
            code=403,
        )
    signature = ANNOTATION_REQUEST_SIGNATURE
    if old_notes.get(signature) != new_notes.get(signature) and not is_operator:
        raise kopf.AdmissionError(
            f"the request signature of approval {name} ({signature}) is written by koos only",
            code=403,
        )
    if old_notes.get(ANNOTATION_DECISIONS) != new_notes.get(ANNOTATION_DECISIONS):
        raise kopf.AdmissionError(
            f"the recorded decisions of approval {name} ({ANNOTATION_DECISIONS}) cannot be "
            "edited: add your own with koos.io/decision",
            code=403,
        )
    value = new_notes.get(ANNOTATION_DECISION)
    if value is None or (is_operator and value == old_notes.get(ANNOTATION_DECISION)):
        # Nothing to decide; the operator's own updates pass a leftover annotation through.
        return
    uid = str(old_meta.get("uid", ""))
    if not policy.is_signed_request(key, old or {}):
        raise kopf.AdmissionError(
            f"approval {name} was not created by koos (it lacks koos's signature): no decision "
            "on it can count",
            code=403,
        )
    decisions, signed = policy.decode_record(key, uid, old_notes.get(ANNOTATION_DECISIONS))
    try:
        spec = ApprovalSpec.model_validate((old or {}).get("spec") or {})
        # Where the vote stands comes from the signed record, as the Execution reads it, not
        # from the status (which only koos writes, but is not what opens the gate).
        outcome, _ = policy.decide_approval(
            name=name,
            spec=spec,
            decisions=decisions if signed else [],
            generation=int(old_meta.get("generation", 1)),
            previous=None,
            now=datetime.now(UTC),
        )
        decision = policy.decide_vote(
            name=name,
            namespace=namespace,
            spec=spec,
            phase=outcome.phase,
            decisions=decisions if signed else [],
            caller=caller,
            value=value,
            reason=new_notes.get(ANNOTATION_REASON),
            now=datetime.now(UTC),
        )
    except policy.VoteRefused as refused:
        raise kopf.AdmissionError(str(refused), code=403) from None
    except ValidationError as error:
        raise kopf.AdmissionError(f"approval {name} has an invalid spec: {error}") from None
    recorded = [*(decisions if signed else []), decision]
    assert key is not None
    patch.metadata.annotations[ANNOTATION_DECISIONS] = policy.encode_record(key, uid, recorded)
    for request_key in (ANNOTATION_DECISION, ANNOTATION_REASON):
        if request_key in new_notes:  # consumed: removing what is absent would fail
            patch.metadata.annotations[request_key] = None
    log.info("Recorded decision=%s user=%s approval=%s/%s", value, caller.username, namespace, name)
