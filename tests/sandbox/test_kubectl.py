"""The sandbox checked as a user checks a cluster: with the real kubectl binary as the client."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from koos_sandbox.openapi import v2_protobuf
from koos_sandbox.testing import Kubectl, wait_for

from ..ground.realplane import kubernetes_version
from .conftest import Ground, hook_certificate, hook_ssl_context

pytestmark = pytest.mark.kubectl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sandbox"
CRD = EXAMPLES / "crd.yaml"


def _apply_crd(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(CRD))
    kubectl("wait", "--for=condition=Established", "crd/greetings.demo.koos.io", "--timeout=10s")


def _greeting(name: str, message: str = "hi", **spec: object) -> str:
    body = {
        "apiVersion": "demo.koos.io/v1",
        "kind": "Greeting",
        "metadata": {"name": name},
        "spec": {"message": message, **spec},
    }
    return yaml.safe_dump(body)


def test_version_and_discovery(ground: Ground, kubectl: Kubectl) -> None:
    version = json.loads(kubectl("version", "-o", "json"))
    # The sandbox emulates 1.32; the real ground is the version tools/controlplane pins.
    minor = "32" if ground.sandbox is not None else kubernetes_version().split(".")[1]
    assert version["serverVersion"]["minor"] == minor
    resources = kubectl("api-resources")
    for expected in ("namespaces", "pods", "jobs", "leases", "customresourcedefinitions"):
        assert expected in resources


@pytest.mark.parametrize("mode", [[], ["--server-side"]])
def test_apply_of_a_kind_nobody_serves_says_to_install_the_crd(
    kubectl: Kubectl, mode: list[str]
) -> None:
    """kubectl asks /openapi/v2 about a group/version that OpenAPI v3 does not list; a 404
    there printed "failed to download openapi" where kube-apiserver's users read this."""
    manifest = "apiVersion: foo.io/v1\nkind: Nope\nmetadata: {name: x, namespace: default}\n"
    result = kubectl.run("apply", *mode, "-f", "-", input=manifest, check=False)
    assert result.returncode == 1
    assert 'no matches for kind "Nope" in version "foo.io/v1"' in result.stderr
    assert "ensure CRDs are installed first" in result.stderr


def test_openapi_v2_is_served_as_json_and_as_gnostic_protobuf(kubectl: Kubectl) -> None:
    doc = json.loads(kubectl("get", "--raw", "/openapi/v2"))
    assert doc["swagger"] == "2.0"
    assert doc["info"]["title"] == "Kubernetes"
    # swagger = 1 ("2.0"), then info = 2 (21 bytes) holding title = 1 ("Kubernetes").
    assert v2_protobuf().startswith(b"\x0a\x032.0\x12\x15\x0a\x0aKubernetes")


def test_apply_creates_then_updates_a_crd_and_an_object(kubectl: Kubectl) -> None:
    out = kubectl("apply", "-f", str(CRD))
    assert "customresourcedefinition.apiextensions.k8s.io/greetings.demo.koos.io created" in out
    out = kubectl("apply", "-f", str(CRD))
    assert "unchanged" in out
    kubectl("wait", "--for=condition=Established", "crd/greetings.demo.koos.io", "--timeout=10s")
    assert "greetings" in kubectl("api-resources", "--api-group=demo.koos.io")

    assert "greeting.demo.koos.io/hello created" in kubectl(
        "apply", "-f", "-", input=_greeting("hello", "one")
    )
    first = kubectl.json("get", "greeting", "hello")
    assert first["spec"] == {"message": "one", "times": 1}  # the schema default applied
    assert first["metadata"]["generation"] == 1
    assert "greeting.demo.koos.io/hello configured" in kubectl(
        "apply", "-f", "-", input=_greeting("hello", "two")
    )
    second = kubectl.json("get", "greeting", "hello")
    assert second["spec"]["message"] == "two"
    assert second["metadata"]["generation"] == 2
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert second["metadata"]["uid"] == first["metadata"]["uid"]


def test_get_prints_the_crd_printer_columns(kubectl: Kubectl) -> None:
    _apply_crd(kubectl)
    kubectl("apply", "-f", "-", input=_greeting("hello", "hey there", times=3))
    table = kubectl("get", "greetings").splitlines()
    assert table[0].split() == ["NAME", "MESSAGE", "TIMES", "READY", "AGE"]
    assert table[1].split()[:4] == ["hello", "hey", "there", "3"]
    assert kubectl("get", "gr", "hello", "--no-headers").split()[0] == "hello"
    assert "hello" in kubectl("get", "demo")  # the category
    manifest = yaml.safe_load(kubectl("get", "greeting", "hello", "-o", "yaml"))
    assert manifest["kind"] == "Greeting"
    assert manifest["apiVersion"] == "demo.koos.io/v1"


