"""The real ground answers as a cluster does: discovery, RBAC, CRDs, and its controllers at work.

Each test checks one thing koos relies on and the sandbox cannot prove: kubectl's aggregated
discovery, RBAC decisions for the static users, the koos CRDs served, and the Job, namespace and
garbage-collector controllers acting. No node runs here, so Pods stay Pending.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ..ground.realplane import GroundError, RealPlane, kubernetes_version, make_pki, wait_for
from .conftest import Kubectl

ROOT = Path(__file__).resolve().parents[2]
DISCOVERY_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def job_manifest(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                }
            },
        },
    }


def pods_of(realplane: RealPlane, namespace: str, job: str) -> list[dict[str, Any]]:
    status, body = realplane.request(
        "GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=job-name%3D{job}"
    )
    assert status == 200, body
    return list(body["items"])


def test_kubectl_lists_namespaces_through_aggregated_discovery(
    realplane: RealPlane, kubectl: Kubectl
) -> None:
    version = json.loads(kubectl("version", "-o", "json"))["serverVersion"]
    assert version["gitVersion"] == kubernetes_version()  # the build stamped it
    names = kubectl("get", "namespaces", "-o", "name").split()
    assert {"namespace/default", "namespace/kube-system"} <= set(names)
    # What kubectl asked for first: the aggregated discovery document, served as such.
    token = realplane.admin_token
    request = urllib.request.Request(realplane.url + "/apis", headers={"Accept": DISCOVERY_V2})
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, context=realplane.ssl_context(), timeout=10) as reply:
        assert "apidiscovery.k8s.io" in reply.headers["Content-Type"]
        body = json.loads(reply.read())
    assert body["kind"] == "APIGroupDiscoveryList"
    assert "batch" in {group["metadata"]["name"] for group in body["items"]}


def test_rbac_answers_can_i_by_group(
    realplane: RealPlane, kubectl: Kubectl, namespace: str
) -> None:
    # sre may patch ConfigMaps in this namespace; dev has no binding.
    manifests = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "patcher", "namespace": namespace},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "sre-patcher", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "patcher"},
            "subjects": [{"kind": "Group", "name": "sre", "apiGroup": "rbac.authorization.k8s.io"}],
        },
    ]
    kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": manifests}),
    )

    def can(user: str, *args: str, ns: str = namespace) -> bool:
        result = kubectl.run("auth", "can-i", *args, "-n", ns, user=user, check=False)
        assert result.stdout.strip() in ("yes", "no"), result.stderr
        return result.returncode == 0

    assert can("alice", "patch", "configmaps")
    assert not can("alice", "delete", "configmaps")  # one step beyond the Role
    assert not can("bob", "patch", "configmaps")
    assert not can("alice", "patch", "configmaps", ns="default")
    # And the request itself, not only the review: bob is Forbidden with RBAC's wording.
    result = kubectl.run("get", "configmaps", "-n", namespace, user="bob", check=False)
    assert result.returncode != 0
    assert 'User "bob" cannot list resource "configmaps"' in result.stderr


@pytest.fixture(scope="session")
def koos_crds(realplane: RealPlane, kubectl: Kubectl) -> list[str]:
    kubectl("apply", "-f", str(ROOT / "crds"))
    names = kubectl("get", "crd", "-o", "name").split()
    koos = [name for name in names if name.endswith(".koos.io")]
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *koos)
    return koos


def test_koos_crds_apply_and_are_served(
    koos_crds: list[str], kubectl: Kubectl, namespace: str
) -> None:
    assert {
        "customresourcedefinition.apiextensions.k8s.io/executions.koos.io",
        "customresourcedefinition.apiextensions.k8s.io/templates.koos.io",
    } <= set(koos_crds)
    result = kubectl.run("get", "executions", "-n", namespace)
    assert result.stdout == ""
    assert f"No resources found in {namespace} namespace." in result.stderr


def test_job_controller_creates_a_pending_pod(realplane: RealPlane, namespace: str) -> None:
    status, body = realplane.request(
        "POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", job_manifest("one", namespace)
    )
    assert status == 201, body
    pods = wait_for("the Job's Pod", lambda: pods_of(realplane, namespace, "one") or None)
    assert len(pods) == 1
    pod = pods[0]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert pod["status"]["phase"] == "Pending"  # no node yet
    assert "nodeName" not in pod["spec"]
    # The ServiceAccount admission plugin mounted the default account's projected token.
    assert pod["spec"]["serviceAccountName"] == "default"
    assert any("projected" in volume for volume in pod["spec"]["volumes"])


def test_namespace_controller_empties_and_removes_a_namespace(realplane: RealPlane) -> None:
    name = "t-doomed"
    assert realplane.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    configmap = {"metadata": {"name": "left"}, "data": {"a": "b"}}
    status, _ = realplane.request("POST", f"/api/v1/namespaces/{name}/configmaps", configmap)
    assert status == 201
    assert realplane.request("DELETE", f"/api/v1/namespaces/{name}")[0] == 200
    wait_for(
        "the namespace to be gone",
        lambda: realplane.request("GET", f"/api/v1/namespaces/{name}")[0] == 404,
    )


@pytest.mark.parametrize("propagation", ["Background", "Foreground"])
def test_garbage_collector_deletes_a_deleted_jobs_pods(
    realplane: RealPlane, namespace: str, propagation: str
) -> None:
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    assert realplane.request("POST", jobs, job_manifest("gone", namespace))[0] == 201
    wait_for("the Job's Pod", lambda: pods_of(realplane, namespace, "gone") or None)
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
    status, body = realplane.request("DELETE", f"{jobs}/gone", options)
    assert status in (200, 202), body
    wait_for("the Pod to be collected", lambda: not pods_of(realplane, namespace, "gone"))
    wait_for("the Job to be gone", lambda: realplane.request("GET", f"{jobs}/gone")[0] == 404)


def test_a_process_that_exits_fails_the_start_with_its_log_and_leaves_nothing(
    realplane: RealPlane,
) -> None:
    # (Uses the session ground only to know the binaries are there.)
    ground = RealPlane(extra_apiserver_args=["--no-such-flag"])
    with pytest.raises(GroundError, match="kube-apiserver exited with") as raised:
        ground.start()
    assert "unknown flag: --no-such-flag" in str(raised.value)
    assert not ground.dir.exists()
    assert not [pid for pid in ground.pids() if Path(f"/proc/{pid}").exists()]


def test_service_account_tokens_are_signed_and_authorised_by_rbac(
    realplane: RealPlane, kubectl: Kubectl, namespace: str
) -> None:
    wait_for(
        "the namespace's default ServiceAccount",
        lambda: (
            realplane.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default")[0]
            == 200
        ),
    )
    token = kubectl("create", "token", "default", "-n", namespace).strip()
    who = json.loads(kubectl("auth", "whoami", "-o", "json", f"--token={token}"))
    assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:default"
    # Nothing is granted to it: listing Pods is Forbidden.
    denied = kubectl.run("get", "pods", "-n", namespace, f"--token={token}", check=False)
    assert denied.returncode != 0
    assert "cannot list resource" in denied.stderr


class _Webhook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = review["request"]["object"]["metadata"]["name"]
        allowed = name != "forbidden"
        response = {"uid": review["request"]["uid"], "allowed": allowed}
        if not allowed:
            response["status"] = {"code": 403, "message": "the test webhook refuses this name"}
        body = json.dumps({**review, "response": response, "request": None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_validating_webhook_is_called_by_the_api_server(
    realplane: RealPlane, namespace: str, tmp_path: Path
) -> None:
    pki = make_pki(("127.0.0.1",))
    (tmp_path / "tls.crt").write_bytes(pki.serving_cert_pem)
    (tmp_path / "tls.key").write_bytes(pki.serving_key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    name = f"deny-forbidden-{namespace}"
    configuration = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "deny.koos.test",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{server.server_address[1]}/validate",
                    "caBundle": base64.b64encode(pki.ca_pem).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
            }
        ],
    }
    hooks = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
    assert realplane.request("POST", hooks, configuration)[0] == 201
    try:
        configmaps = f"/api/v1/namespaces/{namespace}/configmaps"

        def refused() -> dict[str, Any] | None:
            # The configuration reaches the apiserver's webhook cache shortly after its write.
            status, body = realplane.request(
                "POST", configmaps, {"metadata": {"name": "forbidden"}}
            )
            if status == 201:
                realplane.request("DELETE", f"{configmaps}/forbidden")
                return None
            return {"status": status, "body": body}

        answer = wait_for("the webhook to refuse", refused)
        assert answer["status"] == 403
        assert "the test webhook refuses this name" in answer["body"]["message"]
        assert realplane.request("POST", configmaps, {"metadata": {"name": "fine"}})[0] == 201
    finally:
        realplane.request("DELETE", f"{hooks}/{name}")
        server.shutdown()
        server.server_close()
