"""ServiceAccounts as the control plane keeps them: a `default` account in every namespace,
Pods refused when their ServiceAccount is missing (403, as the admission plugin words it),
and the Job controller waiting with FailedCreate Warnings until the account exists."""

from __future__ import annotations

from typing import Any

import pytest

from koos_sandbox.app import Sandbox
from koos_sandbox.errors import ApiError
from koos_sandbox.testing import Kubectl, async_wait_for, wait_for
from koos_sandbox.writes import WriteOptions

NS = "default"


def _rt(sb: Sandbox, plural: str) -> Any:
    return sb.state.registry.find("batch" if plural == "jobs" else "", "v1", plural)


async def _create(sb: Sandbox, plural: str, body: dict[str, Any], ns: str = NS) -> Any:
    admin = sb.state.authn.authenticate(f"Bearer {sb.admin_token}", None, [])
    return await sb.state.writes.create(admin, _rt(sb, plural), ns, body, WriteOptions())


def _pod(name: str, account: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}
    if account:
        spec["serviceAccountName"] = account
    return {"metadata": {"name": name}, "spec": spec}


async def test_every_namespace_has_a_default_account_that_pods_get(asandbox: Sandbox) -> None:
    await _create(asandbox, "namespaces", {"metadata": {"name": "team"}}, "")
    assert asandbox.store.find(_rt(asandbox, "serviceaccounts"), "team", "default") is not None
    pod = await _create(asandbox, "pods", _pod("plain"), "team")
    assert pod["spec"]["serviceAccountName"] == "default"


async def test_a_pod_naming_a_missing_account_is_forbidden(asandbox: Sandbox) -> None:
    with pytest.raises(ApiError) as refused:
        await _create(asandbox, "pods", _pod("lost", "ghost"))
    assert refused.value.code == 403
    assert refused.value.status()["reason"] == "Forbidden"
    assert refused.value.message == (
        'pods "lost" is forbidden: error looking up service account default/ghost: '
        'serviceaccount "ghost" not found'
    )
    assert asandbox.store.find(_rt(asandbox, "pods"), NS, "lost") is None
    await _create(asandbox, "serviceaccounts", {"metadata": {"name": "ghost"}})
    await _create(asandbox, "pods", _pod("lost", "ghost"))


async def test_a_job_with_a_missing_account_waits_with_warnings(asandbox: Sandbox) -> None:
    template = {"spec": {**_pod("")["spec"], "serviceAccountName": "runner"}}
    body = {"metadata": {"name": "needs-runner"}, "spec": {"template": template}}
    await _create(asandbox, "jobs", body)

    def warnings() -> list[dict[str, Any]]:
        return [
            e
            for e in asandbox.store.items(("", "events"), NS)
            if e["involvedObject"]["name"] == "needs-runner" and e["reason"] == "FailedCreate"
        ]

    def pods() -> list[dict[str, Any]]:
        return [
            p
            for p in asandbox.store.items(("", "pods"), NS)
            if p["metadata"]["labels"].get("batch.kubernetes.io/job-name") == "needs-runner"
        ]

    await async_wait_for(warnings, what="a FailedCreate Warning")
    event = warnings()[0]
    assert event["type"] == "Warning"
    assert event["message"] == (
        'Error creating: pods "needs-runner-" is forbidden: error looking up service account '
        'default/runner: serviceaccount "runner" not found'
    )
    assert pods() == []
    job = asandbox.store.find(_rt(asandbox, "jobs"), NS, "needs-runner")
    assert not (job.get("status") or {}).get("active")
    await _create(asandbox, "serviceaccounts", {"metadata": {"name": "runner"}})
    await async_wait_for(pods, timeout=5, what="the Pod once the account exists")


@pytest.mark.kubectl
def test_kubectl_shows_the_refusal(kubectl: Kubectl) -> None:
    result = kubectl.run(
        "run", "p", "--image=busybox", "--restart=Never", "--overrides",
        '{"spec":{"serviceAccountName":"nobody"}}', check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        'Error from server (Forbidden): pods "p" is forbidden: error looking up service account '
        'default/nobody: serviceaccount "nobody" not found'
    ) in result.stderr
    assert "default" in wait_for(lambda: kubectl("get", "serviceaccounts", "-o", "name"))
