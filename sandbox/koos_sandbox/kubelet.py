"""The store-level kubelet of `--jobs scripted` (outcomes a test decides), with the one
decision of the scheduler it needs (which node), and `StoreNodes`, what the control plane
knows of Nodes in either mode. `--jobs local` runs Pods on the node agent (node_agent/),
which works through the HTTPS API as against any API server; this module then only answers
whether a Pod's Node is Ready and performs deletes and evictions. The store-level kubelet
runs only Pods of the Nodes it registered (`state.kubelet_nodes`).

Pods move as a node moves them: bound to a Ready node (`spec.nodeName`, condition
PodScheduled), Pending with containers `ContainerCreating`, Running, then Succeeded or
Failed with `containerStatuses[].state.terminated` (exit code, reason, termination message
truncated to 4096 bytes, or the log tail under `FallbackToLogsOnError`). `restartPolicy`
OnFailure/Always restarts containers in place (restartCount, lastState). A Pod marked for
deletion has its containers stopped (SIGTERM, SIGKILL after the grace period) and is then
reported Failed, as kubelets since 1.27 do; `spec.activeDeadlineSeconds` fails the Pod with
reason DeadlineExceeded. Every status write is a whole-object `store.replace`. A Pod marked
for deletion without finalizers (a graceful delete) is removed by the kubelet's last write.

A container whose environment (podenv.py) refers to a missing Secret/ConfigMap or key waits
in `CreateContainerConfigError` until a Secret or ConfigMap of its namespace changes; one whose
image reference does not parse waits in `InvalidImageName`, and the containers of a Pod whose
secret/configMap volume is missing stay `ContainerCreating` until one changes (podstart.py).
One whose environment holds a NUL byte (the API server accepts it) fails to start, as runc
refuses it: terminated, reason StartError, exit code 128 (`runtime_refusal`).

Layout: this module holds the event loop, scheduling, the test controls (evict, delete, node
lost/restored) and the container runs; podstatus.py holds the `Worker` record and builds,
without side effects, every status written here.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import uuid

from koos_sandbox.errors import ApiError
from koos_sandbox.jobspec import delete_object
from koos_sandbox.nodes import node_ready, with_readiness
from koos_sandbox.objects import condition, merge_conditions
from koos_sandbox.podenv import ConfigError, resolve_env
from koos_sandbox.podstart import image_problem, missing_volume
from koos_sandbox.podstatus import (
    Worker,
    image_id,
    terminated,
    waiting,
    with_node_lost,
    with_status,
)
from koos_sandbox.runtime import NOT_LOCATED, Launch, Outcome, Runtime, runtime_refusal
from koos_sandbox.state import State
from koos_sandbox.store import Event, Obj, now_rfc3339

PODS, NODES = ("", "pods"), ("", "nodes")
CONFIG = {("", "secrets"), ("", "configmaps")}
TERMINAL = ("Succeeded", "Failed")


class StoreNodes:
    """What the sandbox's control plane knows of its Nodes without being their kubelet:
    whether a Pod's Node is Ready (so a kubelet will report how the Pod ends), and the
    Eviction API's and a plain delete's steps. In `--jobs local` mode this is all there is
    in-process: the node agent (node_agent/) runs the Pods through the HTTPS API."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._stopped = False
        pods, nodes = state.registry.find("", "v1", "pods"), state.registry.find("", "v1", "nodes")
        assert pods is not None and nodes is not None
        self.pod_rt, self.node_rt = pods, nodes

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self._stopped = True

    def manages(self, pod: Obj) -> bool:
        """Whether a live kubelet runs this Pod (so it will report how it ends)."""
        name = (pod.get("spec") or {}).get("nodeName")
        if not name or self._stopped:
            return False
        return node_ready(self.state.store.find(self.node_rt, "", str(name)))

    def evict(self, namespace: str, name: str) -> None:
        pod = self.state.store.get(self.pod_rt, namespace, name)
        new = copy.deepcopy(pod)
        status = new.setdefault("status", {})
        status["conditions"] = merge_conditions(
            status.get("conditions") or [],
            [
                condition(
                    "DisruptionTarget", "True", "EvictionByEvictionAPI", "Eviction API: evicting"
                )
            ],
        )
        delete_object(
            self.state.store, self.pod_rt, self.state.store.replace(self.pod_rt, pod, new)
        )

    def delete(self, namespace: str, name: str) -> None:
        delete_object(
            self.state.store, self.pod_rt, self.state.store.get(self.pod_rt, namespace, name)
        )

    def set_node_ready(self, name: str, ready: bool) -> None:
        raise RuntimeError(
            "lose_node/restore_node need the sandbox's jobs mode 'scripted' (in 'local' mode "
            "the node agent owns the Node)"
        )


