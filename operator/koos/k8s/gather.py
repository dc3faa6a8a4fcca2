"""Gather the snapshot the planner decides on: the Execution as read now, its Template (only
before the run starts), and the facts of its Jobs.

Jobs come from the operator's in-memory index (filled by a watch, no requests). A Job the
status names but the index lacks may just not have arrived yet, so it is read once before
the planner may call it lost: no step is failed on a stale cache. Pods are not watched (each
makes several events in its short life, none of which changes a decision): when a running
step's Job has ended, its Pods are listed once for the exit code, the output and (when the
Pod still exists) its disruption. Two more reads, each in its own module: the Pods of a
running step's Job that reports no ready Pod, at the planner's wake-ups (`k8s.pods`), and the
Secret values to mask in the text of a Job that ended (`k8s.secrets`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from koos.api.constants import ANNOTATION_CREATED_BY
from koos.api.execution import ExecutionSpec, ExecutionStatus
from koos.api.template import TemplateSpec
from koos.engine.approval_proof import approval_facts
from koos.engine.facts import ApprovalFacts, ExecutionSnapshot, JobFacts, TemplateFacts
from koos.engine.template import problems_from_pydantic
from koos.engine.timefmt import parse_rfc3339
from koos.k8s.client import Kube, custom_path, job_path
from koos.k8s.pods import with_pod_starts
from koos.k8s.secrets import with_secret_values

STEP_CONTAINER = "step"
DISRUPTIONS = {
    "EvictionByEvictionAPI": "the Pod was evicted",
    "DeletionByTaintManager": "the Pod's node was lost",
    "PreemptionByScheduler": "the Pod was preempted",
    "DeletionByPodGC": "the Pod was garbage-collected (its node is gone)",
    "TerminationByKubelet": "the kubelet stopped the Pod",
}


def compact_job(body: Mapping[str, Any]) -> dict[str, Any]:
    """What an index keeps of a Job: enough for the planner, small in memory."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    return {
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "creationTimestamp": meta.get("creationTimestamp"),
        "deleting": "deletionTimestamp" in meta,
        "ready": status.get("ready"),  # Pods ready: 0 while a Pod cannot start (k8s.pods)
        "conditions": [
            {k: c.get(k) for k in ("type", "status", "reason", "message")}
            for c in status.get("conditions") or []
        ],
    }


def compact_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    terminated: dict[str, Any] = {}
    for container in status.get("containerStatuses") or []:
        if container.get("name") == STEP_CONTAINER:
            terminated = (container.get("state") or {}).get("terminated") or {}
    disruption = next(
        (
            c.get("reason", "")
            for c in status.get("conditions") or []
            if c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        ),
        "",
    )
    return {
        "name": meta.get("name"),
        "creationTimestamp": meta.get("creationTimestamp"),
        "phase": status.get("phase"),
        "exitCode": terminated.get("exitCode"),
        "message": terminated.get("message", ""),
        "reason": terminated.get("reason", ""),
        "disruption": disruption,
    }


