"""Executions: kopf watches and indexes feed a work queue; each reconcile is
gather → `engine.plan` → apply. No business rule lives here.

kopf is used for what it is good at — watching (with server-side label selectors), an index
of the Jobs koos owns, login and probes — and none of its per-object bookkeeping: no
finalizers, no progress annotations on Executions or Jobs. Every decision comes from the
status and the children, so a restarted operator picks up where it was.

Errors: a transient API error (connection, 409, 429, 5xx) or a child whose name another
owner holds is retried by the queue with backoff. Anything else — the planner raising, or
the API server refusing what was planned (400, 413, 422) — cannot get better by retrying:
the run ends Failed, reason InternalError, with the cause in its message
(`planner.plan_failure`), and the traceback is logged once.

Only events that can change a decision wake a reconcile: a Job that ended, is being deleted
or is gone, and any change to an Execution except the echo of koos's own last write (the
planner reaches a fixed point in one pass, so planning again from what it just wrote would
do nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import kopf

from koos.api.constants import GROUP, LABEL_MANAGED_BY, MANAGER, VERSION
from koos.api.execution import TERMINAL_PHASES
from koos.engine import execution as planner
from koos.engine.facts import ExecutionSnapshot, Plan
from koos.engine.timefmt import parse_rfc3339
from koos.handlers import metrics
from koos.handlers.cache import LatestBodies
from koos.handlers.queue import WorkQueue, event_version
from koos.k8s.apply import ApprovalNameTaken, NotOurs, Replan, apply_plan
from koos.k8s.client import Kube, KubeError
from koos.k8s.gather import compact_job, ended, gather_execution

log = logging.getLogger("koos.execution")
OWNED = {LABEL_MANAGED_BY: MANAGER}

Key = tuple[str, str]
REPLANS = 3  # passes in one reconcile when a fresh read contradicts the index


@dataclass
class ExecutionController:
    kube: Kube
    queue: WorkQueue = field(init=False)
    jobs: Mapping[Any, Any] = field(default_factory=dict)  # kopf index: (ns, execution) → jobs
    workers: int = 16
    active: set[tuple[str, str]] = field(default_factory=set)
    bodies: LatestBodies = field(init=False)
    # The operator's signing key (Approvals and approve steps are verified with it), and
    # whether unsigned decisions count (--no-webhooks --trust-unverified-approvals).
    key: bytes | None = field(default=None, repr=False)
    trust_unverified: bool = False
    stopped: set[tuple[str, str, str]] = field(default_factory=set)  # runs whose error is logged

    def __post_init__(self) -> None:
        self.queue = WorkQueue(
            self.reconcile, workers=self.workers, on_skip=metrics.RECONCILE_SKIPPED.inc
        )
        self.bodies = LatestBodies(keep=in_progress)

    async def reconcile(self, key: Any) -> datetime | None:
        namespace, name = str(key[0]), str(key[1])
        with metrics.RECONCILE_SECONDS.time():
            try:
                return await self._reconcile(namespace, name)
            except KubeError as error:
                metrics.RECONCILE_ERRORS.labels(metrics.error_kind(error)).inc()
                raise
            except Replan:
                metrics.RECONCILE_ERRORS.labels("conflict").inc()
                raise
            except ApprovalNameTaken as error:
                metrics.RECONCILE_ERRORS.labels("conflict").inc()
                log.error(
                    "Approval name taken by another owner approval=%s execution=%s/%s",
                    error,
                    namespace,
                    name,
                )
                raise
            except NotOurs as error:
                metrics.RECONCILE_ERRORS.labels(metrics.error_kind(error)).inc()
                # A Job or an Approval: NotOurs names the object, whichever it is.
                log.error(
                    "Name taken by another owner name=%s execution=%s/%s", error, namespace, name
                )
                raise

    async def _reconcile(self, namespace: str, name: str) -> datetime | None:
        key = (namespace, name)
        fresh: dict[str, dict[str, Any]] = {}
        replans = 0
        while True:
            jobs = list(self.jobs.get(key, ()))
            snapshot = await gather_execution(
                self.kube,
                namespace,
                name,
                jobs,
                self.bodies.fresh(key),
                fresh,
                key=self.key,
                trust_unverified=self.trust_unverified,
            )
            if snapshot is None:
                self.active.discard(key)
                self.queue.forget(key)
                self.bodies.forget(key)
                metrics.ACTIVE.set(len(self.active))
                return None
            now = datetime.now(UTC)
            try:
                plan = planner.plan(snapshot, now)
            except Exception as error:
                plan = self._stopped(snapshot, now, "planning failed", error)
            try:
                written = await apply_plan(self.kube, snapshot, plan)
            except Replan as replan:
                # Nothing of the plan was written but idempotent creates: plan again on
                # the Jobs as just read (after a few tries, the queue retries later).
                replans += 1
                if replans == REPLANS:
                    raise
                fresh.update(replan.jobs)
                continue
            except Exception as error:
                self.bodies.distrust(key)  # a status write may have landed, its version unknown
                if is_retried(error):
                    raise
                created = {str(m["metadata"]["name"]) for m in plan.create_jobs}
                plan = self._stopped(snapshot, now, "the API server refused the plan", error)
                # Jobs this same plan created before the refusal are not in the snapshot:
                # stop them too, or they would run on with nobody watching.
                plan = replace(plan, delete_jobs=tuple(sorted({*plan.delete_jobs, *created})))
                written = await apply_plan(self.kube, snapshot, plan)
            break
        self.queue.wrote(key, written)
        self.bodies.wrote(key, written)
        observe(snapshot, plan, now)
        # The gauge counts what this process sees, so it is right after a restart too.
        if plan.status.phase in TERMINAL_PHASES:
            self.active.discard((namespace, name))
        else:
            self.active.add((namespace, name))
        metrics.ACTIVE.set(len(self.active))
        return plan.wake_at

    def _stopped(
        self, snapshot: ExecutionSnapshot, now: datetime, what: str, error: Exception
    ) -> Plan:
        """The plan that ends the run Failed (InternalError), logging the traceback once."""
        metrics.RECONCILE_ERRORS.labels(metrics.error_kind(error)).inc()
        key = (snapshot.namespace, snapshot.name, snapshot.uid)
        if key not in self.stopped:
            self.stopped.add(key)
            log.error(
                "Run stopped, %s execution=%s/%s",
                what,
                snapshot.namespace,
                snapshot.name,
                exc_info=(type(error), error, error.__traceback__),
            )
        return planner.plan_failure(snapshot, now, f"{what}: {describe(error)}")


def is_retried(error: Exception) -> bool:
    """Whether retrying can help: a transient API error, a conflict, a permission that an
    administrator may grant, an object gone meanwhile, a child name held by another owner
    (an Approval's: the next pass fails its step, ApprovalNameTaken)."""
    if isinstance(error, NotOurs | ApprovalNameTaken):
        return True
    return isinstance(error, KubeError) and (error.transient or error.code in (401, 403, 404, 409))


def describe(error: Exception) -> str:
    text = str(error) or "no detail"
    text = text if len(text) <= 300 else text[:299] + "…"
    return f"{type(error).__name__}: {text}"


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

    @kopf.on.event(GROUP, VERSION, "executions", id="koos-execution", registry=registry)
    async def execution_changed(
        type: str | None, body: kopf.Body, namespace: str | None, name: str, **kwargs: Any
    ) -> None:
        # kopf hands every handler the indexes; keep them for the queue's workers.
        controller.jobs = kwargs["jobs_by_execution"]
        key = (str(namespace), name)
        controller.bodies.seen(key, type, body)
        controller.queue.add(key, version=event_version(type, body))

    @kopf.on.event("batch", "v1", "jobs", labels=OWNED, id="koos-job", registry=registry)
    async def job_changed(
        type: str | None, body: kopf.Body, namespace: str | None, **_: Any
    ) -> None:
        # A Job koos just created, or whose Pod started, changes no decision: only an end,
        # a deletion (by anyone) or its disappearance does.
        job = compact_job(body)
        if type != "DELETED" and not job["deleting"] and not ended(job):
            return
        owner = execution_owner(body)
        if owner:
            controller.queue.add((str(namespace), owner))


def in_progress(body: Mapping[str, Any]) -> bool:
    return (body.get("status") or {}).get("phase") not in TERMINAL_PHASES


def execution_owner(body: Mapping[str, Any]) -> str | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Execution" and ref.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(ref.get("name"))
    return None
