"""Behaviours of kube-apiserver that are easy to get wrong: concurrency, pagination order,
bookmarks, protected namespaces, unconditional updates, CRD removal."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from koos_sandbox.app import Sandbox
from koos_sandbox.testing import async_wait_for
from koos_sandbox.writes import AdmissionRequest

from .conftest import Ground

CRD = Path(__file__).resolve().parents[2] / "examples" / "sandbox" / "crd.yaml"
MERGE = {"Content-Type": "application/merge-patch+json"}
SLOW = "holds a write in the sandbox's admission stage to interleave another"


@pytest.fixture
def sandbox(ground: Ground) -> Sandbox:
    assert ground.sandbox is not None
    return ground.sandbox


class SlowAdmission:
    """Holds the first UPDATE in admission until released, letting others overtake it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.held = asyncio.Event()

    async def mutate(self, request: AdmissionRequest) -> dict | None:
        if request.operation == "UPDATE" and not self.held.is_set():
            self.held.set()
            await self.release.wait()
        return request.obj

    async def validate(self, request: AdmissionRequest) -> None:
        return None


@pytest.mark.sandbox_only(reason=SLOW)
async def test_concurrent_patches_both_land(
    ground: Ground, sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    CM = ground.ns_path("configmaps")
    async with http.post(CM, json={"metadata": {"name": "race"}}) as r:
        assert r.status == 201
    slow = SlowAdmission()
    sandbox.state.writes.admission = slow
    first = asyncio.create_task(
        http.patch(f"{CM}/race", data='{"data":{"slow":"1"}}', headers=MERGE)
    )
    await asyncio.wait_for(slow.held.wait(), 5)
    async with http.patch(f"{CM}/race", data='{"data":{"fast":"1"}}', headers=MERGE) as r:
        assert r.status == 200
    slow.release.set()
    response = await first
    assert response.status == 200
    response.release()
    async with http.get(f"{CM}/race") as r:
        assert (await r.json())["data"] == {"fast": "1", "slow": "1"}


@pytest.mark.sandbox_only(reason=SLOW)
async def test_a_patch_never_brings_back_a_deleted_object(
    ground: Ground, sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    CM = ground.ns_path("configmaps")
    async with http.post(CM, json={"metadata": {"name": "gone"}}) as r:
        assert r.status == 201
    slow = SlowAdmission()
    sandbox.state.writes.admission = slow
    pending = asyncio.create_task(
        http.patch(f"{CM}/gone", data='{"data":{"a":"1"}}', headers=MERGE)
    )
    await asyncio.wait_for(slow.held.wait(), 5)
    async with http.delete(f"{CM}/gone") as r:
        assert r.status == 200
    slow.release.set()
    response = await pending
    assert response.status == 404
    response.release()
    async with http.get(f"{CM}/gone") as r:
        assert r.status == 404


async def test_cluster_wide_pages_follow_etcd_key_order(
    ground: Ground, http: aiohttp.ClientSession
) -> None:
    a, ab = f"{ground.namespace}-a", f"{ground.namespace}-a-b"
    for ns in (a, ab):
        async with http.post("/api/v1/namespaces", json={"metadata": {"name": ns}}) as r:
            assert r.status == 201
    mine = {"name": "", "labels": {"test": ground.namespace}}
    for ns, name in ((a, "z"), (ab, "x")):
        async with http.post(
            f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {**mine, "name": name}}
        ) as r:
            assert r.status == 201
    seen, token = [], ""
    while True:
        params = {
            "limit": "1",
            "labelSelector": f"test={ground.namespace}",
            **({"continue": token} if token else {}),
        }
        async with http.get("/api/v1/configmaps", params=params) as r:
            page = await r.json()
        seen += [f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in page["items"]]
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert seen == [f"{ab}/x", f"{a}/z"]


@pytest.mark.sandbox_only(reason="sets the sandbox's bookmark interval (kube-apiserver's is 1 min)")
async def test_a_quiet_watch_gets_bookmarks_while_others_write(
    ground: Ground, sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    CM = ground.ns_path("configmaps")
    sandbox.state.bookmark_interval = 0.2
    params = {
        "watch": "true",
        "allowWatchBookmarks": "true",
        "resourceVersion": str(sandbox.store.rv),
    }
    async with http.get(ground.ns_path("secrets"), params=params) as watch:

        async def write_configmaps() -> None:
            for i in range(30):
                async with http.post(CM, json={"metadata": {"name": f"noise-{i}"}}) as r:
                    assert r.status == 201
                await asyncio.sleep(0.05)  # a steady stream of other writes, not a wait

        writer = asyncio.create_task(write_configmaps())
        line = await asyncio.wait_for(watch.content.readline(), 5)
        event = json.loads(line)
        assert event["type"] == "BOOKMARK"
        assert event["object"]["kind"] == "Secret"
        writer.cancel()


async def test_protected_namespaces_cannot_be_deleted(http: aiohttp.ClientSession) -> None:
    async with http.delete("/api/v1/namespaces/default") as r:
        assert r.status == 403
        assert (await r.json())["message"] == (
            'namespaces "default" is forbidden: this namespace may not be deleted'
        )


async def test_custom_objects_need_a_resource_version_to_be_replaced(
    ground: Ground, http: aiohttp.ClientSession
) -> None:
    ground.greetings_crd()
    path = ground.ns_path("greetings", "demo.koos.io/v1")
    body = {
        "apiVersion": "demo.koos.io/v1",
        "kind": "Greeting",
        "metadata": {"name": "g"},
        "spec": {"message": "hi"},
    }
    async with http.post(path, json=body) as r:
        assert r.status == 201
    async with http.put(f"{path}/g", json=body) as r:
        assert r.status == 422
        # The sandbox words the value as 1.32 did; later releases print plain numbers.
        value = "0x0" if ground.sandbox is not None else "0"
        assert (
            f"metadata.resourceVersion: Invalid value: {value}: must be specified for an update"
            in (await r.json())["message"]
        )


async def test_a_custom_object_names_its_kind_and_api_version(
    ground: Ground, http: aiohttp.ClientSession
) -> None:
    """Built-in objects may leave kind and apiVersion to the URL; custom ones may not."""
    ground.greetings_crd()
    path = ground.ns_path("greetings", "demo.koos.io/v1")
    text = '{"metadata": {"name": "g"}, "spec": {"message": "hi"}}'
    async with http.post(path, data=text, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
        status = await r.json()
    assert status["reason"] == "BadRequest"
    assert status["message"] == (
        "the object provided is unrecognized (must be of type Greeting): Object 'Kind' is "
        f"missing in '{text}' ({text[:30]} ...)"
    )
    for api_version, shown in (({}, ""), ({"apiVersion": "demo.koos.io/v2"}, "demo.koos.io/v2")):
        body = {**api_version, "kind": "Greeting", "metadata": {"name": "g"}, "spec": {}}
        async with http.post(path, json=body) as r:
            assert r.status == 400
            assert (await r.json())["message"] == (
                f"the API version in the data ({shown}) does not match the expected API "
                "version (demo.koos.io/v1)"
            )
    async with http.post(ground.ns_path("configmaps"), json={"metadata": {"name": "c"}}) as r:
        assert r.status == 201


async def test_a_crd_deleted_in_the_foreground_takes_its_kind_along(
    ground: Ground, http: aiohttp.ClientSession
) -> None:
    ground.greetings_crd()
    path = ground.ns_path("greetings", "demo.koos.io/v1")
    body = {"apiVersion": "demo.koos.io/v1", "kind": "Greeting", "metadata": {"name": "g"}}
    async with http.post(path, json={**body, "spec": {"message": "hi"}}) as r:
        assert r.status == 201
    crd = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/greetings.demo.koos.io"
    async with http.delete(crd, params={"propagationPolicy": "Foreground"}) as r:
        assert r.status == 200

    async def forgotten() -> bool:
        async with http.get("/apis/demo.koos.io/v1") as r:
            return r.status == 404

    await async_wait_for(forgotten, timeout=60, what="the CRD's kind to leave discovery")
    async with http.get(crd) as r:
        assert r.status == 404


async def test_the_all_namespaces_path_only_lists_and_watches(
    http: aiohttp.ClientSession,
) -> None:
    async with http.post("/api/v1/configmaps", json={"metadata": {"name": "x"}}) as r:
        assert r.status == 405
        assert (await r.json())["reason"] == "MethodNotAllowed"
    async with http.get("/api/v1/configmaps") as r:
        assert r.status == 200


async def test_deleting_a_namespace_is_one_write(
    ground: Ground, http: aiohttp.ClientSession
) -> None:
    name = f"{ground.namespace}-gone-soon"
    async with http.post("/api/v1/namespaces", json={"metadata": {"name": name}}) as r:
        assert r.status == 201
        version = (await r.json())["metadata"]["resourceVersion"]
    params = {
        "watch": "true",
        "resourceVersion": version,
        "fieldSelector": f"metadata.name={name}",
    }
    async with http.get("/api/v1/namespaces", params=params) as watch:
        async with http.delete(f"/api/v1/namespaces/{name}") as r:
            assert r.status == 200
        first = json.loads(await asyncio.wait_for(watch.content.readline(), 10))
    assert first["type"] == "MODIFIED"
    assert first["object"]["status"]["phase"] == "Terminating"
    assert "deletionTimestamp" in first["object"]["metadata"]