def job_facts(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> JobFacts:
    conditions = {c["type"]: c for c in job.get("conditions") or [] if c.get("status") == "True"}
    ordered = sorted(pods, key=lambda p: p.get("creationTimestamp") or "")
    pod = ordered[-1] if ordered else {}
    created = job.get("creationTimestamp")
    common = {
        "name": str(job["name"]),
        "created": parse_rfc3339(created) if created else None,
        "deleting": bool(job.get("deleting")),
        "exit_code": pod.get("exitCode"),
        "disrupted": DISRUPTIONS.get(pod.get("disruption", ""), pod.get("disruption", "")),
    }
    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        # SuccessCriteriaMet (Kubernetes 1.31+) comes first: the Pod succeeded, the Job
        # is only finishing its bookkeeping before Complete.
        return JobFacts(phase="Succeeded", message=pod.get("message", ""), **common)
    disrupted = next((p for p in ordered if p.get("disruption")), None)
    if disrupted is not None and "Failed" not in conditions:
        # The Pod was evicted, lost with its node or deleted: the attempt has failed, and
        # its Pod (which says why) may be gone by the time the Job reports it.
        return JobFacts(
            phase="Failed", reason="PodDisrupted", message=pod.get("message", ""), **common
        )
    failed = conditions.get("Failed") or conditions.get("FailureTarget")
    if failed is not None:
        text = pod.get("message") or failed.get("message") or ""
        return JobFacts(
            phase="Failed", reason=failed.get("reason") or "", message=text.strip(), **common
        )
    return JobFacts(phase="Active", **common)


async def gather_execution(
    kube: Kube,
    namespace: str,
    name: str,
    jobs: Iterable[Mapping[str, Any]],
    body: Mapping[str, Any] | None = None,
    *,
    key: bytes | None = None,
    trust_unverified: bool = False,
) -> ExecutionSnapshot | None:
    """`body`: the Execution as the watch delivered it, when it is known to be recent
    enough (see `handlers.cache`); otherwise it is read. `key`: the operator's signing key
    (Approvals and approve steps are verified with it); `trust_unverified`: unsigned
    decisions count (`--no-webhooks --trust-unverified-approvals`, development only)."""
    if body is None:
        body = await kube.find(custom_path("executions", namespace, name))
    if body is None:
        return None
    meta = body.get("metadata") or {}
    spec: ExecutionSpec | None
    try:
        spec = ExecutionSpec.model_validate(body.get("spec") or {})
        spec_problems: tuple[str, ...] = ()
    except ValidationError as error:
        spec, spec_problems = None, tuple(str(p) for p in problems_from_pydantic(error))
    try:
        status = ExecutionStatus.model_validate(body.get("status") or {})
    except ValidationError:
        status = ExecutionStatus()  # a status we cannot read is started afresh
    template = None
    if status.template is None and spec is not None:
        template = await gather_template(kube, namespace, spec.template_ref.name)
    known_jobs = {str(job["name"]): job for job in jobs}
    for record in status.steps or []:
        if record.phase == "Running" and record.job_name and record.job_name not in known_jobs:
            found = await kube.find(job_path(namespace, record.job_name))
            if found is not None:
                known_jobs[record.job_name] = compact_job(found)
    running = {r.job_name for r in status.steps or [] if r.phase == "Running" and r.job_name}
    facts = {}
    for job_name, job in known_jobs.items():
        # A running step's Job that ended: its Pod holds the exit code, the output (the
        # termination message) and, if the Pod is still there, why it was disrupted (else
        # the Job's own condition says why it failed). Pods are read then, not watched.
        pods = (
            await list_pods(kube, namespace, job_name) if job_name in running and ended(job) else []
        )
        facts[job_name] = job_facts(job, pods)
    # Issue 10: a Pod that cannot start is looked at; secrets are masked out of Pod text.
    facts = await with_pod_starts(kube, namespace, status, known_jobs, facts)
    facts = await with_secret_values(kube, namespace, status, facts)
    approvals = {}
    for record in status.steps or []:
        if record.phase == "Running" and record.approval:
            found_approval = await gather_approval(
                kube,
                namespace,
                record.approval,
                key=key,
                execution_uid=str(meta.get("uid", "")),
                step=record.name,
                trust_unverified=trust_unverified,
            )
            if found_approval is not None:
                approvals[record.approval] = found_approval
    return ExecutionSnapshot(
        name=name,
        namespace=namespace,
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation", 1)),
        resource_version=str(meta.get("resourceVersion", "")),
        spec=spec,
        status=status,
        annotations=dict(meta.get("annotations") or {}),
        spec_problems=spec_problems,
        template=template,
        jobs=facts,
        approvals=approvals,
        creator=(meta.get("annotations") or {}).get(ANNOTATION_CREATED_BY),
        signing_key=key,
    )


ENDED = ("Complete", "Failed", "FailureTarget", "SuccessCriteriaMet")


def ended(job: Mapping[str, Any]) -> bool:
    """The Job reports an outcome (or, from Kubernetes 1.31, the outcome it is heading to)."""
    return any(
        c.get("type") in ENDED and c.get("status") == "True" for c in job.get("conditions") or []
    )


async def list_pods(kube: Kube, namespace: str, job: str) -> list[dict[str, Any]]:
    found = await kube.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/pods",
        query={"labelSelector": f"batch.kubernetes.io/job-name={job}"},
    )
    return [compact_pod(pod) for pod in found.get("items") or []]


async def gather_approval(
    kube: Kube,
    namespace: str,
    name: str,
    *,
    key: bytes | None,
    execution_uid: str,
    step: str,
    trust_unverified: bool = False,
) -> ApprovalFacts | None:
    """The Approval's outcome as the signed record of decisions says, checked to be the one
    koos created for this run's step; its status (which anyone allowed to write
    approvals/status could set) is never read."""
    body = await kube.find(custom_path("approvals", namespace, name))
    if body is None:
        return None
    return approval_facts(
        body,
        key=key,
        execution_uid=execution_uid,
        step=step,
        trust_unverified=trust_unverified,
        now=datetime.now(UTC),
    )


async def gather_template(kube: Kube, namespace: str, name: str) -> TemplateFacts | None:
    body = await kube.find(custom_path("templates", namespace, name))
    if body is None:
        return None
    meta = body.get("metadata") or {}
    try:
        spec: TemplateSpec | None = TemplateSpec.model_validate(body.get("spec") or {})
        problems: tuple[str, ...] = ()
    except ValidationError as error:
        spec, problems = None, tuple(str(p) for p in problems_from_pydantic(error))
    return TemplateFacts(
        name=name,
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation", 1)),
        spec=spec,
        problems=problems,
    )
