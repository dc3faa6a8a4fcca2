"""Approve steps through the planner (`koos.engine.execution.plan` → `koos.engine.steps`).

An approve step asks for one Approval (`<execution>-<step>`, owned by the Execution), the run
shows phase Waiting with the command to decide it, and the Approval's outcome (as the k8s
layer reduces it to `ApprovalFacts`) settles the step: Approved, Rejected, Expired (by
`onTimeout`), lost, or withdrawn by a cancel. Template validation of approve steps is at the
end. The policy itself (votes, outcomes, signatures) is in test_approval.py. The helpers are
repeated from test_execution.py because pytest's importlib mode lets no test module import
another. Every case builds its snapshot directly and passes a fixed clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from koos.api.common import Condition
from koos.api.constants import (
    ANNOTATION_CANCEL,
    API_VERSION,
    LABEL_EXECUTION,
    LABEL_MANAGED_BY,
    LABEL_STEP,
)
from koos.api.execution import ExecutionSpec, ExecutionStatus, StepStatus
from koos.api.template import TemplateSpec
from koos.engine.execution import plan
from koos.engine.facts import (
    ApprovalFacts,
    ExecutionSnapshot,
    JobFacts,
    JobPhase,
    Plan,
    TemplateFacts,
)
from koos.engine.template import validate_template

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CANCEL = {ANNOTATION_CANCEL: "true"}
DB_PASSWORD = {"valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
DECIDE = "kubectl annotate approval demo-gate koos.io/decision=approve"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def step(name: str, **fields: Any) -> dict[str, Any]:
    """A step as a template holds it; a `run` of busybox unless the fields give an action."""
    if not {"run", "sleep", "approve"} & fields.keys():
        fields["run"] = {"image": "busybox", "script": "true"}
    return {"name": name, **fields}


def gate(**approve: Any) -> dict[str, Any]:
    """Approve step `gate`: group sre approves unless `approve` says otherwise."""
    on_error = approve.pop("onError", "Abort")
    return step("gate", approve={"approvers": {"groups": ["sre"]}, **approve}, onError=on_error)


def template(
    *steps: dict[str, Any], final: tuple[dict[str, Any], ...] = (), **spec: Any
) -> TemplateSpec:
    return TemplateSpec.model_validate({"steps": steps, "finally": final or None, **spec})


def snapshot(
    spec: TemplateSpec | None = None,
    *,
    status: ExecutionStatus | None = None,
    params: dict[str, Any] | None = None,
    jobs: tuple[JobFacts, ...] = (),
    approvals: tuple[ApprovalFacts, ...] = (),
    annotations: dict[str, str] | None = None,
    creator: str | None = "carol",
) -> ExecutionSnapshot:
    """Execution `demo` in namespace `ops`, created by carol, running Template `tpl`."""
    return ExecutionSnapshot(
        name="demo",
        namespace="ops",
        uid="exe-uid",
        generation=1,
        spec=ExecutionSpec.model_validate({"templateRef": {"name": "tpl"}, "parameters": params}),
        status=status or ExecutionStatus(),
        annotations=annotations or {},
        template=None if spec is None else TemplateFacts("tpl", "tpl-uid", 7, spec),
        jobs={job.name: job for job in jobs},
        approvals={facts.name: facts for facts in approvals},
        creator=creator,
    )


def job(step: str, phase: JobPhase = "Active", attempt: int = 1, **facts: Any) -> JobFacts:
    return JobFacts(name=f"demo-{step}-{attempt}", phase=phase, created=T0, **facts)


def facts(phase: str, message: str = "", *by: str, cancelled: bool = False) -> ApprovalFacts:
    return ApprovalFacts("demo-gate", phase, message, tuple(by), cancelled)


def replan(
    previous: Plan,
    now: datetime,
    *jobs: JobFacts,
    approvals: tuple[ApprovalFacts, ...] = (),
    annotations: dict[str, str] | None = None,
) -> Plan:
    """The plan for the next snapshot: the status `previous` wrote, these Jobs and Approvals."""
    given = snapshot(
        status=previous.status, jobs=jobs, approvals=approvals, annotations=annotations
    )
    return plan(given, now)


def record(result: Plan, name: str) -> StepStatus:
    return next(s for s in result.status.steps or [] if s.name == name)


def created(result: Plan) -> list[str]:
    return [manifest["metadata"]["name"] for manifest in result.create_jobs]


def asked(result: Plan) -> list[str]:
    return [manifest["metadata"]["name"] for manifest in result.create_approvals]


def conditions(result: Plan) -> dict[str, Condition]:
    return {c.type: c for c in result.status.conditions or []}


def waiting(spec: TemplateSpec, **given: Any) -> Plan:
    """A run of `spec` whose first step `gate` has asked for its Approval."""
    first = plan(snapshot(spec, **given), T0)
    assert asked(first) == ["demo-gate"]
    return first


# --- Asking -------------------------------------------------------------------------------

PARAMS = {
    "version": {"type": "string"},
    "token": {"type": "string", "secret": True},
}
RELEASE = template(
    step("build"),
    gate(message="Deploy {{ params.version }} built by {{ steps.build.outputs.by }}?"),
    step("deploy"),
    parameters=PARAMS,
)


def test_an_approve_step_asks_for_one_approval_and_the_run_waits() -> None:
    params = {"version": "1.4.2", "token": DB_PASSWORD}
    first = plan(snapshot(RELEASE, params=params), T0)
    assert created(first) == ["demo-build-1"] and first.create_approvals == ()

    result = replan(first, at(10), job("build", "Succeeded", message='{"by": "ci"}'))
    assert created(result) == [] and asked(result) == ["demo-gate"]
    [manifest] = result.create_approvals
    spec = dict(manifest["spec"])
    parameters = spec.pop("parameters")
    assert manifest == {
        "apiVersion": API_VERSION,
        "kind": "Approval",
        "metadata": {
            "name": "demo-gate",
            "namespace": "ops",
            "labels": {LABEL_MANAGED_BY: "koos", LABEL_EXECUTION: "demo", LABEL_STEP: "gate"},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Execution",
                    "name": "demo",
                    "uid": "exe-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": manifest["spec"],
    }
    assert spec == {
        "executionRef": {"name": "demo", "uid": "exe-uid"},
        "step": "gate",
        "approvers": {"groups": ["sre"]},
        "minApprovals": 1,
        "message": "Deploy 1.4.2 built by ci?",
        "requestedBy": "carol",
        "deadline": "2025-03-02T12:00:10Z",  # 24h after the step started
        "onTimeout": "Reject",
        "allowSelfApproval": False,
        "requireReason": "Rejections",
    }
    assert parameters["version"] == "1.4.2"
    assert parameters.get("token") in (None, DB_PASSWORD)  # a reference at most, never a value

    gate_record = record(result, "gate")
    assert (gate_record.phase, gate_record.reason, gate_record.approval) == (
        "Running",
        "AwaitingApproval",
        "demo-gate",
    )
    assert gate_record.start_time == "2025-03-01T12:00:10Z" and gate_record.job_name is None
    assert DECIDE in (gate_record.message or "")
    assert record(result, "deploy").phase == "Pending"

    status = result.status
    assert (status.phase, status.progress) == ("Waiting", "1/3")
    assert status.message == f"Waiting for approval: {DECIDE}"
    for kind in ("Succeeded", "Ready"):
        condition = conditions(result)[kind]
        assert (condition.status, condition.reason) == ("Unknown", "AwaitingApproval")
        assert DECIDE in condition.message
        assert condition.last_transition_time == "2025-03-01T12:00:00Z"  # still Unknown
    assert result.event is not None
    assert (result.event.type, result.event.reason) == ("Normal", "ApprovalRequested")
    assert "approval demo-gate" in result.event.message


def test_the_approval_renders_its_approvers_and_quorum_from_parameters() -> None:
    spec = template(
        gate(
            approvers={"users": "{{ params.approvers }}", "serviceAccounts": ["ci/robot"]},
            minApprovals="{{ params.quorum }}",
            timeout="30m",
            onTimeout="Approve",
            allowSelfApproval=True,
            requireReason="Always",
        ),
        parameters={
            "approvers": {"type": "array", "items": {"type": "string"}},
            "quorum": {"type": "integer", "default": 2},
        },
    )
    result = waiting(spec, params={"approvers": ["alice", "dave"]}, creator=None)
    approval = result.create_approvals[0]["spec"]
    assert approval["approvers"] == {"users": ["alice", "dave"], "serviceAccounts": ["ci/robot"]}
    assert approval["minApprovals"] == 2
    assert approval["deadline"] == "2025-03-01T12:30:00Z"
    assert (approval["onTimeout"], approval["allowSelfApproval"], approval["requireReason"]) == (
        "Approve",
        True,
        "Always",
    )
    assert "requestedBy" not in approval  # no creator stamp: nobody is the creator


def test_parallel_approve_steps_ask_for_an_approval_each() -> None:
    spec = template(
        step("gate", approve={"approvers": {"groups": ["sre"]}}, dependsOn=[]),
        step("legal", approve={"approvers": {"users": ["lena"]}}, dependsOn=[]),
    )
    result = plan(snapshot(spec), T0)
    assert asked(result) == ["demo-gate", "demo-legal"]
    assert result.status.phase == "Waiting"
    assert result.status.message == (
        f"Waiting for approval: {DECIDE}; "
        "kubectl annotate approval demo-legal koos.io/decision=approve"
    )


UNDECIDED = {
    "not yet seen by the controller": facts(""),
    "pending": facts("Pending", "Waiting for 1 more approval(s)"),
}


@pytest.mark.parametrize("given", UNDECIDED.values(), ids=UNDECIDED.keys())
def test_a_waiting_run_asks_nothing_more_and_stays_as_it_is(given: ApprovalFacts) -> None:
    first = waiting(template(gate(), step("deploy")))
    again = replan(first, at(600), approvals=(given,))
    assert again.status == first.status  # nothing to write
    assert (again.create_approvals, again.create_jobs, again.cancel_approvals) == ((), (), ())
    assert again.event is None and again.wake_at is None
    assert replan(again, at(900), approvals=(given,)) == again


# --- Deciding -----------------------------------------------------------------------------

BY_TWO = "Approved by alice, dave."
REJECTED = "Rejected by bob: too risky"
EXPIRED = "No decision before 2025-03-02T12:00:00Z: treated as rejected (onTimeout)."
OUTCOMES: dict[str, tuple[dict[str, Any], ApprovalFacts, tuple[Any, ...]]] = {
    # id: gate fields, Approval facts -> gate (phase, reason, message, outputs), jobs, run phase
    "approved": (
        {},
        facts("Approved", BY_TWO, "alice", "dave"),
        (
            "Succeeded",
            "Approved",
            BY_TWO,
            {"approvedBy": ["alice", "dave"]},
            ["demo-deploy-1"],
            "Running",
        ),
    ),
    "rejected (onError Abort)": (
        {},
        facts("Rejected", REJECTED),
        ("Failed", "Rejected", REJECTED, None, [], "Failed"),
    ),
    "rejected (onError Continue)": (
        {"onError": "Continue"},
        facts("Rejected", REJECTED),
        ("Failed", "Rejected", REJECTED, None, ["demo-deploy-1"], "Running"),
    ),
    "expired, onTimeout Approve": (
        {"onTimeout": "Approve"},
        facts("Expired", "No decision: treated as approved (onTimeout)."),
        (
            "Succeeded",
            "ApprovedOnTimeout",
            "No decision: treated as approved (onTimeout).",
            {"approvedBy": []},
            ["demo-deploy-1"],
            "Running",
        ),
    ),
    "expired, onTimeout Reject": (
        {},
        facts("Expired", EXPIRED),
        ("Failed", "ApprovalExpired", EXPIRED, None, [], "Failed"),
    ),
    "expired by a cancel, onTimeout Approve": (
        {"onTimeout": "Approve"},
        facts("Expired", "The execution was cancelled.", cancelled=True),
        ("Failed", "ApprovalExpired", "The execution was cancelled.", None, [], "Failed"),
    ),
    "deleted before it was decided": (
        {},
        facts("Deleted"),  # stands for nothing: the Approval is left out of the snapshot
        (
            "Failed",
            "ApprovalLost",
            "Approval demo-gate was deleted before it was decided.",
            None,
            [],
            "Failed",
        ),
    ),
}


@pytest.mark.parametrize(("fields", "given", "expected"), OUTCOMES.values(), ids=OUTCOMES.keys())
def test_the_approval_decides_the_step(
    fields: dict[str, Any], given: ApprovalFacts, expected: tuple[Any, ...]
) -> None:
    phase, reason, message, outputs, jobs, run = expected
    first = waiting(template(gate(**fields), step("deploy")))
    approvals = () if given.phase == "Deleted" else (given,)
    result = replan(first, at(60), approvals=approvals)
    gate_record = record(result, "gate")
    assert (gate_record.phase, gate_record.reason, gate_record.message) == (phase, reason, message)
    assert gate_record.outputs == outputs
    assert gate_record.completion_time == "2025-03-01T12:01:00Z"
    assert created(result) == jobs
    assert (result.create_approvals, result.cancel_approvals) == ((), ())
    assert result.status.phase == run
    assert result.event is not None
    if run == "Failed":  # onError Abort: nothing left to run, the run ends in this pass
        assert (result.event.type, result.event.reason) == ("Warning", "Failed")
        assert result.event.message == f"Step gate failed: {message}"
    elif phase == "Failed":
        assert (result.event.type, result.event.reason) == ("Warning", "StepFailed")
        assert f"step gate failed ({reason}): {message}" in result.event.message
    else:
        assert result.event.type == "Normal"  # the next step's start names the Event
        assert f"step gate approved: {message}" in result.event.message


def test_after_the_approval_the_run_goes_on_and_ends_succeeded() -> None:
    first = waiting(template(gate(), step("deploy"), outputs={"who": "{{ steps.gate.outputs }}"}))
    approved = facts("Approved", "Approved by alice.", "alice")
    going = replan(first, at(60), approvals=(approved,))
    assert (going.status.phase, going.status.message) == ("Running", "Running deploy.")
    assert conditions(going)["Succeeded"].reason == "Running"

    done = replan(going, at(90), job("deploy", "Succeeded"))
    assert done.status.phase == "Succeeded"
    assert done.status.outputs == {"who": {"approvedBy": ["alice"]}}


def test_a_rejection_fails_the_run_with_its_reason() -> None:
    first = waiting(template(gate(), step("deploy"), final=(step("report"),)))
    rejected = replan(first, at(60), approvals=(facts("Rejected", REJECTED),))
    assert [(s.name, s.phase, s.reason) for s in rejected.status.steps or []] == [
        ("gate", "Failed", "Rejected"),
        ("deploy", "Skipped", "Aborted"),
        ("report", "Running", "Started"),
    ]
    assert created(rejected) == ["demo-report-1"]
    assert rejected.status.phase == "Running"  # not Waiting any more

    done = replan(rejected, at(90), job("report", "Succeeded"))
    assert done.status.phase == "Failed"  # a failure, not a cancellation
    succeeded = conditions(done)["Succeeded"]
    assert (succeeded.status, succeeded.reason) == ("False", "Rejected")
    assert succeeded.message == f"Step gate failed: {REJECTED}"


def test_a_rejection_with_on_error_continue_lets_the_run_succeed() -> None:
    first = waiting(template(gate(onError="Continue"), step("deploy")))
    going = replan(first, at(60), approvals=(facts("Rejected", REJECTED),))
    done = replan(going, at(90), job("deploy", "Succeeded"))
    assert done.status.phase == "Succeeded"
    assert record(done, "gate").reason == "Rejected"


def test_an_expiry_with_too_few_approvals_is_approved_on_timeout() -> None:
    first = waiting(template(gate(minApprovals=2, onTimeout="Approve"), step("deploy")))
    expired = facts("Expired", "No decision: treated as approved (onTimeout).", "alice")
    result = replan(first, at(60), approvals=(expired,))
    assert (record(result, "gate").phase, record(result, "gate").reason) == (
        "Succeeded",
        "ApprovedOnTimeout",
    )


BAD_QUORUM = {
    "a word": ("string", "two", "minApprovals must be a whole number"),
    "zero": ("integer", 0, "minApprovals must be a whole number of at least 1, got 0"),
    "a list": pytest.param(
        "array",
        ["a", "b"],
        "minApprovals",
    ),
}


@pytest.mark.parametrize(("kind", "value", "words"), BAD_QUORUM.values(), ids=BAD_QUORUM.keys())
def test_a_quorum_that_renders_badly_fails_the_step(kind: str, value: Any, words: str) -> None:
    quorum = {"quorum": {"type": kind}}
    spec = template(gate(minApprovals="{{ params.quorum }}"), step("deploy"), parameters=quorum)
    assert validate_template(spec) == []
    result = plan(snapshot(spec, params={"quorum": value}), T0)
    gate_record = record(result, "gate")
    assert (gate_record.phase, gate_record.reason) == ("Failed", "ExpressionFailed")
    assert words in (gate_record.message or "")
    assert result.create_approvals == ()
    assert result.status.phase == "Failed"


# --- Cancel -------------------------------------------------------------------------------


def test_cancel_while_waiting_withdraws_the_approval_and_runs_finally() -> None:
    first = waiting(template(gate(), step("deploy"), final=(step("cleanup"),)))
    pending = facts("Pending")
    result = replan(first, at(60), approvals=(pending,), annotations=CANCEL)

    assert result.cancel_approvals == ("demo-gate",)
    assert result.consume_annotations == (ANNOTATION_CANCEL,)
    assert result.create_approvals == ()
    assert [(s.name, s.phase, s.reason) for s in result.status.steps or []] == [
        ("gate", "Cancelled", "Cancelled"),
        ("deploy", "Cancelled", "Cancelled"),
        ("cleanup", "Running", "Started"),
    ]
    assert created(result) == ["demo-cleanup-1"]
    assert result.status.phase == "Running"  # cancelling, no longer waiting for anyone
    assert conditions(result)["Succeeded"].reason == "Cancelling"
    assert result.event is not None
    assert (result.event.type, result.event.reason) == ("Warning", "CancelRequested")

    expired = facts("Expired", "The execution was cancelled.", cancelled=True)
    done = replan(result, at(90), job("cleanup", "Succeeded"), approvals=(expired,))
    assert done.status.phase == "Cancelled"
    assert done.cancel_approvals == ()
    assert record(done, "gate").phase == "Cancelled"


def test_cancel_before_an_approve_step_starts_asks_for_nothing() -> None:
    spec = template(step("build"), gate(), step("deploy"))
    result = plan(snapshot(spec, annotations=CANCEL), T0)
    assert (result.create_approvals, result.cancel_approvals) == ((), ())
    assert record(result, "gate").phase == "Cancelled"


# --- Template validation ------------------------------------------------------------------

NOBODY = "name at least one user, group or serviceAccount who may approve"
VALIDATION: dict[str, tuple[dict[str, Any], dict[str, Any], list[str]]] = {
    # id: approve fields, parameters -> problems
    "no approvers": ({"approvers": {}}, {}, [f"spec.steps[0].approve.approvers: {NOBODY}"]),
    "empty approver lists": (
        {"approvers": {"users": [], "groups": [], "serviceAccounts": []}},
        {},
        [f"spec.steps[0].approve.approvers: {NOBODY}"],
    ),
    "minApprovals 0": (
        {"approvers": {"users": ["alice"]}, "minApprovals": 0},
        {},
        ["spec.steps[0].approve.minApprovals: must be at least 1"],
    ),
    "expressions in approvers, quorum and message": (
        {
            "approvers": {
                "users": "{{ params.who }}",
                "groups": ["{{ params.team }}", "sre"],
                "serviceAccounts": ["ci/{{ params.team }}"],
            },
            "minApprovals": "{{ params.quorum }}",
            "message": "Deploy to {{ execution.namespace }}?",
        },
        {"who": {"type": "array"}, "team": {"type": "string"}, "quorum": {"type": "integer"}},
        [],
    ),
    "an undeclared parameter in approvers": (
        {"approvers": {"users": "{{ params.nope }}"}},
        {},
        ["spec.steps[0].approve.approvers.users[0]: unknown parameter 'nope' (declared: none)"],
    ),
    "a secret parameter in approvers": (
        {"approvers": {"groups": ["{{ params.token }}"]}},
        {"token": {"type": "string", "secret": True}},
        [
            "spec.steps[0].approve.approvers.groups[0]: parameter token is secret and may not "
            "appear in expressions: it reaches containers only as the environment variable "
            "KOOS_PARAM_TOKEN"
        ],
    ),
    "a bad timeout": (
        {"approvers": {"users": ["alice"]}, "timeout": "soon"},
        {},
        ["spec.steps[0].approve.timeout: invalid duration 'soon'"],
    ),
}


@pytest.mark.parametrize(
    ("approve", "parameters", "problems"), VALIDATION.values(), ids=VALIDATION.keys()
)
def test_validate_template_checks_approve_steps(
    approve: dict[str, Any], parameters: dict[str, Any], problems: list[str]
) -> None:
    spec = template(step("gate", approve=approve), parameters=parameters)
    found = [str(p) for p in validate_template(spec)]
    assert len(found) == len(problems)
    for text, words in zip(found, problems, strict=True):
        assert text.startswith(words)


def test_an_approve_step_with_another_action_is_refused() -> None:
    spec = template(step("gate", approve={"approvers": {"users": ["a"]}}, sleep={"duration": "1s"}))
    assert [str(p) for p in validate_template(spec)] == [
        "spec.steps[0]: a step has exactly one action: give one of sleep, approve"
    ]


def test_a_run_of_a_template_whose_approve_step_names_nobody_is_refused() -> None:
    result = plan(snapshot(template(step("gate", approve={"approvers": {}}))), T0)
    assert result.status.phase == "Failed"
    assert conditions(result)["Succeeded"].reason == "InvalidSpec"
    assert NOBODY in (result.status.message or "")
    assert result.create_approvals == ()
