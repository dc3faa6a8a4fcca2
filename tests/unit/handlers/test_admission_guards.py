"""The webhooks that keep people away from what only the operator writes: the status of
Executions and Approvals, and the creation of Approvals. They refuse everyone but the
operator, and their matchConditions spare the API server the call for the operator's own
requests (it writes Execution status on every step). A vote on an Approval koos did not sign
is refused too."""

from __future__ import annotations

from typing import Any

import cel
import kopf
import pytest

from koos.api.approval import ApprovalSpec, Approvers, ExecutionRef
from koos.engine.approval import build_approval
from koos.handlers.admission import own_requests_skipped
from koos.handlers.approval import refuse_or_record, refuse_unless_operator

OP = "system:serviceaccount:koos-system:koos"
VALIDATING = "validatingwebhookconfigurations"
GUARDS = ("execution-status.koos.io", "approval-status.koos.io", "approval-created.koos.io")
KEY = b"operator-key"


def called(hook: str, user: str) -> bool:
    variables = {"request": {"userInfo": {"username": user}}, "object": {"metadata": {}}}
    conditions = own_requests_skipped(VALIDATING, hook, OP)
    assert conditions, f"{hook} has no matchConditions"
    return all(cel.compile(c["expression"]).execute(variables) for c in conditions)


@pytest.mark.parametrize("hook", GUARDS)
def test_the_guards_are_called_for_everyone_but_the_operator(hook: str) -> None:
    assert not called(hook, OP)
    assert called(hook, "alice")
    assert called(hook, "system:serviceaccount:koos-system:other")


@pytest.mark.parametrize("user", ["alice", "system:masters", ""])
def test_anyone_but_the_operator_is_refused(user: str) -> None:
    with pytest.raises(kopf.AdmissionError, match="koos only") as refused:
        refuse_unless_operator({"username": user}, OP, "written by koos only")
    assert refused.value.code == 403
    refuse_unless_operator({"username": OP}, OP, "written by koos only")  # passes


def approval(key: bytes | None) -> dict[str, Any]:
    spec = ApprovalSpec(
        execution_ref=ExecutionRef(name="demo", uid="exe-uid"),
        step="gate",
        approvers=Approvers(users=["bob"]),
        deadline="2099-01-01T00:00:00Z",
    )
    body = build_approval(
        execution="demo", namespace="ops", uid="exe-uid", step="gate", spec=spec, key=key
    )
    body["metadata"]["uid"] = "approval-uid"
    return body


def vote(old: dict[str, Any]) -> kopf.Patch:
    new = {**old, "metadata": {**old["metadata"], "annotations": {
        **(old["metadata"].get("annotations") or {}), "koos.io/decision": "approve"}}}  # fmt: skip
    patch = kopf.Patch()
    refuse_or_record(KEY, OP, "demo-gate", "ops", old, new, {"username": "bob"}, patch)
    return patch


def test_a_vote_on_an_approval_koos_did_not_sign_is_refused() -> None:
    with pytest.raises(kopf.AdmissionError, match="was not created by koos"):
        vote(approval(key=None))
    with pytest.raises(kopf.AdmissionError, match="was not created by koos"):
        vote(approval(key=b"someone else's"))
    assert "koos.io/decisions" in vote(approval(KEY))["metadata"]["annotations"]
