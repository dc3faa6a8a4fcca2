"""What a probe reads from a Pod about its start (`koos.k8s.pods.start_of`)."""

from __future__ import annotations

from typing import Any

import pytest

from koos.k8s.pods import start_of


def pod(phase: str = "Pending", state: dict[str, Any] | None = None, **status: Any) -> Any:
    statuses = [{"name": "step", "state": state}] if state is not None else []
    return {"status": {"phase": phase, "containerStatuses": statuses, **status}}


NO_NODE = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (pod("Running", {"running": {}}), {"pod_started": True}),
        (pod("Failed", {"terminated": {"exitCode": 1}}), {"pod_started": True}),
        (
            pod(state={"waiting": {"reason": "CreateContainerConfigError", "message": "m"}}),
            {"waiting_reason": "CreateContainerConfigError", "waiting_message": "m"},
        ),
        (
            pod(state={"waiting": {"reason": "ContainerCreating"}}),
            {"waiting_reason": "ContainerCreating", "waiting_message": ""},
        ),
        (
            pod(conditions=[NO_NODE]),
            {"waiting_reason": "Unschedulable", "waiting_message": "0/3"},
        ),
        (pod(), {}),
        ({"status": {"phase": "Running"}}, {"pod_started": True}),
    ],
)
def test_start_of(body: Any, expected: dict[str, Any]) -> None:
    assert start_of(body) == expected


def test_only_the_step_container_counts() -> None:
    sidecar = {"name": "istio-proxy", "state": {"running": {}}}
    step = {"name": "step", "state": {"waiting": {"reason": "ErrImagePull", "message": "x"}}}
    body = {"status": {"phase": "Pending", "containerStatuses": [sidecar, step]}}
    assert start_of(body)["waiting_reason"] == "ErrImagePull"
