"""Approvals without admission webhooks (`koos operator --no-webhooks`): nobody can say who
annotated an Approval, so the controller records each decision itself as unverified. It
counts only with `--trust-unverified-approvals` (development only); otherwise the Approval
stays Pending, says the decision was ignored, and the run keeps waiting.

The real operator (in a thread of its own, serving no webhooks) against a sandbox with
several users, and the real kubectl with one context per person: bob (group dev) creates
the Executions, alice (group sre) decides."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from koos_sandbox.testing import wait_for

from .gates import SRE, OperatorThread, ground_and_kubectl

USERS: dict[str, tuple[str, ...]] = {"alice": ("sre",), "bob": ("dev",)}

pytestmark = pytest.mark.kubectl


@dataclass
class Gate(OperatorThread):
    """A sandbox, kubectl, and the operator started without webhooks."""

    def start_operator(self, *, trust_unverified_approvals: bool) -> None:
        """As `koos operator --no-webhooks [--trust-unverified-approvals]` would."""
        self.run_operator(webhooks=False, trust_unverified_approvals=trust_unverified_approvals)

    def execute(self, name: str, template: str, context: str = "bob") -> str:
        """Create the Execution as `context` and wait until it waits on its Pending Approval."""
        approval = self.create_execution(name, template, context)
        self.wait_phase("approval", approval, "Pending")
        self.wait_phase("exe", name, "Waiting")
        return approval

    def decide(self, approval: str, *notes: str, context: str) -> None:
        result = self.kubectl.run("annotate", "approval", approval, *notes, context=context)
        assert result.stdout.strip() == f"approval.koos.io/{approval} annotated"

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return dict(self.kubectl.json("get", kind, name))

    def wait_phase(self, kind: str, name: str, phase: str, timeout: float = 15) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            result = self.kubectl.run("get", kind, name, "-o", "json", check=False)
            if result.returncode != 0:
                return None  # not created yet
            body = json.loads(result.stdout)
            return body if (body.get("status") or {}).get("phase") == phase else None

        return wait_for(reached, timeout=timeout, interval=0.1, what=f"{kind} {name} to be {phase}")

    def events_of(self, name: str) -> list[tuple[str, str]]:
        items = self.kubectl.json("get", "events")["items"]
        return [
            (e.get("reason", ""), e.get("message", ""))
            for e in items
            if (e.get("involvedObject") or {}).get("name") == name
        ]


def decisions(approval: dict[str, Any]) -> list[tuple[str, str, str | None, bool]]:
    return [
        (d["user"], d["decision"], d.get("reason"), d.get("verified", False))
        for d in (approval.get("status") or {}).get("decisions") or []
    ]


def step(execution: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in execution["status"]["steps"] if s["name"] == name)


@pytest.fixture
def gate(tmp_path: Path, koos_ground: str, request: pytest.FixtureRequest) -> Iterator[Gate]:
    """A ground and kubectl; each test starts the operator with the options it needs."""
    with ground_and_kubectl(tmp_path, USERS, koos_ground, request) as place:
        harness = Gate(place)
        try:
            yield harness
        finally:
            harness.close()


def test_without_webhooks_a_decision_is_recorded_unverified_and_ignored(gate: Gate) -> None:
    gate.start_operator(trust_unverified_approvals=False)
    gate.template("gate", SRE)
    approval = gate.execute("gate-1", "gate")

    gate.decide(approval, "koos.io/decision=approve", context="alice")

    ignored = wait_for(
        lambda: (a := gate.get("approval", approval))["status"].get("decisions") and a,
        timeout=15,
        interval=0.1,
        what="the controller to record the decision",
    )
    assert decisions(ignored) == [("unverified-1", "approve", None, False)]
    assert ignored["status"]["phase"] == "Pending"
    assert ignored["status"]["progress"] == "0/1"
    assert "1 unverified decision(s) ignored" in ignored["status"]["message"]
    assert "not recorded through the admission webhook" in ignored["status"]["message"]
    notes = ignored["metadata"].get("annotations") or {}
    assert "koos.io/decision" not in notes  # consumed by the controller
    assert json.loads(notes["koos.io/decisions"])["signature"] == ""
    assert ("DecisionRecorded", "unverified-1 decided approve (UNVERIFIED)") in wait_for(
        lambda: gate.events_of(approval), timeout=15, interval=0.1, what="the decision's Event"
    )
    waiting = gate.get("exe", "gate-1")
    assert waiting["status"]["phase"] == "Waiting"
    assert (step(waiting, "approve")["phase"], step(waiting, "approve")["reason"]) == (
        "Running",
        "AwaitingApproval",
    )
    assert step(waiting, "restart")["phase"] == "Pending"
    assert gate.kubectl.run("get", "jobs", "-o", "name").stdout == ""
    assert gate.get("approval", approval)["status"]["phase"] == "Pending"


def test_trusting_unverified_approvals_lets_the_decision_count(gate: Gate) -> None:
    gate.start_operator(trust_unverified_approvals=True)
    gate.template("trusted", SRE)
    approval = gate.execute("trusted-1", "trusted")

    gate.decide(approval, "koos.io/decision=approve", context="alice")

    done = gate.wait_phase("exe", "trusted-1", "Succeeded")
    assert step(done, "approve")["outputs"] == {"approvedBy": ["unverified-1"]}
    assert step(done, "restart")["phase"] == "Succeeded"
    approved = gate.get("approval", approval)
    assert approved["status"]["phase"] == "Approved"
    assert approved["status"]["progress"] == "1/1"
    assert decisions(approved) == [("unverified-1", "approve", None, False)]
    assert "unverified decision(s) ignored" not in approved["status"]["message"]
