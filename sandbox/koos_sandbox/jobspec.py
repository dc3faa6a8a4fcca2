"""Jobs and Pods as objects: what kube-apiserver does to them at create, and how the
controllers here read and write their conditions.

`default_job` generates the selector and the Job labels (from the uid the Job is stored
with) unless `manualSelector`, and fills the defaults 1.32 fills; `validate_job` lists the
causes the API server would refuse a Job for; `default_pod` is a Pod as stored after create
(spec defaults, service account and default-toleration admission, status Pending).
The rest are small readings and writings of these objects the controllers share.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime

from koos_sandbox.objects import Obj, now_rfc3339
from koos_sandbox.registry import ResourceType
from koos_sandbox.store import Store

JOB_TRACKING = "batch.kubernetes.io/job-tracking"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
INDEX = "batch.kubernetes.io/job-completion-index"


def _pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    return "Always" if ":" not in last or last.endswith(":latest") else "IfNotPresent"


def default_pod_spec(spec: Obj) -> Obj:
    """The API server's defaults of a PodSpec (in place; returned for convenience)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("imagePullPolicy", _pull_policy(str(c.get("image", ""))))
        c.setdefault("resources", {})
    return spec


def default_pod(obj: Obj) -> Obj:
    """A Pod as stored after create: spec defaults, admission (service account, default
    tolerations) and status Pending. Returns a copy."""
    pod = copy.deepcopy(obj)
    spec = default_pod_spec(pod.setdefault("spec", {}))
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )
    resources = [c.get("resources") or {} for c in spec.get("containers") or []]
    qos = "BestEffort"
    if any(r.get("requests") or r.get("limits") for r in resources):
        guaranteed = all(
            (lim := r.get("limits") or {}).get("cpu")
            and lim.get("memory")
            and all((r.get("requests") or lim).get(k) == lim.get(k) for k in ("cpu", "memory"))
            for r in resources
        )
        qos = "Guaranteed" if guaranteed else "Burstable"
    pod["status"] = {"phase": "Pending", "qosClass": qos}
    return pod


def default_job(obj: Obj, uid: str | None = None) -> Obj:
    """A Job as the API server stores it at create: defaults, and unless `manualSelector`,
    the generated selector and labels. `uid` (else metadata.uid, else a new one, written to
    metadata.uid) is the uid the Job is stored with. Returns a copy."""
    job = copy.deepcopy(obj)
    meta = job.setdefault("metadata", {})
    uid = uid or meta.get("uid") or str(uuid.uuid4())
    meta["uid"] = uid
    spec = job.setdefault("spec", {})
    template = spec.setdefault("template", {})
    tmeta = template.setdefault("metadata", {})
    if not spec.get("manualSelector"):
        name = meta.get("name", "")
        spec["manualSelector"] = False
        spec["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
        tmeta["labels"] = {
            **(tmeta.get("labels") or {}),
            CONTROLLER_UID: uid,
            "controller-uid": uid,
            JOB_NAME: name,
            "job-name": name,
        }
    if not meta.get("labels") and tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault(
        "podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    )
    default_pod_spec(template.setdefault("spec", {}))
    return job


def validate_job(obj: Obj) -> list[tuple[str, str]]:
    """The causes (field, message) the API server would refuse this Job for."""
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    pod_spec = template.get("spec") or {}
    causes: list[tuple[str, str]] = []
    policy = pod_spec.get("restartPolicy", "Always")
    if policy not in ("OnFailure", "Never"):
        causes.append(
            (
                "spec.template.spec.restartPolicy",
                f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
            )
        )
    if not pod_spec.get("containers"):
        causes.append(("spec.template.spec.containers", "Required value"))
    for name in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        value = spec.get(name)
        if value is not None and (not isinstance(value, int) or value < 0):
            causes.append(
                (f"spec.{name}", f"Invalid value: {value}: must be greater than or equal to 0")
            )
    if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
        causes.append(("spec.completions", "Required value: when completion mode is Indexed"))
    wanted = (spec.get("selector") or {}).get("matchLabels") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in wanted.items()):
        causes.append(
            (
                "spec.template.metadata.labels",
                f"Invalid value: {labels}: `selector` does not match template `labels`",
            )
        )
    return causes


def delete_object(store: Store, rt: ResourceType, obj: Obj) -> None:
    """Delete as the API server does: marked while finalizers remain, else removed."""
    meta = obj["metadata"]
    if "deletionTimestamp" in meta:
        return
    finalizers = list(meta.get("finalizers") or [])
    if finalizers:
        store.mark_deleted(rt, obj, finalizers)
    else:
        store.remove(rt, obj)


def controller_uid(obj: Obj | None) -> str:
    for ref in ((obj or {}).get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Job":
            return str(ref.get("uid", ""))
    return ""


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase", "Pending"))


def terminal(pod: Obj) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def deleted(pod: Obj) -> bool:
    return "deletionTimestamp" in pod["metadata"]


def tracked(pod: Obj) -> bool:
    return JOB_TRACKING in (pod["metadata"].get("finalizers") or [])


def ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def cond(conditions: list[Obj], kind: str) -> Obj | None:
    return next(
        (c for c in conditions if c.get("type") == kind and c.get("status") == "True"), None
    )


def job_condition(kind: str, status: str, reason: str, message: str) -> Obj:
    now = now_rfc3339()
    return {
        "type": kind,
        "status": status,
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def finished(job: Obj) -> Obj | None:
    conditions = (job.get("status") or {}).get("conditions") or []
    return cond(conditions, "Complete") or cond(conditions, "Failed")


def seconds(stamp: str) -> float:
    """An RFC 3339 time (as the API server writes it, or with fractions) as a POSIX time."""
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def parse_indexes(text: str) -> set[int]:
    found: set[int] = set()
    for part in filter(None, (text or "").split(",")):
        first, _, last = part.partition("-")
        found.update(range(int(first), int(last or first) + 1))
    return found


def format_indexes(indexes: set[int]) -> str:
    runs: list[list[int]] = []
    for i in sorted(indexes):
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
