"""Adopting an Approval whose name an approve step needs (`koos.k8s.apply.ensure_approval`):
after a crash between the create and the status write the step asks again (with a later
deadline) and adopts its own Approval; anything else of that name — created by a person, for
another run, or asking something else — is not adopted, and nothing is changed."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from koos.api.approval import ApproveAction
from koos.api.constants import ANNOTATION_REQUEST_SIGNATURE
from koos.api.execution import ExecutionStatus
from koos.engine.approval import build_approval, request_spec
from koos.engine.facts import ExecutionSnapshot
from koos.k8s.apply import ensure_approval
from koos.k8s.client import Kube, KubeError

KEY = b"operator-key"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class NameTaken:
    """A client whose create meets 409 and whose read returns `existing`."""

    def __init__(self, existing: dict[str, Any] | None) -> None:
        self.existing = existing
        self.writes: list[tuple[str, Any]] = []

    async def create(self, path: str, body: Any) -> Any:
        self.writes.append((path, body))
        raise KubeError(409, "AlreadyExists", "exists")

    async def find(self, path: str) -> Any:
        return copy.deepcopy(self.existing)


def manifest(
    now: datetime, approvers: dict[str, Any] | None = None, uid: str = "exe-uid"
) -> dict[str, Any]:
    spec = request_spec(
        action=ApproveAction.model_validate({"approvers": approvers or {"groups": ["sre"]}}),
        execution="demo",
        uid=uid,
        step="gate",
        creator="carol",
        parameters={},
        render=lambda text: text,
        now=now,
    )
    return build_approval(
        execution="demo", namespace="ops", uid=uid, step="gate", spec=spec, key=KEY
    )


SNAPSHOT = ExecutionSnapshot(
    name="demo",
    namespace="ops",
    uid="exe-uid",
    generation=1,
    spec=None,
    status=ExecutionStatus(),
    signing_key=KEY,
)


def adopted(existing: dict[str, Any] | None) -> bool:
    kube = NameTaken(existing)
    wanted = manifest(T0 + timedelta(minutes=5))  # asked again, later
    result = asyncio.run(ensure_approval(cast(Kube, kube), SNAPSHOT, wanted))
    assert len(kube.writes) == 1  # the create, nothing else
    return result


def unsigned() -> dict[str, Any]:
    body = manifest(T0)
    del body["metadata"]["annotations"][ANNOTATION_REQUEST_SIGNATURE]
    return body


def relabelled() -> dict[str, Any]:
    body = manifest(T0)
    body["metadata"]["labels"]["koos.io/step"] = "other"
    return body


def test_its_own_approval_is_adopted_after_a_crash() -> None:
    assert adopted(manifest(T0))


CASES = {
    "created by a person (no signature)": unsigned,
    "made for another run": lambda: manifest(T0, uid="other-uid"),
    "asking other approvers": lambda: manifest(T0, {"users": ["bob"]}),
    "other labels": relabelled,
}


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_anything_else_of_that_name_is_not_adopted(make: Any) -> None:
    assert not adopted(make())


def test_an_approval_gone_meanwhile_is_asked_for_again() -> None:
    with pytest.raises(KubeError):
        adopted(None)
