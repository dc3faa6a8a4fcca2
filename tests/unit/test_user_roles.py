"""The ClusterRoles koos ships for people (`manifests/rbac/user-roles.yaml`) never grant what
would let a person past an approval gate: a status subresource (the operator's memory of a run
or of a decision), or create on approvals (a look-alike Approval). An approver needs only
get/list/watch/patch on approvals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "manifests" / "rbac" / "user-roles.yaml"


def roles() -> dict[str, list[dict[str, Any]]]:
    docs = [d for d in yaml.safe_load_all(ROLES.read_text()) if d]
    assert all(d["kind"] == "ClusterRole" for d in docs)
    return {d["metadata"]["name"]: d["rules"] for d in docs}


def grants(rules: list[dict[str, Any]], resource: str, verb: str) -> bool:
    """Whether the rules allow `verb` on koos.io `resource` (as RBAC matches, wildcards too)."""
    base = resource.split("/")[0]
    for rule in rules:
        if not {"koos.io", "*"} & set(rule.get("apiGroups") or []):
            continue
        names = set(rule.get("resources") or [])
        if not ({resource, "*"} & names or (resource != base and f"{base}/*" in names)):
            continue
        if {verb, "*"} & set(rule.get("verbs") or []):
            return True
    return False


PEOPLE = ("koos-view", "koos-run", "koos-edit", "koos-approve")


def test_the_four_roles_are_there() -> None:
    assert set(roles()) == set(PEOPLE)


STATUS = [f"{r}/status" for r in ("executions", "approvals", "schedules", "templates")]
WRITES = ("create", "update", "patch", "delete", "deletecollection")


@pytest.mark.parametrize("role", PEOPLE)
@pytest.mark.parametrize("resource", STATUS)
def test_no_role_writes_a_status(role: str, resource: str) -> None:
    assert not any(grants(roles()[role], resource, verb) for verb in WRITES)


@pytest.mark.parametrize("role", PEOPLE)
def test_no_role_creates_approvals(role: str) -> None:
    assert not grants(roles()[role], "approvals", "create")


def test_an_approver_gets_lists_and_patches_approvals_only() -> None:
    approve = roles()["koos-approve"]
    allowed = {v for v in (*WRITES, "get", "list", "watch") if grants(approve, "approvals", v)}
    assert allowed == {"get", "list", "watch", "patch"}
    assert not any(grants(approve, r, v) for r in ("executions", "templates") for v in WRITES)


def test_a_runner_creates_executions_and_changes_nothing() -> None:
    run = roles()["koos-run"]
    assert grants(run, "executions", "create")
    changes = ("update", "patch", "delete", "deletecollection")
    assert not any(grants(run, "executions", verb) for verb in changes)
    others = ("templates", "schedules", "approvals")
    assert not any(grants(run, r, v) for r in others for v in WRITES)
    assert all(grants(run, r, "get") for r in ("executions", *others))


def test_an_editor_runs_and_manages_runbooks_but_decides_nothing() -> None:
    edit = roles()["koos-edit"]
    for resource in ("templates", "executions", "schedules"):
        assert all(grants(edit, resource, verb) for verb in ("create", "patch", "delete"))
    assert not any(grants(edit, "approvals", verb) for verb in WRITES)


def test_the_viewer_writes_nothing() -> None:
    view = roles()["koos-view"]
    resources = ("templates", "executions", "schedules", "approvals")
    assert not any(grants(view, r, v) for r in resources for v in WRITES)
    assert all(grants(view, r, "get") for r in resources)