def test_get_watch_sees_a_later_change(kubectl: Kubectl) -> None:
    _apply_crd(kubectl)
    kubectl("apply", "-f", "-", input=_greeting("watched", "before"))
    watcher = kubectl.popen(["get", "greetings", "-w", "--request-timeout=20s"])
    try:
        assert watcher.stdout is not None
        header = watcher.stdout.readline()
        assert header.split()[0] == "NAME"
        assert watcher.stdout.readline().split()[:2] == ["watched", "before"]
        kubectl(
            "patch", "greeting", "watched", "--type", "merge", "-p", '{"spec":{"message":"after"}}'
        )
        assert watcher.stdout.readline().split()[:2] == ["watched", "after"]
    finally:
        watcher.kill()
        watcher.communicate()


def test_label_annotate_and_patch_in_every_type(kubectl: Kubectl) -> None:
    _apply_crd(kubectl)
    kubectl("apply", "-f", "-", input=_greeting("p", "start"))
    kubectl("label", "greeting", "p", "team=sre")
    kubectl("annotate", "greeting", "p", "koos.io/note=checked")
    kubectl("patch", "greeting", "p", "--type", "merge", "-p", '{"spec":{"times":2}}')
    kubectl(
        "patch",
        "greeting",
        "p",
        "--type",
        "json",
        "-p",
        '[{"op":"replace","path":"/spec/message","value":"json"}]',
    )
    obj = kubectl.json("get", "greeting", "p")
    assert obj["metadata"]["labels"] == {"team": "sre"}
    assert obj["metadata"]["annotations"]["koos.io/note"] == "checked"
    assert obj["spec"] == {"message": "json", "times": 2}

    failed = kubectl.run(
        "patch",
        "greeting",
        "p",
        "--type",
        "json",
        "-p",
        '[{"op":"test","path":"/spec/message","value":"nope"}]',
        check=False,
    )
    assert failed.returncode != 0
    smp = kubectl.run(
        "patch", "greeting", "p", "--type", "strategic", "-p", '{"spec":{}}', check=False
    )
    assert smp.returncode != 0
    assert "application/strategic-merge-patch+json is not supported by demo.koos.io/v1" in (
        smp.stderr
    )

    # Strategic merge on a built-in merges lists by key, as kubectl expects.
    kubectl("create", "deployment", "web", "--image=nginx:1", "--replicas=1")
    kubectl(
        "patch",
        "deployment",
        "web",
        "--type",
        "strategic",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}',
    )
    containers = kubectl.json("get", "deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["sidecar", "nginx"]  # merged by name, new first


def test_delete_waits_for_finalizers(kubectl: Kubectl) -> None:
    _apply_crd(kubectl)
    kubectl("apply", "-f", "-", input=_greeting("kept"))
    kubectl(
        "patch",
        "greeting",
        "kept",
        "--type",
        "merge",
        "-p",
        '{"metadata":{"finalizers":["demo.koos.io/hold"]}}',
    )
    kubectl("delete", "greeting", "kept", "--wait=false")
    obj = kubectl.json("get", "greeting", "kept")
    assert obj["metadata"]["deletionTimestamp"]
    kubectl(
        "patch",
        "greeting",
        "kept",
        "--type",
        "json",
        "-p",
        '[{"op":"remove","path":"/metadata/finalizers"}]',
    )
    gone = kubectl.run("get", "greeting", "kept", check=False)
    assert gone.returncode != 0
    assert 'greetings.demo.koos.io "kept" not found' in gone.stderr


def test_wait_for_a_condition(kubectl: Kubectl) -> None:
    _apply_crd(kubectl)
    kubectl("apply", "-f", "-", input=_greeting("ready"))
    waiter = kubectl.popen(["wait", "--for=condition=Ready", "greeting/ready", "--timeout=20s"])
    kubectl(
        "patch",
        "greeting",
        "ready",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}',
    )
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err
    assert "condition met" in out


def test_status_and_main_endpoints_are_separate(kubectl: Kubectl) -> None:
    _apply_crd(kubectl)
    kubectl("apply", "-f", "-", input=_greeting("s"))
    kubectl(
        "patch",
        "greeting",
        "s",
        "--type",
        "merge",
        "-p",
        '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}',
    )
    assert "status" not in kubectl.json("get", "greeting", "s")
    kubectl(
        "patch",
        "greeting",
        "s",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        '{"spec":{"message":"ignored"},"status":{"conditions":[{"type":"Ready","status":"True"}]}}',
    )
    obj = kubectl.json("get", "greeting", "s")
    assert obj["spec"]["message"] == "hi"
    assert obj["status"]["conditions"][0]["type"] == "Ready"
    assert obj["metadata"]["generation"] == 1


