"""Admission webhooks in the sandbox: real AdmissionReviews POSTed to a real webhook server.

Every test runs a sandbox in-process and an aiohttp webhook server on 127.0.0.1 that records
the reviews it gets and answers as the test tells it; clients talk HTTP with bearer tokens.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from koos_sandbox.admission import request_warnings, reset_request_warnings
from koos_sandbox.auth import UserInfo
from koos_sandbox.testing import async_wait_for
from koos_sandbox.writes import AdmissionRequest

from .conftest import Ground, hook_certificate, hook_ssl_context

TEST_LABEL = "koos.io/test"  # on the test's namespaces: webhooks select them only
PROBE_LABEL = "koos.io/probe"
MUTATING = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
VALIDATING = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
CM_RULE = {
    "operations": ["CREATE", "UPDATE", "DELETE"],
    "apiGroups": [""],
    "apiVersions": ["v1"],
    "resources": ["configmaps"],
}
MERGE = "application/merge-patch+json"

Answer = Callable[[dict[str, Any]], Any]


# ---- the webhook server ---------------------------------------------------------------------


@dataclass
class Call:
    path: str
    query: dict[str, str]
    review: dict[str, Any]

    @property
    def request(self) -> dict[str, Any]:
        request: dict[str, Any] = self.review["request"]
        return request


def allowed(review: dict[str, Any], **response: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": True, **response},
    }


def refused(status: dict[str, Any] | None) -> Answer:
    def answer(review: dict[str, Any]) -> dict[str, Any]:
        body = allowed(review, allowed=False)
        if status is not None:
            body["response"]["status"] = status
        return body

    return answer


def patching(operations: list[dict[str, Any]]) -> Answer:
    encoded = base64.b64encode(json.dumps(operations).encode()).decode()
    return lambda review: allowed(review, patchType="JSONPatch", patch=encoded)


@dataclass
class HookServer:
    """Records every review by path; answers with `answers[path]`, else allows."""

    url: str = ""
    calls: list[Call] = field(default_factory=list)
    probes: list[Call] = field(default_factory=list)  # the probes of World.configure
    answers: dict[str, Answer] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    ssl_context: ssl.SSLContext | None = None
    _runner: web.AppRunner | None = None

    def at(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        review = await request.json()
        call = Call(request.path, dict(request.query), review)
        if request.path.startswith("/probe/"):
            self.probes.append(call)
            return web.json_response(allowed(review))
        self.calls.append(call)
        answer: Answer = self.answers.get(request.path, allowed)
        result = answer(review)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response(result)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        scheme = "https" if self.ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()


async def hang_until_released(server: HookServer) -> web.Response:
    await server.release.wait()
    return web.json_response({})


# ---- the API client -------------------------------------------------------------------------


@dataclass
class Api:
    session: aiohttp.ClientSession
    base: str
    token: str
    configmaps: str  # the collection path in the test's namespace

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": content_type}
        data = None if body is None else json.dumps(body)
        async with self.session.request(
            method, self.base + path, data=data, headers=headers, params=params
        ) as response:
            return response.status, await response.json(content_type=None)

    async def create_cm(
        self, name: str, labels: dict[str, str] | None = None, **params: str
    ) -> tuple[int, Any]:
        meta: dict[str, Any] = {"name": name}
        if labels:
            meta["labels"] = labels
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}
        return await self.call("POST", self.configmaps, body, params=params or None)


@dataclass
class World:
    """A ground, a webhook server over HTTPS and the API as the admin and as alice.

    Webhooks select the test's namespaces only (`TEST_LABEL`), unless a test gives a
    namespaceSelector of its own: a shared real ground has other namespaces and controllers.
    kube-apiserver loads configurations a moment after they are written, so `configure`
    returns once a probe webhook it adds to the configuration has been called, and
    `unconfigure` once that probe is no longer called."""

    ground: Ground
    hooks: HookServer
    admin: Api
    alice: Api
    ca_bundle: str
    probe_ns: str

    @property
    def ns(self) -> str:
        return self.ground.namespace

    @property
    def configmaps(self) -> str:
        return self.admin.configmaps

    def webhook(self, name: str, path: str, **fields: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": name,
            "clientConfig": {"url": self.hooks.url + path, "caBundle": self.ca_bundle},
            "rules": [CM_RULE],
            "namespaceSelector": {"matchLabels": {TEST_LABEL: self.ns}},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }
        spec.update(fields)
        return spec

    def down(self, port: int, path: str = "/x") -> dict[str, Any]:
        """A clientConfig naming a port nobody listens on."""
        return {"url": f"https://127.0.0.1:{port}{path}", "caBundle": self.ca_bundle}

    async def _probe(self, config: str) -> bool:
        """Whether a dry-run create in the probe namespace reaches `config`'s probe."""
        before = len([c for c in self.hooks.probes if c.path == f"/probe/{config}"])
        path = self.ground.ns_path("configmaps", namespace=self.probe_ns)
        body = {"metadata": {"generateName": "probe-"}}
        status, answer = await self.admin.call("POST", path, body, params={"dryRun": "All"})
        assert status == 201, answer
        return len([c for c in self.hooks.probes if c.path == f"/probe/{config}"]) > before

    async def post(self, kind: str, name: str, *webhooks: dict[str, Any]) -> tuple[int, Any]:
        """Store a configuration of these webhooks as the admin, as they are."""
        body = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": f"{kind}WebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": list(webhooks),
        }
        return await self.admin.call("POST", MUTATING if kind == "Mutating" else VALIDATING, body)

    async def configure(self, kind: str, name: str, *webhooks: dict[str, Any]) -> None:
        probe = {
            "name": "probe.koos.test",
            "clientConfig": {"url": f"{self.hooks.url}/probe/{name}", "caBundle": self.ca_bundle},
            "rules": [{**CM_RULE, "operations": ["CREATE"]}],
            "namespaceSelector": {"matchLabels": {PROBE_LABEL: self.ns}},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }
        status, answer = await self.post(kind, name, *webhooks, probe)
        assert status == 201, answer
        await async_wait_for(lambda: self._probe(name), timeout=30, what=f"{name} in force")

    async def unconfigure(self, kind: str, name: str) -> None:
        plural = MUTATING if kind == "Mutating" else VALIDATING
        status, answer = await self.admin.call("DELETE", f"{plural}/{name}")
        assert status == 200, answer

        async def gone() -> bool:
            return not await self._probe(name)

        await async_wait_for(gone, timeout=30, what=f"{name} out of force")


