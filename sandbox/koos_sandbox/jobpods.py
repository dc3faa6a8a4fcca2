"""The Job controller's side effects on Pods and Events, and the pure builders behind them.

- `build_pod`: the Pod for a Job (Indexed: for one completion index) from its template, with
  the Job's labels, `JOB_COMPLETION_INDEX`, a controller owner reference and the
  `batch.kubernetes.io/job-tracking` finalizer; `JobPods.create` names it
  `<job>-<5 chars>` (Indexed: `<job>-<index>-<5 chars>`), retrying a name taken.
- The owner index (`JobPods.track`, fed with every Pod event) finds a Job's Pods without
  scanning the store.
- `JobPods.release` removes the finalizer once nothing will report on the Pod any more
  (`releasable`): then, and only then, the Pod counts as finished.
- `build_event`: the Events the controller records; `JobPods.record` skips them when the
  namespace is gone or going.

Invariants: `build_pod` is pure and `build_event` only adds a random Event name; `JobPods`
writes only through the store, and `release` re-reads the Pod and changes it only while it
is the same Pod (uid) and still tracked, so a stale copy never overwrites a newer one.
"""

from __future__ import annotations

import copy
import random
import uuid

from koos_sandbox import jobspec as js
from koos_sandbox.errors import ApiError
from koos_sandbox.jobspec import INDEX, JOB_TRACKING, default_pod, delete_object
from koos_sandbox.kubelet import StoreNodes
from koos_sandbox.registry import ResourceType
from koos_sandbox.serviceaccounts import admit_pod
from koos_sandbox.store import Event, Obj, Store, now_rfc3339

JOBS, PODS = ("batch", "jobs"), ("", "pods")
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def build_pod(job: Obj, index: int | None) -> Obj:
    """The Pod the controller creates for a Job (Indexed: for one completion index), as
    stored after defaulting, with `generateName` set and no name yet."""
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
                    "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX}']"}},
                },
            ]
    return default_pod(
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


def build_event(job: Obj, kind: str, reason: str, message: str, now: str) -> Obj:
    """The Event the controller records about a Job (core/v1, source job-controller)."""
    meta = job["metadata"]
    return {
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
    }


class JobPods:
    """The Pods and Events of one sandbox's Job controller, in its store."""

    def __init__(
        self,
        store: Store,
        kubelet: StoreNodes,
        pod_rt: ResourceType,
        event_rt: ResourceType,
        ns_rt: ResourceType,
        sa_rt: ResourceType,
    ) -> None:
        self.store, self.kubelet = store, kubelet
        self.pod_rt, self.event_rt, self.ns_rt, self.sa_rt = pod_rt, event_rt, ns_rt, sa_rt
        self._pods_by_job: dict[str, set[tuple[str, str]]] = {}

    def track(self, event: Event) -> None:
        """Keep the owner index (Job uid → its Pods) current with a Pod event."""
        ref = (event.namespace, event.obj["metadata"]["name"])
        old = js.controller_uid(event.old)
        new = "" if event.type == "DELETED" else js.controller_uid(event.obj)
        if old and old != new and old in self._pods_by_job:
            self._pods_by_job[old].discard(ref)
            if not self._pods_by_job[old]:
                del self._pods_by_job[old]
        if new:
            self._pods_by_job.setdefault(new, set()).add(ref)

    def refs(self, uid: str) -> set[tuple[str, str]]:
        """(namespace, name) of the Pods the owner index holds for a Job uid."""
        return self._pods_by_job.get(uid, set())

    def of(self, job: Obj) -> list[Obj]:
        """The Job's Pods in the store, by the owner index, in (namespace, name) order."""
        uid, found = job["metadata"]["uid"], []
        for ns, name in sorted(self._pods_by_job.get(uid, set())):
            pod = self.store.find(self.pod_rt, ns, name)
            if pod is not None and js.controller_uid(pod) == uid:
                found.append(pod)
        return found

    def releasable(self, pod: Obj) -> bool:
        """A Pod's finalizer can go once nothing will report on it any more."""
        return js.terminal(pod) or not self.kubelet.manages(pod)

    def release(self, pod: Obj) -> None:
        """Remove the job-tracking finalizer: the Pod is counted and may go."""
        meta = pod["metadata"]
        current = self.store.find(self.pod_rt, meta.get("namespace", ""), meta["name"])
        if current is None or current["metadata"]["uid"] != meta["uid"] or not js.tracked(current):
            return
        new = copy.deepcopy(current)
        new["metadata"]["finalizers"] = [
            f for f in new["metadata"]["finalizers"] if f != JOB_TRACKING
        ]
        self.store.replace(self.pod_rt, current, new)

    def sync_orphan(self, ns: str, name: str) -> None:
        """Release a tracked Pod whose Job is finished or gone (once it can be released)."""
        pod = self.store.find(self.pod_rt, ns, name)
        if pod is None or not js.tracked(pod):
            return
        owner = js.controller_uid(pod)
        found = self.store.by_uid(owner) if owner else None
        if found is not None and found[0] == JOBS and not js.finished(found[1]):
            return
        if owner and found is None and not js.deleted(pod) and not js.terminal(pod):
            return  # its Job is gone: the garbage collector deletes it first
        if self.releasable(pod):
            self.release(pod)

    def create(self, job: Obj, index: int | None) -> Obj | None:
        """Create a Pod for the Job under a fresh `<generateName><5 chars>` name (ten tries
        on a name taken) and record SuccessfulCreate; None when every name was taken. A Pod
        that admission refuses (a missing ServiceAccount) is a FailedCreate Warning and the
        refusal is raised."""
        meta = job["metadata"]
        body = build_pod(job, index)
        prefix = body["metadata"]["generateName"]
        try:
            admit_pod(self.store, self.sa_rt, meta["namespace"], body)
        except ApiError as refused:
            # As the real controller: a Warning per failed attempt, and the Job waits.
            self.record(job, "Warning", "FailedCreate", f"Error creating: {refused.message}")
            raise
        for _ in range(10):
            body["metadata"]["name"] = prefix + "".join(random.choices(_ALPHABET, k=5))
            try:
                pod = self.store.create(self.pod_rt, meta["namespace"], body)
            except ApiError as error:
                if error.code == 409:
                    continue
                raise
            self.record(
                job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}"
            )
            return pod
        return None

    def delete(self, job: Obj, pod: Obj, *, uncount: bool) -> None:
        """Delete an active Pod; `uncount` removes the finalizer first, so the Pod is not
        counted as failed (suspend, parallelism down), as the real controller does."""
        if uncount:
            self.release(pod)
            pod = (
                self.store.find(self.pod_rt, pod["metadata"]["namespace"], pod["metadata"]["name"])
                or pod
            )
        delete_object(self.store, self.pod_rt, pod)
        self.record(job, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")

    def record(self, job: Obj, kind: str, reason: str, message: str) -> None:
        """Record an Event about the Job, unless its namespace is gone or going."""
        meta, now = job["metadata"], now_rfc3339()
        ns = self.store.find(self.ns_rt, "", meta["namespace"])
        if ns is None or "deletionTimestamp" in ns["metadata"]:
            return
        event = build_event(job, kind, reason, message, now)
        self.store.create(self.event_rt, meta["namespace"], event)
