"""What a person or an account may do on the real ground, asked and tried: `kubectl auth
can-i`, then the request itself, with RBAC's refusal told apart from a webhook's (the words
kube-apiserver uses: `User "u" cannot VERB resource "R" in API group "G"`). And the manifests
the RBAC tests make: RoleBindings, Approvals, Executions."""

from __future__ import annotations

import json
from typing import Any

from ..ground.realplane import RealPlane
from .conftest import Kubectl

RBAC = "rbac.authorization.k8s.io"
MERGE_PATCH = "application/merge-patch+json"
# Two of issue 10's ways past a gate: an Approval's status, and the run's record of a step.
BYPASS_STATUS = '{"status": {"phase": "Approved"}}'
STEP_PASSED = '{"status": {"steps": [{"name": "approve", "phase": "Succeeded"}]}}'


def bind(kubectl: Kubectl, namespace: str, role: str, user: str) -> None:
    """A RoleBinding of ClusterRole `role` to `user` in `namespace`."""
    binding = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"{user}-{role}", "namespace": namespace},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "name": user, "apiGroup": RBAC}],
    }
    kubectl("apply", "-f", "-", input=json.dumps(binding))


def can(kubectl: Kubectl, user: str | None, *args: str) -> bool:
    """`kubectl auth can-i` as `user` (None: the kubeconfig's current context)."""
    result = kubectl.run("auth", "can-i", *args, user=user, check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.returncode == 0


def create(kubectl: Kubectl, body: dict[str, Any], user: str | None = None) -> None:
    kubectl("create", "-f", "-", user=user, input=json.dumps(body))


def create_refused(kubectl: Kubectl, user: str, body: dict[str, Any]) -> str:
    """`kubectl create` of `body` as `user`, which must fail; its stderr."""
    return refused(kubectl, user, "create", "-f", "-", input=json.dumps(body))


def refused(kubectl: Kubectl, user: str | None, *args: str, input: str | None = None) -> str:
    """Run a kubectl command that must fail; its stderr."""
    result = kubectl.run(*args, user=user, input=input, check=False)
    assert result.returncode != 0, f"kubectl {' '.join(args)} as {user} succeeded:\n{result}"
    return result.stderr


def forbidden(stderr: str, user: str, verb: str, resource: str, group: str = "koos.io") -> None:
    """RBAC's refusal, as kube-apiserver words it (not a webhook's, not a 404)."""
    where = f' in API group "{group}"' if group else ""
    wanted = f'User "{user}" cannot {verb} resource "{resource}"{where}'
    assert "Forbidden" in stderr or "forbidden" in stderr, stderr
    assert wanted in stderr, f"wanted {wanted!r} in:\n{stderr}"


def status_patch_refused(
    kubectl: Kubectl,
    realplane: RealPlane,
    user: str,
    kind: str,
    name: str,
    namespace: str,
    patch: str,
) -> str:
    """A person's merge patch of a koos status, made twice: with `kubectl patch
    --subresource=status` (which reads the status first) and as the bare PATCH request. Both
    must fail; returns the PATCH's message."""
    refused(
        kubectl,
        user,
        "patch",
        kind,
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        patch,
    )
    path = f"/apis/koos.io/v1alpha1/namespaces/{namespace}/{kind}s/{name}/status"
    status, answer = realplane.request(
        "PATCH", path, json.loads(patch), user=user, content_type=MERGE_PATCH
    )
    assert status == 403, (status, answer)
    return str(answer["message"])


def gate_routes_refused(kubectl: Kubectl, realplane: RealPlane, user: str, namespace: str) -> None:
    """Issue 10's three routes past a gate, refused to `user` by RBAC itself (before any
    webhook is asked): approvals/status, a look-alike Approval, executions/status. Needs
    Approval run-1-approve and Execution run-1 in `namespace`."""
    ns = ("-n", namespace)
    for subresource in ("approvals", "executions"):
        for verb in ("patch", "update"):
            assert not can(
                kubectl, user, verb, f"{subresource}.koos.io", "--subresource=status", *ns
            )
    assert not can(kubectl, user, "create", "approvals.koos.io", *ns)
    message = status_patch_refused(
        kubectl, realplane, user, "approval", "run-1-approve", namespace, BYPASS_STATUS
    )
    forbidden(message, user, "patch", "approvals/status")
    look_alike = approval_manifest("run-2-approve", namespace, [user])
    stderr = create_refused(kubectl, user, look_alike)
    forbidden(stderr, user, "create", "approvals")
    message = status_patch_refused(
        kubectl, realplane, user, "execution", "run-1", namespace, STEP_PASSED
    )
    forbidden(message, user, "patch", "executions/status")


def koos(kind: str, name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A koos object's manifest."""
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def approval_manifest(name: str, namespace: str, users: list[str]) -> dict[str, Any]:
    return koos(
        "Approval",
        name,
        namespace,
        {
            "executionRef": {"name": "run-1", "uid": "0"},
            "step": "approve",
            "approvers": {"users": users},
            "deadline": "2099-01-01T00:00:00Z",
        },
    )


def execution_manifest(
    name: str, namespace: str, template: str, **parameters: str
) -> dict[str, Any]:
    return koos(
        "Execution", name, namespace, {"templateRef": {"name": template}, "parameters": parameters}
    )
