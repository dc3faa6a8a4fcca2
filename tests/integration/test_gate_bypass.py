"""The approval gate against people who are not approvers (issue 10, items 1, 5 and 7): the
real operator in a thread of its own, serving its webhooks, a sandbox with users, and the real
kubectl with one context per person. bob (group dev) creates the runs; alice and carol (group
sre) approve.

Each way past the gate is tried twice: as bob, where the webhooks refuse it with a sentence;
then after a cluster admin took the webhooks out (as if bob had been granted the rights), where
the operator itself must still keep the gate closed. A run is woken after each forgery by
ending a side step's Job, so the gate is checked by a pass that read the forgery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from koos.api.template import TemplateSpec
from koos.engine.approval_proof import template_hash
from koos_sandbox.testing import wait_for

from .gates import OperatorThread, ground_and_kubectl

USERS: dict[str, tuple[str, ...]] = {"alice": ("sre",), "bob": ("dev",), "carol": ("sre",)}
CONFIGS = ("mutatingwebhookconfiguration", "validatingwebhookconfiguration")
GUARDS = ("execution-status.koos.io", "approval-status.koos.io", "approval-created.koos.io")

pytestmark = pytest.mark.kubectl


class Bypass(OperatorThread):
    def start(self, **options: Any) -> None:
        self.run_operator(**options)
        wait_for(self.guarded, timeout=20, what="the status and create webhooks, conditioned")

    def guarded(self) -> bool:
        """The guards are registered, each sparing the operator's own requests."""
        result = self.kubectl.run("get", CONFIGS[1], "koos.io", "-o", "json", check=False)
        if result.returncode != 0:
            return False
        hooks = {h["name"]: h for h in json.loads(result.stdout).get("webhooks") or []}
        return all(hooks.get(name, {}).get("matchConditions") for name in GUARDS)

    def runbook(self, name: str, first: str = "side") -> None:
        """`first` (a run step that waits until its Job is deleted) and an approve step by
        group sre; with first "side" both start at once, with "before" the approve step
        waits for it. A `restart` step runs after the approval."""
        self.outcome(f"*-{first}-*", pending=True)
        approve: dict[str, Any] = {"approvers": {"groups": ["sre"]}}
        steps = [
            {
                "name": first,
                "dependsOn": [],
                "onError": "Continue",
                "run": {"image": "busybox", "script": "sleep 3600"},
            },
            {
                "name": "approve",
                "dependsOn": [] if first == "side" else [first],
                "approve": approve,
            },
            {
                "name": "restart",
                "dependsOn": ["approve"],
                "run": {"image": "busybox", "script": "true"},
            },
        ]
        body = {
            "apiVersion": "koos.io/v1alpha1",
            "kind": "Template",
            "metadata": {"name": name},
            "spec": {"steps": steps},
        }
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))

    def execution(self, name: str) -> dict[str, Any]:
        return dict(self.kubectl.json("get", "exe", name))

    def step(self, execution: str, name: str) -> dict[str, Any]:
        steps = self.execution(execution).get("status", {}).get("steps") or []
        return next((s for s in steps if s["name"] == name), {})

    def wait_step(self, execution: str, name: str, phase: str) -> dict[str, Any]:
        return wait_for(
            lambda: (s := self.step(execution, name)).get("phase") == phase and s,
            timeout=15,
            interval=0.1,
            what=f"step {name} of {execution} to be {phase}",
        )

    def end_job(self, execution: str, step: str) -> None:
        """Wake the run: delete the step's Job (as the admin); the step fails (Continue)."""
        self.kubectl("delete", "job", "-l", f"koos.io/step={step}", "--wait=false")
        self.wait_step(execution, step, "Failed")

    def take_out_webhooks(self) -> list[list[dict[str, Any]]]:
        saved = []
        for config in CONFIGS:
            saved.append(self.kubectl.json("get", config, "koos.io")["webhooks"])
            self.kubectl("patch", config, "koos.io", "--type", "merge", "-p", '{"webhooks": []}')
        return saved

    def restart_jobs(self) -> list[str]:
        return self.kubectl("get", "jobs", "-l", "koos.io/step=restart", "-o", "name").split()


@pytest.fixture
def gate(tmp_path: Path, koos_ground: str, request: pytest.FixtureRequest) -> Iterator[Bypass]:
    with ground_and_kubectl(tmp_path, USERS, koos_ground, request) as place:
        harness = Bypass(place)
        try:
            harness.start()
            yield harness
        finally:
            harness.close()


def create(gate: Bypass, name: str, template: str) -> None:
    body = {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": template}},
    }
    gate.kubectl("create", "-f", "-", input=yaml.safe_dump(body), context="bob")


def assert_gate_closed(gate: Bypass, execution: str) -> None:
    assert gate.step(execution, "approve")["phase"] == "Running"
    assert gate.step(execution, "restart")["phase"] == "Pending"
    assert gate.execution(execution)["status"]["phase"] == "Waiting"
    assert gate.restart_jobs() == []


