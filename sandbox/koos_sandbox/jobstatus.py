"""What the Job controller computes from a Job and its Pods: counts, completions, deadlines.

These are the decisions of one `JobController._sync` round that need no store: which ended
Pods count as succeeded or failed (`count_terminated`), how many completions are done
(`count_completions`), how many Pods should be active (`wanted_pods`) and which to remove
first (`pods_to_remove`), whether restarts under OnFailure exhausted the back-off limit
(`past_on_failure`), how long is left before `activeDeadlineSeconds` (`deadline_left`), and
the Pod counts written to status (`set_pod_counts`).

Invariants: no I/O and no store access; the only input mutated is the `status` dict a
function documents it writes (the controller's own copy of the Job's status).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from koos_sandbox import jobspec as js
from koos_sandbox.jobspec import INDEX
from koos_sandbox.store import Obj


def count_terminated(
    status: Obj, pods: list[Obj], only_failed: bool, releasable: Callable[[Obj], bool]
) -> tuple[list[Obj], list[Obj], int, list[str]]:
    """Sort the Job's tracked Pods that ended: (succeeded, failed and releasable, failures not
    seen before, uids left in `uncountedTerminatedPods.failed`). A Pod deleted before it
    finished counts as failed unless `podReplacementPolicy` is Failed (`only_failed`).
    Writes `status["failed"]`: uncounted uids whose Pod is no longer tracked are added."""
    uncounted = list((status.get("uncountedTerminatedPods") or {}).get("failed") or [])
    tracked = {p["metadata"]["uid"] for p in pods if js.tracked(p)}
    status["failed"] = status.get("failed", 0) + sum(u not in tracked for u in uncounted)
    uncounted = [u for u in uncounted if u in tracked]
    succeeded_pods, failed_pods, new_failures = [], [], 0
    for pod in pods:
        puid = pod["metadata"]["uid"]
        if not js.tracked(pod):
            continue
        if js.phase(pod) == "Succeeded" and puid not in uncounted:
            succeeded_pods.append(pod)
            continue
        failed = js.phase(pod) == "Failed" or (
            not only_failed and js.deleted(pod) and js.phase(pod) != "Succeeded"
        )
        if not (failed or puid in uncounted):
            continue
        new_failures += puid not in uncounted
        if releasable(pod):
            failed_pods.append(pod)
            uncounted = [u for u in uncounted if u != puid]
        elif puid not in uncounted:
            uncounted.append(puid)
    return succeeded_pods, failed_pods, new_failures, uncounted


def count_completions(spec: Obj, status: Obj, succeeded_pods: list[Obj]) -> tuple[set[int], int]:
    """(completed indexes, succeeded count) once this round's succeeded Pods are added. For an
    Indexed Job the count is that of distinct indexes in range, and writes
    `status["completedIndexes"]`; otherwise no index is tracked."""
    completions = spec.get("completions")
    if spec.get("completionMode") == "Indexed":
        done = js.parse_indexes(status.get("completedIndexes", ""))
        done.update(
            int(p["metadata"].get("annotations", {}).get(INDEX, -1)) for p in succeeded_pods
        )
        done = {i for i in done if 0 <= i < (completions or 0)}
        succeeded = len(done)
        if done:
            status["completedIndexes"] = js.format_indexes(done)
    else:
        done, succeeded = set(), status.get("succeeded", 0) + len(succeeded_pods)
    return done, succeeded


def wanted_pods(spec: Obj, active: list[Obj], succeeded: int) -> int:
    """How many Pods should be active: `parallelism`, capped by the completions left; in the
    work-queue form (no `completions`), no new Pod once one succeeded."""
    parallelism, completions = spec.get("parallelism", 1), spec.get("completions")
    if completions is None:
        want = len(active) if succeeded > 0 else parallelism
    else:
        want = max(0, min(parallelism, completions - succeeded))
    return want


def pods_to_remove(active: list[Obj], count: int) -> list[Obj]:
    """The `count` active Pods to delete first: unscheduled before scheduled, not Running
    before Running, not ready before ready, and the newest first among equals."""
    ordered = sorted(active, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
    ordered.sort(
        key=lambda p: (
            bool(p["spec"].get("nodeName")),
            js.phase(p) == "Running",
            js.ready(p),
        )
    )
    return ordered[:count]


def set_pod_counts(status: Obj, active: list[Obj], terminating: int, uncounted: list[str]) -> None:
    """Write the Pod counts to `status`; zero `active`/`succeeded`/`failed` are left out."""
    status.update(
        active=len(active),
        ready=sum(map(js.ready, active)),
        terminating=terminating,
        uncountedTerminatedPods={"failed": uncounted} if uncounted else {},
    )
    for key in ("active", "succeeded", "failed"):
        if not status[key]:
            del status[key]


def past_on_failure(spec: Obj, active: list[Obj]) -> bool:
    """Under restartPolicy OnFailure, whether the active Pods' container restarts reached
    `backoffLimit` (any restart, when the limit is 0)."""
    if (spec.get("template") or {}).get("spec", {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = sum(
        s.get("restartCount", 0)
        for p in active
        if js.phase(p) in ("Pending", "Running")
        for key in ("initContainerStatuses", "containerStatuses")
        for s in (p.get("status") or {}).get(key) or []
    )
    limit = int(spec.get("backoffLimit", 6))
    return bool(restarts > 0 if limit == 0 else restarts >= limit)


def deadline_left(spec: Obj, status: Obj, suspended: bool) -> float | None:
    """Seconds left before activeDeadlineSeconds, counted from status.startTime."""
    seconds = spec.get("activeDeadlineSeconds")
    if seconds is None or suspended or not status.get("startTime"):
        return None
    return js.seconds(status["startTime"]) + float(seconds) - datetime.now(UTC).timestamp()
