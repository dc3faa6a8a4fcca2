"""Apply a plan idempotently: Jobs first, then the status, then commands and the Event.

Order matters for restart safety: a Job is created before the status names it (a crash in
between re-plans the same Job, whose create meets 409 and is adopted when it is ours), and
a cancelled step's Job is deleted before the status says Cancelled. The status is written as
a merge patch of what changed, guarded by the resourceVersion it was planned from, and not
at all when nothing changed.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from koos.api.approval import ApprovalSpec
from koos.api.constants import (
    API_VERSION,
    LABEL_EXECUTION,
    LABEL_MANAGED_BY,
    LABEL_STEP,
    MANAGER,
)
from koos.engine.approval import is_signed_request
from koos.engine.facts import ExecutionSnapshot, Plan
from koos.k8s.client import Kube, KubeError, custom_path, job_path
from koos.k8s.events import send

log = logging.getLogger("koos.apply")


class NotOurs(Exception):
    """A Job with the name we need exists and belongs to something else."""


def merge_diff(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns `old` into `new` (None when they are equal)."""
    if isinstance(old, dict) and isinstance(new, dict):
        patch: dict[str, Any] = {}
        for key in old.keys() - new.keys():
            patch[key] = None
        for key, value in new.items():
            if key not in old:
                patch[key] = value
            elif old[key] != value:
                sub = merge_diff(old[key], value)
                patch[key] = sub
        return patch or None
    return None if old == new else new


def status_json(plan: Plan) -> dict[str, Any]:
    return plan.status.model_dump(mode="json", by_alias=True, exclude_none=True)


async def ensure_job(kube: Kube, snapshot: ExecutionSnapshot, manifest: dict[str, Any]) -> None:
    await ensure_owned(kube, snapshot, job_path(snapshot.namespace), manifest)


async def ensure_owned(
    kube: Kube, snapshot: ExecutionSnapshot, collection: str, manifest: dict[str, Any]
) -> None:
    """Create a child; on 409 adopt the existing one only if it is ours (same owner uid
    and labels), as after a crash between the create and the status write."""
    namespace = snapshot.namespace
    try:
        await kube.create(collection, manifest)
        log.info(
            "Created %s name=%s execution=%s/%s",
            manifest["kind"],
            manifest["metadata"]["name"],
            namespace,
            snapshot.name,
        )
    except KubeError as error:
        if error.code != 409:
            raise
        existing = await kube.get(f"{collection}/{manifest['metadata']['name']}")
        owners = existing.get("metadata", {}).get("ownerReferences") or []
        labels = existing.get("metadata", {}).get("labels") or {}
        wanted = manifest["metadata"]["labels"]
        if not any(o.get("uid") == snapshot.uid for o in owners) or any(
            labels.get(k) != wanted.get(k) for k in (LABEL_MANAGED_BY, LABEL_EXECUTION, LABEL_STEP)
        ):
            raise NotOurs(manifest["metadata"]["name"]) from error


class ApprovalNameTaken(Exception):
    """An Approval with the name an approve step needs exists and is not the operator's."""


async def ensure_approval(
    kube: Kube, snapshot: ExecutionSnapshot, manifest: dict[str, Any]
) -> bool:
    """Create an approve step's Approval; on 409 adopt the existing one only when it is
    provably the operator's own (as after a crash between the create and the status write):
    owned by this Execution with koos's labels, signed by the operator
    (`koos.io/request-signature`) and asking what the step asks, the deadline aside (it was
    set when first asked). False when the name is taken by anything else: nothing is
    changed, and the step fails on its next pass."""
    collection = custom_path("approvals", snapshot.namespace)
    name = manifest["metadata"]["name"]
    try:
        await kube.create(collection, manifest)
        log.info(
            "Created Approval approval=%s execution=%s/%s", name, snapshot.namespace, snapshot.name
        )
        return True
    except KubeError as error:
        if error.code != 409:
            raise
    existing = await kube.find(f"{collection}/{name}")
    if existing is None:
        raise KubeError(409, "Conflict", f"Approval {name} existed, then vanished: ask again")
    meta = existing.get("metadata") or {}
    labels = meta.get("labels") or {}
    wanted = manifest["metadata"]["labels"]
    ours = (
        any(o.get("uid") == snapshot.uid for o in meta.get("ownerReferences") or [])
        and all(
            labels.get(k) == wanted.get(k) for k in (LABEL_MANAGED_BY, LABEL_EXECUTION, LABEL_STEP)
        )
        and is_signed_request(snapshot.signing_key, existing)
        and same_request(existing.get("spec"), manifest["spec"])
    )
    if not ours:
        log.error(
            "Approval name taken by another owner approval=%s execution=%s/%s",
            name,
            snapshot.namespace,
            snapshot.name,
        )
    return ours


