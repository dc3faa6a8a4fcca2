"""Fault injection and the request log, as tests of later issues will use them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from koos_sandbox.app import Sandbox

pytestmark = pytest.mark.sandbox_only(
    reason="fault injection and the request log are sandbox controls"
)

CM = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
async def http(asandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=asandbox.certificates.client_context())
    headers = {"Authorization": f"Bearer {asandbox.admin_token}"}
    async with aiohttp.ClientSession(asandbox.url, headers=headers, connector=connector) as s:
        yield s


async def _codes(http: aiohttp.ClientSession, n: int) -> list[int]:
    codes = []
    for _ in range(n):
        async with http.get(CM) as response:
            codes.append(response.status)
    return codes


async def test_error_rates_are_seeded_and_replay(asandbox: Sandbox, http: aiohttp.ClientSession):
    asandbox.faults.reseed(7)
    asandbox.faults.fail("list", "configmaps", code=503, rate=0.5)
    first = await _codes(http, 40)
    asandbox.faults.reseed(7)
    again = await _codes(http, 40)
    assert first == again
    assert set(first) == {200, 503}
    asandbox.faults.clear()
    assert set(await _codes(http, 5)) == {200}


async def test_a_429_carries_retry_after_and_a_status_body(
    asandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    asandbox.faults.fail("create", "configmaps", code=429, retry_after=3, times=1)
    body = {"metadata": {"name": "throttled"}}
    async with http.post(CM, json=body) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "3"
        status = await response.json()
        assert (status["kind"], status["reason"], status["code"]) == (
            "Status",
            "TooManyRequests",
            429,
        )
    async with http.post(CM, json=body) as response:
        assert response.status == 201  # the rule fired its one time


async def test_a_conflict_can_be_injected_on_patches_only(
    asandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    async with http.post(CM, json={"metadata": {"name": "c"}}) as response:
        assert response.status == 201
    asandbox.faults.fail("patch", "configmaps", code=409, times=1)
    patch = {"Content-Type": "application/merge-patch+json"}
    async with http.patch(f"{CM}/c", data='{"data":{"a":"1"}}', headers=patch) as response:
        assert response.status == 409
    async with http.get(f"{CM}/c") as response:
        assert response.status == 200
    async with http.patch(f"{CM}/c", data='{"data":{"a":"1"}}', headers=patch) as response:
        assert response.status == 200


async def test_added_latency_applies_to_matching_requests(asandbox: Sandbox) -> None:
    asandbox.faults.delay(0.25, verb="get", resource="configmaps")
    assert asandbox.faults.latency_for("get", "configmaps") == 0.25
    assert asandbox.faults.latency_for("list", "configmaps") == 0


async def test_dropped_watches_end_cleanly(asandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    async with http.get(
        CM, params={"watch": "true", "resourceVersion": str(asandbox.store.rv)}
    ) as r:
        assert r.status == 200
        asandbox.drop_watches()
        rest = await asyncio.wait_for(r.content.read(), 5)
    assert rest == b""  # closed without an ERROR event


async def test_a_forced_410_is_an_error_event(asandbox: Sandbox, http: aiohttp.ClientSession):
    asandbox.expire_watches(("", "configmaps"))
    params = {"watch": "true", "resourceVersion": str(asandbox.store.rv)}
    async with http.get(CM, params=params) as r:
        lines = (await asyncio.wait_for(r.content.read(), 5)).splitlines()
    event = json.loads(lines[0])
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired"
    async with http.get(CM, params={**params, "timeoutSeconds": "1"}) as r:
        assert await asyncio.wait_for(r.content.read(), 5) == b""  # the next one works


async def test_a_drop_in_expire_mode_answers_the_resumed_watch_with_410(
    asandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    asandbox.faults.expire_on_drop = True
    async with http.post(CM, json={"metadata": {"name": "seen"}}) as response:
        assert response.status == 201
    async with http.get(CM) as response:
        seen_rv = (await response.json())["metadata"]["resourceVersion"]
    params = {"watch": "true", "resourceVersion": seen_rv}
    async with http.get(CM, params=params) as r:
        asandbox.drop_watches()
        assert await asyncio.wait_for(r.content.read(), 5) == b""  # the drop itself: no event
    async with http.get(CM, params=params) as r:  # resumed from the old version
        assert r.status == 200
        event = json.loads((await asyncio.wait_for(r.content.read(), 5)).splitlines()[0])
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    assert event["object"]["message"].startswith("too old resource version: ")
    async with http.get(CM) as response:  # the relist
        fresh_rv = (await response.json())["metadata"]["resourceVersion"]
    async with http.post(CM, json={"metadata": {"name": "after"}}) as response:
        assert response.status == 201
    params = {"watch": "true", "resourceVersion": fresh_rv, "timeoutSeconds": "1"}
    async with http.get(CM, params=params) as r:
        lines = (await asyncio.wait_for(r.content.read(), 5)).splitlines()
    assert [json.loads(line)["object"]["metadata"]["name"] for line in lines] == ["after"]


async def test_a_watch_from_a_compacted_version_gets_410(
    asandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    old = asandbox.store.rv
    async with http.post(CM, json={"metadata": {"name": "after"}}) as response:
        assert response.status == 201
    asandbox.store.compact()
    async with http.get(CM, params={"watch": "true", "resourceVersion": str(old)}) as r:
        event = json.loads((await asyncio.wait_for(r.content.read(), 5)).splitlines()[0])
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410


async def test_every_request_is_recorded(asandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    mark = asandbox.requests.mark()
    async with http.post(CM, json={"metadata": {"name": "logged"}}) as response:
        assert response.status == 201
    async with http.patch(
        f"{CM}/logged",
        data='{"data":{"a":"1"}}',
        headers={"Content-Type": "application/merge-patch+json"},
    ) as response:
        assert response.status == 200
    async with http.get(f"{CM}/missing") as response:
        assert response.status == 404
    records = asandbox.requests.since(mark)
    assert [(r.verb, r.resource, r.name, r.code) for r in records] == [
        ("create", "configmaps", "", 201),
        ("patch", "configmaps", "logged", 200),
        ("get", "configmaps", "missing", 404),
    ]
    assert {r.user for r in records} == {"admin"}
    assert records[1].content_type == "application/merge-patch+json"
    assert records[0].namespace == "default"
    assert [r.is_write for r in records] == [True, True, False]