class Kubelet(StoreNodes):
    """The store-level kubelet of `--jobs scripted`: reads and writes the sandbox's store."""

    def __init__(
        self, state: State, runtime: Runtime, *, grace: float = 1.0, restart_delay: float = 0.0
    ) -> None:
        super().__init__(state)
        self.runtime = runtime
        self.grace, self.restart_delay = grace, restart_delay
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.workers: dict[str, Worker] = {}
        self._ips = 0
        self._turn = 0
        state.store.listeners.append(self._listen)

    def _listen(self, event: Event) -> None:
        if event.key in (PODS, NODES) or event.key in CONFIG:
            self.queue.put_nowait(event)

    async def run(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                self._handle(event)
            except ApiError as error:
                if error.code not in (404, 409):
                    self.state.log.warning("kubelet: %s", error.message)
            except Exception:
                self.state.log.exception("kubelet failed on an event")

    async def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(ValueError):
            self.state.store.listeners.remove(self._listen)
        tasks = []
        for worker in list(self.workers.values()):
            worker.silent = True
            if worker.task is not None:
                worker.task.cancel()
                tasks.append(worker.task)
        await asyncio.gather(*tasks, return_exceptions=True)
        self.runtime.close()

    # ---- events ----------------------------------------------------------------------

    def _handle(self, event: Event) -> None:
        if event.key == PODS:
            if event.type == "DELETED":
                self._gone(event.obj)
                return
            meta = event.obj["metadata"]
            pod = self.state.store.find(self.pod_rt, event.namespace, meta["name"])
            if pod is not None and pod["metadata"]["uid"] == meta["uid"]:
                self._reconcile(pod)
        elif event.key == NODES:
            if node_ready(event.obj):
                for pod in self.state.store.items(PODS):
                    if not (pod.get("spec") or {}).get("nodeName"):
                        self._reconcile(pod)
        else:
            for worker in self.workers.values():
                if worker.namespace == event.namespace:
                    worker.config.set()

    def _elsewhere(self, pod: Obj) -> bool:
        """Bound to a Node another kubelet (a node agent) registered: not ours to run."""
        name = (pod.get("spec") or {}).get("nodeName")
        return (
            bool(name)
            and name not in self.state.kubelet_nodes
            and (self.state.store.find(self.node_rt, "", str(name)) is not None)
        )

    def _reconcile(self, pod: Obj) -> None:
        meta = pod["metadata"]
        if self._elsewhere(pod):
            return
        deleting, worker = "deletionTimestamp" in meta, self.workers.get(meta["uid"])
        if (pod.get("status") or {}).get("phase") in TERMINAL or (
            deleting and worker is None and not self.manages(pod)
        ):
            if deleting and not meta.get("finalizers"):
                self.state.store.remove(self.pod_rt, pod)  # a graceful delete ends here
            return
        if deleting:
            if worker is not None:
                worker.kill()
            else:
                self._fail_unstarted(pod)
            return
        if not (pod.get("spec") or {}).get("nodeName"):
            self._schedule(pod)
        elif worker is None and self.manages(pod):
            worker = Worker(meta["uid"], meta.get("namespace", ""), meta["name"])
            self.workers[worker.uid] = worker
            worker.task = asyncio.create_task(self._work(worker), name=f"pod-{worker.name}")

    def _gone(self, pod: Obj) -> None:
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is None:
            self.state.logs.forget(pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
            return
        worker.silent = worker.gone = True
        worker.kill()

    def _schedule(self, pod: Obj) -> None:
        nodes = self.state.store.items(NODES)
        nodes = [n for n in nodes if n["metadata"]["name"] in self.state.kubelet_nodes]
        ready = [
            n for n in nodes if node_ready(n) and not (n.get("spec") or {}).get("unschedulable")
        ]
        new = copy.deepcopy(pod)
        status = new.setdefault("status", {})
        if not ready:
            cond = condition(
                "PodScheduled",
                "False",
                "Unschedulable",
                f"0/{len(nodes)} nodes are available: {len(nodes)} node(s) were "
                "not ready. preemption: not helpful for scheduling.",
            )
            status["conditions"] = merge_conditions(status.get("conditions") or [], [cond])
        else:
            node = ready[self._turn % len(ready)]
            self._turn += 1
            new["spec"]["nodeName"] = node["metadata"]["name"]
            status["conditions"] = merge_conditions(
                status.get("conditions") or [], [condition("PodScheduled", "True")]
            )
        self.state.store.replace(self.pod_rt, pod, new)

    # ---- test controls -----------------------------------------------------------------

    def set_node_ready(self, name: str, ready: bool) -> None:
        node = self.state.store.get(self.node_rt, "", name)
        self.state.store.replace(self.node_rt, node, with_readiness(node, ready))
        if not ready:
            for pod in self.state.store.items(PODS):
                if (pod.get("spec") or {}).get("nodeName") == name:
                    self._lose(pod)

    def _lose(self, pod: Obj) -> None:
        """The taint manager evicts, the pod GC marks it Failed; its processes die."""
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.silent = True
            worker.kill()
        if (pod.get("status") or {}).get("phase") not in TERMINAL:
            pod = self.state.store.replace(self.pod_rt, pod, with_node_lost(pod))
        delete_object(self.state.store, self.pod_rt, pod)

    # ---- running a Pod -------------------------------------------------------------

    def _fail_unstarted(self, pod: Obj) -> None:
        meta = pod["metadata"]
        worker = Worker(meta["uid"], meta.get("namespace", ""), meta["name"], final="Failed")
        for c in (pod.get("spec") or {}).get("containers") or []:
            worker.statuses[c["name"]] = terminated(
                self.state.logs,
                worker,
                c,
                Outcome(137, "ContainerStatusUnknown", NOT_LOCATED, started=False),
                "",
            )
        self._write(worker)

    async def _work(self, worker: Worker) -> None:
        try:
            await self._run_pod(worker)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.state.log.exception("kubelet failed running pod %s", worker.name)
        finally:
            if worker.timer is not None:
                worker.timer.cancel()
            if self.workers.get(worker.uid) is worker:
                del self.workers[worker.uid]
            if worker.gone:
                self.state.logs.forget(worker.namespace, worker.name)

    async def _run_pod(self, w: Worker) -> None:
        pod = self._current(w)
        if pod is None:
            return
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy", "Always")
        inits, mains = spec.get("initContainers") or [], spec.get("containers") or []
        self._ips += 1
        w.pod_ip, w.start_time = f"10.244.0.{self._ips % 250 + 2}", now_rfc3339()
        for c in inits:
            w.init_statuses[c["name"]] = waiting(c, "PodInitializing")
        for c in mains:
            w.statuses[c["name"]] = waiting(c, "PodInitializing" if inits else "ContainerCreating")
        self._write(w)
        if spec.get("activeDeadlineSeconds") is not None:
            w.timer = asyncio.get_running_loop().call_later(
                max(0.0, float(spec["activeDeadlineSeconds"])),
                w.kill,
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline",
            )
        ok = True
        for c in inits:
            if (await self._container(w, pod, c, policy, init=True)).exit_code != 0:
                ok = False
                break
        outcomes: list[Outcome] = []
        if ok:
            w.initialized = True
            outcomes = await asyncio.gather(*(self._container(w, pod, c, policy) for c in mains))
        success = ok and all(o.exit_code == 0 for o in outcomes) and not w.reason
        w.final = "Succeeded" if success else "Failed"
        self._write(w)

    async def _container(
        self, w: Worker, pod: Obj, c: Obj, policy: str, init: bool = False
    ) -> Outcome:
        table = w.init_statuses if init else w.statuses
        name, restarts, last = c["name"], 0, None
        while True:
            if w.stop.is_set():
                outcome = Outcome(137, "ContainerStatusUnknown", NOT_LOCATED, started=False)
                table[name] = terminated(self.state.logs, w, c, outcome, "", restarts, last)
                return outcome
            problem = image_problem(str(c.get("image", "")))
            if problem is not None:  # a Pod's images never change: it waits for good
                table[name] = waiting(c, "InvalidImageName", problem, restarts, last)
                self._write(w)
                await w.stop.wait()
                continue
            if missing_volume(self._lookup, pod) is not None:
                table[name] = waiting(c, "ContainerCreating", "", restarts, last)
                self._write(w)
                w.config.clear()
                await _first(w.stop, w.config)
                continue
            try:
                env = resolve_env(self._lookup, pod, c, w.pod_ip)
            except ConfigError as error:
                table[name] = waiting(c, "CreateContainerConfigError", str(error), restarts, last)
                self._write(w)
                w.config.clear()
                await _first(w.stop, w.config)
                continue
            started_at = ""

            def on_start(restarts: int = restarts, last: Obj | None = last) -> None:
                nonlocal started_at
                started_at = now_rfc3339()
                table[name] = {
                    **waiting(c, "", "", restarts, last),
                    "ready": not init,
                    "started": True,
                    "imageID": image_id(c),
                    "containerID": f"containerd://{uuid.uuid4().hex}",
                    "state": {"running": {"startedAt": started_at}},
                }
                self._write(w)

            def on_wait(
                reason: str, message: str, restarts: int = restarts, last: Obj | None = last
            ) -> None:
                table[name] = waiting(c, reason, message, restarts, last)
                self._write(w)

            grace = min(self.grace, float(pod["spec"].get("terminationGracePeriodSeconds", 30)))
            launch = Launch(w.namespace, pod, c, env, self.state.logs, w.stop, grace)
            refused = runtime_refusal(env)
            if refused:
                outcome = Outcome(128, "StartError", refused, started=False)
            else:
                outcome = await self.runtime.run(launch, on_start, on_wait)
            cid = str(table[name].get("containerID", ""))
            table[name] = terminated(
                self.state.logs, w, c, outcome, started_at, restarts, last, cid
            )
            again = policy == "Always" or (policy == "OnFailure" and outcome.exit_code != 0)
            if w.stop.is_set() or not again:
                if not init and any("terminated" not in s["state"] for s in w.statuses.values()):
                    self._write(w)
                return outcome
            restarts, last = restarts + 1, table[name]["state"]
            delay = min((self.restart_delay or 0.01) * 2 ** (restarts - 1), 300.0)
            table[name] = waiting(
                c,
                "CrashLoopBackOff",
                f"back-off {delay:g}s restarting failed container={name} "
                f"pod={w.name}_{w.namespace}({w.uid})",
                restarts,
                last,
            )
            self._write(w)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(w.stop.wait(), delay)

    def _lookup(self, kind: str, namespace: str, name: str) -> Obj | None:
        rt = self.state.registry.find("", "v1", "secrets" if kind == "Secret" else "configmaps")
        return None if rt is None else self.state.store.find(rt, namespace, name)

    def _current(self, w: Worker) -> Obj | None:
        pod = self.state.store.find(self.pod_rt, w.namespace, w.name)
        return pod if pod is not None and pod["metadata"]["uid"] == w.uid else None

    def _write(self, w: Worker) -> None:
        pod = self._current(w)
        if pod is None or w.silent or self._stopped:
            return
        self.state.store.replace(self.pod_rt, pod, with_status(pod, w))


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
