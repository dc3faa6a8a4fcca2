"""One sandbox: the API server, its controllers, its users, and a kubeconfig to reach it.

`Sandbox` runs on the caller's event loop (`await start()` / `await stop()`);
`SandboxThread` runs one on a loop of its own in a background thread, so that synchronous
code (tests calling the real `kubectl`, the demo) can use it while it serves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from koos_sandbox import admission, admission_cel, jobs
from koos_sandbox.auth import ADMIN_GROUP, DenyRule
from koos_sandbox.gc import GarbageCollector
from koos_sandbox.kubeconfig import build_kubeconfig
from koos_sandbox.logs import PodLogs
from koos_sandbox.node_agent import Credentials, NodeAgent
from koos_sandbox.registry import Registry
from koos_sandbox.server import Server
from koos_sandbox.state import State
from koos_sandbox.store import Store
from koos_sandbox.tls import Certificates, make_certificates
from koos_sandbox.writes import WriteOptions, Writes

T = TypeVar("T")

DEFAULT_USERS: dict[str, tuple[str, ...]] = {"alice": ("sre",), "bob": ("dev",)}
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class Sandbox:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        crds: str | Path | None = None,
        jobs_mode: str = "scripted",
        users: dict[str, tuple[str, ...]] | None = None,
        seed: int = 0,
        bookmark_interval: float = 5.0,
        watch_window: int = 20000,
        workdir: str | Path | None = None,
    ) -> None:
        registry = Registry()
        store = Store(registry, window=watch_window)
        self.admission = admission.WebhookAdmission(store, registry)
        writes = Writes(store, registry, self.admission)
        self.state = State(
            registry=registry, store=store, writes=writes, bookmark_interval=bookmark_interval
        )
        self.state.faults.reseed(seed)
        self.host, self.port = host, port
        self.crds_dir = Path(crds) if crds else None
        self.admin_token = self.state.authn.add("admin", (ADMIN_GROUP,))
        self.user_tokens: dict[str, str] = {}
        for name, groups in (DEFAULT_USERS if users is None else users).items():
            self.add_user(name, groups)
        self.state.authn.exists = lambda uid: self.state.store.by_uid(uid) is not None
        self.gc = GarbageCollector(self.state)
        self.jobs = jobs.JobController(self.state, mode=jobs_mode)
        # `--jobs local`: Pods run on a node agent that reaches this sandbox over HTTPS, as
        # it would any API server (started in `start()`); scripted: the store-level kubelet.
        self.node_agent: NodeAgent | None = None
        self.workdir = Path(workdir) if workdir else None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.url = ""
        self.certificates: Certificates = make_certificates((host, "localhost"))
        writes.root_ca = self.certificates.ca_pem.decode()

    # ---- conveniences for tests ----------------------------------------------------------

    @property
    def store(self) -> Store:
        return self.state.store

    @property
    def pod_logs(self) -> PodLogs:
        """The container logs of whichever kubelet runs this sandbox's Pods."""
        return self.node_agent.logs if self.node_agent is not None else self.state.logs

    @property
    def requests(self) -> Any:
        return self.state.requests

    @property
    def faults(self) -> Any:
        return self.state.faults

    def add_user(self, name: str, groups: tuple[str, ...] = ()) -> str:
        token = self.state.authn.add(name, tuple(groups))
        self.user_tokens[name] = token
        return token

    def deny(self, rule: DenyRule) -> None:
        self.state.authz.deny(rule)

    def drop_watches(self, *, expire: bool | None = None) -> None:
        """End every open watch. With `expire` (default: `faults.expire_on_drop`), a watch
        resumed from a version before the drop gets 410 Gone and the client must relist."""
        if expire is None:
            expire = self.state.faults.expire_on_drop
        self.state.store.close_watches(expire=expire)

    def expire_watches(self, key: tuple[str, str] | None = None) -> None:
        """The next watch (of collection `key` = (group, plural), or of any) that resumes
        from a resourceVersion gets 410 Gone; clients must relist."""
        self.state.store.expire_next_watch(key)

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        tokens = {"admin": self.admin_token, **self.user_tokens}
        return build_kubeconfig(self.url, self.certificates.ca_pem, tokens, namespace=namespace)

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.kubeconfig(namespace), sort_keys=False))
        path.chmod(0o600)
        return path

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> str:
        if admission_cel.MISSING:
            # Without CEL, every webhook with matchConditions (koos's own among them) would
            # refuse its requests.
            raise RuntimeError(
                f"the sandbox evaluates webhook matchConditions: {admission_cel.MISSING}"
            )
        await self._seed()
        server = Server(self.state)
        self._runner = web.AppRunner(
            server.app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.host, self.port, ssl_context=self.certificates.server_context()
        )
        await site.start()
        self.port = _bound_port(site)
        self.url = f"https://{self.host}:{self.port}"
        self.admission.start()
        if self.jobs.mode == "local":
            self.node_agent = NodeAgent(
                Credentials(self.url, self.certificates.ca_pem, self.admin_token),
                jobs.DEFAULT_NODE,
                self.workdir,
                grace=self.jobs.grace,
                restart_delay=self.jobs.restart_delay,
                entrypoints=self.jobs.entrypoints,
            )
            await self.node_agent.start()
        self._tasks = [
            asyncio.create_task(self.gc.run(), name="sandbox-gc"),
            asyncio.create_task(self.jobs.run(), name="sandbox-jobs"),
        ]
        return self.url

    async def stop(self) -> None:
        if self.node_agent is not None:
            await self.node_agent.stop()  # its processes end first, it writes nothing more
        self.state.store.close_watches()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.jobs.stop()
        await self.admission.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _seed(self) -> None:
        admin = self.state.authn.authenticate(f"Bearer {self.admin_token}", None, [])
        ns_type = self.state.registry.find("", "v1", "namespaces")
        assert ns_type is not None
        for name in DEFAULT_NAMESPACES:
            await self.state.writes.create(
                admin, ns_type, "", {"metadata": {"name": name}}, WriteOptions()
            )
        if self.jobs.mode == "scripted":
            node_type = self.state.registry.find("", "v1", "nodes")
            assert node_type is not None
            self.state.store.create(node_type, "", jobs.build_node(jobs.DEFAULT_NODE))
            self.state.kubelet_nodes.add(jobs.DEFAULT_NODE)
        if self.crds_dir is None:
            return
        crd_type = self.state.registry.find(
            "apiextensions.k8s.io", "v1", "customresourcedefinitions"
        )
        assert crd_type is not None
        for path in sorted(self.crds_dir.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    await self.state.writes.create(admin, crd_type, "", doc, WriteOptions())


def _bound_port(site: web.TCPSite) -> int:
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1])


class SandboxThread:
    """A Sandbox serving from a background thread with its own event loop."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="sandbox", daemon=True)
        self.sandbox: Sandbox | None = None

    def start(self) -> Sandbox:
        self._thread.start()

        async def make() -> Sandbox:
            sandbox = Sandbox(**self._options)
            await sandbox.start()
            return sandbox

        self.sandbox = self.call(make())
        return self.sandbox

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def run(self, fn: Any, *args: Any) -> Any:
        """Run a plain function on the sandbox's loop (store access is not thread-safe)."""

        async def wrapper() -> Any:
            return fn(*args)

        return self.call(wrapper())

    def stop(self) -> None:
        if self.sandbox is not None:
            self.call(self.sandbox.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
