"""The Job controller of kube-controller-manager, as 1.32 behaves, over the kubelet stand-in.

- Pods are created from the template as `<job>-<5 chars>` (Indexed: `<job>-<index>-<5>`)
  with the Job's labels, a controller owner reference and the `batch.kubernetes.io/
  job-tracking` finalizer. A finished Pod is counted (status.succeeded/failed) when the
  finalizer is removed. A Pod deleted before it finished counts as failed at once (kept in
  `uncountedTerminatedPods.failed` until the kubelet reports it ended), as with the real
  controller's default `podReplacementPolicy: TerminatingOrFailed`.
- `parallelism`/`completions` (or the work-queue form without completions), `suspend`,
  `backoffLimit` (restart counts under OnFailure), `activeDeadlineSeconds` from
  status.startTime, `completionMode: Indexed` (completedIndexes), `podReplacementPolicy`,
  `ttlSecondsAfterFinished` (the TTL controller's foreground delete), and a pod-creation
  back-off after failures (`pod_backoff`, doubling, 0 by default in scripted mode).
- Success writes SuccessCriteriaMet then Complete; failure writes FailureTarget, deletes the
  active Pods, and writes Failed once none is left terminating. Job Events are recorded.
- Not modelled: podFailurePolicy, successPolicy, backoffLimitPerIndex, adoption of orphans.

Everything is driven by store events through a queue; timers (deadline, back-off, TTL) only
put the Job back on that queue. An error on one Job is logged and the loop goes on.

Layout: jobs.py (this controller: its queue, timers and the sync of one Job), jobstatus.py
(the sync's computations, no store), jobpods.py (the Pods and Events it writes),
jobcontrols.py (the controls tests use), jobspec.py (API-server defaults/validation and
helpers on Job/Pod objects), kubelet.py (scripted Pod lifecycle in the store) or node_agent/
(local processes, through the API), podstatus.py (the status both write), runtime.py (local
processes or scripted outcomes), podenv.py (container environment), nodes.py (Node).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from datetime import UTC, datetime
from typing import Any

from koos_sandbox import jobspec as js
from koos_sandbox.errors import ApiError
from koos_sandbox.jobcontrols import JobControls
from koos_sandbox.jobpods import JOBS, PODS, JobPods
from koos_sandbox.jobspec import INDEX, default_job, default_pod, default_pod_spec, validate_job
from koos_sandbox.jobstatus import (
    count_completions,
    count_terminated,
    deadline_left,
    past_on_failure,
    pods_to_remove,
    set_pod_counts,
    wanted_pods,
)
from koos_sandbox.kubelet import Kubelet, StoreNodes
from koos_sandbox.nodes import DEFAULT_NODE, build_node
from koos_sandbox.registry import ResourceType
from koos_sandbox.runtime import Runtime, ScriptedRuntime, ScriptRule
from koos_sandbox.state import State
from koos_sandbox.store import Event, Obj, now_rfc3339

__all__ = [
    "DEFAULT_NODE",
    "JobController",
    "ScriptRule",
    "build_node",
    "default_job",
    "default_pod",
    "default_pod_spec",
    "validate_job",
]

MANAGER = "kubernetes.io/job-controller"


def _builtin(state: State, group: str, plural: str) -> ResourceType:
    rt = state.registry.find(group, "v1", plural)
    assert rt is not None, plural
    return rt


class JobController(JobControls):
    """The Job controller and the kubelet stand-in of one sandbox.

    `mode` "local" runs containers as local processes, "scripted" ends them as `script()`
    rules say. `pod_backoff`: seconds before re-creating a Pod after a failure, doubled for
    each failure in a row (default 0 scripted, 0.2 local). `grace`: the most a stopped
    container gets between SIGTERM and SIGKILL. `restart_delay`: first CrashLoopBackOff delay
    under restartPolicy OnFailure/Always (doubling; default 0.01 s scripted, 1 s local).
    `entrypoints`: image → argv used when a container has no `command` (local mode).
    """

    def __init__(
        self,
        state: State,
        mode: str = "scripted",
        *,
        pod_backoff: float | None = None,
        grace: float = 1.0,
        restart_delay: float | None = None,
        entrypoints: dict[str, list[str]] | None = None,
    ) -> None:
        if mode not in ("local", "scripted"):
            raise ValueError(f"jobs mode must be 'local' or 'scripted', not {mode!r}")
        self.state, self.store, self.mode = state, state.store, mode
        # Local mode: the sandbox starts a node agent that runs Pods through the HTTPS API
        # (node_agent/); here only what the control plane knows of Nodes.
        self.runtime: Runtime | None = ScriptedRuntime() if mode == "scripted" else None
        if restart_delay is None:
            restart_delay = 0.0 if mode == "scripted" else 1.0
        self.grace, self.restart_delay, self.entrypoints = grace, restart_delay, entrypoints
        self.kubelet: StoreNodes = (
            Kubelet(state, self.runtime, grace=grace, restart_delay=restart_delay)
            if self.runtime is not None
            else StoreNodes(state)
        )
        self.pod_backoff = (
            (0.0 if mode == "scripted" else 0.2) if pod_backoff is None else (pod_backoff)
        )
        self.queue: asyncio.Queue[Event | tuple[str, str]] = asyncio.Queue()
        self._timers: dict[tuple[str, str, str], asyncio.TimerHandle] = {}
        self._failures: dict[str, tuple[int, float]] = {}  # job uid → (in a row, loop time)
        self.job_rt = _builtin(state, "batch", "jobs")
        self.pod_rt = _builtin(state, "", "pods")
        self.event_rt = _builtin(state, "", "events")
        self.ns_rt = _builtin(state, "", "namespaces")
        self.pods = JobPods(
            state.store,
            self.kubelet,
            self.pod_rt,
            self.event_rt,
            self.ns_rt,
            _builtin(state, "", "serviceaccounts"),
        )
        self._refused: dict[str, int] = {}  # job uid → Pod creates refused in a row
        state.store.listeners.append(self._listen)

    # ---- loop --------------------------------------------------------------------------

    def _listen(self, event: Event) -> None:
        if event.key == PODS:
            self.pods.track(event)
        if event.key in (PODS, JOBS):
            self.queue.put_nowait(event)

    async def run(self) -> None:
        await asyncio.gather(self.kubelet.run(), self._loop())

    async def stop(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        with contextlib.suppress(ValueError):
            self.store.listeners.remove(self._listen)
        await self.kubelet.stop()

    async def _loop(self) -> None:
        while True:
            items = [await self.queue.get()]
            while not self.queue.empty():
                items.append(self.queue.get_nowait())
            jobs: set[tuple[str, str]] = set()
            orphans: set[tuple[str, str]] = set()
            for item in items:
                self._guard(self._collect, item, jobs, orphans)
            for ns, name in sorted(jobs):
                self._guard(self._sync, ns, name)
            for ns, name in sorted(orphans):
                self._guard(self.pods.sync_orphan, ns, name)

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except ApiError as error:
            if error.code not in (404, 409):
                self.state.log.warning("job controller: %s", error.message)
        except Exception:
            self.state.log.exception("job controller failed on %s", args[:2])

    def _collect(self, item: Event | tuple[str, str], jobs: set[Any], orphans: set[Any]) -> None:
        if isinstance(item, tuple):
            jobs.add(item)
            return
        meta = item.obj["metadata"]
        if item.key == JOBS:
            jobs.add((item.namespace, meta["name"]))
            if item.type == "DELETED":
                for key in [k for k in self._timers if k[1:] == (item.namespace, meta["name"])]:
                    self._timers.pop(key).cancel()
                self._failures.pop(meta["uid"], None)
                self._refused.pop(meta["uid"], None)
                orphans.update(self.pods.refs(meta["uid"]))
            return
        found = self.store.by_uid(js.controller_uid(item.obj))
        if found is not None and found[0] == JOBS:
            jobs.add((item.namespace, found[1]["metadata"]["name"]))
        elif item.type != "DELETED":
            orphans.add((item.namespace, meta["name"]))

    def _timer(self, kind: str, ns: str, name: str, delay: float) -> None:
        key = (kind, ns, name)
        if key in self._timers:
            self._timers[key].cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(
            max(delay, 0.0) + 0.01, self.queue.put_nowait, (ns, name)
        )

    # ---- sync --------------------------------------------------------------------------

    def _sync(self, ns: str, name: str) -> None:
        job = self.store.find(self.job_rt, ns, name)
        if job is None:
            return
        meta, spec = job["metadata"], job.get("spec") or {}
        if spec.get("managedBy", MANAGER) != MANAGER:
            return
        if not spec.get("selector"):  # created without the write path's defaulting
            self.store.replace(self.job_rt, job, default_job(job, meta["uid"]))
            return
        pods = self.pods.of(job)
        if js.finished(job):
            for pod in pods:
                if js.tracked(pod) and self.pods.releasable(pod):
                    self.pods.release(pod)
            self._ttl(job)
            return
        status = copy.deepcopy(job.get("status") or {})
        conditions: list[Obj] = status.setdefault("conditions", [])
        uid, loop_now = meta["uid"], asyncio.get_running_loop().time()
        limit, completions = spec.get("backoffLimit", 6), spec.get("completions")
        only_failed = spec.get("podReplacementPolicy") == "Failed"
        succeeded_pods, failed_pods, new_failures, uncounted = count_terminated(
            status, pods, only_failed, self.pods.releasable
        )
        in_a_row, _ = self._failures.get(uid, (0, 0.0))
        if new_failures:
            self._failures[uid] = (in_a_row + new_failures, loop_now)
        elif succeeded_pods:
            self._failures.pop(uid, None)
        done, succeeded = count_completions(spec, status, succeeded_pods)
        failed_total = status["failed"] + len(failed_pods) + len(uncounted)
        suspended = bool(spec.get("suspend"))
        if "startTime" not in status and not suspended:
            status["startTime"] = now_rfc3339()
        active = [p for p in pods if not js.terminal(p) and not js.deleted(p)]
        final: tuple[str, str, str] | None = None
        target = js.cond(conditions, "FailureTarget") or js.cond(conditions, "SuccessCriteriaMet")
        if target is not None:
            kind = "Failed" if target["type"] == "FailureTarget" else "Complete"
            final = (kind, target.get("reason", ""), target.get("message", ""))
        else:
            remaining = deadline_left(spec, status, suspended)
            if failed_total > limit or past_on_failure(spec, active):
                final = (
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
            elif remaining is not None and remaining <= 0:
                final = (
                    "Failed",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                )
            elif remaining is not None:
                self._timer("deadline", ns, name, remaining)
            if final is not None:
                conditions.append(js.job_condition("FailureTarget", "True", *final[1:]))
        if final is None:
            if "deletionTimestamp" not in meta:
                active = self._manage(job, status, active, pods, succeeded, done, loop_now)
            met = succeeded > 0 if completions is None else succeeded >= completions
            if met and not active:
                final = (
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                )
                conditions.append(js.job_condition("SuccessCriteriaMet", "True", *final[1:]))
        elif final[0] == "Failed":
            for pod in active:
                self.pods.delete(job, pod, uncount=False)
            active = []
        for pod in succeeded_pods + failed_pods:
            self.pods.release(pod)
        status["succeeded"] = succeeded
        status["failed"] += len(failed_pods)
        self._write_status(job, status, final, active, uncounted)

    def _write_status(
        self,
        job: Obj,
        status: Obj,
        final: tuple[str, str, str] | None,
        active: list[Obj],
        uncounted: list[str],
    ) -> None:
        current = self.store.find(
            self.job_rt, job["metadata"]["namespace"], job["metadata"]["name"]
        )
        if current is None or current["metadata"]["uid"] != job["metadata"]["uid"]:
            return
        pods = self.pods.of(current)
        terminating = sum(1 for p in pods if js.deleted(p) and not js.terminal(p))
        set_pod_counts(status, active, terminating, uncounted)
        if final is not None and not uncounted and not terminating:
            status["conditions"].append(js.job_condition(*final[:1], "True", *final[1:]))
            if final[0] == "Complete":
                status["completionTime"] = status["conditions"][-1]["lastTransitionTime"]
                self.pods.record(current, "Normal", "Completed", "Job completed")
            else:
                self.pods.record(current, "Warning", final[1], final[2])
        if not status["conditions"]:
            del status["conditions"]
        self.store.replace(self.job_rt, current, {**current, "status": status})
        if js.finished({"status": status}):
            self._ttl(
                self.store.find(
                    self.job_rt, current["metadata"]["namespace"], current["metadata"]["name"]
                )
                or current
            )

    def _manage(
        self,
        job: Obj,
        status: Obj,
        active: list[Obj],
        pods: list[Obj],
        succeeded: int,
        done: set[int],
        loop_now: float,
    ) -> list[Obj]:
        spec, meta = job["spec"], job["metadata"]
        conditions = status["conditions"]
        suspended = js.cond(conditions, "Suspended")
        if spec.get("suspend"):
            for pod in active:
                self.pods.delete(job, pod, uncount=True)
            if suspended is None:
                conditions[:] = [c for c in conditions if c.get("type") != "Suspended"]
                conditions.append(
                    js.job_condition("Suspended", "True", "JobSuspended", "Job suspended")
                )
                self.pods.record(job, "Normal", "Suspended", "Job suspended")
            return []
        if suspended is not None:
            conditions[:] = [c for c in conditions if c.get("type") != "Suspended"]
            conditions.append(js.job_condition("Suspended", "False", "JobResumed", "Job resumed"))
            status["startTime"] = now_rfc3339()
            self.pods.record(job, "Normal", "Resumed", "Job resumed")
        completions = spec.get("completions")
        want = wanted_pods(spec, active, succeeded)
        if len(active) > want:
            doomed = pods_to_remove(active, len(active) - want)
            for pod in doomed:
                self.pods.delete(job, pod, uncount=True)
            return [p for p in active if p not in doomed]
        terminating = [p for p in pods if js.deleted(p) and not js.terminal(p)]
        diff = (
            want
            - len(active)
            - (len(terminating) if spec.get("podReplacementPolicy") == "Failed" else 0)
        )
        namespace = self.store.find(self.ns_rt, "", meta["namespace"])
        if diff <= 0 or namespace is None or "deletionTimestamp" in namespace["metadata"]:
            return active
        in_a_row, last = self._failures.get(meta["uid"], (0, 0.0))
        if in_a_row and self.pod_backoff > 0:
            wait = last + min(self.pod_backoff * 2 ** (in_a_row - 1), 600.0) - loop_now
            if wait > 0:
                self._timer("backoff", meta["namespace"], meta["name"], wait)
                return active
        indexes: list[int | None] = [None] * diff
        if spec.get("completionMode") == "Indexed":
            busy = {int(p["metadata"].get("annotations", {}).get(INDEX, -1)) for p in active}
            indexes = [i for i in range(completions or 0) if i not in done and i not in busy]
        created = []
        for i in indexes[:diff]:
            try:
                created.append(self.pods.create(job, i))
            except ApiError as refused:
                if refused.code != 403:
                    raise
                # The real controller requeues the Job with backoff: 1 s doubling to 60 s.
                tries = self._refused[meta["uid"]] = self._refused.get(meta["uid"], 0) + 1
                self._timer("refused", meta["namespace"], meta["name"], min(2 ** (tries - 1), 60))
                break
        else:
            self._refused.pop(meta["uid"], None)
        return active + [p for p in created if p is not None]

    def _ttl(self, job: Obj) -> None:
        """The TTL-after-finished controller: delete (foreground) `ttl` seconds after."""
        ttl, meta = (job.get("spec") or {}).get("ttlSecondsAfterFinished"), job["metadata"]
        done = js.finished(job)
        if ttl is None or done is None or "deletionTimestamp" in meta:
            return
        finished_at = (
            (job.get("status") or {}).get("completionTime")
            or done.get("lastTransitionTime")
            or now_rfc3339()
        )
        left = js.seconds(finished_at) + ttl - datetime.now(UTC).timestamp()
        if left > 0:
            self._timer("ttl", meta["namespace"], meta["name"], left)
            return
        finalizers = list(meta.get("finalizers") or [])
        self.store.mark_deleted(self.job_rt, job, [*finalizers, "foregroundDeletion"])
