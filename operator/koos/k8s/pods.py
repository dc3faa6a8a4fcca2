"""Look at the Pods of a running step's Job that has not reported a ready Pod: what does it
wait for? (`koos.engine.pod_start` says why and when.)

Pods are not watched. A running step's Job that is Active, not being deleted and whose
`status.ready` is 0 (or not reported) has its Pods listed once per pass, only from
`pod_start.FIRST_PROBE` after its creation: the planner wakes the run at the probe times, and
a Job whose Pod is ready costs nothing. The newest Pod's step container says whether it started
(running or ended) or why it waits; a Pod not yet scheduled says why not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from koos.api.execution import ExecutionStatus
from koos.engine.facts import JobFacts
from koos.engine.jobs import CONTAINER_NAME
from koos.engine.loop import running_jobs
from koos.engine.pod_start import is_probe_due
from koos.k8s.client import Kube


async def with_pod_starts(
    kube: Kube,
    namespace: str,
    status: ExecutionStatus,
    jobs: Mapping[str, Mapping[str, Any]],
    facts: Mapping[str, JobFacts],
    execution: str = "",
) -> dict[str, JobFacts]:
    """`facts`, with whether each running step's Active Job (and each Job of a loop's item
    in flight: `execution` names them) has a started Pod (from the Job's status, else from
    a probe of its Pods)."""
    out = dict(facts)
    now = datetime.now(UTC)
    names: list[str] = []
    for record in status.steps or []:
        if record.phase == "Running" and record.job_name and not record.retry_time:
            names.append(record.job_name)
        if execution:
            names.extend(sorted(running_jobs(execution, record)))
    for name in names:
        fact, job = facts.get(name), jobs.get(name) or {}
        if fact is None or fact.phase != "Active" or fact.deleting:
            continue
        ready = job.get("ready")
        fact = replace(fact, ready=int(ready) if isinstance(ready, int) else None)
        if not fact.ready and is_probe_due(fact.created, now):
            fact = replace(fact, probed=True, **await _probe(kube, namespace, name))
        out[name] = fact
    return out


async def _probe(kube: Kube, namespace: str, job: str) -> dict[str, Any]:
    found = await kube.request(
        "GET",
        f"/api/v1/namespaces/{quote(namespace)}/pods",
        query={"labelSelector": f"batch.kubernetes.io/job-name={job}"},
    )
    pods = sorted(
        found.get("items") or [],
        key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "",
    )
    return start_of(pods[-1]) if pods else {}


def start_of(pod: Mapping[str, Any]) -> dict[str, Any]:
    """What a Pod says about its start: `pod_started`, or `waiting_reason`/`waiting_message`."""
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        if container.get("name") != CONTAINER_NAME:
            continue
        state = container.get("state") or {}
        if "running" in state or "terminated" in state:
            return {"pod_started": True}
        waiting = state.get("waiting") or {}
        if waiting.get("reason"):
            return {
                "waiting_reason": str(waiting["reason"]),
                "waiting_message": str(waiting.get("message") or ""),
            }
    if status.get("phase") in ("Running", "Succeeded", "Failed"):
        return {"pod_started": True}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return {
                "waiting_reason": str(condition.get("reason") or "Unschedulable"),
                "waiting_message": str(condition.get("message") or ""),
            }
    return {}
