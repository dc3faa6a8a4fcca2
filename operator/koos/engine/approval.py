"""Approval policy, pure: who may vote, whether a vote counts, and what the votes decide.

Invariants:
- The caller's identity comes only from the API server (the admission request's userInfo);
  nothing here reads a user name from the object being voted on.
- Recorded decisions are signed with the operator's key: a record without a valid signature
  (written while the webhook was bypassed, or edited by hand) never counts as verified.
- A vote is refused with a sentence that says why and, where it helps, what to do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from koos.api.approval import (
    ApprovalSpec,
    ApprovalStatus,
    ApproveAction,
    Approvers,
    Decision,
    ExecutionRef,
)
from koos.api.common import Condition
from koos.api.constants import (
    ANNOTATION_DECISION,
    ANNOTATION_REQUEST_SIGNATURE,
    API_VERSION,
    LABEL_EXECUTION,
    LABEL_MANAGED_BY,
    LABEL_STEP,
    MANAGER,
)
from koos.engine.durations import parse_duration
from koos.engine.jobs import label_value
from koos.engine.timefmt import parse_rfc3339, rfc3339

VOTES = ("approve", "reject")


class VoteRefused(Exception):
    """A decision the webhook must refuse; the message is shown to the person."""


@dataclass(frozen=True)
class Caller:
    username: str
    groups: tuple[str, ...] = ()


def approval_name(execution: str, step: str) -> str:
    return f"{execution}-{step}"[:253].rstrip("-.")


def service_account_user(entry: str, namespace: str) -> str:
    ns, _, name = entry.rpartition("/")
    return f"system:serviceaccount:{ns or namespace}:{name}"


def _names(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def is_approver(approvers: Approvers, namespace: str, caller: Caller) -> bool:
    if caller.username in _names(approvers.users):
        return True
    if set(caller.groups) & set(_names(approvers.groups)):
        return True
    accounts = {service_account_user(a, namespace) for a in _names(approvers.service_accounts)}
    return caller.username in accounts


def describe_approvers(approvers: Approvers) -> str:
    parts = []
    for label, value in (
        ("users", approvers.users),
        ("groups", approvers.groups),
        ("serviceAccounts", approvers.service_accounts),
    ):
        names = _names(value)
        if names:
            parts.append(f"{label} {', '.join(names)}")
    return "; ".join(parts) or "nobody"


def decide_vote(
    *,
    name: str,
    namespace: str,
    spec: ApprovalSpec,
    phase: str | None,
    decisions: Sequence[Decision],
    caller: Caller,
    value: str | None,
    reason: str | None,
    now: datetime,
) -> Decision:
    """The verified record of a vote, or VoteRefused saying why it cannot count."""
    if value not in VOTES:
        raise VoteRefused(f'{ANNOTATION_DECISION} must be "approve" or "reject", got "{value}"')
    if phase not in (None, "Pending") or spec.cancelled:
        state = "cancelled" if spec.cancelled and phase in (None, "Pending") else phase
        raise VoteRefused(f"approval {name} is already {state}: it takes no more decisions")
    if now >= parse_rfc3339(spec.deadline):
        raise VoteRefused(f"approval {name} expired at {spec.deadline}: it takes no more decisions")
    if not is_approver(spec.approvers, namespace, caller):
        groups = ", ".join(caller.groups) or "none"
        raise VoteRefused(
            f'user "{caller.username}" (groups: {groups}) is not an approver of {name}; '
            f"approvers are {describe_approvers(spec.approvers)}"
        )
    if value == "approve" and not spec.allow_self_approval:
        refuse_self_approval(name, spec, caller)
    earlier = next((d for d in decisions if d.user == caller.username), None)
    if earlier is not None:
        raise VoteRefused(
            f'user "{caller.username}" already decided {earlier.decision} at {earlier.time}: '
            "one decision per person"
        )
    needs_reason = spec.require_reason == "Always" or (
        spec.require_reason == "Rejections" and value == "reject"
    )
    if needs_reason and not (reason or "").strip():
        raise VoteRefused(
            f'a reason is required to {value}: add koos.io/reason="why" to the same annotate'
        )
    return Decision(
        user=caller.username,
        groups=list(caller.groups),
        decision=value,  # type: ignore[arg-type]
        reason=(reason or "").strip() or None,
        time=rfc3339(now),
        verified=True,
    )


SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def refuse_self_approval(name: str, spec: ApprovalSpec, caller: Caller) -> None:
    """The requester may not approve her own run through any route: by name, through a
    group, or as a ServiceAccount she may hold the token of. Which ServiceAccount tokens a
    person holds is unknowable, so when the approvers came from the run's parameters (its
    creator chose them) no ServiceAccount approves; approvers fixed by the Template's author
    may include ServiceAccounts."""
    if caller.username == spec.requested_by:
        raise VoteRefused(
            f'user "{caller.username}" created execution {spec.execution_ref.name} and may not '
            "approve it (allowSelfApproval is false): ask another approver"
        )
    if spec.approvers_from_parameters and caller.username.startswith(SERVICE_ACCOUNT_PREFIX):
        raise VoteRefused(
            f"the approvers of {name} come from the run's parameters, which its creator chose: "
            f'ServiceAccount "{caller.username}" may not approve it (its token could be the '
            "creator's; allowSelfApproval is false): a person must approve"
        )


def _canonical(uid: str, decisions: Sequence[Decision]) -> bytes:
    records = [d.model_dump(mode="json", exclude_none=True) for d in decisions]
    return json.dumps({"uid": uid, "decisions": records}, sort_keys=True).encode()


def sign(key: bytes, uid: str, decisions: Sequence[Decision]) -> str:
    return hmac.new(key, _canonical(uid, decisions), hashlib.sha256).hexdigest()


def encode_record(key: bytes, uid: str, decisions: Sequence[Decision]) -> str:
    """The value of the koos.io/decisions annotation."""
    records = [d.model_dump(mode="json", exclude_none=True) for d in decisions]
    return json.dumps({"decisions": records, "signature": sign(key, uid, decisions)})


def decode_record(key: bytes | None, uid: str, text: str | None) -> tuple[list[Decision], bool]:
    """Decisions from the annotation, and whether its signature holds (with our key)."""
    if not text:
        return [], True
    try:
        data = json.loads(text)
        decisions = [Decision.model_validate(d) for d in data.get("decisions") or []]
        signature = str(data.get("signature", ""))
        valid = key is not None and hmac.compare_digest(
            signature.encode(), sign(key, uid, decisions).encode()
        )
    except (ValueError, TypeError, AttributeError):
        return [], False
    return decisions, valid


def decide_approval(
    *,
    name: str,
    spec: ApprovalSpec,
    decisions: Sequence[Decision],
    generation: int,
    previous: ApprovalStatus | None,
    now: datetime,
    accept_unverified: bool = False,
) -> tuple[ApprovalStatus, datetime | None]:
    """The Approval's status from its spec and decisions, and when to look again."""
    counted = [d for d in decisions if d.verified or accept_unverified]
    ignored = len(decisions) - len(counted)
    approvers = sorted({d.user for d in counted if d.decision == "approve"})
    rejection = next((d for d in counted if d.decision == "reject"), None)
    deadline = parse_rfc3339(spec.deadline)
    wake: datetime | None = None
    phase: str
    if previous is not None and previous.phase in ("Approved", "Rejected", "Expired"):
        phase, message = previous.phase, previous.message or ""
    elif rejection is not None:
        phase = "Rejected"
        message = f"Rejected by {rejection.user}: {rejection.reason or 'no reason given'}"
    elif len(approvers) >= spec.min_approvals:
        phase, message = "Approved", f"Approved by {', '.join(approvers)}."
    elif spec.cancelled:
        phase, message = "Expired", "The execution was cancelled."
    elif now >= deadline:
        phase = "Expired"
        outcome = "approved" if spec.on_timeout == "Approve" else "rejected"
        message = f"No decision before {spec.deadline}: treated as {outcome} (onTimeout)."
    else:
        phase, wake = "Pending", deadline
        missing = spec.min_approvals - len(approvers)
        message = (
            f"Waiting for {missing} more approval(s) from {describe_approvers(spec.approvers)}: "
            f"kubectl annotate approval {name} koos.io/decision=approve"
        )
    if ignored and (phase == "Pending" or previous is None):
        message += (
            f" {ignored} unverified decision(s) ignored: they were not recorded through the "
            "admission webhook."
        )
    value = (
        "True"
        if phase == "Approved"
        or (phase == "Expired" and spec.on_timeout == "Approve" and not spec.cancelled)
        else "False"
    )
    old = next(
        (c for c in (previous.conditions if previous else None) or [] if c.type == "Approved"), None
    )
    since = old.last_transition_time if old is not None and old.status == value else rfc3339(now)
    status = ApprovalStatus(
        phase=phase,  # type: ignore[arg-type]  # one of ApprovalPhase by construction
        observed_generation=generation,
        approvals=len(approvers),
        required=spec.min_approvals,
        progress=f"{len(approvers)}/{spec.min_approvals}",
        deadline=spec.deadline,
        decisions=list(decisions) or None,
        message=message,
        conditions=[
            Condition(
                type="Approved",
                status=value,  # type: ignore[arg-type]
                observed_generation=generation,
                last_transition_time=since,
                reason=phase,
                message=message,
            )
        ],
    )
    return status, wake