def test_a_status_patch_of_the_approval_opens_no_gate(gate: Bypass) -> None:
    gate.runbook("gate-a")
    create(gate, "a-1", "gate-a")
    approval = gate.wait_step("a-1", "approve", "Running")["approval"]
    patch = ("--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Approved"}}')

    refused = gate.kubectl.run("patch", "approval", approval, *patch, context="bob", check=False)

    assert refused.returncode != 0
    assert f"the status of approval {approval} is written by koos only" in refused.stderr
    gate.take_out_webhooks()
    out = gate.kubectl("patch", "approval", approval, *patch, context="bob")
    assert out.strip() == f"approval.koos.io/{approval} patched"
    gate.end_job("a-1", "side")
    assert_gate_closed(gate, "a-1")
    wait_for(
        lambda: gate.kubectl.json("get", "approval", approval)["status"]["phase"] == "Pending",
        what="the controller to put back what the signed record says",
    )


def test_an_approval_created_first_by_a_user_is_not_adopted(gate: Bypass) -> None:
    gate.runbook("gate-b", first="before")
    create(gate, "b-1", "gate-b")
    gate.wait_step("b-1", "before", "Running")
    uid = gate.execution("b-1")["metadata"]["uid"]
    decoy = {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Approval",
        "metadata": {
            "name": "b-1-approve",
            "labels": {
                "app.kubernetes.io/managed-by": "koos",
                "koos.io/execution": "b-1",
                "koos.io/step": "approve",
            },
            "ownerReferences": [
                {
                    "apiVersion": "koos.io/v1alpha1",
                    "kind": "Execution",
                    "name": "b-1",
                    "uid": uid,
                    "controller": True,
                }
            ],
        },
        "spec": {
            "executionRef": {"name": "b-1", "uid": uid},
            "step": "approve",
            "approvers": {"users": ["bob"]},
            "requestedBy": "nobody",
            "deadline": "2099-01-01T00:00:00Z",
        },
    }
    text = yaml.safe_dump(decoy)

    refused = gate.kubectl.run("create", "-f", "-", input=text, context="bob", check=False)

    assert refused.returncode != 0
    assert "approvals are created by koos only" in refused.stderr
    gate.take_out_webhooks()
    gate.kubectl("create", "-f", "-", input=text, context="bob")
    gate.kubectl("annotate", "approval", "b-1-approve", "koos.io/decision=approve", context="bob")
    gate.end_job("b-1", "before")
    failed = gate.wait_step("b-1", "approve", "Failed")
    assert failed["reason"] == "ApprovalNameTaken"
    assert "koos did not create it for this run" in failed["message"]
    done = wait_for(
        lambda: (e := gate.execution("b-1"))["status"].get("phase") == "Failed" and e,
        what="the run to fail",
    )
    assert gate.step("b-1", "restart")["phase"] == "Skipped"
    assert gate.restart_jobs() == []
    assert gate.kubectl.json("get", "approval", "b-1-approve")["spec"]["approvers"] == {
        "users": ["bob"]
    }  # left as it was: not adopted, not changed
    assert "ApprovalNameTaken" not in json.dumps(done["status"].get("conditions"))  # step's


def test_a_status_patch_of_the_execution_opens_no_gate(gate: Bypass) -> None:
    gate.runbook("gate-c")
    create(gate, "c-1", "gate-c")
    gate.wait_step("c-1", "approve", "Running")
    status = gate.execution("c-1")["status"]
    for record in status["steps"]:
        if record["name"] == "approve":
            record.update(phase="Succeeded", reason="Approved", outputs={"approvedBy": ["alice"]})
    patch = json.dumps({"status": {"steps": status["steps"]}})
    args = ("--subresource=status", "--type=merge", "-p", patch)

    refused = gate.kubectl.run("patch", "exe", "c-1", *args, context="bob", check=False)

    assert refused.returncode != 0
    assert "the status of execution c-1 is written by koos only" in refused.stderr
    gate.take_out_webhooks()
    gate.kubectl("patch", "exe", "c-1", *args, context="bob")
    failed = wait_for(
        lambda: (e := gate.execution("c-1"))["status"].get("phase") == "Failed" and e,
        what="the tampered run to fail",
    )
    succeeded = next(c for c in failed["status"]["conditions"] if c["type"] == "Succeeded")
    assert succeeded["reason"] == "StatusTampered"
    assert "written by someone else" in failed["status"]["message"]
    assert gate.restart_jobs() == []
    assert gate.kubectl("get", "jobs", "-l", "koos.io/step=side", "-o", "name") == ""