@pytest.fixture
async def world(ground: Ground, tmp_path: Path) -> AsyncIterator[World]:
    ca = hook_certificate()[0]
    context = hook_ssl_context(tmp_path)
    # alice may do anything in the test's namespace (the sandbox lets her anyway).
    ground.grant("alice", "cluster-admin")
    labels = {"metadata": {"labels": {TEST_LABEL: ground.namespace}}}
    status, answer = ground.request(
        "PATCH", f"/api/v1/namespaces/{ground.namespace}", labels,
        content_type="application/merge-patch+json",
    )  # fmt: skip
    assert status == 200, answer
    probe_ns = f"{ground.namespace}-probe"
    namespace = {"metadata": {"name": probe_ns, "labels": {PROBE_LABEL: ground.namespace}}}
    status, answer = ground.request("POST", "/api/v1/namespaces", namespace)
    assert status == 201, answer
    hooks = HookServer(ssl_context=context)
    await hooks.start()
    try:
        connector = aiohttp.TCPConnector(ssl=ground.ssl_context())
        async with aiohttp.ClientSession(connector=connector) as session:
            configmaps = ground.ns_path("configmaps")
            yield World(
                ground,
                hooks,
                Api(session, ground.url, ground.admin_token, configmaps),
                Api(session, ground.url, ground.user_tokens["alice"], configmaps),
                base64.b64encode(ca).decode(),
                probe_ns,
            )
    finally:
        await hooks.stop()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- the review -----------------------------------------------------------------------------


