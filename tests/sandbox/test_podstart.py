"""The kubelet stand-in before it starts a container: an image reference that does not parse
(InvalidImageName), a secret/configMap volume whose source is missing (ContainerCreating until
it exists), as a real kubelet reports them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from koos_sandbox.app import Sandbox
from koos_sandbox.podstart import image_problem
from koos_sandbox.testing import async_wait_for
from koos_sandbox.writes import WriteOptions

pytestmark = pytest.mark.sandbox_only(reason="the sandbox's kubelet stand-in with scripted Jobs")

NS = "default"


@pytest.fixture
async def scripted() -> AsyncIterator[Sandbox]:
    sb = Sandbox(jobs_mode="scripted")
    await sb.start()
    try:
        yield sb
    finally:
        await sb.stop()


async def create(sb: Sandbox, body: dict[str, Any], plural: str) -> dict[str, Any]:
    rt = sb.state.registry.find("batch" if plural == "jobs" else "", "v1", plural)
    admin = sb.state.authn.authenticate(f"Bearer {sb.admin_token}", None, [])
    return await sb.state.writes.create(admin, rt, NS, body, WriteOptions())


def job(name: str, **pod: Any) -> dict[str, Any]:
    main = {"name": "main", "image": pod.pop("image", "busybox:1.36"), "command": ["true"]}
    spec = {"restartPolicy": "Never", "containers": [main], **pod}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }


def state_of(sb: Sandbox, name: str) -> dict[str, Any]:
    for pod in sb.store.items(("", "pods"), NS):
        if pod["metadata"].get("labels", {}).get("batch.kubernetes.io/job-name") == name:
            statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
            return dict(statuses[0].get("state") or {})
    return {}


@pytest.mark.parametrize(
    ("image", "valid"),
    [
        ("busybox", True),
        ("busybox:1.36", True),
        ("registry.k8s.io/pause:3.9", True),
        ("localhost:5000/team/tool@sha256:" + "0" * 64, True),
        ("Busybox", False),
        ("ghcr.io/Org/tool", False),
        ("bad image", False),
        ("a:b:c", False),
    ],
)
def test_image_references(image: str, valid: bool) -> None:
    assert (image_problem(image) is None) is valid


async def test_an_image_name_that_does_not_parse_waits_in_invalid_image_name(
    scripted: Sandbox,
) -> None:
    await create(scripted, job("badname", image="Busybox:1.36"), "jobs")
    waiting = await async_wait_for(
        lambda: (
            state_of(scripted, "badname").get("waiting", {}).get("reason") == "InvalidImageName"
            and state_of(scripted, "badname")["waiting"]
        ),
        what="InvalidImageName",
    )
    assert waiting["message"] == (
        'Failed to apply default image tag "Busybox:1.36": couldn\'t parse image name '
        '"Busybox:1.36": invalid reference format'
    )


async def test_a_missing_secret_volume_keeps_the_pod_creating_until_it_exists(
    scripted: Sandbox,
) -> None:
    volume = {"name": "tls", "secret": {"secretName": "tls"}}
    await create(scripted, job("mounts", volumes=[volume]), "jobs")
    await async_wait_for(
        lambda: (
            state_of(scripted, "mounts").get("waiting", {}).get("reason") == "ContainerCreating"
        ),
        what="ContainerCreating",
    )
    await create(scripted, {"metadata": {"name": "tls"}, "data": {"k": "dg=="}}, "secrets")
    await async_wait_for(
        lambda: "terminated" in state_of(scripted, "mounts"), what="the container to run"
    )


async def test_an_optional_missing_volume_does_not_block(scripted: Sandbox) -> None:
    volume = {"name": "cfg", "configMap": {"name": "cfg", "optional": True}}
    await create(scripted, job("optional", volumes=[volume]), "jobs")
    await async_wait_for(
        lambda: "terminated" in state_of(scripted, "optional"), what="the container to run"
    )