def test_an_approve_step_taken_out_of_the_template_snapshot_stops_the_run(gate: Bypass) -> None:
    """status.template is user-writable too: dropping the approve step from the snapshot (with
    its hash recomputed) breaks the seal koos wrote at start, and nothing more runs."""
    gate.runbook("gate-t")
    create(gate, "t-1", "gate-t")
    gate.wait_step("t-1", "approve", "Running")
    status = gate.execution("t-1")["status"]
    template = status["template"]
    steps = [s for s in template["spec"]["steps"] if s["name"] != "approve"]
    for step in steps:
        step["dependsOn"] = [d for d in step.get("dependsOn", []) if d != "approve"]
    template["spec"]["steps"] = steps
    template["hash"] = template_hash(TemplateSpec.model_validate(template["spec"]))
    records = [r for r in status["steps"] if r["name"] != "approve"]
    patch = json.dumps({"status": {"template": template, "steps": records}})
    gate.take_out_webhooks()

    gate.kubectl("patch", "exe", "t-1", "--subresource=status", "--type=merge", "-p", patch)

    failed = wait_for(
        lambda: (e := gate.execution("t-1"))["status"].get("phase") == "Failed" and e,
        what="the tampered run to fail",
    )
    succeeded = next(c for c in failed["status"]["conditions"] if c["type"] == "Succeeded")
    assert succeeded["reason"] == "StatusTampered"
    assert "sealed" in failed["status"]["message"]
    assert gate.restart_jobs() == []
    assert gate.kubectl("get", "jobs", "-l", "koos.io/step=side", "-o", "name") == ""


def test_a_deleted_pending_approval_fails_its_step_at_once(gate: Bypass) -> None:
    body = {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": "lost"},
        "spec": {"steps": [{"name": "approve", "approve": {"approvers": {"groups": ["sre"]}}}]},
    }
    gate.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))
    create(gate, "lost-1", "lost")
    approval = gate.wait_step("lost-1", "approve", "Running")["approval"]

    gate.kubectl("delete", "approval", approval)

    failed = gate.wait_step("lost-1", "approve", "Failed")
    assert failed["reason"] == "ApprovalLost"
    assert gate.execution("lost-1")["status"]["phase"] == "Failed"


def test_the_author_of_a_schedule_cannot_approve_its_runs(gate: Bypass) -> None:
    gate.stop_operator()
    gate.start(allow_second_schedules=True)
    body = {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": "nightly"},
        "spec": {"steps": [{"name": "approve", "approve": {"approvers": {"groups": ["sre"]}}}]},
    }
    gate.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))
    schedule = {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "* * * * * *",
            "concurrencyPolicy": "Forbid",
            "executionTemplate": {"spec": {"templateRef": {"name": "nightly"}}},
        },
    }
    forged = {**schedule, "metadata": {"name": "x", "annotations": {"koos.io/created-by": "z"}}}
    refused = gate.kubectl.run(
        "create", "-f", "-", input=yaml.safe_dump(forged), context="alice", check=False
    )
    assert refused.returncode != 0
    assert "koos.io/created-by is set by koos" in refused.stderr

    gate.kubectl("create", "-f", "-", input=yaml.safe_dump(schedule), context="alice")

    stamped = gate.kubectl.json("get", "schedule", "nightly")["metadata"]["annotations"]
    assert stamped["koos.io/created-by"] == "alice"
    changed = gate.kubectl.run(
        "annotate", "schedule", "nightly", "koos.io/created-by=bob", "--overwrite",
        context="alice", check=False,
    )  # fmt: skip
    assert changed.returncode != 0
    assert "cannot change" in changed.stderr
    runs = wait_for(
        lambda: gate.kubectl("get", "exe", "-l", "koos.io/schedule", "-o", "name").split(),
        what="a run of the Schedule",
    )
    run = runs[0].split("/")[-1]
    approval = gate.wait_step(run, "approve", "Running")["approval"]
    gate.kubectl("patch", "schedule", "nightly", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    assert gate.execution(run)["metadata"]["annotations"]["koos.io/created-by"] == "alice"
    assert gate.kubectl.json("get", "approval", approval)["spec"]["requestedBy"] == "alice"

    vote = gate.kubectl.run(
        "annotate", "approval", approval, "koos.io/decision=approve", context="alice", check=False
    )

    assert vote.returncode != 0
    assert f'user "alice" created execution {run} and may not approve it' in vote.stderr
    gate.kubectl("annotate", "approval", approval, "koos.io/decision=approve", context="carol")
    wait_for(
        lambda: gate.execution(run)["status"].get("phase") == "Succeeded",
        what="carol's approval to let the run finish",
    )


@pytest.mark.sandbox_only("counts admission webhook calls, which only the sandbox records")
def test_the_guards_cost_the_operator_no_webhook_call(gate: Bypass) -> None:
    # The operator writes an Execution's status on every step: the status and create guards
    # are skipped for it by their matchConditions, and called for anyone else.
    calls = gate.runner.sandbox.admission.calls
    before = {hook: calls[hook] for hook in GUARDS}
    gate.runbook("quiet")
    create(gate, "quiet-1", "quiet")
    approval = gate.wait_step("quiet-1", "approve", "Running")["approval"]
    gate.kubectl("annotate", "approval", approval, "koos.io/decision=approve", context="alice")
    gate.end_job("quiet-1", "side")
    wait_for(
        lambda: gate.execution("quiet-1")["status"].get("phase") == "Succeeded",
        what="the run to finish",
    )

    assert {hook: calls[hook] for hook in GUARDS} == before
    gate.kubectl.run(
        "patch", "exe", "quiet-1", "--subresource=status", "--type=merge",
        "-p", '{"status":{"message":"x"}}', context="bob", check=False,
    )  # fmt: skip
    assert calls["execution-status.koos.io"] == before["execution-status.koos.io"] + 1
