"""Approval policy (`koos.engine.approval`), pure: votes, outcomes, signed records, requests.

`decide_vote` is what the admission webhook asks before it records a decision: every refusal
is a sentence shown to the person, so each case asserts its words. `decide_approval` turns the
recorded decisions into the Approval's status; `encode_record`/`decode_record` sign and check
the record only the webhook writes; `request_spec` renders what an approve step asks for.
Every case passes a fixed clock. The planner's side (approve steps) is in
test_approve_step.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from koos.api.approval import ApprovalSpec, ApproveAction, Approvers, Decision, ExecutionRef
from koos.engine import expressions
from koos.engine.approval import (
    Caller,
    VoteRefused,
    decide_approval,
    decide_vote,
    decode_record,
    encode_record,
    is_approver,
    render_names,
    request_spec,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DEADLINE = T0 + timedelta(hours=1)
NOW = T0 + timedelta(minutes=10)
NAME = "demo-gate"

ALICE = Caller("alice", ("sre", "system:authenticated"))
DAVE = Caller("dave", ("sre", "system:authenticated"))
BOB = Caller("bob", ("dev", "system:authenticated"))
CAROL = Caller("carol", ("sre", "system:authenticated"))  # created the Execution
DEPLOYER = Caller("system:serviceaccount:ops:deployer", ("system:serviceaccounts",))
ROBOT = Caller("system:serviceaccount:ci:robot", ("system:serviceaccounts",))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def request(**fields: Any) -> ApprovalSpec:
    """Approval `demo-gate` of Execution `demo` (created by carol), approvers: group sre,
    deadline 13:00; `fields` override any of it (approvers as a dict)."""
    approvers = fields.pop("approvers", {"groups": ["sre"]})
    return ApprovalSpec(
        execution_ref=ExecutionRef(name="demo", uid="exe-uid"),
        step="gate",
        approvers=Approvers.model_validate(approvers),
        requested_by="carol",
        deadline="2025-03-01T13:00:00Z",
        **fields,
    )


def decided(
    user: str,
    decision: str = "approve",
    reason: str | None = None,
    *,
    minute: int = 5,
    verified: bool = True,
) -> Decision:
    return Decision.model_validate(
        {
            "user": user,
            "groups": ["sre"],
            "decision": decision,
            "reason": reason,
            "time": f"2025-03-01T12:{minute:02d}:00Z",
            "verified": verified,
        }
    )


def vote(
    caller: Caller,
    value: str | None = "approve",
    reason: str | None = None,
    *,
    spec: ApprovalSpec | None = None,
    phase: str | None = None,
    decisions: tuple[Decision, ...] = (),
    now: datetime = NOW,
) -> Decision:
    return decide_vote(
        name=NAME,
        namespace="ops",
        spec=spec or request(),
        phase=phase,
        decisions=decisions,
        caller=caller,
        value=value,
        reason=reason,
        now=now,
    )


# --- decide_vote: refusals ----------------------------------------------------------------

NOT_APPROVER = 'user "bob" (groups: dev, system:authenticated) is not an approver of demo-gate'
ALREADY = 'user "alice" already decided approve at 2025-03-01T12:05:00Z: one decision per person'
SEVERAL_GROUPS = request(approvers={"groups": ["sre", "oncall"]})
REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "an unknown decision value": (
        {"caller": ALICE, "value": "maybe"},
        'koos.io/decision must be "approve" or "reject", got "maybe"',
    ),
    "a decision value in the wrong case": (
        {"caller": ALICE, "value": "Approve"},
        'koos.io/decision must be "approve" or "reject", got "Approve"',
    ),
    "an empty decision value": (
        {"caller": ALICE, "value": ""},
        'koos.io/decision must be "approve" or "reject", got ""',
    ),
    "a vote once Approved": (
        {"caller": ALICE, "phase": "Approved"},
        "approval demo-gate is already Approved: it takes no more decisions",
    ),
    "a vote once Rejected": (
        {"caller": ALICE, "value": "reject", "reason": "no", "phase": "Rejected"},
        "approval demo-gate is already Rejected: it takes no more decisions",
    ),
    "a vote once Expired": (
        {"caller": ALICE, "phase": "Expired"},
        "approval demo-gate is already Expired: it takes no more decisions",
    ),
    "a vote once cancelled (still Pending)": (
        {"caller": ALICE, "phase": "Pending", "spec": request(cancelled=True)},
        "approval demo-gate is already cancelled: it takes no more decisions",
    ),
    "a vote once cancelled (not yet seen by the controller)": (
        {"caller": ALICE, "spec": request(cancelled=True)},
        "approval demo-gate is already cancelled: it takes no more decisions",
    ),
    "a vote at the deadline": (
        {"caller": ALICE, "now": DEADLINE},
        "approval demo-gate expired at 2025-03-01T13:00:00Z: it takes no more decisions",
    ),
    "a vote after the deadline, before the controller expired it": (
        {"caller": ALICE, "phase": "Pending", "now": DEADLINE + timedelta(minutes=5)},
        "approval demo-gate expired at 2025-03-01T13:00:00Z: it takes no more decisions",
    ),
    "a user in no approver group": (
        {"caller": BOB},
        f"{NOT_APPROVER}; approvers are groups sre",
    ),
    "a user not listed, with every kind of approver named": (
        {
            "caller": BOB,
            "spec": request(
                approvers={"users": ["alice"], "groups": ["sre"], "serviceAccounts": ["deployer"]}
            ),
        },
        f"{NOT_APPROVER}; approvers are users alice; groups sre; serviceAccounts deployer",
    ),
    "a user without groups": (
        {"caller": Caller("mallory")},
        'user "mallory" (groups: none) is not an approver of demo-gate; approvers are groups sre',
    ),
    "a rejection by a non-approver, reason given": (
        {"caller": BOB, "value": "reject", "reason": "I object"},
        f"{NOT_APPROVER}; approvers are groups sre",
    ),
    "a ServiceAccount of the same name in another namespace": (
        {
            "caller": Caller("system:serviceaccount:other:deployer"),
            "spec": request(approvers={"serviceAccounts": ["deployer"]}),
        },
        'user "system:serviceaccount:other:deployer" (groups: none) is not an approver of '
        "demo-gate; approvers are serviceAccounts deployer",
    ),
    "a user whose name is a listed group": (
        {"caller": Caller("sre")},
        'user "sre" (groups: none) is not an approver of demo-gate',
    ),
    "the creator approving (allowSelfApproval false)": (
        {"caller": CAROL},
        'user "carol" created execution demo and may not approve it (allowSelfApproval is '
        "false): ask another approver",
    ),
    "a second approval by the same person": (
        {"caller": ALICE, "decisions": (decided("alice"),)},
        ALREADY,
    ),
    "a second vote of the other kind": (
        {
            "caller": ALICE,
            "value": "reject",
            "reason": "changed my mind",
            "decisions": (decided("alice"),),
        },
        ALREADY,
    ),
    "a second vote through another of several approver groups": (
        {
            "caller": Caller("alice", ("sre", "oncall")),
            "spec": SEVERAL_GROUPS,
            "decisions": (decided("dave"), decided("alice")),
        },
        ALREADY,
    ),
    "an approval after a rejection by the same person": (
        {"caller": ALICE, "decisions": (decided("alice", "reject", "risky", minute=7),)},
        'user "alice" already decided reject at 2025-03-01T12:07:00Z: one decision per person',
    ),
    "a reject without reason (requireReason Rejections, the default)": (
        {"caller": ALICE, "value": "reject"},
        'a reason is required to reject: add koos.io/reason="why" to the same annotate',
    ),
    "a reject with a blank reason": (
        {"caller": ALICE, "value": "reject", "reason": "   "},
        'a reason is required to reject: add koos.io/reason="why" to the same annotate',
    ),
    "a reject without reason (requireReason Always)": (
        {"caller": ALICE, "value": "reject", "spec": request(require_reason="Always")},
        'a reason is required to reject: add koos.io/reason="why" to the same annotate',
    ),
    "an approve without reason (requireReason Always)": (
        {"caller": ALICE, "spec": request(require_reason="Always")},
        'a reason is required to approve: add koos.io/reason="why" to the same annotate',
    ),
}


@pytest.mark.parametrize(("given", "words"), REFUSALS.values(), ids=REFUSALS.keys())
def test_decide_vote_refuses_saying_why(given: dict[str, Any], words: str) -> None:
    with pytest.raises(VoteRefused) as refused:
        vote(**given)
    assert words in str(refused.value)


# --- decide_vote: accepted votes ----------------------------------------------------------

ACCEPTED: dict[str, tuple[dict[str, Any], str | None]] = {
    "a listed user": (
        {"caller": Caller("alice"), "spec": request(approvers={"users": ["alice"]})},
        None,
    ),
    "a member of a listed group": ({"caller": ALICE}, None),
    "a member of one of several groups": (
        {"caller": Caller("alice", ("oncall",)), "spec": SEVERAL_GROUPS},
        None,
    ),
    "a ServiceAccount named in the Approval's namespace": (
        {"caller": DEPLOYER, "spec": request(approvers={"serviceAccounts": ["deployer"]})},
        None,
    ),
    "a ServiceAccount given as namespace/name": (
        {"caller": ROBOT, "spec": request(approvers={"serviceAccounts": ["ci/robot"]})},
        None,
    ),
    "the creator approving when allowSelfApproval is true": (
        {"caller": CAROL, "spec": request(allow_self_approval=True)},
        None,
    ),
    "the creator rejecting (allowSelfApproval false)": (
        {"caller": CAROL, "value": "reject", "reason": "not now"},
        "not now",
    ),
    "a reject with a reason, trimmed": (
        {"caller": ALICE, "value": "reject", "reason": "  too risky \n"},
        "too risky",
    ),
    "an approve with a reason (requireReason Always)": (
        {"caller": ALICE, "reason": "checked", "spec": request(require_reason="Always")},
        "checked",
    ),
    "a reject without reason (requireReason Never)": (
        {"caller": ALICE, "value": "reject", "spec": request(require_reason="Never")},
        None,
    ),
    "another person after a first approval": (
        {"caller": DAVE, "decisions": (decided("alice"),)},
        None,
    ),
    "a vote just before the deadline": (
        {"caller": ALICE, "now": DEADLINE - timedelta(seconds=1)},
        None,
    ),
}


@pytest.mark.parametrize(("given", "reason"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_decide_vote_records_a_verified_decision(given: dict[str, Any], reason: str | None) -> None:
    caller: Caller = given["caller"]
    now: datetime = given.get("now", NOW)
    result = vote(**given)
    assert result == Decision(
        user=caller.username,
        groups=list(caller.groups),
        decision=given.get("value", "approve"),
        reason=reason,
        time=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        verified=True,
    )


IS_APPROVER = {
    "listed user": ({"users": ["alice"]}, Caller("alice"), True),
    "group": ({"groups": ["sre"]}, Caller("x", ("sre",)), True),
    "SA by name": ({"serviceAccounts": ["deployer"]}, DEPLOYER, True),
    "SA by namespace/name": ({"serviceAccounts": ["ci/robot"]}, ROBOT, True),
    "SA by name, other namespace": ({"serviceAccounts": ["robot"]}, ROBOT, False),
    "SA name as a user": ({"users": ["deployer"]}, DEPLOYER, False),
    "nobody": ({}, ALICE, False),
}


@pytest.mark.parametrize(
    ("approvers", "caller", "expected"), IS_APPROVER.values(), ids=IS_APPROVER.keys()
)
def test_is_approver(approvers: dict[str, Any], caller: Caller, expected: bool) -> None:
    assert is_approver(Approvers.model_validate(approvers), "ops", caller) is expected


# --- decide_approval ----------------------------------------------------------------------


def decide(
    spec: ApprovalSpec,
    decisions: tuple[Decision, ...] = (),
    *,
    now: datetime = NOW,
    previous: Any = None,
    accept_unverified: bool = False,
) -> Any:
    return decide_approval(
        name=NAME,
        spec=spec,
        decisions=decisions,
        generation=3,
        previous=previous,
        now=now,
        accept_unverified=accept_unverified,
    )


WAITING_ONE = (
    "Waiting for 1 more approval(s) from groups sre: "
    "kubectl annotate approval demo-gate koos.io/decision=approve"
)
UNVERIFIED = (
    "1 unverified decision(s) ignored: they were not recorded through the admission webhook."
)
QUORUM = request(min_approvals=2)
OUTCOMES: dict[str, tuple[ApprovalSpec, tuple[Decision, ...], datetime, bool, tuple[Any, ...]]] = {
    # id: spec, decisions, now, accept_unverified -> phase, approvals, Approved, message, wake
    "no decision yet": (request(), (), NOW, False, ("Pending", 0, "False", WAITING_ONE, DEADLINE)),
    "one approval reaches quorum 1": (
        request(),
        (decided("alice"),),
        NOW,
        False,
        ("Approved", 1, "True", "Approved by alice.", None),
    ),
    "quorum 2 with one approval": (
        QUORUM,
        (decided("alice"),),
        NOW,
        False,
        ("Pending", 1, "False", WAITING_ONE, DEADLINE),
    ),
    "quorum 2 with the same person twice": (
        QUORUM,
        (decided("alice"), decided("alice", minute=6)),
        NOW,
        False,
        ("Pending", 1, "False", WAITING_ONE, DEADLINE),
    ),
    "quorum 2 with two people": (
        QUORUM,
        (decided("dave"), decided("alice", minute=6)),
        NOW,
        False,
        ("Approved", 2, "True", "Approved by alice, dave.", None),
    ),
    "a rejection": (
        QUORUM,
        (decided("bob", "reject", "too risky"),),
        NOW,
        False,
        ("Rejected", 0, "False", "Rejected by bob: too risky", None),
    ),
    "a rejection after one approval": (
        QUORUM,
        (decided("alice"), decided("bob", "reject", "not today", minute=6)),
        NOW,
        False,
        ("Rejected", 1, "False", "Rejected by bob: not today", None),
    ),
    "a rejection outweighs a reached quorum": (
        request(),
        (decided("alice"), decided("bob", "reject", "wait", minute=6)),
        NOW,
        False,
        ("Rejected", 1, "False", "Rejected by bob: wait", None),
    ),
    "a rejection recorded without reason": (
        request(require_reason="Never"),
        (decided("bob", "reject"),),
        NOW,
        False,
        ("Rejected", 0, "False", "Rejected by bob: no reason given", None),
    ),
    "the deadline passes, onTimeout Approve": (
        request(on_timeout="Approve"),
        (),
        DEADLINE,
        False,
        (
            "Expired",
            0,
            "True",
            "No decision before 2025-03-01T13:00:00Z: treated as approved (onTimeout).",
            None,
        ),
    ),
    "the deadline passes with too few approvals": (
        QUORUM,
        (decided("alice"),),
        DEADLINE + timedelta(minutes=1),
        False,
        ("Expired", 1, "False", "No decision before 2025-03-01T13:00:00Z", None),
    ),
    "the execution is cancelled": (
        request(cancelled=True),
        (),
        NOW,
        False,
        ("Expired", 0, "False", "The execution was cancelled.", None),
    ),
    "the execution is cancelled, onTimeout Approve": (
        request(cancelled=True, on_timeout="Approve"),
        (),
        NOW,
        False,
        ("Expired", 0, "False", "The execution was cancelled.", None),
    ),
    "an unverified approval is ignored": (
        request(),
        (decided("alice", verified=False),),
        NOW,
        False,
        ("Pending", 0, "False", f"{WAITING_ONE} {UNVERIFIED}", DEADLINE),
    ),
    "an unverified rejection is ignored": (
        request(),
        (decided("bob", "reject", "no", verified=False),),
        NOW,
        False,
        ("Pending", 0, "False", UNVERIFIED, DEADLINE),
    ),
    "only verified approvals count towards quorum": (
        QUORUM,
        (decided("alice"), decided("mallory", verified=False, minute=6)),
        NOW,
        False,
        ("Pending", 1, "False", UNVERIFIED, DEADLINE),
    ),
    "an unverified approval counts with accept_unverified": (
        request(),
        (decided("alice", verified=False),),
        NOW,
        True,
        ("Approved", 1, "True", "Approved by alice.", None),
    ),
}


@pytest.mark.parametrize(
    ("spec", "decisions", "now", "accept", "expected"), OUTCOMES.values(), ids=OUTCOMES.keys()
)
def test_decide_approval(
    spec: ApprovalSpec,
    decisions: tuple[Decision, ...],
    now: datetime,
    accept: bool,
    expected: tuple[Any, ...],
) -> None:
    phase, approvals, approved, words, wake = expected
    status, woken = decide(spec, decisions, now=now, accept_unverified=accept)
    assert (status.phase, status.approvals, woken) == (phase, approvals, wake)
    assert (status.required, status.progress) == (
        spec.min_approvals,
        f"{approvals}/{spec.min_approvals}",
    )
    assert status.deadline == spec.deadline and status.observed_generation == 3
    assert status.decisions == (list(decisions) or None)  # all of them, even those ignored
    assert words in (status.message or "")
    assert (UNVERIFIED in (status.message or "")) is any(
        not d.verified and not accept for d in decisions
    )
    [condition] = status.conditions or []
    assert (condition.type, condition.status, condition.reason) == ("Approved", approved, phase)
    assert condition.message == status.message and condition.observed_generation == 3


def test_an_expired_approval_says_it_is_treated_as_rejected() -> None:
    status, _ = decide(request(), (), now=DEADLINE)
    assert status.phase == "Expired"
    assert (
        status.message
        == "No decision before 2025-03-01T13:00:00Z: treated as rejected (onTimeout)."
    )


STICKY = {
    "Approved, then a rejection": (
        request(),
        (decided("alice"),),
        (decided("bob", "reject", "x"),),
    ),
    "Approved, then the deadline": (request(), (decided("alice"),), ()),
    "Rejected, then approvals": (
        request(),
        (decided("bob", "reject", "no"),),
        (decided("alice"), decided("dave")),
    ),
    "Expired, then an approval": (request(), (), (decided("alice"),)),
    "Expired by cancel, then an approval": (request(cancelled=True), (), (decided("alice"),)),
}


@pytest.mark.parametrize(("spec", "first", "later"), STICKY.values(), ids=STICKY.keys())
def test_a_decided_approval_stays_decided(
    spec: ApprovalSpec, first: tuple[Decision, ...], later: tuple[Decision, ...]
) -> None:
    when = NOW if first or spec.cancelled else DEADLINE
    decided_status, _ = decide(spec, first, now=when)
    assert decided_status.phase != "Pending"
    again, wake = decide(
        spec, first + later, now=DEADLINE + timedelta(hours=1), previous=decided_status
    )
    assert again.phase == decided_status.phase
    assert again.message == decided_status.message
    assert again.conditions == decided_status.conditions
    assert wake is None


def test_a_decided_approval_with_an_ignored_decision_keeps_its_message() -> None:
    decisions = (decided("alice"), decided("mallory", verified=False, minute=6))
    first, _ = decide(request(), decisions)
    assert first.phase == "Approved" and (first.message or "").count(UNVERIFIED) == 1
    again, _ = decide(request(), decisions, now=at(20), previous=first)
    assert again == first


def test_the_approved_condition_moves_only_when_it_flips() -> None:
    def since(status: Any) -> str:
        [condition] = status.conditions
        return str(condition.last_transition_time)

    spec = request(min_approvals=2)
    pending, _ = decide(spec, (), now=at(1))
    one, _ = decide(spec, (decided("alice"),), now=at(6), previous=pending)
    two, _ = decide(spec, (decided("alice"), decided("dave")), now=at(7), previous=one)
    later, _ = decide(spec, (decided("alice"), decided("dave")), now=at(9), previous=two)
    assert [s.phase for s in (pending, one, two, later)] == [
        "Pending",
        "Pending",
        "Approved",
        "Approved",
    ]
    assert [since(s) for s in (pending, one, two, later)] == [
        "2025-03-01T12:01:00Z",
        "2025-03-01T12:01:00Z",  # False → False
        "2025-03-01T12:07:00Z",  # False → True
        "2025-03-01T12:07:00Z",
    ]
    rejected, _ = decide(spec, (decided("bob", "reject", "no"),), now=at(8), previous=pending)
    assert rejected.phase == "Rejected" and since(rejected) == "2025-03-01T12:01:00Z"


def test_a_pending_approval_wakes_at_its_deadline_and_says_how_many_are_missing() -> None:
    spec = request(min_approvals=3, approvers={"users": ["alice"], "groups": ["sre"]})
    status, wake = decide(spec, (decided("alice"),))
    assert wake == DEADLINE
    assert status.message == (
        "Waiting for 2 more approval(s) from users alice; groups sre: "
        "kubectl annotate approval demo-gate koos.io/decision=approve"
    )


# --- Signed records -----------------------------------------------------------------------

KEY = b"operator-key"
UID = "approval-uid"
RECORDED = (decided("alice"), decided("bob", "reject", "too risky", minute=7))


def record_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(encode_record(KEY, UID, RECORDED))
    return data


def test_a_record_round_trips_and_is_valid() -> None:
    text = encode_record(KEY, UID, RECORDED)
    assert decode_record(KEY, UID, text) == (list(RECORDED), True)
    assert decode_record(KEY, UID, encode_record(KEY, UID, [])) == ([], True)


@pytest.mark.parametrize("text", [None, ""], ids=["absent", "empty"])
def test_no_record_means_no_decisions(text: str | None) -> None:
    assert decode_record(KEY, UID, text) == ([], True)


def _tampered(change: Callable[[dict[str, Any]], None]) -> str:
    data = record_json()
    change(data)
    return json.dumps(data)


def _decision(user: str) -> dict[str, Any]:
    return decided(user).model_dump(mode="json", exclude_none=True)


NOT_VALID: dict[str, tuple[bytes | None, str, str]] = {
    "a changed user": (
        KEY,
        UID,
        _tampered(lambda d: d["decisions"][0].update(user="mallory")),
    ),
    "a reject turned into an approve": (
        KEY,
        UID,
        _tampered(lambda d: d["decisions"][1].update(decision="approve")),
    ),
    "a changed reason": (
        KEY,
        UID,
        _tampered(lambda d: d["decisions"][1].update(reason="fine by me")),
    ),
    "an added decision": (
        KEY,
        UID,
        _tampered(lambda d: d["decisions"].append(_decision("mallory"))),
    ),
    "a removed decision": (KEY, UID, _tampered(lambda d: d["decisions"].pop(1))),
    "a removed signature": (KEY, UID, _tampered(lambda d: d.pop("signature"))),
    "a hand-written record": (
        KEY,
        UID,
        json.dumps({"decisions": [_decision("mallory")], "signature": "0" * 64}),
    ),
    "signed with another key": (KEY, UID, encode_record(b"another-key", UID, RECORDED)),
    "signed for another Approval": (KEY, UID, encode_record(KEY, "other-uid", RECORDED)),
    "no key to check with": (None, UID, encode_record(KEY, UID, RECORDED)),
    "garbage JSON": (KEY, UID, "{not json"),
    "a JSON list": (KEY, UID, "[1, 2]"),
    "a JSON string": (KEY, UID, '"decisions"'),
    "decisions that are not decisions": (KEY, UID, '{"decisions": [1], "signature": ""}'),
    "a decision missing its user": (
        KEY,
        UID,
        json.dumps({"decisions": [{"decision": "approve", "time": "x"}], "signature": ""}),
    ),
}


@pytest.mark.parametrize(("key", "uid", "text"), NOT_VALID.values(), ids=NOT_VALID.keys())
def test_a_record_that_does_not_hold_is_not_valid(key: bytes | None, uid: str, text: str) -> None:
    _, valid = decode_record(key, uid, text)
    assert valid is False


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"decisions": [1]}'])
def test_an_unreadable_record_yields_no_decisions(text: str) -> None:
    assert decode_record(KEY, UID, text) == ([], False)


def test_a_signature_with_non_ascii_characters_is_not_valid() -> None:
    text = _tampered(lambda d: d.update(signature="é" + d["signature"][1:]))
    _, valid = decode_record(KEY, UID, text)
    assert valid is False


# --- request_spec -------------------------------------------------------------------------

CONTEXT = {
    "params": {
        "who": ["alice", "bob"],
        "csv": "alice, bob ,,carol",
        "team": "sre",
        "n": 2,
        "zero": 0,
        "word": "two",
        "version": "1.4.2",
    },
    "steps": {},
    "execution": {"name": "demo", "namespace": "ops"},
}


def render(text: str) -> Any:
    return expressions.render(text, CONTEXT)


def ask(now: datetime = T0, creator: str | None = "carol", **action: Any) -> ApprovalSpec:
    action.setdefault("approvers", {"groups": ["sre"]})
    return request_spec(
        action=ApproveAction.model_validate(action),
        execution="demo",
        uid="exe-uid",
        step="gate",
        creator=creator,
        parameters={"version": "1.4.2"},
        render=render,
        now=now,
    )


NAMES = {
    "a plain list": (["alice", "bob"], ["alice", "bob"]),
    "one expression rendering to a list": ("{{ params.who }}", ["alice", "bob"]),
    "a comma-separated string": ("{{ params.csv }}", ["alice", "bob", "carol"]),
    "a literal comma-separated string": ("alice,bob", ["alice", "bob"]),
    "list items that are expressions": (["{{ params.team }}", "oncall"], ["sre", "oncall"]),
    "nothing": (None, []),
}


@pytest.mark.parametrize(("value", "expected"), NAMES.values(), ids=NAMES.keys())
def test_render_names(value: list[str] | str | None, expected: list[str]) -> None:
    assert render_names(value, render) == expected


def test_request_spec_renders_what_the_step_asks_for() -> None:
    spec = ask(
        approvers={
            "users": "{{ params.who }}",
            "groups": "{{ params.csv }}",
            "serviceAccounts": ["ci/robot", "{{ params.team }}"],
        },
        minApprovals="{{ params.n }}",
        message="Deploy {{ params.version }} to {{ execution.namespace }}?",
        timeout="90m",
        onTimeout="Approve",
        allowSelfApproval=True,
        requireReason="Always",
    )
    assert spec.model_dump(mode="json", by_alias=True, exclude_none=True) == {
        "executionRef": {"name": "demo", "uid": "exe-uid"},
        "step": "gate",
        "approvers": {
            "users": ["alice", "bob"],
            "groups": ["alice", "bob", "carol"],
            "serviceAccounts": ["ci/robot", "sre"],
        },
        "approversFromParameters": True,
        "minApprovals": 2,
        "message": "Deploy 1.4.2 to ops?",
        "parameters": {"version": "1.4.2"},
        "requestedBy": "carol",
        "deadline": "2025-03-01T13:30:00Z",
        "onTimeout": "Approve",
        "allowSelfApproval": True,
        "requireReason": "Always",
    }


def test_request_spec_defaults() -> None:
    spec = ask(now=T0 + timedelta(seconds=30), creator=None)
    assert (spec.min_approvals, spec.message, spec.requested_by) == (1, None, None)
    assert spec.deadline == "2025-03-02T12:00:30Z"  # 24h
    assert (spec.on_timeout, spec.allow_self_approval, spec.require_reason) == (
        "Reject",
        False,
        "Rejections",
    )
    assert spec.approvers == Approvers(groups=["sre"])


BAD_MINIMUM = {
    "zero": (0, "minApprovals must be a whole number of at least 1, got 0"),
    "negative": (-1, "minApprovals must be a whole number of at least 1, got -1"),
    "an expression rendering to zero": (
        "{{ params.zero }}",
        "minApprovals must be a whole number of at least 1",
    ),
    "an expression rendering to a word": (
        "{{ params.word }}",
        "minApprovals must be a whole number",
    ),
}


@pytest.mark.parametrize(("minimum", "words"), BAD_MINIMUM.values(), ids=BAD_MINIMUM.keys())
def test_request_spec_refuses_a_bad_min_approvals(minimum: int | str, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        ask(minApprovals=minimum)


def test_request_spec_refuses_min_approvals_rendering_to_a_list() -> None:
    with pytest.raises(ValueError, match="minApprovals"):
        ask(minApprovals="{{ params.who }}")
