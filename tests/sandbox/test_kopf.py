"""The sandbox with kopf as the client: a minimal operator handles each change exactly once,
keeps its finalizer, and survives broken watches and expired resource versions."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
import pytest

from koos_sandbox.app import Sandbox
from koos_sandbox.testing import async_wait_for

from .conftest import Ground

CRD = Path(__file__).resolve().parents[2] / "examples" / "sandbox" / "crd.yaml"
FINALIZER = "demo.koos.io/test-operator"


FAULTS = "drops and expires watches with the sandbox's fault injector"


@dataclass
class Operator:
    ground: Ground
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    seen: list[tuple[str, str]] = field(default_factory=list)

    @property
    def sandbox(self) -> Sandbox:
        assert self.ground.sandbox is not None
        return self.ground.sandbox

    @property
    def path(self) -> str:
        return self.ground.ns_path("greetings", "demo.koos.io/v1")

    async def _call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return await asyncio.to_thread(self.ground.request, method, path, body, **kw)

    async def create(self, name: str, message: str) -> None:
        body = {
            "apiVersion": "demo.koos.io/v1",
            "kind": "Greeting",
            "metadata": {"name": name},
            "spec": {"message": message},
        }
        status, answer = await self._call("POST", self.path, body)
        assert status == 201, answer

    async def set_message(self, name: str, message: str) -> None:
        status, answer = await self._call(
            "PATCH",
            f"{self.path}/{name}",
            {"spec": {"message": message}},
            content_type="application/merge-patch+json",
        )
        assert status == 200, answer

    async def delete(self, name: str) -> None:
        status, answer = await self._call("DELETE", f"{self.path}/{name}")
        assert status in (200, 202), answer

    async def get(self, name: str) -> dict[str, Any] | None:
        status, answer = await self._call("GET", f"{self.path}/{name}")
        return dict(answer) if status == 200 else None


def _registry(op: Operator) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix="demo.koos.io", v1=False
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="demo.koos.io", key="last", v1=False
        )
        settings.scanning.disabled = True
        settings.posting.enabled = False
        settings.watching.reconnect_backoff = 0.1
        settings.networking.error_backoffs = [0.1, 0.2]
        settings.queueing.error_delays = [0.1] * 5

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(
            server=op.ground.url,
            token=op.ground.admin_token,
            ca_data=op.ground.ca_pem,
            default_namespace=op.ground.namespace,
        )

    @kopf.on.create("demo.koos.io", "v1", "greetings", id="create", registry=registry)
    def on_create(name: str, spec: Any, patch: kopf.Patch, **_: Any) -> None:
        op.calls["create"] += 1
        op.seen.append(("create", spec["message"]))
        patch.status["conditions"] = [{"type": "Ready", "status": "True"}]

    @kopf.on.update("demo.koos.io", "v1", "greetings", id="update", registry=registry)
    def on_update(name: str, spec: Any, **_: Any) -> None:
        op.calls["update"] += 1
        op.seen.append(("update", spec["message"]))

    @kopf.on.delete("demo.koos.io", "v1", "greetings", id="delete", registry=registry)
    def on_delete(name: str, **_: Any) -> None:
        op.calls["delete"] += 1
        op.seen.append(("delete", name))

    return registry


@pytest.fixture
async def operator(ground: Ground) -> AsyncIterator[Operator]:
    logging.getLogger("kopf").setLevel(logging.WARNING)
    op = Operator(ground)
    await asyncio.to_thread(ground.make_crd, CRD)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=_registry(op),
            namespaces=[ground.namespace],
            standalone=True,
            stop_flag=stop,
            ready_flag=ready,
        )
    )
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield op
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 10)


async def _ready(op: Operator, name: str) -> bool:
    obj = await op.get(name)
    return bool(obj and obj.get("status", {}).get("conditions"))


async def test_each_change_is_handled_exactly_once(operator: Operator) -> None:
    await operator.create("once", "first")
    await async_wait_for(lambda: _ready(operator, "once"), what="the create handler")
    obj = await operator.get("once")
    assert obj is not None
    assert obj["metadata"]["finalizers"] == [FINALIZER]

    await operator.set_message("once", "second")
    await async_wait_for(lambda: operator.calls["update"] == 1, what="the update handler")
    await operator.delete("once")

    async def gone() -> bool:
        return await operator.get("once") is None

    await async_wait_for(gone, what="the finalizer to go")
    assert operator.seen == [("create", "first"), ("update", "second"), ("delete", "once")]
    # Let kopf settle on any stray event; still once per change.
    await operator.create("after", "x")
    await async_wait_for(lambda: _ready(operator, "after"), what="a later create")
    assert operator.calls == {"create": 2, "update": 1, "delete": 1}


@pytest.mark.sandbox_only(reason=FAULTS)
async def test_a_broken_watch_resumes_without_replaying(operator: Operator) -> None:
    await operator.create("steady", "one")
    await async_wait_for(lambda: _ready(operator, "steady"), what="the create handler")
    watches_before = _watch_count(operator)
    operator.sandbox.drop_watches()
    await async_wait_for(
        lambda: _watch_count(operator) > watches_before, what="kopf to watch again"
    )
    resumed = [r for r in operator.sandbox.requests.records if r.verb == "watch"][-1]
    assert "resourceVersion=" in resumed.query  # resumed from where it was, not from scratch
    assert "resourceVersion=0" not in resumed.query
    await operator.set_message("steady", "two")
    await async_wait_for(lambda: operator.calls["update"] == 1, what="the update after resume")
    await operator.create("fresh", "new")
    await async_wait_for(lambda: _ready(operator, "fresh"), what="a create after resume")
    assert operator.calls["create"] == 2
    assert operator.calls["update"] == 1


@pytest.mark.sandbox_only(reason=FAULTS)
async def test_a_forced_410_makes_kopf_relist_and_carry_on(operator: Operator) -> None:
    await operator.create("before", "one")
    await async_wait_for(lambda: _ready(operator, "before"), what="the create handler")
    lists_before = _count(operator, "list")
    operator.sandbox.expire_watches(("demo.koos.io", "greetings"))
    operator.sandbox.drop_watches()
    await async_wait_for(lambda: _count(operator, "list") > lists_before, what="a relist")
    await operator.create("later", "two")
    await async_wait_for(lambda: _ready(operator, "later"), what="a create after the relist")
    await operator.set_message("before", "changed")
    await async_wait_for(lambda: operator.calls["update"] == 1, what="an update after relist")
    assert operator.calls["create"] == 2


@pytest.mark.sandbox_only(reason=FAULTS)
async def test_a_drop_that_expires_versions_makes_kopf_relist_and_carry_on(
    operator: Operator,
) -> None:
    """The fault injector's expire-on-drop mode: the resumed watch gets 410 Gone (an ERROR
    event), kopf relists, and no change is lost or handled twice."""
    operator.sandbox.faults.expire_on_drop = True
    for round_ in range(3):
        name = f"round-{round_}"
        await operator.create(name, "one")
        await async_wait_for(lambda n=name: _ready(operator, n), what="the create handler")
        lists = _count(operator, "list")
        operator.sandbox.drop_watches()
        # Only a 410 makes kopf list again: after a plain drop it resumes from its version.
        await async_wait_for(lambda n=lists: _count(operator, "list") > n, what="a relist")
        await operator.set_message(name, "two")
        await async_wait_for(
            lambda r=round_: operator.calls["update"] == r + 1, what="the update after a relist"
        )
    await operator.create("last", "x")
    await async_wait_for(lambda: _ready(operator, "last"), what="a create after the relists")
    assert operator.calls == {"create": 4, "update": 3}


def _count(op: Operator, verb: str) -> int:
    return sum(
        1 for r in op.sandbox.requests.records if r.verb == verb and r.resource == "greetings"
    )


def _watch_count(op: Operator) -> int:
    return _count(op, "watch")
