"""Reconcile errors of Executions (issue 10, items 4 and 11): what retrying can mend is
retried and labelled as what it is; anything else ends the run Failed with reason
InternalError and its cause, logging the traceback once — never a reconcile retried forever.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import pytest

from koos.api.execution import ExecutionSpec, ExecutionStatus, StepStatus
from koos.api.template import TemplateSpec
from koos.engine.facts import ExecutionSnapshot, JobFacts, Plan, TemplateFacts
from koos.handlers import execution as handler
from koos.handlers import metrics
from koos.k8s.apply import ApprovalNameTaken, NotOurs
from koos.k8s.client import KubeError

SPEC = TemplateSpec.model_validate(
    {"steps": [{"name": "a", "run": {"image": "busybox", "script": "true"}}]}
)


def snapshot() -> ExecutionSnapshot:
    from koos.api.execution import ResolvedTemplate

    status = ExecutionStatus(
        phase="Running",
        start_time="2025-03-01T12:00:00Z",
        template=ResolvedTemplate(name="tpl", uid="u", generation=1, hash="h", spec=SPEC),
        parameters={},
        steps=[StepStatus(name="a", phase="Running", job_name="demo-a-1", attempt=1)],
    )
    return ExecutionSnapshot(
        name="demo",
        namespace="ops",
        uid="exe-uid",
        generation=1,
        spec=ExecutionSpec.model_validate({"templateRef": {"name": "tpl"}}),
        status=status,
        template=TemplateFacts("tpl", "tpl-uid", 1, SPEC),
        jobs={"demo-a-1": JobFacts(name="demo-a-1", phase="Active")},
    )


class Harness:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, apply_errors: list[Exception]) -> None:
        self.applied: list[Plan] = []
        self.apply_errors = apply_errors

        async def gather(*_: Any, **__: Any) -> ExecutionSnapshot:
            return snapshot()

        async def apply(_: Any, __: Any, plan: Plan) -> tuple[str, ...]:
            if self.apply_errors:
                raise self.apply_errors.pop(0)
            self.applied.append(plan)
            return ("2",)

        monkeypatch.setattr(handler, "gather_execution", gather)
        monkeypatch.setattr(handler, "apply_plan", apply)
        self.controller = handler.ExecutionController(kube=object())  # type: ignore[arg-type]

    async def reconcile(self) -> datetime | None:
        return await self.controller.reconcile(("ops", "demo"))


def errors(kind: str) -> float:
    return metrics.REGISTRY.get_sample_value("koos_reconcile_errors_total", {"kind": kind}) or 0


async def test_a_planner_exception_ends_the_run_and_logs_its_traceback_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: Any) -> Plan:
        raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")

    monkeypatch.setattr(handler.planner, "plan", broken)
    harness = Harness(monkeypatch, [])
    before = errors("internal")
    with caplog.at_level(logging.ERROR, logger="koos.execution"):
        await harness.reconcile()
        await harness.reconcile()
    status = harness.applied[0].status
    assert status.phase == "Failed"
    assert [c.reason for c in status.conditions or []] == ["InternalError", "InternalError"]
    assert "ValueError: Exceeds the limit" in (status.message or "")
    assert harness.applied[0].delete_jobs == ("demo-a-1",)
    assert [s.phase for s in status.steps or []] == ["Failed"]
    assert len([r for r in caplog.records if r.exc_info]) == 1
    assert errors("internal") == before + 2


@pytest.mark.parametrize("code", [400, 413, 422])
async def test_a_plan_the_api_server_refuses_ends_the_run(
    monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    refused = KubeError(code, "Invalid", "status: Too long: must have at most 1572864 bytes")
    harness = Harness(monkeypatch, [refused])
    await harness.reconcile()
    [plan] = harness.applied
    assert plan.status.phase == "Failed"
    assert "the API server refused the plan" in (plan.status.message or "")
    assert "Too long" in (plan.status.message or "")


async def test_jobs_the_refused_plan_created_are_stopped_with_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plan whose Job creates landed before the API server refused a later write: those
    Jobs are in no snapshot, and must not run on after the run has failed."""
    planned = Plan(
        status=snapshot().status,
        create_jobs=({"metadata": {"name": "demo-b-1"}},),
    )
    monkeypatch.setattr(handler.planner, "plan", lambda *_: planned)
    harness = Harness(monkeypatch, [KubeError(422, "Invalid", "refused")])
    await harness.reconcile()
    [stopped] = harness.applied
    assert stopped.status.phase == "Failed"
    assert stopped.delete_jobs == ("demo-a-1", "demo-b-1")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (KubeError(0, "ConnectionError", "reset"), "connection"),
        (KubeError(503, "ServiceUnavailable", "busy"), "server"),
        (KubeError(429, "TooManyRequests", "slow down"), "throttled"),
        (KubeError(409, "Conflict", "changed"), "conflict"),
        (NotOurs("demo-approve"), "conflict"),
        (ApprovalNameTaken("demo-approve"), "conflict"),
    ],
)
async def test_what_retrying_can_mend_is_retried_and_labelled_as_itself(
    monkeypatch: pytest.MonkeyPatch, error: Exception, kind: str
) -> None:
    harness = Harness(monkeypatch, [error])
    before = errors(kind)
    with pytest.raises(type(error)):
        await harness.reconcile()
    assert harness.applied == []
    assert errors(kind) == before + 1


async def test_a_name_clash_is_not_logged_as_a_job(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    harness = Harness(monkeypatch, [NotOurs("demo-approve")])
    with caplog.at_level(logging.ERROR, logger="koos.execution"), pytest.raises(NotOurs):
        await harness.reconcile()
    [line] = [r.getMessage() for r in caplog.records]
    assert "Job" not in line
    assert "name=demo-approve" in line


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ValueError("x"), "internal"),
        (RecursionError(), "internal"),
        (KubeError(0, "ConnectionError", "x"), "connection"),
        (KubeError(422, "Invalid", "x"), "refused"),
        (KubeError(500, "InternalError", "x"), "server"),
    ],
)
def test_error_kind_names_the_error_itself(error: Exception, kind: str) -> None:
    assert metrics.error_kind(error) == kind


async def test_a_body_that_cannot_be_encoded_is_not_a_connection_error() -> None:
    from kubernetes.aio.client import Configuration

    from koos.k8s.client import Kube

    observed: list[tuple[str, int]] = []
    configuration = Configuration(host="https://127.0.0.1:1")
    kube = Kube(configuration, observe=lambda method, code: observed.append((method, code)))
    try:
        with pytest.raises(ValueError, match="JSON"):
            await kube.request("POST", "/x", body={"n": float("inf")})
    finally:
        await kube.close()
    assert observed == []  # not sent, not counted as a request answered with code 0
