"""The real ground for the integration tests: tests/ground/realplane.py's etcd, kube-apiserver
and kube-controller-manager, koos's CRDs applied, and a node agent registered as a Node, so the
Job controller's Pods are bound and run as local processes. One per test session
(`real_ground` in conftest.py); each test takes a namespace of its own.

What a test user may do: the sandbox authorises everything, the real API server runs RBAC. So
that the same tests pass on both, each test namespace binds the static users (alice, bob,
carol, dave) to `cluster-admin` there, and nowhere else; cluster-scoped writes (webhook
configurations) stay the admin's. The operator runs as the admin (its own least-privilege
ClusterRole is tested in tests/realplane/).

`stop()` ends the node agent (and the containers it started) and the control plane, then
checks that none of their processes is left.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from ..ground.realplane import RealPlane, wait_for

ROOT = Path(__file__).resolve().parents[2]
NODE = "koos-it-node"
# The users the integration tests act as, with their groups (a superset of the sandbox's).
USERS: dict[str, tuple[str, ...]] = {
    "alice": ("sre",),
    "bob": ("dev",),
    "carol": ("sre",),
    "dave": ("sre", "oncall"),
}
KOOS_PLURALS = ("executions", "schedules", "approvals", "templates")
_numbers = itertools.count(1)


def descendants(pid: int) -> set[int]:
    """Every living process below `pid` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid …: comm may hold spaces and parentheses.
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@dataclass
class RealGround:
    plane: RealPlane = field(default_factory=lambda: RealPlane(users=dict(USERS)))
    agent: subprocess.Popen[bytes] | None = None
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="koos-it-real-")))

    @property
    def admin_kubeconfig(self) -> Path:
        return self.plane.kubeconfig_path("admin")

    def start(self) -> RealGround:
        try:
            self.plane.start()
            self._apply_crds()
            self._start_agent()
        except BaseException:
            self.stop()
            raise
        return self

    def _apply_crds(self) -> None:
        names = []
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            body = yaml.safe_load(path.read_text())
            status, answer = self.plane.request(
                "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body
            )
            assert status == 201, f"{path.name}: {status} {answer}"
            names.append(body["metadata"]["name"])

        def established(name: str) -> bool:
            status, body = self.plane.request(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            )
            conditions = (body.get("status") or {}).get("conditions") or [] if status == 200 else []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        def served(plural: str) -> bool:
            return self.plane.request("GET", f"/apis/koos.io/v1alpha1/{plural}?limit=1")[0] == 200

        for name in names:
            wait_for(f"CRD {name} to be established", partial(established, name), 60)
        # Established is not yet served: a list answers 429 "storage is (re)initializing"
        # for a moment (kopf retries it a second later). Wait until each one answers.
        for plural in KOOS_PLURALS:
            wait_for(f"{plural} to be served", partial(served, plural), 60)

    def _start_agent(self) -> None:
        log = self.dir / "node-agent.log"
        with log.open("wb") as out:
            self.agent = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "koos_sandbox.node_agent",
                    f"--kubeconfig={self.admin_kubeconfig}",
                    f"--node-name={NODE}",
                    f"--workdir={self.dir / 'pods'}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready() -> bool:
            if self.agent is not None and self.agent.poll() is not None:
                raise AssertionError(f"the node agent exited: {log.read_text()[-3000:]}")
            status, body = self.plane.request("GET", f"/api/v1/nodes/{NODE}")
            conditions = (body.get("status") or {}).get("conditions") or [] if status == 200 else []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_for(f"Node {NODE} to be Ready", ready, 60)

    def agent_log(self) -> str:
        try:
            return (self.dir / "node-agent.log").read_text(errors="replace")
        except OSError:
            return ""

    def processes(self) -> set[int]:
        """Every process of the ground now: the control plane's, the node agent and the
        containers it runs."""
        roots = [*self.plane.pids(), *([self.agent.pid] if self.agent else [])]
        return {pid for root in roots for pid in (root, *descendants(root))}

    def stop(self) -> None:
        """Stop the node agent (it stops its containers) and the control plane."""
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            try:
                self.agent.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.agent.pid, signal.SIGKILL)
                self.agent.wait()
        self.plane.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- per test -----------------------------------------------------------------------

    def namespace(self) -> str:
        """A new namespace whose default ServiceAccount exists (Pods can be created) and
        where the test users may do anything."""
        while True:
            name = f"koos-it-{os.getpid()}-{next(_numbers)}"
            status, body = self.plane.request(
                "POST", "/api/v1/namespaces", {"metadata": {"name": name}}
            )
            if status == 201:
                break
            assert status == 409, body
        binding: dict[str, Any] = {
            "metadata": {"name": "koos-it-users"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [
                {"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}
                for user in USERS
            ],
        }
        path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{name}/rolebindings"
        status, body = self.plane.request("POST", path, binding)
        assert status == 201, body
        wait_for(
            f"the default ServiceAccount of {name}",
            lambda: (
                self.plane.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")[0]
                == 200
            ),
            30,
        )
        return name

    def webhook_urls(self) -> set[str]:
        """The koos webhooks registered now, as "name url"."""
        urls = set()
        for plural in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
            path = f"/apis/admissionregistration.k8s.io/v1/{plural}/koos.io"
            status, body = self.plane.request("GET", path)
            for hook in (body.get("webhooks") or []) if status == 200 else []:
                urls.add(f"{hook['name']} {hook.get('clientConfig', {}).get('url')}")
        return urls

    def wait_webhooks(self, before: set[str], count: int, timeout: float = 30) -> None:
        """Until `count` koos webhooks are registered, none of them one of `before` (a
        previous operator's, which no longer answers)."""
        wait_for(
            "the operator's webhooks",
            lambda: len(urls := self.webhook_urls()) >= count and not urls & before,
            timeout,
        )

    def empty_namespace(self, name: str, timeout: float = 60) -> None:
        """Delete the koos objects of a namespace and wait until they are gone: their
        finalizers are the operator's, which must still run."""
        paths = [f"/apis/koos.io/v1alpha1/namespaces/{name}/{plural}" for plural in KOOS_PLURALS]
        for path in paths:
            status, body = self.plane.request("DELETE", path)
            assert status == 200, body

        def gone() -> bool:
            return not any(self.plane.request("GET", path)[1].get("items") for path in paths)

        wait_for(f"the koos objects of {name} to be deleted", gone, timeout)

    def delete_namespace(self, name: str) -> None:
        """Delete a namespace, not waited for: the namespace controller removes what is left
        (Jobs, Pods: the node agent stops their processes) while the next test runs."""
        status, body = self.plane.request("DELETE", f"/api/v1/namespaces/{name}")
        assert status == 200, body