def same_request(existing: Any, wanted: Mapping[str, Any]) -> bool:
    try:
        old = ApprovalSpec.model_validate(existing or {})
    except ValidationError:
        return False
    new = ApprovalSpec.model_validate(wanted)
    skip = {"deadline", "cancelled"}
    return old.model_dump(exclude=skip) == new.model_dump(exclude=skip)


async def apply_plan(kube: Kube, snapshot: ExecutionSnapshot, plan: Plan) -> tuple[str, ...]:
    """Carry out the plan; returns the resourceVersions of the Execution that its writes
    made (none when nothing changed)."""
    namespace, name = snapshot.namespace, snapshot.name
    for manifest in plan.create_jobs:
        await ensure_job(kube, snapshot, manifest)
    taken: list[str] = []
    for manifest in plan.create_approvals:
        if not await ensure_approval(kube, snapshot, manifest):
            taken.append(manifest["metadata"]["name"])
    for approval in plan.cancel_approvals:
        try:
            await kube.merge_patch(
                custom_path("approvals", namespace, approval), {"spec": {"cancelled": True}}
            )
        except KubeError as error:
            if error.code != 404:
                raise
    for job in plan.delete_jobs:
        try:
            await kube.delete(job_path(namespace, job), propagation="Background")
            log.info("Deleted Job job=%s execution=%s/%s", job, namespace, name)
        except KubeError as error:
            if error.code != 404:
                raise
    old = snapshot.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    diff = merge_diff(old, status_json(plan))
    written: list[str] = []
    if diff is not None:
        patched = await kube.merge_patch(
            custom_path("executions", namespace, name, "status"),
            {"metadata": {"resourceVersion": snapshot.resource_version}, "status": diff},
        )
        written.append(resource_version(patched))
    if plan.consume_annotations:
        patched = await kube.merge_patch(
            custom_path("executions", namespace, name),
            {"metadata": {"annotations": {key: None for key in plan.consume_annotations}}},
        )
        written.append(resource_version(patched))
    if plan.event is not None:
        await post_event(kube, snapshot, plan.event.type, plan.event.reason, plan.event.message)
    if taken:
        # The status names the Approval; the next pass finds it is not ours and fails the
        # step (ApprovalNameTaken): the failure brings that pass at once.
        raise ApprovalNameTaken(", ".join(taken))
    return tuple(written)


def resource_version(body: Mapping[str, Any]) -> str:
    """The body's metadata.resourceVersion ("" when it has none)."""
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


async def post_event(
    kube: Kube, snapshot: ExecutionSnapshot, kind: str, reason: str, message: str
) -> None:
    await post_object_event(
        kube, snapshot.namespace, "Execution", snapshot.name, kind, reason, message, snapshot.uid
    )


async def post_object_event(
    kube: Kube,
    namespace: str,
    object_kind: str,
    name: str,
    kind: str,
    reason: str,
    message: str,
    uid: str = "",
) -> None:
    """A core/v1 Event about a koos object, posted in the background when the client has an
    EventSink; failing to post one never fails anything."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    involved = {
        "apiVersion": API_VERSION,
        "kind": object_kind,
        "name": name,
        "namespace": namespace,
    }
    if uid:
        involved["uid"] = uid
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{secrets.token_hex(8)}", "namespace": namespace},
        "involvedObject": involved,
        "type": kind,
        "reason": reason,
        "message": message,
        "action": reason,
        "source": {"component": MANAGER},
        "reportingComponent": MANAGER,
        "reportingInstance": os.environ.get("HOSTNAME", MANAGER),
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    if kube.events is not None:
        kube.events.post(body)
    else:
        await send(kube, body)