async def test_review_carries_the_caller_and_the_request(world: World) -> None:
    await world.configure("Validating", "check", world.webhook("check.koos.test", "/validate"))

    status, created = await world.alice.create_cm("one")
    assert status == 201, created

    [call] = world.hooks.at("/validate")
    assert call.query == {"timeout": "10s"}
    assert call.review["apiVersion"] == "admission.k8s.io/v1"
    assert call.review["kind"] == "AdmissionReview"
    request = call.request
    assert str(uuid.UUID(request["uid"])) == request["uid"]
    assert request["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert request["requestKind"] == request["kind"]
    assert request["requestResource"] == request["resource"]
    assert "subResource" not in request
    assert (request["name"], request["namespace"]) == ("one", world.ns)
    assert request["operation"] == "CREATE"
    assert request["userInfo"]["username"] == "alice"
    assert {"sre", "system:authenticated"} <= set(request["userInfo"]["groups"])
    obj = request["object"]
    assert (obj["apiVersion"], obj["kind"]) == ("v1", "ConfigMap")
    assert obj["metadata"]["name"] == "one"
    assert obj["metadata"]["namespace"] == world.ns
    assert obj["data"] == {"k": "v"}
    assert request["oldObject"] is None
    assert request["dryRun"] is False
    assert request["options"] == {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}

    status, _ = await world.admin.call(
        "PATCH", f"{world.configmaps}/one", {"data": {"k": "w"}}, content_type=MERGE
    )
    assert status == 200
    update = world.hooks.at("/validate")[1].request
    assert update["operation"] == "UPDATE"
    assert update["uid"] != request["uid"]
    assert update["userInfo"]["username"] == "admin"
    assert "system:masters" in update["userInfo"]["groups"]
    assert update["oldObject"]["data"] == {"k": "v"}
    assert update["object"]["data"] == {"k": "w"}
    assert update["options"] == {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}


# ---- mutation -------------------------------------------------------------------------------


async def test_json_patches_apply_in_configuration_order_before_validation(world: World) -> None:
    hooks = world.hooks
    hooks.answers["/second"] = patching(
        [{"op": "add", "path": "/metadata/annotations", "value": {"second": "saw-first"}}]
    )
    hooks.answers["/first"] = patching(
        [{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]
    )
    # Created in the opposite order: the apiserver sorts configurations by name.
    await world.configure("Mutating", "z-second", world.webhook("second.koos.test", "/second"))
    await world.configure("Mutating", "a-first", world.webhook("first.koos.test", "/first"))
    await world.configure("Validating", "check", world.webhook("check.koos.test", "/validate"))

    status, created = await world.alice.create_cm("one")
    assert status == 201, created

    assert [c.path for c in hooks.calls] == ["/first", "/second", "/validate"]
    assert hooks.at("/second")[0].request["object"]["metadata"]["labels"] == {"mutated": "yes"}
    validated = hooks.at("/validate")[0].request["object"]["metadata"]
    assert validated["labels"] == {"mutated": "yes"}
    assert validated["annotations"] == {"second": "saw-first"}
    assert created["metadata"]["labels"] == {"mutated": "yes"}
    status, stored = await world.admin.call("GET", f"{world.configmaps}/one")
    assert stored["metadata"]["labels"] == {"mutated": "yes"}
    assert stored["metadata"]["annotations"] == {"second": "saw-first"}


async def test_a_patch_that_does_not_apply_is_an_internal_error(world: World) -> None:
    world.hooks.answers["/mutate"] = patching(
        [{"op": "replace", "path": "/metadata/labels/absent", "value": "x"}]
    )
    await world.configure("Mutating", "m", world.webhook("m.koos.test", "/mutate"))

    status, answer = await world.alice.create_cm("one")

    assert status == 500
    assert answer["reason"] == "InternalError"
    assert answer["message"] == (
        "Internal error occurred: replace operation does not apply: doc is missing path: "
        "/metadata/labels/absent: missing value"
    )
    assert (await world.admin.call("GET", f"{world.configmaps}/one"))[0] == 404


async def test_an_undecodable_patch_follows_the_failure_policy(world: World) -> None:
    bad = base64.b64encode(b'{"op": "add"}').decode()
    world.hooks.answers["/mutate"] = lambda r: allowed(r, patchType="JSONPatch", patch=bad)
    await world.configure(
        "Mutating", "m", world.webhook("m.koos.test", "/mutate", failurePolicy="Ignore")
    )
    status, created = await world.alice.create_cm("ignored")
    assert status == 201, created
    assert "labels" not in created["metadata"]


# ---- refusals -------------------------------------------------------------------------------

DENIED = 'admission webhook "deny.koos.test" denied the request'


@pytest.mark.parametrize(
    ("status", "code", "reason", "message"),
    [
        ({"message": "nope"}, 400, None, f"{DENIED}: nope"),
        (
            {"code": 403, "reason": "Forbidden", "message": "not on Fridays"},
            403,
            "Forbidden",
            f"{DENIED}: not on Fridays",
        ),
        ({"code": 422, "reason": "Invalid"}, 422, "Invalid", f"{DENIED}: Invalid"),
        ({"code": 200, "message": "odd"}, 400, None, f"{DENIED}: odd"),
        (None, 400, None, f"{DENIED} without explanation"),
    ],
)
async def test_a_denial_answers_the_webhook_status(
    world: World, status: dict[str, Any] | None, code: int, reason: str | None, message: str
) -> None:
    world.hooks.answers["/deny"] = refused(status)
    await world.configure("Validating", "deny", world.webhook("deny.koos.test", "/deny"))

    got, answer = await world.alice.create_cm("one")

    assert got == code
    assert answer["kind"] == "Status"
    assert answer["status"] == "Failure"
    assert answer["code"] == code
    assert answer["message"] == message
    assert answer.get("reason") == reason
    assert (await world.admin.call("GET", f"{world.configmaps}/one"))[0] == 404


async def test_a_mutating_webhook_can_deny_too(world: World) -> None:
    world.hooks.answers["/deny"] = refused({"message": "mutating says no", "code": 403})
    await world.configure("Mutating", "deny", world.webhook("deny.koos.test", "/deny"))
    await world.configure("Validating", "check", world.webhook("check.koos.test", "/check"))

    got, answer = await world.alice.create_cm("one")

    assert (got, answer["message"]) == (403, f"{DENIED}: mutating says no")
    assert world.hooks.at("/check") == []


# ---- selectors ------------------------------------------------------------------------------


async def test_object_selector_matches_the_new_or_the_old_object(world: World) -> None:
    selector = {"matchLabels": {"watched": "yes"}}
    await world.configure(
        "Validating", "sel", world.webhook("sel.koos.test", "/sel", objectSelector=selector)
    )
    alice, calls = world.alice, world.hooks.calls

    assert (await alice.create_cm("plain"))[0] == 201
    assert calls == []
    assert (await alice.create_cm("watched", {"watched": "yes"}))[0] == 201
    assert [c.request["name"] for c in calls] == ["watched"]

    # UPDATE: the old object still matches although the new one does not.
    unlabel = {"metadata": {"labels": {"watched": None}}}
    status, _ = await alice.call(
        "PATCH", f"{world.configmaps}/watched", unlabel, content_type=MERGE
    )
    assert status == 200
    assert calls[-1].request["operation"] == "UPDATE"
    assert not calls[-1].request["object"]["metadata"].get("labels")
    # Neither matches now.
    touch = {"data": {"k": "x"}}
    status, _ = await alice.call("PATCH", f"{world.configmaps}/watched", touch, content_type=MERGE)
    assert status == 200
    assert len(calls) == 2


async def test_namespace_selector_matches_the_namespace_labels(world: World) -> None:
    admin = world.admin
    team_a, team_c, team_d = (f"{world.ns}-team-{x}" for x in "acd")
    namespace = {"metadata": {"name": team_a, "labels": {"team": "a"}}}
    assert (await admin.call("POST", "/api/v1/namespaces", namespace))[0] == 201
    ns_rule = {
        "operations": ["CREATE"],
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["namespaces"],
    }
    await world.configure(
        "Validating",
        "ns",
        world.webhook(
            "ns.koos.test",
            "/ns",
            namespaceSelector={"matchLabels": {"team": "a"}},
            rules=[CM_RULE, ns_rule],
        ),
    )
    body = {"metadata": {"name": "x"}, "data": {}}

    assert (await world.admin.call("POST", world.configmaps, body))[0] == 201
    assert world.hooks.calls == []
    path = f"/api/v1/namespaces/{team_a}/configmaps"
    assert (await world.admin.call("POST", path, body))[0] == 201
    [call] = world.hooks.calls
    assert call.request["namespace"] == team_a

    # A Namespace is matched by its own labels, and is its own namespace in the review.
    plain = {"metadata": {"name": team_d}}
    assert (await admin.call("POST", "/api/v1/namespaces", plain))[0] == 201
    assert len(world.hooks.calls) == 1
    labelled = {"metadata": {"name": team_c, "labels": {"team": "a"}}}
    assert (await admin.call("POST", "/api/v1/namespaces", labelled))[0] == 201
    last = world.hooks.calls[-1].request
    assert last["kind"]["kind"] == "Namespace"
    assert (last["name"], last["namespace"]) == (team_c, team_c)


# ---- rules ----------------------------------------------------------------------------------


async def test_rules_select_operations(world: World) -> None:
    rule = {**CM_RULE, "operations": ["UPDATE"]}
    await world.configure("Validating", "upd", world.webhook("u.koos.test", "/u", rules=[rule]))

    assert (await world.alice.create_cm("one"))[0] == 201
    assert world.hooks.calls == []
    change = {"data": {"k": "w"}}
    assert (await world.alice.call("PATCH", f"{world.configmaps}/one", change, content_type=MERGE))[
        0
    ] == 200
    [call] = world.hooks.calls
    assert call.request["operation"] == "UPDATE"
    assert call.request["oldObject"]["data"] == {"k": "v"}
    assert (await world.alice.call("DELETE", f"{world.configmaps}/one"))[0] == 200
    assert len(world.hooks.calls) == 1


@pytest.mark.parametrize(
    ("resources", "on_pod", "on_status"),
    [
        (["pods"], True, False),
        (["pods/status"], False, True),
        (["*/status"], False, True),
        (["pods/*"], True, True),
        (["*"], True, False),
        (["*/*"], True, True),
        (["configmaps"], False, False),
    ],
)
async def test_rules_select_resources_and_subresources(
    world: World, resources: list[str], on_pod: bool, on_status: bool
) -> None:
    rule = {
        "operations": ["*"],
        "apiGroups": ["*"],
        "apiVersions": ["*"],
        "resources": resources,
        "scope": "Namespaced",
    }
    await world.configure("Validating", "p", world.webhook("p.koos.test", "/p", rules=[rule]))
    pod = {
        "metadata": {"name": "p1"},
        # Bound to a node the sandbox's kubelet does not run: nobody else touches it.
        "spec": {"nodeName": "elsewhere", "containers": [{"name": "c", "image": "busybox"}]},
    }
    pods = world.ground.ns_path("pods")

    status, created = await world.alice.call("POST", pods, pod)
    assert status == 201, created
    status, patched = await world.alice.call(
        "PATCH", f"{pods}/p1/status", {"status": {"message": "hello"}}, content_type=MERGE
    )
    assert status == 200, patched

    mine = [c.request for c in world.hooks.calls if c.request["userInfo"]["username"] == "alice"]
    assert [r.get("subResource", "") for r in mine] == ([""] * on_pod + ["status"] * on_status)
    for request in mine:
        assert request["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
        assert request.get("requestSubResource") == request.get("subResource")
    if on_status:
        assert mine[-1]["operation"] == "UPDATE"
        assert mine[-1]["object"]["status"]["message"] == "hello"


async def test_rules_select_scope(world: World) -> None:
    cluster = {**CM_RULE, "resources": ["*"], "apiGroups": ["*"], "scope": "Cluster"}
    await world.configure("Validating", "c", world.webhook("c.koos.test", "/c", rules=[cluster]))

    assert (await world.alice.create_cm("one"))[0] == 201
    assert world.hooks.calls == []
    # A Namespace is matched by its own labels.
    namespace = {"metadata": {"name": f"{world.ns}-scoped", "labels": {TEST_LABEL: world.ns}}}
    assert (await world.admin.call("POST", "/api/v1/namespaces", namespace))[0] == 201
    assert [c.request["kind"]["kind"] for c in world.hooks.calls] == ["Namespace"]


# ---- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Mutating", "Validating"])
@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
async def test_failure_policy_when_the_webhook_is_down(
    world: World, kind: str, policy: str
) -> None:
    port = closed_port()
    hook = world.webhook("down.koos.test", "/x", failurePolicy=policy)
    hook["clientConfig"] = world.down(port)
    await world.configure(kind, "down", hook)

    status, answer = await world.alice.create_cm("one")

    if policy == "Ignore":
        assert status == 201, answer
        return
    reason = (
        f'failed calling webhook "down.koos.test": failed to call webhook: Post '
        f'"https://127.0.0.1:{port}/x?timeout=10s": dial tcp 127.0.0.1:{port}: connect: '
        "connection refused"
    )
    assert status == 500
    assert answer["reason"] == "InternalError"
    assert answer["message"] == f"Internal error occurred: {reason}"
    assert answer["details"] == {"causes": [{"message": reason}]}


async def test_failure_policy_defaults_to_fail(world: World) -> None:
    hook = world.webhook("down.koos.test", "/x")
    hook["clientConfig"] = world.down(closed_port())
    await world.configure("Validating", "down", hook)
    assert (await world.alice.create_cm("one"))[0] == 500


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
async def test_timeout_seconds(world: World, policy: str) -> None:
    world.hooks.answers["/slow"] = lambda review: hang_until_released(world.hooks)
    await world.configure(
        "Validating",
        "slow",
        world.webhook("slow.koos.test", "/slow", timeoutSeconds=1, failurePolicy=policy),
    )

    started = time.monotonic()
    status, answer = await world.alice.create_cm("one")
    elapsed = time.monotonic() - started

    assert 0.9 < elapsed < 5
    [call] = world.hooks.calls
    assert call.query == {"timeout": "1s"}
    if policy == "Ignore":
        assert status == 201, answer
        return
    assert status == 500
    assert answer["message"] == (
        'Internal error occurred: failed calling webhook "slow.koos.test": failed to call '
        f'webhook: Post "{world.hooks.url}/slow?timeout=1s": context deadline exceeded'
    )


def _status(code: int, text: str) -> Answer:
    return lambda review: web.Response(status=code, text=text)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            _status(500, "boom"),
            'failed to call webhook: an error on the server ("boom") has prevented the '
            "request from succeeding",
        ),
        (
            _status(404, "nothing"),
            "failed to call webhook: the server could not find the requested resource",
        ),
        (
            lambda r: web.Response(status=200, text="not json"),
            "failed to call webhook: couldn't get version/kind; json parse error: ",
        ),
        (
            lambda r: {**allowed(r), "response": {"uid": "nope", "allowed": True}},
            'received invalid webhook response: expected response.uid="{uid}", got "nope"',
        ),
        (
            lambda r: {"response": allowed(r)["response"]},
            "received invalid webhook response: expected webhook response of "
            "admission.k8s.io/v1, Kind=AdmissionReview, got /, Kind=",
        ),
        (
            lambda r: {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
            "received invalid webhook response: webhook response was absent",
        ),
        (
            patching([{"op": "add", "path": "/data/x", "value": "y"}]),
            "received invalid webhook response: validating webhook may not return response.patch",
        ),
    ],
)
async def test_broken_answers_are_call_failures(world: World, answer: Answer, reason: str) -> None:
    world.hooks.answers["/bad"] = answer
    await world.configure("Validating", "bad", world.webhook("bad.koos.test", "/bad"))

    status, body = await world.alice.create_cm("one")

    uid = world.hooks.calls[0].request["uid"]
    prefix = 'Internal error occurred: failed calling webhook "bad.koos.test": '
    assert status == 500
    assert body["reason"] == "InternalError"
    assert body["message"].startswith(prefix + reason.format(uid=uid))


async def test_a_service_client_config_names_a_service_that_does_not_exist(world: World) -> None:
    hook = world.webhook("svc.koos.test", "/x")
    hook["clientConfig"] = {"service": {"name": "hooks", "namespace": "ops", "path": "/v"}}
    await world.configure("Validating", "svc", hook)

    status, body = await world.alice.create_cm("one")

    assert status == 500
    assert body["message"] == (
        'Internal error occurred: failed calling webhook "svc.koos.test": failed to call '
        'webhook: Post "https://hooks.ops.svc:443/v?timeout=10s": service "hooks" not found'
    )


# ---- dry run --------------------------------------------------------------------------------


@pytest.mark.parametrize("side_effects", ["Some", "Unknown"])
async def test_a_webhook_with_side_effects_is_refused_in_v1(
    world: World, side_effects: str
) -> None:
    """admissionregistration/v1 knows only None and NoneOnDryRun: a webhook that has side
    effects (and so would refuse a dry run) cannot be configured at all."""
    hook = world.webhook("fx.koos.test", "/fx", sideEffects=side_effects)
    status, answer = await world.post("Validating", "fx", hook)

    assert status == 422, answer
    assert answer["message"] == (
        'ValidatingWebhookConfiguration.admissionregistration.k8s.io "fx" is invalid: '
        f'webhooks[0].sideEffects: Unsupported value: "{side_effects}": supported values: '
        '"None", "NoneOnDryRun"'
    )
    assert answer["details"]["causes"] == [
        {
            "reason": "FieldValueNotSupported",
            "message": f'Unsupported value: "{side_effects}": supported values: "None", '
            '"NoneOnDryRun"',
            "field": "webhooks[0].sideEffects",
        }
    ]


@pytest.mark.parametrize(
    ("url", "messages"),
    [
        (
            "http://127.0.0.1:1/x?a=b#f",
            [
                "Invalid value: \"http\": 'https' is the only allowed URL scheme; desired "
                "format: https://host[/path]",
                'Invalid value: "f": fragments are not permitted in the URL',
                'Invalid value: "a=b": query parameters are not permitted in the URL',
            ],
        ),
        (
            "https:///x",
            ['Invalid value: "": host must be specified; desired format: https://host[/path]'],
        ),
        (
            "https://u:p@127.0.0.1/x",
            ['Invalid value: "u:p": user information is not permitted in the URL'],
        ),
    ],
)
async def test_a_webhook_url_must_be_https_to_a_host(
    world: World, url: str, messages: list[str]
) -> None:
    hook = world.webhook("url.koos.test", "/x")
    hook["clientConfig"] = {"url": url}
    status, answer = await world.post("Validating", "url", hook)

    assert status == 422, answer
    causes = answer["details"]["causes"]
    assert [c["message"] for c in causes] == messages
    assert {c["field"] for c in causes} == {"webhooks[0].clientConfig.url"}


async def test_dry_run_reaches_a_webhook_without_side_effects_on_dry_run(world: World) -> None:
    world.hooks.answers["/m"] = patching(
        [{"op": "add", "path": "/metadata/labels", "value": {"seen": "yes"}}]
    )
    await world.configure(
        "Mutating", "m", world.webhook("m.koos.test", "/m", sideEffects="NoneOnDryRun")
    )

    status, body = await world.alice.create_cm("one", dryRun="All")

    assert status == 201, body
    assert body["metadata"]["labels"] == {"seen": "yes"}
    [call] = world.hooks.calls
    assert call.request["dryRun"] is True
    assert call.request["options"]["dryRun"] == ["All"]
    assert (await world.admin.call("GET", f"{world.configmaps}/one"))[0] == 404


# ---- delete ---------------------------------------------------------------------------------


async def test_delete_carries_the_old_object(world: World) -> None:
    assert (await world.alice.create_cm("one"))[0] == 201
    delete_only = {**CM_RULE, "operations": ["DELETE"]}
    world.hooks.answers["/v"] = refused({"message": "keep it", "code": 403})
    await world.configure(
        "Validating", "v", world.webhook("v.koos.test", "/v", rules=[delete_only])
    )
    await world.configure("Mutating", "m", world.webhook("m.koos.test", "/m", rules=[delete_only]))

    status, body = await world.alice.call("DELETE", f"{world.configmaps}/one")

    assert status == 403
    assert body["message"] == 'admission webhook "v.koos.test" denied the request: keep it'
    assert [c.path for c in world.hooks.calls] == ["/m", "/v"]
    for call in world.hooks.calls:
        request = call.request
        assert request["operation"] == "DELETE"
        assert (request["name"], request["namespace"]) == ("one", world.ns)
        assert request["object"] is None
        assert request["oldObject"]["data"] == {"k": "v"}
        assert request["options"]["kind"] == "DeleteOptions"
        assert request["options"]["apiVersion"] == "meta.k8s.io/v1"
    assert (await world.admin.call("GET", f"{world.configmaps}/one"))[0] == 200


async def test_a_mutating_webhook_may_not_patch_a_delete(world: World) -> None:
    assert (await world.alice.create_cm("one"))[0] == 201
    world.hooks.answers["/m"] = patching([{"op": "add", "path": "/data/x", "value": "y"}])
    await world.configure("Mutating", "m", world.webhook("m.koos.test", "/m"))

    status, body = await world.alice.call("DELETE", f"{world.configmaps}/one")

    assert status == 500
    assert body["message"] == (
        'Internal error occurred: admission webhook "m.koos.test" attempted to modify the '
        "object, which is not supported for this operation"
    )


# ---- exemptions, TLS, warnings --------------------------------------------------------------


async def test_webhook_configurations_are_never_sent_to_webhooks(world: World) -> None:
    everything = {
        "operations": ["*"],
        "apiGroups": ["*"],
        "apiVersions": ["*"],
        "resources": ["*/*"],
    }
    hook = world.webhook("all.koos.test", "/x", rules=[everything])
    hook["clientConfig"] = world.down(closed_port())
    await world.configure("Validating", "all", hook)
    assert (await world.alice.create_cm("one"))[0] == 500

    await world.configure("Mutating", "another", world.webhook("m.koos.test", "/m"))
    await world.unconfigure("Validating", "all")
    assert (await world.alice.create_cm("one"))[0] == 201


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not on the PATH")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_trusts_the_ca_bundle_only(
    world: World, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    secure = HookServer(ssl_context=context)
    await secure.start()
    try:
        bundle = base64.b64encode(cert.read_bytes()).decode()
        trusted = world.webhook("tls.koos.test", "/tls")
        trusted["clientConfig"] = {"url": f"{secure.url}/tls", "caBundle": bundle}
        await world.configure("Validating", "tls", trusted)
        assert (await world.alice.create_cm("one"))[0] == 201
        assert [c.path for c in secure.calls] == ["/tls"]

        untrusted = world.webhook("untrusted.koos.test", "/tls")
        untrusted["clientConfig"] = {"url": f"{secure.url}/tls"}
        await world.configure("Validating", "untrusted", untrusted)
        status, body = await world.alice.create_cm("two")
        assert status == 500
        assert body["message"].endswith(
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
        )
    finally:
        await secure.stop()


@pytest.mark.sandbox_only(reason="calls the sandbox's admission chain directly")
async def test_warnings_are_kept_per_request(world: World) -> None:
    async def warn(review: dict[str, Any]) -> dict[str, Any]:
        name = review["request"]["name"]
        return allowed(review, warnings=[f"careful with {name}", f"careful with {name}"])

    world.hooks.answers["/w"] = warn
    await world.configure("Validating", "w", world.webhook("w.koos.test", "/w"))
    await world.configure("Mutating", "w", world.webhook("mw.koos.test", "/w"))
    sandbox = world.ground.sandbox
    assert sandbox is not None
    registry = sandbox.state.registry
    rt = registry.find("", "v1", "configmaps")
    assert rt is not None
    user = UserInfo("alice", "u1", ("sre", "system:authenticated"))
    admission = sandbox.admission

    async def admit(name: str) -> list[str]:
        reset_request_warnings()
        obj = {"metadata": {"name": name}, "data": {}}
        request = AdmissionRequest(
            user, rt, "CREATE", "", world.ns, name, obj, None, False, {"kind": "CreateOptions"}
        )
        mutated = await admission.mutate(request)
        await admission.validate(request)
        assert mutated == obj
        return list(request_warnings())

    async def both() -> tuple[list[str], list[str], bool]:
        first, second = await asyncio.gather(asyncio.create_task(admit("a")), admit("b"))
        return first, second, admission.warnings is request_warnings()

    # On the sandbox's own loop, which its thread runs.
    assert world.ground.sandbox_thread is not None
    first, second, same = await asyncio.to_thread(world.ground.sandbox_thread.call, both())
    assert first == ["careful with a"]
    assert second == ["careful with b"]
    assert same


# ---- matchConditions ------------------------------------------------------------------------

NOT_ALICE = {"name": "not-alice", "expression": 'request.userInfo.username != "alice"'}
BROKEN = {"name": "broken", "expression": 'object.metadata.labels["missing"] == "x"'}


@pytest.mark.parametrize("kind", ["Mutating", "Validating"])
async def test_a_false_match_condition_skips_the_webhook(world: World, kind: str) -> None:
    unlabelled = {
        "name": "labelled",
        "expression": 'has(object.metadata.labels) && object.metadata.labels["team"] == "a"',
    }
    await world.configure(
        kind, "mc", world.webhook("mc.koos.test", "/mc", matchConditions=[NOT_ALICE, unlabelled])
    )

    assert (await world.alice.create_cm("by-alice", {"team": "a"}))[0] == 201
    assert (await world.admin.create_cm("plain"))[0] == 201
    assert world.hooks.calls == []
    assert (await world.admin.create_cm("by-admin", {"team": "a"}))[0] == 201
    assert [c.request["name"] for c in world.hooks.calls] == ["by-admin"]


async def test_match_conditions_see_the_old_object_on_delete(world: World) -> None:
    keep = {"name": "keep", "expression": 'object == null && oldObject.metadata.name == "gone"'}
    await world.configure(
        "Validating", "mc", world.webhook("d.koos.test", "/d", matchConditions=[keep])
    )
    for name in ("gone", "other"):
        assert (await world.alice.create_cm(name))[0] == 201
        assert (await world.alice.call("DELETE", f"{world.configmaps}/{name}"))[0] == 200
    assert [(c.request["operation"], c.request["name"]) for c in world.hooks.calls] == [
        ("DELETE", "gone")
    ]


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
async def test_a_match_condition_that_errs_follows_the_failure_policy(
    world: World, policy: str
) -> None:
    hook = world.webhook("err.koos.test", "/e", failurePolicy=policy, matchConditions=[BROKEN])
    await world.configure("Validating", "err", hook)

    status, answer = await world.alice.create_cm("one")

    assert world.hooks.calls == []  # never called
    if policy == "Ignore":
        assert status == 201, answer
        return
    assert status == 403, answer
    assert answer["reason"] == "Forbidden"
    assert answer["message"].startswith(
        'configmaps "one" is forbidden: expression \'object.metadata.labels["missing"] == "x"\' '
        "resulted in error: "
    )
    assert answer["details"] == {"name": "one", "kind": "configmaps"}
    assert (await world.alice.call("GET", f"{world.configmaps}/one"))[0] == 404


async def test_a_false_match_condition_wins_over_an_error(world: World) -> None:
    hook = world.webhook("mix.koos.test", "/m", matchConditions=[BROKEN, NOT_ALICE])
    await world.configure("Validating", "mix", hook)
    assert (await world.alice.create_cm("one"))[0] == 201  # skipped: not-alice is false
    status, answer = await world.admin.create_cm("two")  # not-alice true, broken errs
    assert status == 403, answer
    assert world.hooks.calls == []


async def test_a_match_condition_that_does_not_compile_is_an_error(world: World) -> None:
    """It is refused when configured (the apiserver compiles every expression then); the
    compiler's own message after "compilation failed: " is the CEL library's."""
    bad = {"name": "bad", "expression": "request.userInfo.username =="}
    status, answer = await world.post(
        "Validating", "bad", world.webhook("b.koos.test", "/b", matchConditions=[bad])
    )
    assert status == 422, answer
    [cause] = answer["details"]["causes"]
    assert cause["field"] == "webhooks[0].matchConditions[0].expression"
    assert cause["reason"] == "FieldValueInvalid"
    assert cause["message"].startswith(
        'Invalid value: "request.userInfo.username ==": compilation failed: '
    )