def test_schema_violation_is_refused_with_the_field_path(kubectl: Kubectl) -> None:
    _apply_crd(kubectl)
    bad = kubectl.run("apply", "-f", "-", input=_greeting("bad", times=11), check=False)
    assert bad.returncode != 0
    assert "spec.times" in bad.stderr
    assert "should be less than or equal to 10" in bad.stderr
    missing = kubectl.run(
        "apply",
        "-f",
        "-",
        check=False,
        input=yaml.safe_dump(
            {
                "apiVersion": "demo.koos.io/v1",
                "kind": "Greeting",
                "metadata": {"name": "empty"},
                "spec": {},
            }
        ),
    )
    assert missing.returncode != 0
    assert "spec.message: Required value" in missing.stderr


def test_duplicate_create_is_a_409(kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "twice", "--from-literal=a=1")
    again = kubectl.run("create", "configmap", "twice", "--from-literal=a=1", check=False)
    assert again.returncode != 0
    assert 'configmaps "twice" already exists' in again.stderr


def test_list_with_label_selectors_and_pagination(kubectl: Kubectl) -> None:
    for i in range(7):
        tier = "web" if i % 2 else "db"
        kubectl("create", "configmap", f"cm-{i}", f"--from-literal=i={i}")
        kubectl("label", "configmap", f"cm-{i}", f"tier={tier}", f"index=n{i}")
    names = kubectl("get", "cm", "-l", "tier=web", "-o", "name").split()
    assert names == ["configmap/cm-1", "configmap/cm-3", "configmap/cm-5"]
    names = kubectl("get", "cm", "-l", "tier in (db),index notin (n0,n2)", "-o", "name").split()
    assert names == ["configmap/cm-4", "configmap/cm-6"]
    paged = kubectl("get", "cm", "-l", "tier", "--chunk-size=2", "-o", "name").split()
    assert len(paged) == 7


def test_pagination_over_the_api_returns_continue_tokens(kubectl: Kubectl) -> None:
    for i in range(5):
        kubectl("create", "configmap", f"page-{i}")
    listed = kubectl.run("get", "cm", "--chunk-size=2", "-o", "name", "-v=6")
    # Every namespace also holds the CA bundle the root-ca publisher puts there.
    assert listed.stdout.split() == [
        "configmap/kube-root-ca.crt",
        *(f"configmap/page-{i}" for i in range(5)),
    ]
    # kubectl -v=6 logs each request: "GET https://…/configmaps?limit=2 200 OK".
    lists = [
        line for line in listed.stderr.splitlines() if "/configmaps?" in line and "limit=2" in line
    ]
    assert len(lists) == 3
    assert sum("continue=" in line for line in lists) >= 2


def test_contexts_act_as_their_users(kubectl: Kubectl) -> None:
    whoami = kubectl("auth", "whoami", "-o", "json", context="alice")
    info = json.loads(whoami)["status"]["userInfo"]
    assert info["username"] == "alice"
    assert "sre" in info["groups"]
    bob = json.loads(kubectl("auth", "whoami", "-o", "json", context="bob"))
    assert bob["status"]["userInfo"]["username"] == "bob"


def test_a_denied_verb_is_forbidden(ground: Ground, kubectl: Kubectl) -> None:
    from koos_sandbox.auth import DenyRule

    # The sandbox allows what no rule denies; the real ground what RBAC grants.
    if ground.sandbox is not None:
        ground.sandbox.deny(DenyRule(verb="delete", resource="configmaps", user="bob"))
    ground.grant("alice", "edit")
    kubectl("create", "configmap", "guarded")
    denied = kubectl.run("delete", "configmap", "guarded", context="bob", check=False)
    assert denied.returncode != 0
    assert 'User "bob" cannot delete resource "configmaps"' in denied.stderr
    assert (
        kubectl("auth", "can-i", "delete", "configmaps", context="bob", check=False).strip() == "no"
    )
    assert kubectl("auth", "can-i", "delete", "configmaps", context="alice").strip() == "yes"


