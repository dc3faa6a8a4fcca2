"""What the operator can verify about an approve step (`koos.engine.approval_proof`, the
signed request of `koos.engine.approval`, and the self-approval routes of `decide_vote`):

- the Approval's outcome comes from its spec and the signed record of decisions, never from
  the status a status patch could write;
- an Approval counts only when koos signed its request for this run and step;
- a settled approve step carries koos's proof, and the planner fails a run whose approve
  step says it passed without one (StatusTampered);
- the requester cannot approve her own run by name, and no ServiceAccount approves when the
  approvers came from the run's parameters (unless allowSelfApproval).

Every case builds its inputs directly and passes a fixed clock."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from koos.api.approval import ApprovalSpec, ApproveAction, Approvers, Decision, ExecutionRef
from koos.api.constants import ANNOTATION_DECISIONS, ANNOTATION_REQUEST_SIGNATURE
from koos.api.execution import ExecutionSpec, ExecutionStatus, StepStatus
from koos.api.template import TemplateSpec
from koos.engine.approval import (
    Caller,
    VoteRefused,
    build_approval,
    decide_vote,
    encode_record,
    is_signed_request,
    request_spec,
)
from koos.engine.approval_proof import approval_facts, sealed, step_proof, tampered
from koos.engine.execution import plan
from koos.engine.facts import ApprovalFacts, ExecutionSnapshot, Plan, TemplateFacts

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KEY = b"operator-key"
EXE_UID = "exe-uid"


def spec(**fields: Any) -> ApprovalSpec:
    approvers = fields.pop("approvers", {"groups": ["sre"]})
    return ApprovalSpec(
        execution_ref=ExecutionRef(name="demo", uid=EXE_UID),
        step="gate",
        approvers=Approvers.model_validate(approvers),
        requested_by="carol",
        deadline="2025-03-01T13:00:00Z",
        **fields,
    )


def approval(key: bytes | None = KEY, *decisions: Decision, **fields: Any) -> dict[str, Any]:
    """Approval demo-gate as the API server returns it: koos's manifest, a uid, and the
    signed record of `decisions`."""
    body = build_approval(
        execution="demo", namespace="ops", uid=EXE_UID, step="gate", spec=spec(**fields), key=key
    )
    body["metadata"]["uid"] = "approval-uid"
    if decisions:
        notes = body["metadata"].setdefault("annotations", {})
        notes[ANNOTATION_DECISIONS] = encode_record(KEY, "approval-uid", decisions)
    return body


def decision(user: str, value: str = "approve") -> Decision:
    return Decision(user=user, decision=value, time="2025-03-01T12:05:00Z", verified=True)  # type: ignore[arg-type]


def facts_of(body: dict[str, Any], **given: Any) -> ApprovalFacts:
    options: dict[str, Any] = {
        "key": KEY,
        "execution_uid": EXE_UID,
        "step": "gate",
        "trust_unverified": False,
        "now": T0 + timedelta(minutes=10),
    }
    return approval_facts(body, **{**options, **given})


# --- the outcome comes from the signed record ------------------------------------------------


def test_a_status_written_by_hand_decides_nothing() -> None:
    body = approval()
    body["status"] = {"phase": "Approved", "decisions": [{"user": "bob", "decision": "approve"}]}

    facts = facts_of(body)

    assert (facts.phase, facts.approved_by, facts.problem) == ("Pending", (), "")


def test_a_signed_decision_approves() -> None:
    facts = facts_of(approval(KEY, decision("alice")))

    assert (facts.phase, facts.approved_by) == ("Approved", ("alice",))


def test_a_record_signed_with_another_key_counts_only_when_unverified_ones_are_trusted() -> None:
    body = approval(KEY, decision("alice"))

    assert facts_of(body, key=b"another").problem  # and the request is not ours either
    unsigned = approval(KEY)
    unsigned["metadata"]["annotations"][ANNOTATION_DECISIONS] = (
        '{"decisions": [{"user": "unverified-1", "decision": "approve", '
        '"time": "2025-03-01T12:05:00Z"}], "signature": ""}'
    )
    assert facts_of(unsigned).phase == "Pending"
    trusted = facts_of(unsigned, trust_unverified=True)
    assert (trusted.phase, trusted.approved_by) == ("Approved", ("unverified-1",))


def test_expiry_and_rejection_come_from_the_spec_and_the_record() -> None:
    late = facts_of(approval(), now=T0 + timedelta(hours=2))
    assert late.phase == "Expired"
    rejected = facts_of(approval(KEY, decision("alice", "reject")))
    assert rejected.phase == "Rejected"


# --- only koos's own Approval counts -----------------------------------------------------


def unsigned_copy() -> dict[str, Any]:
    body = approval()
    del body["metadata"]["annotations"][ANNOTATION_REQUEST_SIGNATURE]
    return body


def edited_approvers() -> dict[str, Any]:
    body = approval()
    body["spec"]["approvers"] = {"users": ["bob"]}
    return body


def owned_by_another() -> dict[str, Any]:
    body = approval()
    body["metadata"]["ownerReferences"][0]["uid"] = "other"
    return body


NOT_OURS = {
    "no signature (made by a user)": (unsigned_copy, {}, "does not carry koos's signature"),
    "approvers changed after signing": (edited_approvers, {}, "does not carry koos's signature"),
    "owned by another Execution": (owned_by_another, {}, "not owned by this Execution"),
    "for another step": (approval, {"step": "other"}, "asks for another run or step"),
    "for another run": (approval, {"execution_uid": "x"}, "not owned by this Execution"),
    "unreadable spec": (lambda: {"metadata": {"name": "demo-gate"}, "spec": {}}, {}, "invalid"),
}


@pytest.mark.parametrize(("make", "given", "words"), NOT_OURS.values(), ids=NOT_OURS.keys())
def test_an_approval_koos_did_not_create_for_this_step_counts_for_nothing(
    make: Any, given: dict[str, Any], words: str
) -> None:
    body = make()
    body["metadata"].setdefault("annotations", {})[ANNOTATION_DECISIONS] = encode_record(
        KEY, "approval-uid", [decision("alice")]
    )

    facts = facts_of(body, **given)

    assert words in facts.problem
    assert facts.phase == "" and facts.approved_by == ()


def test_cancelling_keeps_the_signature_and_numbers_may_come_back_as_integers() -> None:
    body = approval(parameters={"replicas": 3.0})
    body["spec"]["cancelled"] = True
    body["spec"]["parameters"] = {"replicas": 3}

    assert is_signed_request(KEY, body)
    assert not is_signed_request(None, body)


# --- the proof of a settled approve step -----------------------------------------------------

TEMPLATE = TemplateSpec.model_validate(
    {
        "steps": [
            {"name": "gate", "approve": {"approvers": {"groups": ["sre"]}}},
            {"name": "restart", "run": {"image": "busybox", "script": "true"}},
        ]
    }
)


def snapshot(status: ExecutionStatus | None = None, **given: Any) -> ExecutionSnapshot:
    options: dict[str, Any] = {
        "name": "demo",
        "namespace": "ops",
        "uid": EXE_UID,
        "generation": 1,
        "spec": ExecutionSpec.model_validate({"templateRef": {"name": "tpl"}}),
        "status": status or ExecutionStatus(),
        "template": TemplateFacts("tpl", "tpl-uid", 1, TEMPLATE),
        "creator": "carol",
        "signing_key": KEY,
    }
    return ExecutionSnapshot(**{**options, **given})


def approved_pass() -> Plan:
    """The run asked for its Approval, then alice approved: the pass that settles the step."""
    asked = plan(snapshot(), T0)
    facts = ApprovalFacts("demo-gate", "Approved", "Approved by alice.", ("alice",))
    return plan(snapshot(asked.status, approvals={"demo-gate": facts}), T0 + timedelta(minutes=1))


def gate_record(result: Plan) -> StepStatus:
    return next(s for s in result.status.steps or [] if s.name == "gate")


def test_the_approval_koos_asks_for_is_signed() -> None:
    asked = plan(snapshot(), T0)

    assert is_signed_request(KEY, asked.create_approvals[0])


def test_a_step_koos_settles_carries_its_proof_and_the_run_goes_on() -> None:
    done = approved_pass()

    record = gate_record(done)
    assert record.phase == "Succeeded"
    assert record.proof == step_proof(KEY, EXE_UID, record)
    assert [j["metadata"]["labels"]["koos.io/step"] for j in done.create_jobs] == ["restart"]
    assert tampered(KEY, EXE_UID, TEMPLATE.all_steps(), done.status.steps or []) is None


def forge(status: ExecutionStatus, **update: Any) -> ExecutionStatus:
    steps = [
        s.model_copy(update=update) if s.name == "gate" else s
        for s in copy.deepcopy(status.steps or [])
    ]
    return status.model_copy(update={"steps": steps})


FORGERIES = {
    "Succeeded without a proof": {"phase": "Succeeded", "outputs": {"approvedBy": ["alice"]}},
    "Skipped without a proof": {"phase": "Skipped", "reason": "ConditionFalse"},
    "Failed without a proof (onError Continue would go on)": {"phase": "Failed"},
    "another run's proof": {"phase": "Succeeded", "proof": "0" * 64},
}


@pytest.mark.parametrize("update", FORGERIES.values(), ids=FORGERIES.keys())
def test_an_approve_step_settled_by_someone_else_fails_the_run(update: dict[str, Any]) -> None:
    asked = plan(snapshot(), T0)

    result = plan(snapshot(forge(asked.status, **update)), T0 + timedelta(minutes=1))

    assert result.status.phase == "Failed"
    assert result.status.conditions is not None
    assert result.status.conditions[0].reason == "StatusTampered"
    assert "written by someone else" in (result.status.message or "")
    assert result.create_jobs == ()
    assert result.event is not None and result.event.reason == "StatusTampered"


def test_a_proof_from_an_approved_record_does_not_fit_other_approvers() -> None:
    done = approved_pass()

    changed = forge(done.status, outputs={"approvedBy": ["mallory"]})

    assert plan(snapshot(changed), T0 + timedelta(minutes=2)).status.phase == "Failed"


def test_without_a_key_nothing_is_signed_nor_checked() -> None:
    records = [StepStatus(name="gate", phase="Succeeded")]
    steps = TEMPLATE.steps

    assert tampered(None, EXE_UID, steps, records) is None
    assert sealed(None, EXE_UID, steps, [], records) == records


# --- self-approval routes ---------------------------------------------------------------------


def vote(caller: Caller, given: ApprovalSpec) -> Decision:
    return decide_vote(
        name="demo-gate",
        namespace="ops",
        spec=given,
        phase=None,
        decisions=(),
        caller=caller,
        value="approve",
        reason=None,
        now=T0,
    )


ROBOT = Caller("system:serviceaccount:ops:robot", ("system:serviceaccounts",))


def asked(approvers: dict[str, Any], **action: Any) -> ApprovalSpec:
    return request_spec(
        action=ApproveAction.model_validate({"approvers": approvers, **action}),
        execution="demo",
        uid=EXE_UID,
        step="gate",
        creator="carol",
        parameters={"who": "robot"},
        render=lambda text: "robot" if "{{" in text else text,
        now=T0,
    )


def test_a_service_account_chosen_by_parameter_may_not_approve() -> None:
    given = asked({"serviceAccounts": "{{ params.who }}"})

    assert given.approvers_from_parameters is True
    with pytest.raises(VoteRefused, match="come from the run's parameters, which its creator"):
        vote(ROBOT, given)


def test_a_service_account_the_template_names_may_approve() -> None:
    given = asked({"serviceAccounts": ["robot"]})

    assert given.approvers_from_parameters is None
    assert vote(ROBOT, given).user == ROBOT.username


def test_allow_self_approval_lets_a_service_account_from_parameters_approve() -> None:
    given = asked({"serviceAccounts": "{{ params.who }}"}, allowSelfApproval=True)

    assert vote(ROBOT, given).user == ROBOT.username


def test_a_person_chosen_by_parameter_approves_and_the_requester_never_does() -> None:
    given = asked({"users": ["{{ params.who }}", "carol"]})

    assert vote(Caller("robot", ()), given).user == "robot"
    with pytest.raises(VoteRefused, match='user "carol" created execution demo'):
        vote(Caller("carol", ("sre",)), given)


def test_the_requester_is_refused_through_a_group_too() -> None:
    with pytest.raises(VoteRefused, match='user "carol" created execution demo'):
        vote(Caller("carol", ("sre",)), spec())
