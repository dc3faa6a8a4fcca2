"""Executions: kopf watches and indexes feed a work queue; each reconcile is
gather → `engine.plan` → apply. No business rule lives here.

kopf is used for what it is good at — watching (with server-side label selectors), indexes
of the Jobs and Pods koos owns, login and probes — and none of its per-object bookkeeping:
no finalizers, no progress annotations on Executions or Jobs. Every decision comes from the
status and the children, so a restarted operator picks up where it was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from koos.api.constants import ANNOTATION_EXECUTION, GROUP, LABEL_MANAGED_BY, MANAGER, VERSION
from koos.api.execution import TERMINAL_PHASES
from koos.engine import execution as planner
from koos.engine.facts import ExecutionSnapshot, Plan
from koos.engine.timefmt import parse_rfc3339
from koos.handlers import metrics
from koos.handlers.queue import WorkQueue
from koos.k8s.apply import NotOurs, apply_plan
from koos.k8s.client import Kube, KubeError
from koos.k8s.gather import compact_job, compact_pod, gather_execution

log = logging.getLogger("koos.execution")
OWNED = {LABEL_MANAGED_BY: MANAGER}

Key = tuple[str, str]


@dataclass
class ExecutionController:
    kube: Kube
    queue: WorkQueue = field(init=False)
    jobs: Mapping[Any, Any] = field(default_factory=dict)  # kopf index: (ns, execution) → jobs
    pods: Mapping[Any, Any] = field(default_factory=dict)  # kopf index: (ns, job) → pods
    workers: int = 16
    active: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.queue = WorkQueue(self.reconcile, workers=self.workers)

    async def reconcile(self, key: Any) -> datetime | None:
        namespace, name = str(key[0]), str(key[1])
        with metrics.RECONCILE_SECONDS.time():
            try:
                return await self._reconcile(namespace, name)
            except KubeError as error:
                metrics.RECONCILE_ERRORS.labels("conflict" if error.code == 409 else "api").inc()
                raise
            except NotOurs as error:
                metrics.RECONCILE_ERRORS.labels("conflict").inc()
                log.error(
                    "Job name taken by another owner job=%s execution=%s/%s", error, namespace, name
                )
                raise

    async def _reconcile(self, namespace: str, name: str) -> datetime | None:
        jobs = list(self.jobs.get((namespace, name), ()))

        def pods_of(job: str) -> list[Any]:
            return list(self.pods.get((namespace, job), ()))

        snapshot = await gather_execution(self.kube, namespace, name, jobs, pods_of)
        if snapshot is None:
            self.active.discard((namespace, name))
            metrics.ACTIVE.set(len(self.active))
            return None
        now = datetime.now(UTC)
        plan = planner.plan(snapshot, now)
        await apply_plan(self.kube, snapshot, plan)
        observe(snapshot, plan, now)
        # The gauge counts what this process sees, so it is right after a restart too.
        if plan.status.phase in TERMINAL_PHASES:
            self.active.discard((namespace, name))
        else:
            self.active.add((namespace, name))
        metrics.ACTIVE.set(len(self.active))
        return plan.wake_at


def observe(snapshot: ExecutionSnapshot, plan: Plan, now: datetime) -> None:
    """Metrics from what changed between the status before and after the plan."""
    before, after = snapshot.status, plan.status
    if after.phase in TERMINAL_PHASES and before.phase not in TERMINAL_PHASES:
        metrics.EXECUTIONS.labels(after.phase).inc()
        if after.start_time:
            metrics.EXECUTION_SECONDS.labels(after.phase).observe(
                (now - parse_rfc3339(after.start_time)).total_seconds()
            )
    old = {s.name: s for s in before.steps or []}
    for step in after.steps or []:
        previous = old.get(step.name)
        if (
            step.phase in ("Succeeded", "Failed", "Cancelled")
            and (previous is None or previous.phase != step.phase)
            and step.start_time
        ):
            metrics.STEP_SECONDS.labels(step.phase).observe(
                (now - parse_rfc3339(step.start_time)).total_seconds()
            )


def register(registry: kopf.OperatorRegistry, controller: ExecutionController) -> None:
    """kopf handlers for Executions and the Jobs and Pods they own."""

    # Keyed by the owning Execution's name (from the owner reference: labels may be hashed).
    @kopf.index("batch", "v1", "jobs", labels=OWNED, id="jobs_by_execution", registry=registry)
    async def jobs_by_execution(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
        owner = execution_owner(body)
        return {(namespace, owner): compact_job(body)} if owner else None

    @kopf.index("", "v1", "pods", labels=OWNED, id="pods_by_job", registry=registry)
    async def pods_by_job(body: kopf.Body, namespace: str | None, labels: Any, **_: Any) -> Any:
        job = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
        return {(namespace, job): compact_pod(body)} if job else None

    @kopf.on.event(GROUP, VERSION, "executions", id="koos-execution", registry=registry)
    async def execution_changed(namespace: str | None, name: str, **kwargs: Any) -> None:
        # kopf hands every handler the indexes; keep them for the queue's workers.
        controller.jobs, controller.pods = kwargs["jobs_by_execution"], kwargs["pods_by_job"]
        controller.queue.add((namespace, name))

    @kopf.on.event("batch", "v1", "jobs", labels=OWNED, id="koos-job", registry=registry)
    async def job_changed(body: kopf.Body, namespace: str | None, **_: Any) -> None:
        owner = execution_owner(body)
        if owner:
            controller.queue.add((namespace, owner))

    @kopf.on.event("", "v1", "pods", labels=OWNED, id="koos-pod", registry=registry)
    async def pod_changed(
        namespace: str | None, labels: Any, body: kopf.Body, **kwargs: Any
    ) -> None:
        # Only a Pod that ended or was disrupted can change a decision; the Job's own
        # events cover the rest (and most Pod updates are scheduling and readiness).
        pod = compact_pod(body)
        if pod["phase"] not in ("Succeeded", "Failed") and not pod["disruption"]:
            return
        owner = (body.get("metadata") or {}).get("annotations", {}).get(ANNOTATION_EXECUTION)
        if owner:
            controller.queue.add((namespace, owner))


def execution_owner(body: Mapping[str, Any]) -> str | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Execution" and ref.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(ref.get("name"))
    return None