@pytest.mark.sandbox_only(reason="scripted Job outcomes and logs")
def test_jobs_run_and_serve_logs(ground: Ground, kubectl: Kubectl) -> None:
    assert ground.sandbox is not None
    ground.sandbox.jobs.script(
        pattern="logged*", logs="line one\nline two\n", message='{"ok":true}'
    )
    kubectl("create", "job", "logged", "--image=busybox", "--", "echo", "ignored")
    kubectl("wait", "--for=condition=Complete", "job/logged", "--timeout=20s")
    assert kubectl("logs", "job/logged") == "line one\nline two\n"
    jobs = kubectl("get", "jobs").splitlines()
    assert jobs[0].split()[:3] == ["NAME", "STATUS", "COMPLETIONS"]
    assert jobs[1].split()[:3] == ["logged", "Complete", "1/1"]


def test_namespace_deletion_removes_its_content(ground: Ground, kubectl: Kubectl) -> None:
    scratch = f"{ground.namespace}-scratch"
    kubectl("create", "namespace", scratch)
    kubectl("create", "configmap", "inside", "-n", scratch)
    kubectl("delete", "namespace", scratch, "--timeout=20s")
    assert kubectl.run("get", "namespace", scratch, check=False).returncode != 0
    kubectl("create", "namespace", scratch)
    # Only what a new namespace gets: the CA bundle of the root-ca publisher.
    left = kubectl("get", "configmaps", "-n", scratch, "-o", "name").split()
    assert left == ["configmap/kube-root-ca.crt"]
    bundle = kubectl.json("get", "configmap", "kube-root-ca.crt", "-n", scratch)
    assert bundle["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    assert bundle["metadata"]["annotations"]["kubernetes.io/description"].startswith(
        "Contains a CA bundle that can be used to verify the kube-apiserver"
    )


def test_owner_garbage_collection(kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "owner")
    uid = kubectl.json("get", "configmap", "owner")["metadata"]["uid"]
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
            ],
        },
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(dependent))
    kubectl("delete", "configmap", "owner")
    wait_for(
        lambda: kubectl.run("get", "configmap", "dependent", check=False).returncode != 0,
        what="the dependent to be collected",
    )


class _Reviews(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(review)
        user = review["request"]["userInfo"]["username"]
        body = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": review["request"]["uid"],
                "allowed": user != "bob",
                "status": {"code": 403, "message": f"{user} may not touch guarded maps"},
            },
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_an_admission_webhook_sees_alice_as_alice(
    ground: Ground, kubectl: Kubectl, tmp_path: Path
) -> None:
    ground.grant("alice", "edit")
    ground.grant("bob", "edit")
    _Reviews.seen = []
    hooks = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Reviews)
    hooks.socket = hook_ssl_context(tmp_path).wrap_socket(hooks.socket, server_side=True)
    thread = threading.Thread(target=hooks.serve_forever, daemon=True)
    thread.start()
    try:
        config = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "guard"},
            "webhooks": [
                {
                    "name": "guard.demo.koos.io",
                    "clientConfig": {
                        "url": f"https://127.0.0.1:{hooks.server_port}/review",
                        "caBundle": base64.b64encode(hook_certificate()[0]).decode(),
                    },
                    "rules": [
                        {
                            "operations": ["CREATE"],
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "resources": ["configmaps"],
                        }
                    ],
                    "objectSelector": {"matchLabels": {"guarded": "yes"}},
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                }
            ],
        }
        kubectl("apply", "-f", "-", input=yaml.safe_dump(config))
        guarded = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"labels": {"guarded": "yes"}},
        }
        # kube-apiserver loads a configuration a moment after it is stored: wait until a
        # server-side dry run reaches the webhook.
        probe = {**guarded, "metadata": {**guarded["metadata"], "name": "probe"}}

        def in_force() -> bool:
            seen = len(_Reviews.seen)
            kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(probe))
            return len(_Reviews.seen) > seen

        wait_for(in_force, timeout=30, what="the webhook configuration in force")
        mine = {**guarded, "metadata": {**guarded["metadata"], "name": "alices"}}
        kubectl("apply", "-f", "-", input=yaml.safe_dump(mine), context="alice")
        user = _Reviews.seen[-1]["request"]["userInfo"]
        assert user["username"] == "alice"
        assert "sre" in user["groups"]
        theirs = {**guarded, "metadata": {**guarded["metadata"], "name": "bobs"}}
        refused = kubectl.run(
            "apply", "-f", "-", input=yaml.safe_dump(theirs), context="bob", check=False
        )
        assert refused.returncode != 0
        assert 'admission webhook "guard.demo.koos.io" denied the request: bob may not touch' in (
            refused.stderr
        )
        assert kubectl.run("get", "configmap", "bobs", check=False).returncode != 0
    finally:
        hooks.shutdown()
        hooks.server_close()