def build_approval(
    *,
    execution: str,
    namespace: str,
    uid: str,
    step: str,
    spec: ApprovalSpec,
    key: bytes | None,
) -> dict[str, Any]:
    """The Approval an approve step creates, signed with the operator's key (no key: not
    signed, and no vote on it will count)."""
    name = approval_name(execution, step)
    spec_json = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if key is not None:
        signature = sign_request(key, name, namespace, spec_json)
        meta["annotations"] = {ANNOTATION_REQUEST_SIGNATURE: signature}
    return {
        "apiVersion": API_VERSION,
        "kind": "Approval",
        "metadata": {
            **meta,
            "labels": {
                LABEL_MANAGED_BY: MANAGER,
                LABEL_EXECUTION: label_value(execution),
                LABEL_STEP: label_value(step),
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Execution",
                    "name": execution,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec_json,
    }


def _request(name: str, namespace: str, spec: Mapping[str, Any]) -> bytes:
    # `cancelled` is left out: the operator sets it on a cancel without signing again, and
    # it can only close a gate. The Execution's uid is in the spec (executionRef).
    request = {k: v for k, v in spec.items() if k != "cancelled"}
    return json.dumps(
        {"name": name, "namespace": namespace, "spec": _plain(request)}, sort_keys=True
    ).encode()


def _plain(value: Any) -> Any:
    """JSON numbers as the API server may give them back (2.0 read as 2): the signature must
    not depend on how a parameter's number was written."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def sign_request(key: bytes, name: str, namespace: str, spec: Mapping[str, Any]) -> str:
    """The operator's signature of an Approval it creates (koos.io/request-signature)."""
    return hmac.new(key, b"request\0" + _request(name, namespace, spec), hashlib.sha256).hexdigest()


def is_signed_request(key: bytes | None, body: Mapping[str, Any]) -> bool:
    """Whether the Approval is one the operator created (its name, namespace and request as
    signed): a copy made by anyone else, or an edited one, is not."""
    meta = body.get("metadata") or {}
    signature = str((meta.get("annotations") or {}).get(ANNOTATION_REQUEST_SIGNATURE) or "")
    spec = body.get("spec")
    if key is None or not signature or not isinstance(spec, Mapping):
        return False
    wanted = sign_request(key, str(meta.get("name", "")), str(meta.get("namespace", "")), spec)
    return hmac.compare_digest(signature.encode(), wanted.encode())


def _listed(value: list[str] | str | None) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def render_names(value: list[str] | str | None, render: Any) -> list[str]:
    """Approver names from a list (items may be expressions) or one expression that renders
    to a list or a comma-separated string."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        rendered = render(item)
        if isinstance(rendered, list):
            names.extend(str(n).strip() for n in rendered)
        else:
            names.extend(part.strip() for part in str(rendered).split(","))
    return [n for n in names if n]


def request_spec(
    *,
    action: ApproveAction,
    execution: str,
    uid: str,
    step: str,
    creator: str | None,
    parameters: dict[str, Any],
    render: Any,
    now: datetime,
) -> ApprovalSpec:
    """The Approval an approve step asks for, with expressions rendered (raises
    ExpressionError or ValueError on bad values)."""
    minimum: Any = action.min_approvals
    if isinstance(minimum, str):
        minimum = render(minimum)
    if isinstance(minimum, str) and minimum.strip().isdigit():
        minimum = int(minimum)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        raise ValueError(f"minApprovals must be a whole number of at least 1, got {minimum!r}")
    approvers = Approvers(
        users=render_names(action.approvers.users, render) or None,
        groups=render_names(action.approvers.groups, render) or None,
        service_accounts=render_names(action.approvers.service_accounts, render) or None,
    )
    if not any((approvers.users, approvers.groups, approvers.service_accounts)):
        raise ValueError("the approvers render to nobody: nobody could decide this approval")
    message = render(action.message) if action.message else None
    if message is not None and not isinstance(message, str):
        message = json.dumps(message)
    given = action.approvers
    chosen = [*_listed(given.users), *_listed(given.groups), *_listed(given.service_accounts)]
    return ApprovalSpec(
        approvers_from_parameters=any("{{" in n or "{%" in n for n in chosen) or None,
        execution_ref=ExecutionRef(name=execution, uid=uid),
        step=step,
        approvers=approvers,
        min_approvals=minimum,
        message=message,
        parameters=parameters or None,
        requested_by=creator,
        deadline=rfc3339(now + parse_duration(action.timeout)),
        on_timeout=action.on_timeout,
        allow_self_approval=action.allow_self_approval,
        require_reason=action.require_reason,
        notify=action.notify,
    )
