"""The real operator, in-process, against the sandbox with koos's CRDs loaded."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from koos.handlers.operator import Options, run
from koos_sandbox.app import Sandbox
from koos_sandbox.auth import UserInfo
from koos_sandbox.testing import async_wait_for
from koos_sandbox.writes import WriteOptions

ROOT = Path(__file__).resolve().parents[2]
NS = "default"
ALICE = UserInfo("alice", "alice-uid", ("sre", "system:authenticated"))
WEBHOOKS = 10  # creator, commands, decision, schedule-creator (mutating); creator-kept, template,
# schedule, execution-status, approval-created, approval-status (validating)


@dataclass
class Koos:
    sandbox: Sandbox
    kubeconfig: Path
    stop: threading.Event
    thread: threading.Thread | None = None

    @property
    def admin(self) -> UserInfo:
        return self.sandbox.state.authn.authenticate(f"Bearer {self.sandbox.admin_token}", None, [])

    def rt(self, plural: str, group: str = "koos.io", version: str = "v1alpha1") -> Any:
        rt = self.sandbox.state.registry.find(group, version, plural)
        assert rt is not None, plural
        return rt

    async def apply(self, manifest: dict[str, Any] | str) -> dict[str, Any]:
        body = yaml.safe_load(manifest) if isinstance(manifest, str) else manifest
        group, _, version = body["apiVersion"].rpartition("/")
        plural = {
            "Template": "templates",
            "Execution": "executions",
            "Secret": "secrets",
            "ConfigMap": "configmaps",
            "Schedule": "schedules",
        }[body["kind"]]
        rt = self.rt(plural, group, version)
        existing = self.sandbox.store.find(rt, NS, body["metadata"]["name"])
        if existing is None:
            return await self.sandbox.state.writes.create(self.admin, rt, NS, body, WriteOptions())
        return await self.sandbox.state.writes.patch(
            self.admin,
            rt,
            NS,
            body["metadata"]["name"],
            "application/merge-patch+json",
            {k: v for k, v in body.items() if k in ("spec", "metadata")},
            WriteOptions(),
        )

    async def annotate(self, name: str, key: str, value: str, by: UserInfo | None = None) -> None:
        """`kubectl annotate exe <name> key=value`, as the admin or as user `by` (the tests'
        operator is the admin, and the webhooks do not check the operator's own requests:
        a run command that admission must check is sent `by=ALICE`)."""
        await self.sandbox.state.writes.patch(
            by or self.admin,
            self.rt("executions"),
            NS,
            name,
            "application/merge-patch+json",
            {"metadata": {"annotations": {key: value}}},
            WriteOptions(),
        )

    async def delete(
        self, plural: str, name: str, group: str = "koos.io", version: str = "v1alpha1"
    ) -> None:
        await self.sandbox.state.writes.delete(
            self.admin,
            self.rt(plural, group, version),
            NS,
            name,
            {"propagationPolicy": "Background"},
        )

    def execution(self, name: str) -> dict[str, Any] | None:
        return self.sandbox.store.find(self.rt("executions"), NS, name)

    def template(self, name: str) -> dict[str, Any] | None:
        return self.sandbox.store.find(self.rt("templates"), NS, name)

    def jobs(self, execution: str | None = None) -> list[dict[str, Any]]:
        items = self.sandbox.store.items(("batch", "jobs"), NS)
        return [
            j
            for j in items
            if execution is None
            or j["metadata"].get("labels", {}).get("koos.io/execution") == execution
        ]

    async def finished(self, name: str, timeout: float = 20) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            obj = self.execution(name)
            phase = (obj or {}).get("status", {}).get("phase")
            return obj if phase in ("Succeeded", "Failed", "Cancelled") else None

        return await async_wait_for(done, timeout=timeout, what=f"execution {name} to finish")

    def step(self, execution: str, step: str) -> dict[str, Any]:
        obj = self.execution(execution) or {}
        for record in obj.get("status", {}).get("steps", []):
            if record["name"] == step:
                return record
        raise KeyError(step)

    async def start_operator(self) -> None:
        """The operator on a loop and thread of its own, as in its own process: kopf treats
        every task of its loop as its own, and the sandbox's must not be among them."""
        ready = threading.Event()
        options = Options(
            kubeconfig=str(self.kubeconfig),
            metrics_port=None,
            fast_retries=True,
            allow_second_schedules=True,
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=lambda: asyncio.run(run(options, self.stop, ready)), name="operator"
        )
        before = self.webhook_urls()
        self.thread.start()
        await async_wait_for(ready.is_set, timeout=20, what="the operator to be ready")

        def registered() -> bool:
            # Every koos webhook points at this operator's server (not a previous one's).
            urls = self.webhook_urls()
            return len(urls) >= WEBHOOKS and not urls & before

        await async_wait_for(registered, timeout=20, what="the operator's webhooks")

    def webhook_urls(self) -> set[str]:
        urls = set()
        for plural in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
            config = self.sandbox.store.find(
                self.rt(plural, "admissionregistration.k8s.io", "v1"), "", "koos.io"
            )
            for hook in (config or {}).get("webhooks") or []:
                urls.add(f"{hook['name']} {hook.get('clientConfig', {}).get('url')}")
        return urls

    async def stop_operator(self) -> None:
        self.stop.set()
        if self.thread is not None:
            await asyncio.to_thread(self.thread.join, 20)
            if self.thread.is_alive():
                # Slow on a loaded machine, or stuck: say where it is, then give it longer.
                frame = sys._current_frames().get(self.thread.ident or 0)
                stack = "".join(traceback.format_stack(frame)) if frame else "(no frame)"
                logging.getLogger("tests").warning("the operator is still stopping:\n%s", stack)
                await asyncio.to_thread(self.thread.join, 40)
            assert not self.thread.is_alive(), "the operator did not stop within 60 s"
            self.thread = None


@pytest.fixture
async def koos(tmp_path: Path) -> AsyncIterator[Koos]:
    logging.getLogger("kopf").setLevel(logging.WARNING)
    sandbox = Sandbox(crds=ROOT / "crds", jobs_mode="scripted", bookmark_interval=0.5)
    await sandbox.start()
    harness = Koos(sandbox, sandbox.write_kubeconfig(tmp_path / "kubeconfig"), threading.Event())
    try:
        await harness.start_operator()
        yield harness
    finally:
        await harness.stop_operator()
        await sandbox.stop()
