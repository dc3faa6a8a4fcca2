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

Layout: jobs.py (this controller, and the controls tests use), jobspec.py (API-server
defaults/validation and helpers on Job/Pod objects), kubelet.py (Pod lifecycle), runtime.py
(local processes or scripted outcomes), podenv.py (container environment), nodes.py (Node).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from koos.sandbox import jobspec as js
from koos.sandbox.errors import ApiError
from koos.sandbox.jobspec import (
    INDEX,
    JOB_TRACKING,
    default_job,
    default_pod,
    default_pod_spec,
    delete_object,
    validate_job,
)
from koos.sandbox.kubelet import Kubelet
from koos.sandbox.nodes import DEFAULT_NODE, build_node
from koos.sandbox.registry import ResourceType
from koos.sandbox.runtime import LocalRuntime, Runtime, ScriptedRuntime, ScriptRule
from koos.sandbox.state import State
from koos.sandbox.store import Event, Obj, now_rfc3339

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
JOBS, PODS = ("batch", "jobs"), ("", "pods")
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _builtin(state: State, group: str, plural: str) -> ResourceType:
    rt = state.registry.find(group, "v1", plural)
    assert rt is not None, plural
    return rt


class JobController:
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
        self.runtime: Runtime = (
            LocalRuntime(entrypoints=entrypoints) if mode == "local" else ScriptedRuntime()
        )
        if restart_delay is None:
            restart_delay = 0.0 if mode == "scripted" else 1.0
        self.kubelet = Kubelet(state, self.runtime, grace=grace, restart_delay=restart_delay)
        self.pod_backoff = (
            (0.0 if mode == "scripted" else 0.2) if pod_backoff is None else (pod_backoff)
        )
        self.queue: asyncio.Queue[Event | tuple[str, str]] = asyncio.Queue()
        self._pods_by_job: dict[str, set[tuple[str, str]]] = {}
        self._timers: dict[tuple[str, str, str], asyncio.TimerHandle] = {}
        self._failures: dict[str, tuple[int, float]] = {}  # job uid → (in a row, loop time)
        self.job_rt = _builtin(state, "batch", "jobs")
        self.pod_rt = _builtin(state, "", "pods")
        self.event_rt = _builtin(state, "", "events")
        self.ns_rt = _builtin(state, "", "namespaces")
        state.store.listeners.append(self._listen)

    # ---- test controls -----------------------------------------------------------------

    def script(
        self,
        pattern: str | None = None,
        *,
        labels: dict[str, str] | None = None,
        container: str | None = None,
        exit_code: int = 0,
        message: str = "",
        logs: str = "",
        duration: float = 0.0,
        pending: bool = False,
        reason: str = "",
        times: int | None = None,
    ) -> ScriptRule:
        """Decide how matching containers end (scripted mode); the last added matching rule
        wins; without one a container succeeds at once with no logs. `pattern` is a shell
        pattern on the Job name or the Pod name, `labels` must all be on the Pod,
        `container` limits the rule to one container, `times` to that many container
        starts. `pending` keeps the container waiting in ErrImagePull/ImagePullBackOff
        until the Pod is deleted; `duration` (seconds, on the event loop) keeps it Running."""
        if not isinstance(self.runtime, ScriptedRuntime):
            raise RuntimeError("script() needs the sandbox's jobs mode 'scripted'")
        return self.runtime.add(
            ScriptRule(
                pattern,
                labels,
                container,
                exit_code,
                message,
                logs,
                duration,
                pending,
                reason,
                times,
            )
        )

    def clear_scripts(self) -> None:
        """Forget every `script()` rule: containers succeed at once again."""
        if isinstance(self.runtime, ScriptedRuntime):
            self.runtime.rules.clear()

    def evict_pod(self, namespace: str, name: str) -> None:
        """As the Eviction API does: condition DisruptionTarget (EvictionByEvictionAPI), then
        delete; the kubelet stops the containers and reports the Pod Failed."""
        self.kubelet.evict(namespace, name)

    def delete_pod(self, namespace: str, name: str) -> None:
        """A plain delete (the Job's finalizer keeps the Pod until it is counted)."""
        self.kubelet.delete(namespace, name)

    def lose_node(self, name: str = DEFAULT_NODE) -> None:
        """The Node goes NotReady (conditions Unknown, unreachable taints); its Pods get
        DisruptionTarget (DeletionByTaintManager), phase Failed and are deleted; their
        processes are killed. New Pods stay unschedulable until `restore_node`."""
        self.kubelet.set_node_ready(name, False)

    def restore_node(self, name: str = DEFAULT_NODE) -> None:
        """The Node is Ready again; Pods waiting to be scheduled are bound to it."""
        self.kubelet.set_node_ready(name, True)

    # ---- loop --------------------------------------------------------------------------

    def _listen(self, event: Event) -> None:
        if event.key == PODS:
            ref = (event.namespace, event.obj["metadata"]["name"])
            old = js.controller_uid(event.old)
            new = "" if event.type == "DELETED" else js.controller_uid(event.obj)
            if old and old != new and old in self._pods_by_job:
                self._pods_by_job[old].discard(ref)
                if not self._pods_by_job[old]:
                    del self._pods_by_job[old]
            if new:
                self._pods_by_job.setdefault(new, set()).add(ref)
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
                self._guard(self._sync_orphan, ns, name)

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
                orphans.update(self._pods_by_job.get(meta["uid"], set()))
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

    # ---- pods --------------------------------------------------------------------------

    def _pods(self, job: Obj) -> list[Obj]:
        uid, found = job["metadata"]["uid"], []
        for ns, name in sorted(self._pods_by_job.get(uid, set())):
            pod = self.store.find(self.pod_rt, ns, name)
            if pod is not None and js.controller_uid(pod) == uid:
                found.append(pod)
        return found

    def _releasable(self, pod: Obj) -> bool:
        """A Pod's finalizer can go once nothing will report on it any more."""
        return js.terminal(pod) or not self.kubelet.manages(pod)

    def _release(self, pod: Obj) -> None:
        meta = pod["metadata"]
        current = self.store.find(self.pod_rt, meta.get("namespace", ""), meta["name"])
        if current is None or current["metadata"]["uid"] != meta["uid"] or not js.tracked(current):
            return
        new = copy.deepcopy(current)
        new["metadata"]["finalizers"] = [
            f for f in new["metadata"]["finalizers"] if f != JOB_TRACKING
        ]
        self.store.replace(self.pod_rt, current, new)

    def _sync_orphan(self, ns: str, name: str) -> None:
        pod = self.store.find(self.pod_rt, ns, name)
        if pod is None or not js.tracked(pod):
            return
        owner = js.controller_uid(pod)
        found = self.store.by_uid(owner) if owner else None
        if found is not None and found[0] == JOBS and not js.finished(found[1]):
            return
        if owner and found is None and not js.deleted(pod) and not js.terminal(pod):
            return  # its Job is gone: the garbage collector deletes it first
        if self._releasable(pod):
            self._release(pod)

    def _create_pod(self, job: Obj, index: int | None) -> Obj | None:
        meta, spec = job["metadata"], job["spec"]
        template = copy.deepcopy(spec.get("template") or {})
        tmeta = template.get("metadata") or {}
        prefix = (f"{meta['name']}-" if index is None else f"{meta['name']}-{index}-")[:58]
        labels, notes = dict(tmeta.get("labels") or {}), dict(tmeta.get("annotations") or {})
        pod_spec = template.get("spec") or {}
        if index is not None:
            labels[INDEX] = notes[INDEX] = str(index)
            pod_spec.setdefault("hostname", f"{meta['name']}-{index}"[:63].rstrip("-"))
            for c in [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]:
                c["env"] = [
                    *(c.get("env") or []),
                    {
                        "name": "JOB_COMPLETION_INDEX",
                        "valueFrom": {
                            "fieldRef": {"fieldPath": f"metadata.annotations['{INDEX}']"}
                        },
                    },
                ]
        body = default_pod(
            {
                "metadata": {
                    "generateName": prefix,
                    "labels": labels,
                    "finalizers": [JOB_TRACKING],
                    **({"annotations": notes} if notes else {}),
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": pod_spec,
            }
        )
        for _ in range(10):
            body["metadata"]["name"] = prefix + "".join(random.choices(_ALPHABET, k=5))
            try:
                pod = self.store.create(self.pod_rt, meta["namespace"], body)
            except ApiError as error:
                if error.code == 409:
                    continue
                raise
            self._record(
                job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}"
            )
            return pod
        return None

    def _delete_pod(self, job: Obj, pod: Obj, *, uncount: bool) -> None:
        """Delete an active Pod; `uncount` removes the finalizer first, so the Pod is not
        counted as failed (suspend, parallelism down), as the real controller does."""
        if uncount:
            self._release(pod)
            pod = (
                self.store.find(self.pod_rt, pod["metadata"]["namespace"], pod["metadata"]["name"])
                or pod
            )
        delete_object(self.store, self.pod_rt, pod)
        self._record(job, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")

    def _record(self, job: Obj, kind: str, reason: str, message: str) -> None:
        meta, now = job["metadata"], now_rfc3339()
        ns = self.store.find(self.ns_rt, "", meta["namespace"])
        if ns is None or "deletionTimestamp" in ns["metadata"]:
            return
        self.store.create(
            self.event_rt,
            meta["namespace"],
            {
                "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}"},
                "involvedObject": {
                    "kind": "Job",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "apiVersion": "batch/v1",
                    "resourceVersion": meta.get("resourceVersion", ""),
                },
                "reason": reason,
                "message": message,
                "type": kind,
                "source": {"component": "job-controller"},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "eventTime": None,
                "reportingComponent": "job-controller",
                "reportingInstance": "",
            },
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
        pods = self._pods(job)
        if js.finished(job):
            for pod in pods:
                if js.tracked(pod) and self._releasable(pod):
                    self._release(pod)
            self._ttl(job)
            return
        status = copy.deepcopy(job.get("status") or {})
        conditions: list[Obj] = status.setdefault("conditions", [])
        uid, loop_now = meta["uid"], asyncio.get_running_loop().time()
        limit, completions = spec.get("backoffLimit", 6), spec.get("completions")
        indexed = spec.get("completionMode") == "Indexed"
        only_failed = spec.get("podReplacementPolicy") == "Failed"
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
            if self._releasable(pod):
                failed_pods.append(pod)
                uncounted = [u for u in uncounted if u != puid]
            elif puid not in uncounted:
                uncounted.append(puid)
        in_a_row, _ = self._failures.get(uid, (0, 0.0))
        if new_failures:
            self._failures[uid] = (in_a_row + new_failures, loop_now)
        elif succeeded_pods:
            self._failures.pop(uid, None)
        if indexed:
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
            remaining = self._deadline(spec, status, suspended)
            if failed_total > limit or self._past_on_failure(spec, active):
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
                self._delete_pod(job, pod, uncount=False)
            active = []
        for pod in succeeded_pods + failed_pods:
            self._release(pod)
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
        pods = self._pods(current)
        terminating = sum(1 for p in pods if js.deleted(p) and not js.terminal(p))
        status.update(
            active=len(active),
            ready=sum(map(js.ready, active)),
            terminating=terminating,
            uncountedTerminatedPods={"failed": uncounted} if uncounted else {},
        )
        for key in ("active", "succeeded", "failed"):
            if not status[key]:
                del status[key]
        if final is not None and not uncounted and not terminating:
            status["conditions"].append(js.job_condition(*final[:1], "True", *final[1:]))
            if final[0] == "Complete":
                status["completionTime"] = status["conditions"][-1]["lastTransitionTime"]
                self._record(current, "Normal", "Completed", "Job completed")
            else:
                self._record(current, "Warning", final[1], final[2])
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
                self._delete_pod(job, pod, uncount=True)
            if suspended is None:
                conditions[:] = [c for c in conditions if c.get("type") != "Suspended"]
                conditions.append(
                    js.job_condition("Suspended", "True", "JobSuspended", "Job suspended")
                )
                self._record(job, "Normal", "Suspended", "Job suspended")
            return []
        if suspended is not None:
            conditions[:] = [c for c in conditions if c.get("type") != "Suspended"]
            conditions.append(js.job_condition("Suspended", "False", "JobResumed", "Job resumed"))
            status["startTime"] = now_rfc3339()
            self._record(job, "Normal", "Resumed", "Job resumed")
        parallelism, completions = spec.get("parallelism", 1), spec.get("completions")
        if completions is None:
            want = len(active) if succeeded > 0 else parallelism
        else:
            want = max(0, min(parallelism, completions - succeeded))
        if len(active) > want:
            ordered = sorted(
                active, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True
            )
            ordered.sort(
                key=lambda p: (
                    bool(p["spec"].get("nodeName")),
                    js.phase(p) == "Running",
                    js.ready(p),
                )
            )
            doomed = ordered[: len(active) - want]
            for pod in doomed:
                self._delete_pod(job, pod, uncount=True)
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
        created = [self._create_pod(job, i) for i in indexes[:diff]]
        return active + [p for p in created if p is not None]

    @staticmethod
    def _past_on_failure(spec: Obj, active: list[Obj]) -> bool:
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

    @staticmethod
    def _deadline(spec: Obj, status: Obj, suspended: bool) -> float | None:
        """Seconds left before activeDeadlineSeconds, counted from status.startTime."""
        seconds = spec.get("activeDeadlineSeconds")
        if seconds is None or suspended or not status.get("startTime"):
            return None
        return js.seconds(status["startTime"]) + float(seconds) - datetime.now(UTC).timestamp()

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
