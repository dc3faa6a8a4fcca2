"""The operator's own RBAC (`manifests/rbac/operator.yaml`) is least privilege and says why:
no wildcard, every rule under a comment, Secrets read by name only (never listed or watched,
created in koos-system only), no RBAC, impersonation, Pods beyond a list, Namespaces or Nodes.
tests/realplane/test_rbac.py runs the operator with exactly these rights on a real
kube-apiserver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

FILE = Path(__file__).resolve().parents[2] / "manifests" / "rbac" / "operator.yaml"
NAMESPACE, NAME = "koos-system", "koos-operator"
ALL_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(FILE.read_text()) if d]


def one(kind: str) -> dict[str, Any]:
    found = [d for d in documents() if d["kind"] == kind]
    assert len(found) == 1, f"{kind}: {len(found)} documents"
    return found[0]


def grants(
    rules: list[dict[str, Any]], group: str, resource: str, verb: str, name: str | None = None
) -> bool:
    """Whether the rules allow `verb` on `resource` of `group` (on the object `name`, when
    given; without it, a rule limited to names does not count), as RBAC matches."""
    for rule in rules:
        if not {group, "*"} & set(rule.get("apiGroups") or []):
            continue
        if not {resource, "*"} & set(rule.get("resources") or []):
            continue
        if not {verb, "*"} & set(rule.get("verbs") or []):
            continue
        names = rule.get("resourceNames")
        if not names or (name is not None and name in names):
            return True
    return False


def cluster_rules() -> list[dict[str, Any]]:
    return list(one("ClusterRole")["rules"])


def role_rules() -> list[dict[str, Any]]:
    return list(one("Role")["rules"])


def test_a_service_account_bound_to_its_roles() -> None:
    account = one("ServiceAccount")["metadata"]
    assert (account["name"], account["namespace"]) == (NAME, NAMESPACE)
    assert one("Namespace")["metadata"]["name"] == NAMESPACE
    subject = {"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}
    for kind, role in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = one(kind)
        assert binding["subjects"] == [subject]
        assert binding["roleRef"]["kind"] == role
        assert binding["roleRef"]["name"] == one(role)["metadata"]["name"] == NAME
    assert one("Role")["metadata"]["namespace"] == NAMESPACE


def test_no_wildcard_and_no_urls() -> None:
    for rule in cluster_rules() + role_rules():
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert not any("*" in value for value in rule.get(field) or []), rule
        assert "nonResourceURLs" not in rule


def test_every_rule_says_why() -> None:
    """Each rule of the roles is under a comment: a reviewer reads why it is there."""
    lines = FILE.read_text().splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("  - apiGroups:")]
    assert len(rules) == len(cluster_rules()) + len(role_rules())
    for index in rules:
        assert lines[index - 1].lstrip().startswith("#"), f"line {index + 1}: no comment"


@pytest.mark.parametrize("verb", ["list", "watch", "update", "patch", "delete", "deletecollection"])
def test_secrets_are_never_listed_watched_or_changed(verb: str) -> None:
    for rules in (cluster_rules(), role_rules()):
        assert not grants(rules, "", "secrets", verb)


def test_secrets_are_read_by_name_and_created_in_koos_system_only() -> None:
    assert grants(cluster_rules(), "", "secrets", "get")  # masking: see the rule's comment
    assert not grants(cluster_rules(), "", "secrets", "create")
    assert grants(role_rules(), "", "secrets", "create")
    assert grants(role_rules(), "", "secrets", "get", name="koos-approval-key")
    assert not grants(role_rules(), "", "secrets", "get", name="another")
    text = FILE.read_text()
    assert "never list or watch" in text  # the justification of the cluster-wide get


@pytest.mark.parametrize(
    ("group", "resource"),
    [
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("", "serviceaccounts"),
        ("", "serviceaccounts/token"),
        ("", "namespaces"),
        ("", "nodes"),
        ("", "configmaps"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("coordination.k8s.io", "leases"),
        ("apps", "deployments"),
    ],
)
def test_nothing_on_what_koos_does_not_touch(group: str, resource: str) -> None:
    assert not any(grants(cluster_rules(), group, resource, verb) for verb in ALL_VERBS)


def test_no_escalation_verbs() -> None:
    verbs = {v for rule in cluster_rules() + role_rules() for v in rule["verbs"]}
    assert not verbs & {"escalate", "bind", "impersonate", "approve", "sign"}
    assert verbs <= set(ALL_VERBS)


def test_pods_are_only_listed() -> None:
    allowed = {v for v in ALL_VERBS if grants(cluster_rules(), "", "pods", v)}
    assert allowed == {"list"}


@pytest.mark.parametrize("kind", ["executions", "approvals", "templates", "schedules"])
def test_status_is_patched_and_nothing_else(kind: str) -> None:
    allowed = {v for v in ALL_VERBS if grants(cluster_rules(), "koos.io", f"{kind}/status", v)}
    assert allowed == {"patch"}


@pytest.mark.parametrize("kind", ["executions", "schedules"])
def test_finalizers_are_updated_and_nothing_else(kind: str) -> None:
    """For OwnerReferencesPermissionEnforcement (blockOwnerDeletion on children)."""
    allowed = {v for v in ALL_VERBS if grants(cluster_rules(), "koos.io", f"{kind}/finalizers", v)}
    assert allowed == {"update"}


def test_approvals_templates_and_schedules_are_never_deleted() -> None:
    for kind in ("approvals", "templates", "schedules"):
        assert not grants(cluster_rules(), "koos.io", kind, "delete")
        assert not grants(cluster_rules(), "koos.io", kind, "deletecollection")
    assert not grants(cluster_rules(), "koos.io", "templates", "create")


def test_webhook_configurations_are_changed_by_name_only() -> None:
    group = "admissionregistration.k8s.io"
    for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
        assert grants(cluster_rules(), group, kind, "patch", name="koos.io")
        assert not grants(cluster_rules(), group, kind, "patch", name="another")
        assert not grants(cluster_rules(), group, kind, "delete")
        assert not grants(cluster_rules(), group, kind, "update")
