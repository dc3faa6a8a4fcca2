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
import yaml

from koos_sandbox.app import Sandbox
from koos_sandbox.testing import async_wait_for
from koos_sandbox.writes import WriteOptions

CRD = Path(__file__).resolve().parents[2] / "examples" / "sandbox" / "crd.yaml"
FINALIZER = "demo.koos.io/test-operator"


@dataclass
class Operator:
    sandbox: Sandbox
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    seen: list[tuple[str, str]] = field(default_factory=list)

    @property
    def admin(self) -> Any:
        return self.sandbox.state.authn.authenticate(f"Bearer {self.sandbox.admin_token}", None, [])

    def rt(self) -> Any:
        return self.sandbox.state.registry.find("demo.koos.io", "v1", "greetings")

    async def create(self, name: str, message: str) -> None:
        body = {"metadata": {"name": name}, "spec": {"message": message}}
        await self.sandbox.state.writes.create(
            self.admin, self.rt(), "default", body, WriteOptions()
        )

    async def set_message(self, name: str, message: str) -> None:
        await self.sandbox.state.writes.patch(
            self.admin,
            self.rt(),
            "default",
            name,
            "application/merge-patch+json",
            {"spec": {"message": message}},
            WriteOptions(),
        )

    async def delete(self, name: str) -> None:
        await self.sandbox.state.writes.delete(self.admin, self.rt(), "default", name, {})

    def get(self, name: str) -> dict[str, Any] | None:
        return self.sandbox.store.find(self.rt(), "default", name)


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
            server=op.sandbox.url,
            token=op.sandbox.admin_token,
            ca_data=op.sandbox.certificates.ca_pem,
            default_namespace="default",
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
async def operator(asandbox: Sandbox) -> AsyncIterator[Operator]:
    logging.getLogger("kopf").setLevel(logging.WARNING)
    crd = yaml.safe_load(CRD.read_text())
    op = Operator(asandbox)
    crd_type = asandbox.state.registry.find(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions"
    )
    await asandbox.state.writes.create(op.admin, crd_type, "", crd, WriteOptions())
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=_registry(op),
            clusterwide=True,
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
    obj = op.get(name)
    return bool(obj and obj.get("status", {}).get("conditions"))


async def test_each_change_is_handled_exactly_once(operator: Operator) -> None:
    await operator.create("once", "first")
    await async_wait_for(lambda: _ready(operator, "once"), what="the create handler")
    obj = operator.get("once")
    assert obj is not None
    assert obj["metadata"]["finalizers"] == [FINALIZER]

    await operator.set_message("once", "second")
    await async_wait_for(lambda: operator.calls["update"] == 1, what="the update handler")
    await operator.delete("once")
    await async_wait_for(lambda: operator.get("once") is None, what="the finalizer to go")
    assert operator.seen == [("create", "first"), ("update", "second"), ("delete", "once")]
    # Let kopf settle on any stray event; still once per change.
    await operator.create("after", "x")
    await async_wait_for(lambda: _ready(operator, "after"), what="a later create")
    assert operator.calls == {"create": 2, "update": 1, "delete": 1}


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
