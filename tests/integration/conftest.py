"""The real operator, in-process, against the sandbox with koos's CRDs loaded."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from koos.handlers.operator import Options
from koos_sandbox.app import Sandbox
from koos_sandbox.auth import UserInfo
from koos_sandbox.writes import WriteOptions

from ..ground.policy import grounds
from ..ground.session import session_ground
from .api_harness import ApiKoos, ExecutionReads, OperatorInThread
from .real_ground import RealGround

ROOT = Path(__file__).resolve().parents[2]
NS = "default"
ALICE = UserInfo("alice", "alice-uid", ("sre", "system:authenticated"))


@dataclass
class Koos(ExecutionReads, OperatorInThread):
    sandbox: Sandbox
    kubeconfig: Path
    stop: threading.Event
    thread: threading.Thread | None = None
    ground: str = "sandbox"
    ns: str = NS

    @property
    def admin(self) -> UserInfo:
        return self.sandbox.state.authn.authenticate(f"Bearer {self.sandbox.admin_token}", None, [])

    def outcome(self, pattern: str, **outcome: Any) -> None:
        """What the scripts of matching Jobs do when they run. The sandbox runs no script
        (its Jobs' outcomes are scripted), so it is told; other grounds run the scripts."""
        self.sandbox.jobs.script(pattern, **outcome)

    def rt(self, plural: str, group: str = "koos.io", version: str = "v1alpha1") -> Any:
        rt = self.sandbox.state.registry.find(group, version, plural)
        assert rt is not None, plural
        return rt

    async def apply(
        self, manifest: dict[str, Any] | str, by: UserInfo | None = None
    ) -> dict[str, Any]:
        """Create, or merge-patch what exists, as the admin or as user `by`."""
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
            return await self.sandbox.state.writes.create(
                by or self.admin, rt, NS, body, WriteOptions()
            )
        return await self.sandbox.state.writes.patch(
            by or self.admin,
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
        self,
        plural: str,
        name: str,
        group: str = "koos.io",
        version: str = "v1alpha1",
        propagation: str = "Background",
    ) -> None:
        await self.sandbox.state.writes.delete(
            self.admin,
            self.rt(plural, group, version),
            NS,
            name,
            {"propagationPolicy": propagation},
        )

    def object(self, plural: str, name: str) -> dict[str, Any] | None:
        """A koos object (`plural` of koos.io) of the test's namespace, or None."""
        return self.sandbox.store.find(self.rt(plural), NS, name)

    def objects(self, plural: str) -> list[dict[str, Any]]:
        """The koos objects (`plural` of koos.io) of the test's namespace."""
        return list(self.sandbox.store.items(("koos.io", plural), NS))

    def pods(self) -> list[dict[str, Any]]:
        return list(self.sandbox.store.items(("", "pods"), NS))

    def events(self) -> list[dict[str, Any]]:
        return list(self.sandbox.store.items(("", "events"), NS))

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

    def operator_options(self) -> Options:
        return Options(
            kubeconfig=str(self.kubeconfig),
            metrics_port=None,
            fast_retries=True,
            allow_second_schedules=True,
        )

    async def read_webhook_urls(self) -> set[str]:
        return self.webhook_urls()

    def webhook_urls(self) -> set[str]:
        urls = set()
        for plural in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
            config = self.sandbox.store.find(
                self.rt(plural, "admissionregistration.k8s.io", "v1"), "", "koos.io"
            )
            for hook in (config or {}).get("webhooks") or []:
                urls.add(f"{hook['name']} {hook.get('clientConfig', {}).get('url')}")
        return urls


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "koos_ground" in metafunc.fixturenames:
        metafunc.parametrize("koos_ground", grounds(), scope="function")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test here runs on every chosen ground (it takes `koos_ground`, through `koos` or
    another harness), unless marked `sandbox_only("why")`: then it is skipped elsewhere,
    saying why. A test that takes no ground must be marked so, as it runs on the sandbox."""
    here = Path(__file__).parent
    chosen = grounds()
    for item in items:
        if here not in Path(str(item.fspath)).parents:
            continue
        marker = item.get_closest_marker("sandbox_only")
        if marker is not None and not marker.args:
            raise pytest.UsageError(f'{item.nodeid}: say why, @pytest.mark.sandbox_only("why")')
        reason = f"sandbox-only: {marker.args[0]}" if marker is not None else ""
        callspec = getattr(item, "callspec", None)
        ground = callspec.params.get("koos_ground") if callspec else None
        if ground is None:
            if marker is None:
                raise pytest.UsageError(
                    f"{item.nodeid} takes no ground (koos_ground) and is not marked "
                    '@pytest.mark.sandbox_only("why"): say which'
                )
            if "sandbox" not in chosen:
                item.add_marker(pytest.mark.skip(reason=reason))
            continue
        if ground != "sandbox" and marker is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
        if ground == "real":
            item.add_marker(pytest.mark.realplane)


@pytest.fixture(scope="session")
def real_ground() -> Iterator[RealGround]:
    """The real ground, once per session (skipped, saying why, when its binaries are not
    built); stopping it checks that nothing of it is left running."""
    ground = RealGround()
    with session_ground(ground, ground.processes, lambda: ground.plane.dir):
        yield ground


@pytest.fixture
async def koos(
    tmp_path: Path, koos_ground: str, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    logging.getLogger("kopf").setLevel(logging.WARNING)
    if koos_ground == "sandbox":
        async for harness in _sandbox_koos(tmp_path):
            yield harness
        return
    real: RealGround = request.getfixturevalue("real_ground")
    async for harness in _api_koos(tmp_path / "kubeconfig", real):
        yield harness


async def _sandbox_koos(tmp_path: Path) -> AsyncIterator[Koos]:
    sandbox = Sandbox(crds=ROOT / "crds", jobs_mode="scripted", bookmark_interval=0.5)
    await sandbox.start()
    harness = Koos(sandbox, sandbox.write_kubeconfig(tmp_path / "kubeconfig"), threading.Event())
    try:
        await harness.start_operator()
        yield harness
    finally:
        await harness.stop_operator()
        await sandbox.stop()


async def _api_koos(kubeconfig: Path, real: RealGround) -> AsyncIterator[ApiKoos]:
    """The API-only harness in a new namespace of the real ground; afterwards its koos
    objects are deleted while the operator runs (their finalizers are its), then the
    operator is stopped and the namespace deleted."""
    ns = await asyncio.to_thread(real.namespace)
    harness = ApiKoos(real.plane.write_kubeconfig(kubeconfig, namespace=ns), ns)
    try:
        await harness.start_operator()
        yield harness
        if harness.thread is None:  # the test stopped it: its finalizers need it
            await harness.start_operator()
        await asyncio.to_thread(real.empty_namespace, harness.ns)
    finally:
        await harness.stop_operator()
        await asyncio.to_thread(real.delete_namespace, harness.ns)
