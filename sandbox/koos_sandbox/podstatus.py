"""What the kubelet stand-in reports for a Pod it runs, built from its `Worker` record.

`Worker` is the kubelet's memory of one Pod: its container statuses, why it was stopped,
whether it ended. The functions here turn that into the Pod status a 1.32 kubelet writes:
`waiting` and `terminated` container statuses (termination message truncated to 4096 bytes,
or the log tail under `FallbackToLogsOnError`), `with_status` for the whole Pod (phase,
Ready/ContainersReady/Initialized/PodScheduled conditions, IPs), and `with_node_lost` for a
Pod whose node went away.

Invariant: nothing here writes to the store or touches a process; `with_status` and
`with_node_lost` return a new Pod and leave the one given unchanged.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import uuid
from dataclasses import dataclass, field

from koos_sandbox.logs import PodLogs
from koos_sandbox.objects import Obj, condition, merge_conditions, now_rfc3339
from koos_sandbox.podenv import HOST_IP
from koos_sandbox.runtime import NOT_LOCATED, Outcome

MESSAGE_LIMIT, FALLBACK_LINES, FALLBACK_BYTES = 4096, 80, 2048


@dataclass
class Worker:
    """What the kubelet knows about one Pod it runs."""

    uid: str
    namespace: str
    name: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    config: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    silent: bool = False  # the node is gone or the kubelet stopped: report nothing more
    gone: bool = False  # the Pod was removed from the store
    reason: str = ""
    message: str = ""
    final: str = ""  # Succeeded | Failed once every container is done
    initialized: bool = False
    start_time: str = ""
    pod_ip: str = ""
    statuses: dict[str, Obj] = field(default_factory=dict)
    init_statuses: dict[str, Obj] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None

    def kill(self, reason: str = "", message: str = "") -> None:
        if reason and not self.reason:
            self.reason, self.message = reason, message
        self.stop.set()


def waiting(
    c: Obj, reason: str, message: str = "", restarts: int = 0, last: Obj | None = None
) -> Obj:
    state: Obj = {"reason": reason, **({"message": message} if message else {})}
    return {
        "name": c["name"],
        "image": c.get("image", ""),
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": restarts,
        "state": {"waiting": state},
        "lastState": last or {},
    }


def terminated(
    logs: PodLogs,
    w: Worker,
    c: Obj,
    outcome: Outcome,
    started_at: str,
    restarts: int = 0,
    last: Obj | None = None,
    cid: str = "",
) -> Obj:
    code = outcome.exit_code
    message = outcome.message.encode()[:MESSAGE_LIMIT].decode("utf-8", "ignore")
    if (
        not message
        and code != 0
        and outcome.started
        and c.get("terminationMessagePolicy") == "FallbackToLogsOnError"
    ):
        lines = (logs.read(w.namespace, w.name, c["name"]) or "").splitlines(True)
        tail = "".join(lines[-FALLBACK_LINES:]).encode()[-FALLBACK_BYTES:]
        message = tail.decode("utf-8", "ignore")
    now = now_rfc3339()
    term: Obj = {
        "exitCode": code,
        "reason": outcome.reason or ("Completed" if code == 0 else "Error"),
        "startedAt": started_at or now,
        "finishedAt": now,
    }
    if message:
        term["message"] = message
    status = {**waiting(c, "", "", restarts, last), "state": {"terminated": term}}
    if outcome.started:
        cid = cid or f"containerd://{uuid.uuid4().hex}"
        status.update(imageID=image_id(c), containerID=cid)
        term["containerID"] = cid
    return status


def with_status(pod: Obj, w: Worker) -> Obj:
    """A copy of the Pod with the status the kubelet reports for `w`: phase, conditions,
    IPs, start time and the container statuses, merged into the conditions it has."""
    spec = pod.get("spec") or {}
    new = copy.deepcopy(pod)
    status = new.setdefault("status", {})
    started = any(
        s.get("started") or s.get("restartCount") or "terminated" in s["state"]
        for s in w.statuses.values()
    )
    status["phase"] = w.final or ("Running" if started else "Pending")
    unready = [n for n, s in w.statuses.items() if not s.get("ready")]
    if w.final:
        reason = "PodCompleted" if w.final == "Succeeded" else "PodFailed"
        ready = condition("Ready", "False", reason)
    elif unready:
        ready = condition(
            "Ready",
            "False",
            "ContainersNotReady",
            f"containers with unready status: [{' '.join(unready)}]",
        )
    else:
        ready = condition("Ready", "True")
    pending_init = [
        n for n, s in w.init_statuses.items() if "terminated" not in s["state"] or not w.initialized
    ]
    init = (
        condition("Initialized", "True")
        if w.initialized or not pending_init
        else condition(
            "Initialized",
            "False",
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(pending_init)}]",
        )
    )
    status["conditions"] = merge_conditions(
        status.get("conditions") or [],
        [
            condition("PodReadyToStartContainers", "False" if w.final else "True"),
            init,
            ready,
            {**ready, "type": "ContainersReady"},
            condition("PodScheduled", "True"),
        ],
    )
    if w.start_time:
        status.update(
            hostIP=HOST_IP,
            hostIPs=[{"ip": HOST_IP}],
            podIP=w.pod_ip,
            podIPs=[{"ip": w.pod_ip}],
            startTime=w.start_time,
        )
    if w.init_statuses:
        status["initContainerStatuses"] = list(w.init_statuses.values())
    status["containerStatuses"] = [
        w.statuses[c["name"]] for c in spec.get("containers") or [] if c["name"] in w.statuses
    ]
    if w.reason:
        status.update(reason=w.reason, message=w.message)
    return new


def with_node_lost(pod: Obj) -> Obj:
    """A copy of the Pod as the taint manager and the pod GC leave it when its node is lost:
    phase Failed, condition DisruptionTarget, unfinished containers ContainerStatusUnknown."""
    new = copy.deepcopy(pod)
    status = new.setdefault("status", {})
    status["phase"] = "Failed"
    status["conditions"] = merge_conditions(
        status.get("conditions") or [],
        [
            condition("Ready", "False", "PodFailed"),
            condition(
                "DisruptionTarget",
                "True",
                "DeletionByTaintManager",
                "Taint manager: deleting due to NoExecute taint",
            ),
        ],
    )
    for cs in status.get("containerStatuses") or []:
        if "terminated" not in cs.get("state", {}):
            cs.update(
                ready=False,
                started=False,
                state={
                    "terminated": {
                        "exitCode": 137,
                        "reason": "ContainerStatusUnknown",
                        "message": NOT_LOCATED,
                        "finishedAt": now_rfc3339(),
                    }
                },
            )
    return new


def image_id(c: Obj) -> str:
    image = str(c.get("image", ""))
    repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"
