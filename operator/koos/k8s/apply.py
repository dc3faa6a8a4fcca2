"""Apply a plan idempotently: Jobs first, then the status, then commands and the Event.

Order matters for restart safety: a Job is created before the status names it (a crash in
between re-plans the same Job, whose create meets 409 and is adopted when it is ours), and
a cancelled step's Job is deleted before the status says Cancelled. The status is written as
a merge patch of what changed, guarded by the resourceVersion it was planned from, and not
at all when nothing changed.

Nothing is deleted on the word of a cache: every Job the plan deletes is read first, before
any write. One that has ended is never deleted (its outcome may not be recorded yet), and
one that is not this Execution's is never touched; either means the plan rests on stale
facts, so `Replan` is raised with the Jobs as read and nothing of the plan is written. A live
Job is deleted with the uid and resourceVersion it was read with as preconditions, so the
API server refuses if it changed meanwhile (that, too, is a `Replan`). A create that meets
someone else's Job is a `Replan` with that Job, which the planner then sees as foreign.

The one exception is `Plan.release_jobs`: ended Jobs (a loop's finished items) whose outcome
the plan's status records. They are deleted after the status write has succeeded, so a
crash in between leaves a Job the next pass releases again, never a lost result.
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
from koos.k8s.gather import compact_job, ended

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


class Replan(Exception):
    """The plan was made on facts about Jobs that a fresh read contradicts: plan again with
    `jobs` (compact Jobs, as read) in place of what the index said."""

    def __init__(self, jobs: dict[str, dict[str, Any]]) -> None:
        super().__init__(f"Jobs changed since they were indexed: {', '.join(sorted(jobs))}")
        self.jobs = jobs


async def ensure_job(kube: Kube, snapshot: ExecutionSnapshot, manifest: dict[str, Any]) -> None:
    """Create a Job; on 409 adopt the existing one if this Execution owns it (a crash or a
    lost status write came between its create and now); else `Replan` with it."""
    name = manifest["metadata"]["name"]
    try:
        await kube.create(job_path(snapshot.namespace), manifest)
        log.info("Created Job name=%s execution=%s/%s", name, snapshot.namespace, snapshot.name)
        return
    except KubeError as error:
        if error.code != 409:
            raise
        existing = await kube.find(job_path(snapshot.namespace, name))
        if existing is None:
            raise  # deleted since: the next pass creates it
        job = compact_job(existing)
        if job["owner"] != snapshot.uid:
            log.warning(
                "Job name taken by another owner job=%s execution=%s/%s",
                name,
                snapshot.namespace,
                snapshot.name,
            )
            raise Replan({name: job}) from error


async def read_deletes(
    kube: Kube, snapshot: ExecutionSnapshot, names: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The Jobs to delete as read now, those gone or going left out; `Replan` if one has
    ended or is not this Execution's."""
    live: list[dict[str, Any]] = []
    stale: dict[str, dict[str, Any]] = {}
    for name in names:
        found = await kube.find(job_path(snapshot.namespace, name))
        if found is None:
            continue
        job = compact_job(found)
        if ended(job) or job["owner"] != snapshot.uid:
            stale[name] = job
        elif not job["deleting"]:
            live.append(found)
    if stale:
        raise Replan(stale)
    return live


async def delete_job(kube: Kube, snapshot: ExecutionSnapshot, found: dict[str, Any]) -> None:
    """Delete the Job as it was read: the API server refuses if it changed since."""
    meta = found["metadata"]
    path = job_path(snapshot.namespace, meta["name"])
    options = {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "propagationPolicy": "Background",
        "preconditions": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]},
    }
    try:
        await kube.request("DELETE", path, body=options)
    except KubeError as error:
        if error.code == 404:
            return
        if error.code != 409:
            raise
        again = await kube.find(path)
        raise Replan({meta["name"]: compact_job(again)} if again else {}) from error
    log.info("Deleted Job job=%s execution=%s/%s", meta["name"], snapshot.namespace, snapshot.name)


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
    deletes = await read_deletes(kube, snapshot, plan.delete_jobs)
    for manifest in plan.create_jobs:
        known = snapshot.jobs.get(manifest["metadata"]["name"])
        if known is None or known.foreign:
            await ensure_job(kube, snapshot, manifest)
        # else it exists (the status write after its create was lost): the step adopts it
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
    for found in deletes:
        await delete_job(kube, snapshot, found)
    old = snapshot.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    diff = merge_diff(old, status_json(plan))
    written: list[str] = []
    if diff is not None:
        patched = await kube.merge_patch(
            custom_path("executions", namespace, name, "status"),
            {"metadata": {"resourceVersion": snapshot.resource_version}, "status": diff},
        )
        written.append(resource_version(patched))
    unreleased: list[KubeError] = []
    for release in plan.release_jobs:
        try:
            await release_job(kube, snapshot, release)
        except KubeError as error:
            unreleased.append(error)  # the next pass releases it again
    if plan.consume_annotations or plan.set_annotations:
        # After the status write: a command's effect and its count land first
        # (koos.engine.command explains how a crash between the two is handled).
        annotations: dict[str, str | None] = {key: None for key in plan.consume_annotations}
        annotations.update(plan.set_annotations)
        patched = await kube.merge_patch(
            custom_path("executions", namespace, name),
            {"metadata": {"annotations": annotations}},
        )
        written.append(resource_version(patched))
    if plan.command_event is not None:
        event = plan.command_event
        await post_event(kube, snapshot, event.type, event.reason, event.message)
    if plan.event is not None:
        await post_event(kube, snapshot, plan.event.type, plan.event.reason, plan.event.message)
    if unreleased:
        # Everything else of the plan is done; the retry of this pass deletes the rest.
        raise unreleased[0]
    if taken:
        # The status names the Approval; the next pass finds it is not ours and fails the
        # step (ApprovalNameTaken): the failure brings that pass at once.
        raise ApprovalNameTaken(", ".join(taken))
    return tuple(written)


async def release_job(kube: Kube, snapshot: ExecutionSnapshot, name: str) -> None:
    """Delete an ended Job whose outcome the status now records (gone already: fine). The
    uid precondition keeps a Job of the same name that is not the one read untouched."""
    known = snapshot.jobs.get(name)
    if known is None or known.foreign or known.phase == "Active":
        return
    options: dict[str, Any] = {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "propagationPolicy": "Background",
    }
    if known.uid:
        options["preconditions"] = {"uid": known.uid}
    try:
        await kube.request("DELETE", job_path(snapshot.namespace, name), body=options)
    except KubeError as error:
        if error.code not in (404, 409):
            raise
        return
    log.info("Deleted Job job=%s execution=%s/%s", name, snapshot.namespace, snapshot.name)


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
