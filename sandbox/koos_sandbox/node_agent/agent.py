"""`NodeAgent`: a kubelet stand-in that works only through the Kubernetes API.

It registers a Node (Ready, capacity, InternalIP 127.0.0.1, the port of its kubelet
endpoint), renews a Lease in `kube-node-lease` and refreshes the Node's conditions every
`heartbeat` seconds, and list-watches Pods: an unscheduled Pod (`schedulerName`
default-scheduler) is bound to this Node (`pods/binding`, as a scheduler does), and each Pod
bound here runs its containers as local processes (runtime.LocalRuntime) with the
environment a kubelet builds (podenv.py; Secrets and ConfigMaps read through the API) and a
ServiceAccount identity (identity.py). Status is written as a kubelet writes it
(podstatus.py) through `pods/status` PUTs, one writer per Pod, coalesced, retried on a
conflict with the latest Pod.

On delete the containers get SIGTERM, SIGKILL after the grace period, the Pod is reported
Failed, then deleted with `gracePeriodSeconds=0` (the API server removes it once its
finalizers are gone). `activeDeadlineSeconds` fails the Pod with reason DeadlineExceeded.
A Pod this node ran before the agent (re)started is reported Failed (ContainerStatusUnknown):
its processes went with the previous agent.

Invariant: nothing here reaches into an API server's internals; the sandbox runs this same
agent against its own HTTPS endpoint (import-linter keeps store, state and server out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from koos_sandbox.logs import PodLogs
from koos_sandbox.node_agent import identity
from koos_sandbox.node_agent.client import Api, ApiFailure, Credentials, WatchGone
from koos_sandbox.node_agent.serve import build_app
from koos_sandbox.nodes import build_node
from koos_sandbox.objects import Obj, now_rfc3339
from koos_sandbox.podenv import ConfigError, resolve_env, sources
from koos_sandbox.podstart import image_problem, missing_volume
from koos_sandbox.podstatus import Worker, image_id, terminated, waiting, with_status
from koos_sandbox.runtime import NOT_LOCATED, Launch, LocalRuntime, Outcome, runtime_refusal
from koos_sandbox.tls import make_certificates

TERMINAL = ("Succeeded", "Failed")
LEASE_SECONDS = 40
log = logging.getLogger("koos_sandbox.node_agent")


@dataclass
class _Writer:
    """The status writer of one Pod: `wanted` goes up on each change, `done` follows."""

    wanted: int = 0
    done: int = 0
    task: asyncio.Task[None] | None = None
    idle: asyncio.Event = field(default_factory=asyncio.Event)


class NodeAgent:
    """One node. `credentials` (or `kubeconfig`) say how to reach the API server."""

    def __init__(
        self,
        credentials: Credentials,
        node_name: str,
        workdir: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        heartbeat: float = 10.0,
        grace: float = 30.0,
        restart_delay: float = 1.0,
        entrypoints: dict[str, list[str]] | None = None,
    ) -> None:
        self.credentials, self.node_name = credentials, node_name
        self.api = Api(credentials, user_agent=f"koos-node-agent/{node_name}")
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="koos-node-"))
        self.host, self.port, self.heartbeat = host, port, heartbeat
        self.grace, self.restart_delay = grace, restart_delay
        self.runtime = LocalRuntime(entrypoints=entrypoints, root=self.workdir / "containers")
        self.logs = PodLogs()
        self.pods: dict[str, Obj] = {}  # uid → the latest Pod seen (bound here or unbound)
        self.workers: dict[str, Worker] = {}
        self._writers: dict[str, _Writer] = {}
        self._handled: set[str] = set()  # uids run, failed or deleted by this agent
        self._binding: set[str] = set()  # uids this agent bound (or is binding)
        self._tasks: list[asyncio.Task[None]] = []
        self._side: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._ips = 0
        self._stopping = False
        self.node_uid = ""
        self.synced = asyncio.Event()  # the first list of Pods is handled

    @classmethod
    def from_kubeconfig(
        cls, kubeconfig: str | Path, node_name: str, workdir: str | Path | None = None, **kw: Any
    ) -> NodeAgent:
        from koos_sandbox.node_agent.client import load_kubeconfig

        return cls(load_kubeconfig(kubeconfig), node_name, workdir, **kw)

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        await self.api.start()
        certs = make_certificates((self.host, "localhost"))
        self._runner = web.AppRunner(
            build_app(self.logs, self._find_pod),
            access_log=None,
            shutdown_timeout=0.5,
            handler_cancellation=True,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=certs.server_context())
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])
        await self._register()
        await self._renew_lease()
        self._tasks = [
            asyncio.create_task(self._heartbeats(), name=f"node-{self.node_name}-heartbeat"),
            asyncio.create_task(self._watch_pods(), name=f"node-{self.node_name}-pods"),
        ]

    async def stop(self) -> None:
        """Stop every container (SIGTERM, then SIGKILL) and the agent; write nothing more."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        waits = list(self._tasks)
        for worker in list(self.workers.values()):
            worker.silent = True
            worker.kill()
            if worker.task is not None:
                waits.append(worker.task)
        await asyncio.gather(*waits, return_exceptions=True)
        for task in list(self._side):
            task.cancel()
        await asyncio.gather(*self._side, return_exceptions=True)
        for writer in self._writers.values():
            if writer.task is not None:
                writer.task.cancel()
        self._tasks = []
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.api.close()
        self.runtime.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            shutil.rmtree(self.workdir / "pods", ignore_errors=True)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    # ---- the Node and its Lease ----------------------------------------------------------

    def _node_status(self) -> Obj:
        status: Obj = build_node(self.node_name)["status"]
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": self.port}}
        # InternalIP only: kube-apiserver prefers a Hostname address when dialing a kubelet
        # (--kubelet-preferred-address-types), and the node name need not resolve.
        status["addresses"] = [{"type": "InternalIP", "address": self.host}]
        status["nodeInfo"]["osImage"] = "koos node agent"
        status["nodeInfo"]["containerRuntimeVersion"] = "local://0.1.0"
        return status

    async def _register(self) -> None:
        body = build_node(self.node_name)
        body.update(apiVersion="v1", kind="Node")
        body.pop("status")
        try:
            node = await self.api.request("POST", "/api/v1/nodes", body)
        except ApiFailure as failure:
            if failure.code != 409:
                raise
            node = await self.api.request("GET", f"/api/v1/nodes/{self.node_name}")
        self.node_uid = node["metadata"]["uid"]
        await self._post_status(node)

    async def _post_status(self, node: Obj | None = None) -> None:
        """The Node's status, its conditions' heartbeat now (transition times kept)."""
        path = f"/api/v1/nodes/{self.node_name}"
        if node is None:
            node = await self.api.request("GET", path)
        status = self._node_status()
        before = {c.get("type"): c for c in (node.get("status") or {}).get("conditions") or []}
        for cond in status["conditions"]:
            old = before.get(cond["type"])
            if old is not None and old.get("status") == cond["status"]:
                cond["lastTransitionTime"] = old.get("lastTransitionTime")
        await self.api.request(
            "PATCH",
            path + "/status",
            {"status": status},
            content_type="application/merge-patch+json",
        )

    async def _renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node_name}"
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {
            "holderIdentity": self.node_name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": renew,
        }
        try:
            await self.api.request(
                "PATCH", path, {"spec": spec}, content_type="application/merge-patch+json"
            )
        except ApiFailure as failure:
            if failure.code != 404:
                raise
            owner = {
                "apiVersion": "v1",
                "kind": "Node",
                "name": self.node_name,
                "uid": self.node_uid,
            }
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.node_name, "ownerReferences": [owner]},
                "spec": spec,
            }
            await self.api.request("POST", path.rsplit("/", 1)[0], body)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self._renew_lease()
                await self._post_status()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the next beat tries again
                log.warning("node %s: heartbeat failed: %s", self.node_name, error)

    # ---- watching Pods -----------------------------------------------------------------

    async def _watch_pods(self) -> None:
        version = ""
        while True:
            try:
                if not version:
                    listed = await self.api.request("GET", "/api/v1/pods")
                    version = listed["metadata"]["resourceVersion"]
                    seen = set()
                    for pod in listed.get("items") or []:
                        seen.add(pod["metadata"]["uid"])
                        self._on_pod("ADDED", pod)
                    for uid in [u for u in self.pods if u not in seen]:
                        self._on_pod("DELETED", self.pods[uid])
                    self.synced.set()
                async for kind, obj in self.api.watch("/api/v1/pods", version):
                    version = obj.get("metadata", {}).get("resourceVersion") or version
                    if kind != "BOOKMARK":
                        self._on_pod(kind, obj)
            except asyncio.CancelledError:
                raise
            except WatchGone:
                version = ""
            except Exception as error:
                log.warning("node %s: watching Pods: %s", self.node_name, error)
                await asyncio.sleep(1)

    def _find_pod(self, namespace: str, name: str) -> Obj | None:
        for pod in self.pods.values():
            meta = pod["metadata"]
            if (meta.get("namespace"), meta["name"]) == (namespace, name) and self._mine(pod):
                return pod
        return None

    def _mine(self, pod: Obj) -> bool:
        return (pod.get("spec") or {}).get("nodeName") == self.node_name

    def _remember(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        old = self.pods.get(uid)
        if old is None or _newer(pod, old):
            self.pods[uid] = pod

    def _on_pod(self, kind: str, pod: Obj) -> None:
        meta, uid = pod["metadata"], pod["metadata"]["uid"]
        if kind == "DELETED":
            self.pods.pop(uid, None)
            self._binding.discard(uid)
            self._handled.discard("deleted:" + uid)
            if uid not in self.workers:
                self._handled.discard(uid)
            worker = self.workers.get(uid)
            if worker is None:
                self.logs.forget(meta.get("namespace", ""), meta["name"])
                return
            worker.silent = worker.gone = True
            worker.kill()
            return
        self._remember(pod)
        pod = self.pods[uid]
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        deleting, worker = "deletionTimestamp" in meta, self.workers.get(uid)
        if not spec.get("nodeName"):
            if (
                not deleting
                and spec.get("schedulerName", "default-scheduler") == "default-scheduler"
                and status.get("phase") not in TERMINAL
                and uid not in self._binding
            ):
                self._binding.add(uid)
                self._spawn(self._bind(pod), f"bind-{meta['name']}")
            return
        if not self._mine(pod):
            self.pods.pop(uid, None)
            return
        if status.get("phase") in TERMINAL:
            if deleting and worker is None:
                self._finish_delete(pod)
            return
        if deleting:
            if worker is not None:
                worker.kill()
            elif uid not in self._handled:
                self._handled.add(uid)
                self._spawn(self._fail_unstarted(pod, delete=True), f"fail-{meta['name']}")
            return
        if worker is None and not self._stopping:
            if status.get("startTime") and uid not in self._handled:
                # Started by an agent before this one: its processes are gone.
                self._handled.add(uid)
                self._spawn(self._fail_unstarted(pod, delete=False), f"fail-{meta['name']}")
                return
            if uid in self._handled:
                return
            worker = Worker(uid, meta.get("namespace", ""), meta["name"])
            self.workers[uid] = worker
            worker.task = asyncio.create_task(self._work(worker), name=f"pod-{worker.name}")

    async def _bind(self, pod: Obj) -> None:
        meta = pod["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": ns, "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            await self.api.request("POST", f"/api/v1/namespaces/{ns}/pods/{name}/binding", body)
        except ApiFailure as failure:
            if failure.code not in (404, 409):
                log.warning("node %s: binding %s/%s: %s", self.node_name, ns, name, failure)
                self._binding.discard(meta["uid"])

    def _finish_delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        key = "deleted:" + meta["uid"]
        if key in self._handled or self._stopping:
            return
        self._handled.add(key)
        self._spawn(self._delete(pod), f"delete-{meta['name']}")

    async def _delete(self, pod: Obj) -> None:
        """As a kubelet ends a graceful delete: the containers are stopped, so grace 0."""
        meta = pod["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": meta["uid"]},
        }
        try:
            await self.api.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}", options)
        except ApiFailure as failure:
            if failure.code not in (404, 409):
                log.warning("node %s: deleting %s/%s: %s", self.node_name, ns, name, failure)

    # ---- status writes -----------------------------------------------------------------

    def _write(self, w: Worker) -> None:
        if w.silent or self._stopping:
            return
        writer = self._writers.setdefault(w.uid, _Writer())
        writer.wanted += 1
        writer.idle.clear()
        if writer.task is None or writer.task.done():
            writer.task = asyncio.create_task(self._writes(w, writer), name=f"status-{w.name}")

    async def _flush(self, w: Worker) -> None:
        writer = self._writers.get(w.uid)
        if writer is not None and writer.done < writer.wanted and writer.task is not None:
            await writer.idle.wait()

    async def _writes(self, w: Worker, writer: _Writer) -> None:
        try:
            while writer.done < writer.wanted:
                target = writer.wanted
                if not w.silent and not self._stopping:
                    await self._put_status(w)
                writer.done = target
        finally:
            writer.idle.set()

    async def _put_status(self, w: Worker) -> None:
        path = f"/api/v1/namespaces/{w.namespace}/pods/{w.name}"
        for _ in range(10):
            pod = self.pods.get(w.uid)
            if pod is None:
                return
            try:
                self._remember(await self.api.request("PUT", path + "/status", with_status(pod, w)))
                return
            except ApiFailure as failure:
                if failure.code == 404:
                    return
                if failure.code != 409:
                    log.warning("node %s: status of %s: %s", self.node_name, w.name, failure)
                    return
            fresh = await self.api.get(path)
            if fresh is None or fresh["metadata"]["uid"] != w.uid:
                return
            self.pods[w.uid] = fresh
        log.warning("node %s: status of %s: still conflicting", self.node_name, w.name)

    # ---- running a Pod -------------------------------------------------------------

    async def _fail_unstarted(self, pod: Obj, *, delete: bool) -> None:
        meta = pod["metadata"]
        worker = Worker(meta["uid"], meta.get("namespace", ""), meta["name"], final="Failed")
        for c in (pod.get("spec") or {}).get("containers") or []:
            worker.statuses[c["name"]] = terminated(
                self.logs,
                worker,
                c,
                Outcome(137, "ContainerStatusUnknown", NOT_LOCATED, started=False),
                "",
            )
        await self._put_status(worker)
        if delete:
            await self._delete(self.pods.get(meta["uid"], pod))

    async def _work(self, worker: Worker) -> None:
        home = self.workdir / "pods" / worker.uid
        try:
            await self._run_pod(worker, home)
            await self._flush(worker)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("node %s: running pod %s failed", self.node_name, worker.name)
        finally:
            if worker.timer is not None:
                worker.timer.cancel()
            if self.workers.get(worker.uid) is worker:
                del self.workers[worker.uid]
            self._writers.pop(worker.uid, None)
            shutil.rmtree(home, ignore_errors=True)
            if worker.gone:  # the Pod is gone: nothing to remember
                self.logs.forget(worker.namespace, worker.name)
                self._handled.discard(worker.uid)
            else:
                self._handled.add(worker.uid)
        pod = self.pods.get(worker.uid)
        if pod is not None and "deletionTimestamp" in pod["metadata"] and not worker.silent:
            self._finish_delete(pod)

    async def _run_pod(self, w: Worker, home: Path) -> None:
        pod = self.pods.get(w.uid)
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
        base_env = await identity.prepare(self.api, self.credentials, pod, home)
        ok = True
        for c in inits:
            outcome = await self._container(w, c, policy, base_env, init=True)
            if outcome.exit_code != 0:
                ok = False
                break
        outcomes: list[Outcome] = []
        if ok:
            w.initialized = True
            outcomes = await asyncio.gather(
                *(self._container(w, c, policy, base_env) for c in mains)
            )
        success = ok and all(o.exit_code == 0 for o in outcomes) and not w.reason
        w.final = "Succeeded" if success else "Failed"
        self._write(w)

    async def _sources(self, pod: Obj) -> Callable[[str, str, str], Obj | None]:
        """The Secrets and ConfigMaps the Pod refers to, read now through the API."""
        ns = pod["metadata"].get("namespace", "")
        found: dict[tuple[str, str], Obj | None] = {}
        for kind, name in sources(pod):
            plural = "secrets" if kind == "Secret" else "configmaps"
            try:
                found[(kind, name)] = await self.api.get(f"/api/v1/namespaces/{ns}/{plural}/{name}")
            except ApiFailure as failure:
                raise ConfigError(f'{kind.lower()} "{name}": {failure.message}') from failure
        return lambda kind, _ns, name: found.get((kind, name))

    async def _wait_config(self, w: Worker, tries: int) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(w.stop.wait(), min(0.2 * 2**tries, 5.0))

    async def _container(
        self, w: Worker, c: Obj, policy: str, base_env: dict[str, str], init: bool = False
    ) -> Outcome:
        table = w.init_statuses if init else w.statuses
        name, restarts, last, tries = c["name"], 0, None, 0
        while True:
            pod = self.pods.get(w.uid)
            if w.stop.is_set() or pod is None:
                outcome = Outcome(137, "ContainerStatusUnknown", NOT_LOCATED, started=False)
                table[name] = terminated(self.logs, w, c, outcome, "", restarts, last)
                return outcome
            problem = image_problem(str(c.get("image", "")))
            if problem is not None:  # a Pod's images never change: it waits for good
                table[name] = waiting(c, "InvalidImageName", problem, restarts, last)
                self._write(w)
                await w.stop.wait()
                continue
            try:
                lookup = await self._sources(pod)
                if missing_volume(lookup, pod) is not None:
                    table[name] = waiting(c, "ContainerCreating", "", restarts, last)
                    self._write(w)
                    await self._wait_config(w, tries)
                    tries += 1
                    continue
                env = resolve_env(lookup, pod, c, w.pod_ip)
            except ConfigError as error:
                table[name] = waiting(c, "CreateContainerConfigError", str(error), restarts, last)
                self._write(w)
                await self._wait_config(w, tries)
                tries += 1
                continue
            tries = 0
            started_at = ""

            def on_start(restarts: int = restarts, last: Obj | None = last) -> None:
                nonlocal started_at
                started_at = now_rfc3339()
                table[name] = {
                    **waiting(c, "", "", restarts, last),
                    "ready": not init,
                    "started": True,
                    "imageID": image_id(c),
                    "containerID": f"local://{uuid.uuid4().hex}",
                    "state": {"running": {"startedAt": started_at}},
                }
                self._write(w)

            def on_wait(
                reason: str, message: str, restarts: int = restarts, last: Obj | None = last
            ) -> None:
                table[name] = waiting(c, reason, message, restarts, last)
                self._write(w)

            grace = min(self.grace, float(pod["spec"].get("terminationGracePeriodSeconds", 30)))
            launch = Launch(w.namespace, pod, c, env, self.logs, w.stop, grace, dict(base_env))
            refused = runtime_refusal(env)
            if refused:
                outcome = Outcome(128, "StartError", refused, started=False)
            else:
                outcome = await self.runtime.run(launch, on_start, on_wait)
            cid = str(table[name].get("containerID", ""))
            table[name] = terminated(self.logs, w, c, outcome, started_at, restarts, last, cid)
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


def _newer(a: Obj, b: Obj) -> bool:
    """Whether Pod `a` is a later version than `b` (resourceVersions compared as numbers
    where both are, as etcd's and the sandbox's are; otherwise the later arrival wins)."""
    va, vb = a["metadata"].get("resourceVersion", ""), b["metadata"].get("resourceVersion", "")
    if va.isdigit() and vb.isdigit():
        return int(va) >= int(vb)
    return True
