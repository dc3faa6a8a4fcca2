"""Who may have a Template's steps run as a ServiceAccount (issue 10 item 9): the author must
be allowed to create Jobs in the namespace, as a SubjectAccessReview answers at admission."""

from __future__ import annotations

from typing import Any

import pytest

from koos_sandbox.auth import DenyRule, UserInfo
from koos_sandbox.errors import ApiError
from koos_sandbox.writes import WriteOptions

from .conftest import NS, Koos

pytestmark = pytest.mark.sandbox_only(
    "denies the author with the sandbox's authorisation rules (the real ground's RBAC is "
    "exercised in tests/realplane)"
)

ALICE = UserInfo("alice", "uid-alice", ("sre", "system:authenticated"))
BOB = UserInfo("bob", "uid-bob", ("dev", "system:authenticated"))


def template(name: str, account: str | None = "deployer", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"steps": [{"name": "s", "run": {"image": "busybox", "script": "true"}}]}
    if account:
        spec["serviceAccountName"] = account
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": name, **extra},
        "spec": spec,
    }


async def create(koos: Koos, user: UserInfo, body: dict[str, Any]) -> dict[str, Any]:
    return await koos.sandbox.state.writes.create(
        user, koos.rt("templates"), NS, body, WriteOptions()
    )


def deny_jobs_to(koos: Koos, user: str) -> None:
    koos.sandbox.state.authz.deny(
        DenyRule(verb="create", resource="jobs", user=user, api_group="batch", namespace=NS)
    )


async def test_an_author_who_may_not_create_jobs_may_not_name_a_service_account(
    koos: Koos,
) -> None:
    deny_jobs_to(koos, "bob")
    with pytest.raises(ApiError) as refused:
        await create(koos, BOB, template("bobs"))
    message = refused.value.message
    assert "spec.serviceAccountName: bob may not create Jobs in namespace default" in message
    assert "ServiceAccount deployer" in message
    assert koos.template("bobs") is None
    # Without a ServiceAccount of its own the template runs as the namespace's default one,
    # which the operator's Jobs would use anyway.
    assert (await create(koos, BOB, template("bobs-plain", account=None)))["metadata"]["name"]


async def test_an_author_who_may_create_jobs_may(koos: Koos) -> None:
    deny_jobs_to(koos, "bob")
    created = await create(koos, ALICE, template("alices"))
    assert created["spec"]["serviceAccountName"] == "deployer"


async def test_a_group_the_author_is_in_decides_too(koos: Koos) -> None:
    koos.sandbox.state.authz.deny(
        DenyRule(verb="create", resource="jobs", group="dev", api_group="batch")
    )
    with pytest.raises(ApiError):
        await create(koos, BOB, template("devs"))


async def test_an_update_that_changes_the_spec_is_checked_and_a_label_is_not(
    koos: Koos,
) -> None:
    await create(koos, ALICE, template("shared"))
    deny_jobs_to(koos, "bob")
    rt, writes = koos.rt("templates"), koos.sandbox.state.writes
    labelled = await writes.patch(
        BOB,
        rt,
        NS,
        "shared",
        "application/merge-patch+json",
        {"metadata": {"labels": {"team": "b"}}},
        WriteOptions(),
    )
    assert labelled["metadata"]["labels"] == {"team": "b"}
    with pytest.raises(ApiError) as refused:
        await writes.patch(
            BOB,
            rt,
            NS,
            "shared",
            "application/merge-patch+json",
            {"spec": {"serviceAccountName": "admin-sa"}},
            WriteOptions(),
        )
    assert "ServiceAccount admin-sa" in refused.value.message


async def test_a_template_is_refused_when_the_review_cannot_be_made(koos: Koos) -> None:
    koos.sandbox.state.authz.deny(DenyRule(verb="create", resource="subjectaccessreviews"))
    with pytest.raises(ApiError) as refused:
        await create(koos, ALICE, template("unchecked"))
    assert "koos could not check that you may create Jobs" in refused.value.message
    assert "403" in refused.value.message
