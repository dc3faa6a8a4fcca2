"""Gather the snapshot the planner decides on: the Execution as read now, its Template (only
before the run starts), and the facts of its Jobs.

Jobs come from the operator's in-memory index (filled by a watch, no requests). A Job the
status names but the index lacks may just not have arrived yet, so it is read once before
the planner may call it lost: no step is failed on a stale cache. Jobs the k8s layer has
just read itself (`fresh`: before a delete, or after a create that met someone else's Job)
replace the index's view when they are further along, as a Job's end and its deletion
never go back. Pods are not watched (each makes several events in its short life, none of
which changes a decision): when a Job whose outcome the planner may settle a step on has
ended (`engine.steps.outcome_jobs`: a running step's Job, and the one a pending or retrying
step would launch, which exists already when the status write after its create was lost),
its Pods are listed once for the exit code, the output and (when the Pod still exists) its
disruption. Any other ended Job is marked as not read, and no step settles on it.

A Job owned by anything but this Execution (by uid: an earlier Execution of the same name)
is marked foreign: the planner never adopts, reads or deletes it.

Two more reads, each in its own module: the Pods of a running step's Job that reports no
ready Pod, at the planner's wake-ups (`k8s.pods`), and the Secret values to mask in the
text of a Job that ended (`k8s.secrets`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from koos.api.constants import ANNOTATION_CREATED_BY, LABEL_ATTEMPT, LABEL_ITEM, LABEL_STEP
from koos.api.execution import ExecutionSpec, ExecutionStatus
from koos.api.template import TemplateSpec
from koos.engine.approval_proof import approval_facts
from koos.engine.facts import ApprovalFacts, ExecutionSnapshot, JobFacts, TemplateFacts
from koos.engine.loop import running_jobs
from koos.engine.steps import outcome_jobs
from koos.engine.template import problems_from_pydantic
from koos.engine.timefmt import parse_rfc3339
from koos.k8s.client import Kube, custom_path, job_path
from koos.k8s.pods import with_pod_starts
from koos.k8s.secrets import with_secret_values

STEP_CONTAINER = "step"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set on a Job's Pods by the Job controller
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
    owner = next(
        (
            ref.get("uid")
            for ref in meta.get("ownerReferences") or []
            if ref.get("kind") == "Execution" and ref.get("controller")
        ),
        None,
    )
    labels = meta.get("labels") or {}
    return {
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "owner": owner,  # uid of the Execution that controls it
        "step": labels.get(LABEL_STEP),
        "item": labels.get(LABEL_ITEM),  # a loop item's index
        "attempt": labels.get(LABEL_ATTEMPT),
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


def job_facts(
    job: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    *,
    pods_read: bool = True,
    foreign: bool = False,
) -> JobFacts:
    """`pods_read`: whether `pods` were listed (else an ended Job's outcome is unknown)."""
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
        "pods_read": pods_read or not ended(job),
        "foreign": foreign,
        "uid": str(job.get("uid") or ""),
        "step": str(job.get("step") or ""),
        "index": _number(job.get("item")),
        "attempt": _number(job.get("attempt")) if job.get("item") is not None else None,
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


def _number(text: Any) -> int | None:
    return int(text) if isinstance(text, str) and text.isdigit() and len(text) < 10 else None


async def gather_execution(
    kube: Kube,
    namespace: str,
    name: str,
    jobs: Iterable[Mapping[str, Any]],
    body: Mapping[str, Any] | None = None,
    fresh: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    key: bytes | None = None,
    trust_unverified: bool = False,
) -> ExecutionSnapshot | None:
    """`body`: the Execution as the watch delivered it, when it is known to be recent
    enough (see `handlers.cache`); otherwise it is read. `fresh`: compact Jobs read from
    the API since `jobs` (the index's) were taken. `key`: the operator's signing key
    (Approvals and approve steps are verified with it); `trust_unverified`: unsigned
    decisions count (`--no-webhooks --trust-unverified-approvals`, development only)."""
    if body is None:
        body = await kube.find(custom_path("executions", namespace, name))
    if body is None:
        return None
    meta = body.get("metadata") or {}
    uid = str(meta.get("uid", ""))
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
    known_jobs = merge_jobs(jobs, fresh or {})
    for record in status.steps or []:
        named = set(running_jobs(name, record))
        if record.phase == "Running" and record.job_name and record.retry_time is None:
            named.add(record.job_name)
        for job_name in sorted(named - known_jobs.keys()):
            found = await kube.find(job_path(namespace, job_name))
            if found is not None:
                known_jobs[job_name] = compact_job(found)
    # An ended Job the planner may settle a step on: its Pod holds the exit code, the
    # output (the termination message) and, if the Pod is still there, why it was disrupted
    # (else the Job's own condition says why it failed). Pods are read then, not watched:
    # those of every such Job in one request.
    readable = outcome_jobs(name, status, template.spec if template is not None else None)
    foreign = {n for n, job in known_jobs.items() if job.get("owner") != uid}
    read = sorted(n for n in readable.keys() & known_jobs.keys() - foreign if ended(known_jobs[n]))
    pods = await list_pods(kube, namespace, read) if read else {}
    facts = {
        job_name: job_facts(
            job,
            pods.get(job_name, ()),
            pods_read=job_name in pods,
            foreign=job_name in foreign,
        )
        for job_name, job in known_jobs.items()
    }
    # Issue 10: a Pod that cannot start is looked at; secrets are masked out of Pod text.
    facts = await with_pod_starts(kube, namespace, status, known_jobs, facts, name)
    facts = await with_secret_values(
        kube,
        namespace,
        status,
        template.spec if template is not None else None,
        readable,
        facts,
        spec.parameters if spec is not None else None,
    )
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
        uid=uid,
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


def merge_jobs(
    indexed: Iterable[Mapping[str, Any]], fresh: Mapping[str, Mapping[str, Any]]
) -> dict[str, Mapping[str, Any]]:
    """The index's Jobs, each replaced by its fresh read when that one is as far along (an
    end and a deletion are never undone, so the one further along is the newer)."""
    merged: dict[str, Mapping[str, Any]] = {str(job["name"]): job for job in indexed}
    for job_name, job in fresh.items():
        known = merged.get(job_name)
        if known is None or progress(job) >= progress(known):
            merged[job_name] = job
    return merged


def progress(job: Mapping[str, Any]) -> tuple[bool, bool]:
    return ended(job), bool(job.get("deleting"))


def ended(job: Mapping[str, Any]) -> bool:
    """The Job reports an outcome (or, from Kubernetes 1.31, the outcome it is heading to)."""
    return any(
        c.get("type") in ENDED and c.get("status") == "True" for c in job.get("conditions") or []
    )


async def list_pods(kube: Kube, namespace: str, jobs: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The compact Pods of each of `jobs`, by Job name (every Job a key, Pods or none)."""
    selector = (
        f"{JOB_NAME_LABEL}={jobs[0]}"
        if len(jobs) == 1
        else f"{JOB_NAME_LABEL} in ({','.join(jobs)})"
    )
    found = await kube.request(
        "GET", f"/api/v1/namespaces/{namespace}/pods", query={"labelSelector": selector}
    )
    pods: dict[str, list[dict[str, Any]]] = {job: [] for job in jobs}
    for pod in found.get("items") or []:
        job = ((pod.get("metadata") or {}).get("labels") or {}).get(JOB_NAME_LABEL)
        if job in pods:
            pods[job].append(compact_pod(pod))
    return pods


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
