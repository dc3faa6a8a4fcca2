"""Approval notifications that cannot be delivered are retried, then shown as an Event;
they never raise into the caller."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from koos.api.approval import ApprovalStatus
from koos.handlers.notify import Notifier
from koos.k8s.client import Kube
from koos_sandbox.app import Sandbox
from koos_sandbox.testing import async_wait_for

pytestmark = pytest.mark.sandbox_only(
    "reads the notifier's Events from the sandbox's store, with no operator"
)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_failed_delivery_is_retried_then_recorded_as_an_event(
    asandbox: Sandbox, tmp_path: Path
) -> None:
    kube = await Kube.connect(str(asandbox.write_kubeconfig(tmp_path / "kubeconfig")))
    try:
        notifier = Notifier(kube, backoffs=(0.01, 0.01))
        url = f"http://127.0.0.1:{_closed_port()}/hook"
        body = {
            "metadata": {"name": "gate-1-approve", "namespace": "default"},
            "spec": {"executionRef": {"name": "gate-1"}, "notify": {"webhook": {"url": url}}},
        }
        notifier.announce("default", "gate-1-approve", body, ApprovalStatus(phase="Pending"))

        def failure_event() -> dict[str, object] | None:
            for event in asandbox.store.items(("", "events"), "default"):
                if event.get("reason") == "NotificationFailed":
                    return event
            return None

        event = await async_wait_for(failure_event, what="the NotificationFailed Event")
        assert event["involvedObject"]["kind"] == "Approval"
        assert event["involvedObject"]["name"] == "gate-1-approve"
        assert url in str(event["message"])
        await asyncio.gather(*notifier.tasks)  # finished: no task left retrying
        assert not notifier.tasks
    finally:
        await kube.close()
