"""What an Execution may believe about its approve steps, pure: an Approval's outcome as the
operator can verify it, and the proof that a settled approve step was settled by koos.

Invariants:
- An Approval's outcome is derived from its spec and the signed record of decisions
  (`koos.io/decisions`), never from its status: a status patch opens no gate. Unsigned
  decisions count only when the operator trusts unverified ones (`--no-webhooks` for
  development).
- An Approval counts for a step only if the operator signed its request
  (`koos.io/request-signature`) for this Execution's uid and this step: a look-alike created
  by anyone else, or a copy of another run's Approval, decides nothing.
- Every approve step that koos settles carries a `proof` (an HMAC over the run's uid, the
  step and how it ended); a settled approve step without a valid one was written by someone
  else, and the run fails with reason StatusTampered instead of going past the gate.
- A started run carries a `seal` (an HMAC over its uid, the snapshotted template's name, uid,
  generation and recomputed sha256, and the resolved parameters): the list of approve steps,
  every script and every parameter value the run follows are koos's own. A seal that does not
  verify, a `hash` that is not the template's, or no seal at all on a run with a template (runs
  started before koos sealed them; koos is pre-release, so they are not grandfathered) all
  mean someone else wrote the status: StatusTampered, as above.
- Without a signing key (unit tests only) nothing is signed nor checked.
- Hashes and seals are over canonical JSON (sorted keys, integral floats as integers), so a
  status that went through the API server's JSON round trip (1.0 read back as 1) still verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from koos.api.approval import ApprovalSpec
from koos.api.constants import ANNOTATION_DECISIONS
from koos.api.execution import ExecutionStatus, ResolvedTemplate, StepStatus
from koos.api.template import Step, TemplateSpec
from koos.engine.approval import decide_approval, decode_record, is_signed_request
from koos.engine.facts import ApprovalFacts

SETTLED = ("Succeeded", "Failed", "Skipped", "Cancelled")


def approval_facts(
    body: Mapping[str, Any],
    *,
    key: bytes | None,
    execution_uid: str,
    step: str,
    trust_unverified: bool,
    now: datetime,
) -> ApprovalFacts:
    """The Approval `body` reduced to what the step may act on."""
    meta = body.get("metadata") or {}
    name = str(meta.get("name", ""))
    try:
        spec = ApprovalSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return ApprovalFacts(name, "", problem="its spec is invalid")
    owners = meta.get("ownerReferences") or []
    if not any(o.get("uid") == execution_uid for o in owners):
        return ApprovalFacts(name, "", problem="it is not owned by this Execution")
    if spec.execution_ref.uid != execution_uid or spec.step != step:
        return ApprovalFacts(name, "", problem=f"it asks for another run or step ({spec.step})")
    if not is_signed_request(key, body):
        return ApprovalFacts(name, "", problem="it does not carry koos's signature")
    decisions, signed = decode_record(
        key, str(meta.get("uid", "")), (meta.get("annotations") or {}).get(ANNOTATION_DECISIONS)
    )
    if not signed:
        decisions = [d.model_copy(update={"verified": False}) for d in decisions]
    status, _ = decide_approval(
        name=name,
        spec=spec,
        decisions=decisions,
        generation=int(meta.get("generation", 1)),
        previous=None,
        now=now,
        accept_unverified=trust_unverified,
    )
    counted = [d for d in decisions if d.verified or trust_unverified]
    return ApprovalFacts(
        name=name,
        phase=str(status.phase),
        message=status.message or "",
        approved_by=tuple(sorted({d.user for d in counted if d.decision == "approve"})),
        cancelled=bool(spec.cancelled),
    )


def step_proof(key: bytes, execution_uid: str, record: StepStatus) -> str:
    """The signature of a settled approve step's record: how it ended and who approved."""
    content = {
        "uid": execution_uid,
        "step": record.name,
        "phase": record.phase,
        "reason": record.reason,
        "approval": record.approval,
        "outputs": record.outputs,
    }
    text = json.dumps(content, sort_keys=True, default=str).encode()
    return hmac.new(key, b"step\0" + text, hashlib.sha256).hexdigest()


def _approve_steps(steps: Sequence[Step]) -> set[str]:
    return {s.name for s in steps if s.approve is not None}


def tampered(
    key: bytes | None, execution_uid: str, steps: Sequence[Step], records: Sequence[StepStatus]
) -> str | None:
    """Why the records cannot be koos's own (None when they can): an approve step settled
    without koos's proof."""
    if key is None:
        return None
    gates = _approve_steps(steps)
    for record in records:
        if record.name in gates and record.phase in SETTLED:
            wanted = step_proof(key, execution_uid, record)
            if not hmac.compare_digest((record.proof or "").encode(), wanted.encode()):
                return (
                    f"status.steps[{record.name}] says the approve step is {record.phase}, "
                    "but koos did not record that (no valid proof): the Execution's status was "
                    "written by someone else. The run is stopped; nobody but koos may have "
                    "patch or update on executions/status."
                )
    return None


def sealed(
    key: bytes | None,
    execution_uid: str,
    steps: Sequence[Step],
    before: Sequence[StepStatus],
    after: Sequence[StepStatus],
) -> list[StepStatus]:
    """`after`, with a proof on each approve step that settled in this pass."""
    if key is None:
        return list(after)
    gates = _approve_steps(steps)
    settled_before = {r.name for r in before if r.phase in SETTLED}
    out = []
    for record in after:
        if record.name in gates and record.phase in SETTLED and record.name not in settled_before:
            record = record.model_copy(update={"proof": step_proof(key, execution_uid, record)})
        out.append(record)
    return out


def _normal(value: Any) -> Any:
    """`value` as it reads back after a JSON round trip through the API server, which keeps
    no distinction between 1.0 and 1."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    return value


def canonical(value: Any) -> bytes:
    """The canonical JSON of `value`: what hashes and seals are computed over."""
    normal = _normal(value)
    return json.dumps(normal, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def template_hash(spec: TemplateSpec) -> str:
    """sha256 of the template spec's canonical JSON."""
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return hashlib.sha256(canonical(data)).hexdigest()


def run_seal(
    key: bytes, execution_uid: str, template: ResolvedTemplate, parameters: Mapping[str, Any]
) -> str:
    """The signature of what a run follows: its template snapshot and its parameters."""
    content = {
        "uid": execution_uid,
        "template": {
            "name": template.name,
            "uid": template.uid,
            "generation": template.generation,
            "hash": template_hash(template.spec),
        },
        "parameters": dict(parameters),
    }
    return hmac.new(key, b"run\0" + canonical(content), hashlib.sha256).hexdigest()


def unsealed(key: bytes | None, execution_uid: str, status: ExecutionStatus) -> str | None:
    """Why the run's template snapshot or parameters cannot be koos's own (None when they
    can): a hash that is not the template's, or a seal missing or not valid for them."""
    if key is None or status.template is None:
        return None
    template = status.template
    wrong = None
    if template.hash != template_hash(template.spec):
        wrong = "status.template.hash is not the hash of status.template.spec"
    elif not status.seal:
        wrong = "the run carries no seal over its template and parameters"
    else:
        wanted = run_seal(key, execution_uid, template, status.parameters or {})
        if not hmac.compare_digest(status.seal.encode(), wanted.encode()):
            wrong = "status.template or status.parameters differ from what koos sealed at start"
    if wrong is None:
        return None
    return (
        f"{wrong}: the Execution's status was written by someone else. The run is stopped; "
        "nobody but koos may have patch or update on executions/status."
    )
