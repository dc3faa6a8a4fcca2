"""ServiceAccounts as the control plane keeps them: a `default` account in every namespace,
Pods refused when their ServiceAccount is missing (403, as the admission plugin words it),
and the Job controller waiting with FailedCreate Warnings until the account exists."""

from __future__ import annotations

from typing import Any

import pytest

from koos_sandbox.testing import Kubectl, wait_for

from .conftest import Ground


def _pod(name: str, account: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}
    if account:
        spec["serviceAccountName"] = account
    return {"metadata": {"name": name}, "spec": spec}


def _create(ground: Ground, plural: str, body: dict[str, Any], ns: str = "") -> dict[str, Any]:
    status, answer = ground.request("POST", ground.ns_path(plural, namespace=ns), body)
    assert status == 201, answer
    return dict(answer)


def test_every_namespace_has_a_default_account_that_pods_get(ground: Ground) -> None:
    team = f"{ground.namespace}-team"
    status, _ = ground.request("POST", "/api/v1/namespaces", {"metadata": {"name": team}})
    assert status == 201
    account = f"{ground.ns_path('serviceaccounts', namespace=team)}/default"
    wait_for(lambda: ground.request("GET", account)[0] == 200, what="the default account")
    pod = _create(ground, "pods", _pod("plain"), team)
    assert pod["spec"]["serviceAccountName"] == "default"


def test_a_pod_naming_a_missing_account_is_forbidden(ground: Ground) -> None:
    ns = ground.namespace
    status, refused = ground.request("POST", ground.ns_path("pods"), _pod("lost", "ghost"))
    assert status == 403
    assert refused["reason"] == "Forbidden"
    assert refused["message"] == (
        f'pods "lost" is forbidden: error looking up service account {ns}/ghost: '
        'serviceaccount "ghost" not found'
    )
    assert ground.request("GET", f"{ground.ns_path('pods')}/lost")[0] == 404
    _create(ground, "serviceaccounts", {"metadata": {"name": "ghost"}})
    _create(ground, "pods", _pod("lost", "ghost"))


def test_a_job_with_a_missing_account_waits_with_warnings(ground: Ground) -> None:
    ns = ground.namespace
    template = {"spec": {**_pod("")["spec"], "serviceAccountName": "runner"}}
    body = {"metadata": {"name": "needs-runner"}, "spec": {"template": template}}
    status, answer = ground.request("POST", ground.ns_path("jobs", "batch/v1"), body)
    assert status == 201, answer

    def items(path: str) -> list[dict[str, Any]]:
        status, answer = ground.request("GET", path)
        assert status == 200, answer
        return list(answer["items"])

    def warnings() -> list[dict[str, Any]]:
        return [
            e
            for e in items(ground.ns_path("events"))
            if e["involvedObject"]["name"] == "needs-runner" and e["reason"] == "FailedCreate"
        ]

    def pods() -> list[dict[str, Any]]:
        return [
            p
            for p in items(ground.ns_path("pods"))
            if p["metadata"]["labels"].get("batch.kubernetes.io/job-name") == "needs-runner"
        ]

    wait_for(warnings, timeout=30, what="a FailedCreate Warning")
    event = warnings()[0]
    assert event["type"] == "Warning"
    assert event["message"] == (
        'Error creating: pods "needs-runner-" is forbidden: error looking up service account '
        f'{ns}/runner: serviceaccount "runner" not found'
    )
    assert pods() == []
    status, job = ground.request("GET", f"{ground.ns_path('jobs', 'batch/v1')}/needs-runner")
    assert status == 200, job
    assert not (job.get("status") or {}).get("active")
    _create(ground, "serviceaccounts", {"metadata": {"name": "runner"}})
    wait_for(pods, timeout=30, what="the Pod once the account exists")


@pytest.mark.kubectl
def test_kubectl_shows_the_refusal(ground: Ground, kubectl: Kubectl) -> None:
    result = kubectl.run(
        "run", "p", "--image=busybox", "--restart=Never", "--overrides",
        '{"spec":{"serviceAccountName":"nobody"}}', check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        'Error from server (Forbidden): pods "p" is forbidden: error looking up service account '
        f'{ground.namespace}/nobody: serviceaccount "nobody" not found'
    ) in result.stderr
    assert "default" in wait_for(lambda: kubectl("get", "serviceaccounts", "-o", "name"))
