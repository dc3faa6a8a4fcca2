"""Approvals as people decide them: the real operator (in a thread of its own, serving its
admission webhooks) against a sandbox with several users, and the real kubectl with one
context per person. Executions are created by bob (group dev) unless a test says otherwise;
alice and carol are in group sre, dave in groups sre and oncall.

Every refusal asserts the operator's own message and that the Approval (or Execution) did
not change."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from koos_sandbox.testing import Kubectl, wait_for

from .gates import SRE, OperatorThread, execution_manifest, ground_and_kubectl

USERS: dict[str, tuple[str, ...]] = {
    "alice": ("sre",),
    "bob": ("dev",),
    "carol": ("sre",),
    "dave": ("sre", "oncall"),
}
WEBHOOKS = "mutatingwebhookconfiguration"

pytestmark = pytest.mark.kubectl


@dataclass
class Gate(OperatorThread):
    """A sandbox, the operator and kubectl: what a person trying approvals has."""

    tmp: Path = Path()

    # ---- the operator --------------------------------------------------------------------

    def start_operator(self) -> None:
        """As `koos operator` would: its own loop and thread; ready once its webhooks are
        registered and point at the server it now runs."""
        before = self.webhook_url()
        self.run_operator()
        wait_for(
            lambda: self.webhook_url() not in (None, before),
            timeout=20,
            what="the operator to register its webhooks",
        )

    def webhook_url(self) -> str | None:
        result = self.kubectl.run("get", WEBHOOKS, "koos.io", "-o", "json", check=False)
        if result.returncode != 0:
            return None
        hooks = json.loads(result.stdout).get("webhooks") or []
        urls = {h.get("clientConfig", {}).get("url") for h in hooks}
        return ",".join(sorted(u for u in urls if u)) or None

    # ---- what people do ------------------------------------------------------------------

    def execute(self, name: str, template: str, context: str = "bob") -> str:
        """Create the Execution as `context` and wait until it waits on its Pending Approval."""
        approval = self.create_execution(name, template, context)
        self.wait_approval(approval, "Pending")
        self.wait_execution(name, "Waiting")
        return approval

    def annotate(
        self, kind: str, name: str, *notes: str, context: str
    ) -> subprocess.CompletedProcess[str]:
        return self.kubectl.run("annotate", kind, name, *notes, context=context, check=False)

    def decide(self, approval: str, *notes: str, context: str) -> None:
        result = self.annotate("approval", approval, *notes, context=context)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"approval.koos.io/{approval} annotated"

    def refused(
        self, approval: str, *notes: str, context: str, message: str, overwrite: bool = False
    ) -> str:
        """A decision the webhook refuses with `message`; the Approval is left as it was."""
        before = self.approval(approval)
        args = (*notes, "--overwrite") if overwrite else notes
        result = self.annotate("approval", approval, *args, context=context)
        assert result.returncode != 0, f"{context} was not refused: {result.stdout}"
        assert message in result.stderr, result.stderr
        after = self.approval(approval)
        assert after["metadata"].get("annotations") == before["metadata"].get("annotations")
        assert after["spec"] == before["spec"]
        assert after.get("status") == before.get("status")
        return str(result.stderr)

    # ---- what people read ----------------------------------------------------------------

    def approval(self, name: str) -> dict[str, Any]:
        return dict(self.kubectl.json("get", "approval", name))

    def execution(self, name: str) -> dict[str, Any]:
        return dict(self.kubectl.json("get", "exe", name))

    def wait_approval(self, name: str, phase: str, timeout: float = 15) -> dict[str, Any]:
        return self.wait_phase("approval", name, phase, timeout)

    def wait_execution(self, name: str, phase: str, timeout: float = 15) -> dict[str, Any]:
        return self.wait_phase("exe", name, phase, timeout)

    def wait_phase(self, kind: str, name: str, phase: str, timeout: float) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            result = self.kubectl.run("get", kind, name, "-o", "json", check=False)
            if result.returncode != 0:
                return None  # not created yet
            body = json.loads(result.stdout)
            return body if (body.get("status") or {}).get("phase") == phase else None

        return wait_for(reached, timeout=timeout, interval=0.1, what=f"{kind} {name} to be {phase}")

    def approvals_of(self, execution: str) -> list[str]:
        out = self.kubectl("get", "approvals", "-l", f"koos.io/execution={execution}", "-o", "name")
        return out.split()


def decisions(approval: dict[str, Any]) -> list[tuple[str, str, str | None, bool]]:
    return [
        (d["user"], d["decision"], d.get("reason"), d.get("verified", False))
        for d in (approval.get("status") or {}).get("decisions") or []
    ]


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in body["status"]["conditions"] if c["type"] == kind)


def step(execution: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in execution["status"]["steps"] if s["name"] == name)


@pytest.fixture
def gate(tmp_path: Path, koos_ground: str, request: pytest.FixtureRequest) -> Iterator[Gate]:
    with ground_and_kubectl(tmp_path, USERS, koos_ground, request) as place:
        harness = Gate(place, tmp=tmp_path)
        try:
            harness.start_operator()
            yield harness
        finally:
            harness.close()


# ---- deciding ------------------------------------------------------------------------------


def test_an_sre_approves_and_the_run_continues(gate: Gate) -> None:
    gate.template("gate", SRE)
    approval = gate.execute("gate-1", "gate")

    waiting = gate.execution("gate-1")
    assert waiting["metadata"]["annotations"]["koos.io/created-by"] == "bob"
    assert waiting["status"]["phase"] == "Waiting"
    assert condition(waiting, "Succeeded")["reason"] == "AwaitingApproval"
    assert approval in waiting["status"]["message"]
    assert step(waiting, "approve")["approval"] == approval
    pending = gate.approval(approval)
    assert pending["spec"]["message"] == "Restart web?"
    assert pending["spec"]["requestedBy"] == "bob"
    assert pending["status"]["progress"] == "0/1"
    owner = pending["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Execution", "gate-1")

    gate.decide(approval, "koos.io/decision=approve", context="alice")

    done = gate.wait_execution("gate-1", "Succeeded")
    assert step(done, "approve")["outputs"] == {"approvedBy": ["alice"]}
    decided = gate.approval(approval)
    assert decided["status"]["phase"] == "Approved"
    assert condition(decided, "Approved")["status"] == "True"
    assert decisions(decided) == [("alice", "approve", None, True)]
    notes = decided["metadata"].get("annotations") or {}
    assert "koos.io/decision" not in notes  # consumed by the webhook
    assert "koos.io/decisions" in notes
    row = gate.kubectl("get", "approval", approval).splitlines()[1].split()
    assert row[:4] == [approval, "Approved", "1/1", "gate-1"]


def test_quorum_of_two_needs_two_different_people(gate: Gate) -> None:
    gate.template("quorum", {**SRE, "minApprovals": 2})
    approval = gate.execute("quorum-1", "quorum")

    gate.decide(approval, "koos.io/decision=approve", context="alice")
    wait_for(
        lambda: gate.approval(approval)["status"]["progress"] == "1/2",
        what="one approval of two",
    )
    assert gate.approval(approval)["status"]["phase"] == "Pending"
    assert gate.execution("quorum-1")["status"]["phase"] == "Waiting"

    gate.refused(
        approval,
        "koos.io/decision=approve",
        context="alice",
        message='user "alice" already decided approve at ',
    )

    gate.decide(approval, "koos.io/decision=approve", context="carol")
    decided = gate.wait_approval(approval, "Approved")
    assert decided["status"]["progress"] == "2/2"
    assert sorted(decisions(decided)) == [
        ("alice", "approve", None, True),
        ("carol", "approve", None, True),
    ]
    done = gate.wait_execution("quorum-1", "Succeeded")
    assert sorted(step(done, "approve")["outputs"]["approvedBy"]) == ["alice", "carol"]


def test_reject_with_a_reason_fails_the_run_with_that_reason(gate: Gate) -> None:
    gate.template("rej", SRE)
    approval = gate.execute("rej-1", "rej")

    gate.decide(
        approval,
        "koos.io/decision=reject",
        "koos.io/reason=not during the sale",
        context="alice",
    )

    rejected = gate.wait_approval(approval, "Rejected")
    assert rejected["status"]["message"] == "Rejected by alice: not during the sale"
    assert condition(rejected, "Approved")["status"] == "False"
    assert decisions(rejected) == [("alice", "reject", "not during the sale", True)]
    failed = gate.wait_execution("rej-1", "Failed")
    assert "not during the sale" in failed["status"]["message"]
    succeeded = condition(failed, "Succeeded")
    assert succeeded["status"] == "False"
    assert "not during the sale" in succeeded["message"]
    assert step(failed, "approve")["phase"] == "Failed"
    assert step(failed, "approve")["reason"] == "Rejected"
    assert step(failed, "restart")["phase"] == "Skipped"


def test_the_creator_may_approve_when_the_template_allows_self_approval(gate: Gate) -> None:
    gate.template("selfok", {"approvers": {"groups": ["dev"]}, "allowSelfApproval": True})
    approval = gate.execute("selfok-1", "selfok")

    gate.decide(approval, "koos.io/decision=approve", context="bob")

    gate.wait_execution("selfok-1", "Succeeded")
    assert decisions(gate.approval(approval)) == [("bob", "approve", None, True)]


def test_a_service_account_approves(gate: Gate) -> None:
    gate.template("sa", {"approvers": {"serviceAccounts": ["deployer"]}})
    approval = gate.execute("sa-1", "sa")
    gate.kubectl("create", "serviceaccount", "deployer")
    # What the README grants an approver (the real ground enforces it; the sandbox allows
    # all). Applied as YAML: `kubectl create role` sends protobuf, which the sandbox refuses.
    grant = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "approve"},
            "rules": [
                {
                    "apiGroups": ["koos.io"],
                    "resources": ["approvals"],
                    "verbs": ["get", "list", "patch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "deployer-approves"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "approve"},
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": gate.ns}],
        },
    ]
    gate.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(grant))
    token = gate.kubectl("create", "token", "deployer").strip()
    assert token
    copy = gate.tmp / "kubeconfig-deployer"
    shutil.copy(gate.kubectl.kubeconfig, copy)
    robot = Kubectl(copy, gate.tmp / "kube-cache-deployer")
    cluster = robot("config", "view", "-o", "jsonpath={.clusters[0].name}")
    robot("config", "set-credentials", "deployer", f"--token={token}")
    robot(
        "config",
        "set-context",
        "deployer",
        f"--cluster={cluster}",
        "--user=deployer",
        f"--namespace={gate.ns}",
    )
    assert (
        robot("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", context="deployer")
        == f"system:serviceaccount:{gate.ns}:deployer"
    )

    gate.refused(
        approval,
        "koos.io/decision=approve",
        context="alice",
        message='user "alice" (groups: sre, system:authenticated) is not an approver of '
        "sa-1-approve; approvers are serviceAccounts deployer",
    )
    out = robot("annotate", "approval", approval, "koos.io/decision=approve", context="deployer")
    assert out.strip() == f"approval.koos.io/{approval} annotated"

    gate.wait_execution("sa-1", "Succeeded")
    assert decisions(gate.approval(approval)) == [
        (f"system:serviceaccount:{gate.ns}:deployer", "approve", None, True)
    ]


# ---- refusals ------------------------------------------------------------------------------


def test_someone_outside_the_approvers_is_refused(gate: Gate) -> None:
    gate.template("outsider", SRE)
    approval = gate.execute("outsider-1", "outsider")

    gate.refused(
        approval,
        "koos.io/decision=approve",
        context="bob",
        message='user "bob" (groups: dev, system:authenticated) is not an approver of '
        "outsider-1-approve; approvers are groups sre",
    )
    assert gate.execution("outsider-1")["status"]["phase"] == "Waiting"


def test_the_creator_is_refused_without_self_approval(gate: Gate) -> None:
    gate.template("self", {"approvers": {"groups": ["dev"]}})
    approval = gate.execute("self-1", "self")

    gate.refused(
        approval,
        "koos.io/decision=approve",
        context="bob",
        message='user "bob" created execution self-1 and may not approve it '
        "(allowSelfApproval is false): ask another approver",
    )


def test_a_reject_without_a_reason_is_refused(gate: Gate) -> None:
    gate.template("noreason", SRE)
    approval = gate.execute("noreason-1", "noreason")

    gate.refused(
        approval,
        "koos.io/decision=reject",
        context="alice",
        message='a reason is required to reject: add koos.io/reason="why" to the same annotate',
    )
    gate.refused(
        approval,
        "koos.io/decision=reject",
        "koos.io/reason=  ",
        context="alice",
        message="a reason is required to reject",
    )


def test_an_unknown_decision_value_is_refused(gate: Gate) -> None:
    gate.template("unknown", SRE)
    approval = gate.execute("unknown-1", "unknown")

    gate.refused(
        approval,
        "koos.io/decision=maybe",
        context="alice",
        message='koos.io/decision must be "approve" or "reject", got "maybe"',
    )


def test_a_second_vote_through_several_groups_is_refused(gate: Gate) -> None:
    gate.template("groups", {"approvers": {"groups": ["sre", "oncall"]}, "minApprovals": 2})
    approval = gate.execute("groups-1", "groups")
    gate.decide(approval, "koos.io/decision=approve", context="dave")
    wait_for(lambda: gate.approval(approval)["status"]["progress"] == "1/2", what="1/2")
    recorded = gate.approval(approval)["status"]["decisions"]
    assert {"sre", "oncall"} <= set(recorded[0]["groups"])

    gate.refused(
        approval,
        "koos.io/decision=reject",
        "koos.io/reason=changed my mind",
        context="dave",
        message='user "dave" already decided approve at ',
    )
    assert gate.approval(approval)["status"]["phase"] == "Pending"


def test_votes_after_the_decision_are_refused(gate: Gate) -> None:
    gate.template("late", SRE)
    approved = gate.execute("late-1", "late")
    gate.decide(approved, "koos.io/decision=approve", context="alice")
    gate.wait_approval(approved, "Approved")
    gate.wait_execution("late-1", "Succeeded")

    gate.refused(
        approved,
        "koos.io/decision=reject",
        "koos.io/reason=too late?",
        context="carol",
        message="approval late-1-approve is already Approved: it takes no more decisions",
    )

    rejected = gate.execute("late-2", "late")
    gate.decide(rejected, "koos.io/decision=reject", "koos.io/reason=no", context="alice")
    gate.wait_approval(rejected, "Rejected")
    gate.refused(
        rejected,
        "koos.io/decision=approve",
        context="carol",
        message="approval late-2-approve is already Rejected: it takes no more decisions",
    )


def test_editing_the_recorded_decisions_is_refused(gate: Gate) -> None:
    gate.template("forge", {**SRE, "minApprovals": 2})
    approval = gate.execute("forge-1", "forge")
    gate.decide(approval, "koos.io/decision=approve", context="alice")
    wait_for(lambda: gate.approval(approval)["status"]["progress"] == "1/2", what="1/2")
    record = json.loads(gate.approval(approval)["metadata"]["annotations"]["koos.io/decisions"])
    forged = {
        **record,
        "decisions": [*record["decisions"], {**record["decisions"][0], "user": "carol"}],
    }

    message = "the recorded decisions of approval forge-1-approve (koos.io/decisions) cannot be"
    gate.refused(
        approval,
        f"koos.io/decisions={json.dumps(forged)}",
        context="alice",
        overwrite=True,
        message=message,
    )
    gate.refused(approval, "koos.io/decisions-", context="carol", message=message)
    assert gate.approval(approval)["status"]["phase"] == "Pending"


def test_editing_the_spec_is_refused(gate: Gate) -> None:
    gate.template("spec", {**SRE, "minApprovals": 2})
    approval = gate.execute("spec-1", "spec")
    before = gate.approval(approval)

    result = gate.kubectl.run(
        "patch",
        "approval",
        approval,
        "--type",
        "merge",
        "-p",
        '{"spec":{"minApprovals":1}}',
        context="alice",
        check=False,
    )

    assert result.returncode != 0
    assert (
        "the spec of approval spec-1-approve is written by koos only: decide with kubectl "
        "annotate approval spec-1-approve koos.io/decision=approve|reject"
    ) in result.stderr
    after = gate.approval(approval)
    assert after["spec"] == before["spec"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_a_forged_creator_stamp_is_refused_at_create(gate: Gate) -> None:
    gate.template("stamp", SRE)
    forged = execution_manifest("stamp-1", "stamp", **{"koos.io/created-by": "alice"})

    result = gate.kubectl.run(
        "create", "-f", "-", input=yaml.safe_dump(forged), context="bob", check=False
    )

    assert result.returncode != 0
    assert (
        "koos.io/created-by is set by koos from the API server's record of who created the "
        "Execution: remove it from your manifest"
    ) in result.stderr
    missing = gate.kubectl.run("get", "exe", "stamp-1", check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_changing_the_creator_stamp_later_is_refused(gate: Gate) -> None:
    gate.template("restamp", SRE)
    gate.execute("restamp-1", "restamp")
    before = gate.execution("restamp-1")["metadata"]["annotations"]

    for who in ("bob", "alice"):
        result = gate.annotate(
            "exe", "restamp-1", "koos.io/created-by=alice", "--overwrite", context=who
        )
        assert result.returncode != 0
        assert "koos.io/created-by records who created the Execution and cannot change" in (
            result.stderr
        )
    result = gate.annotate("exe", "restamp-1", "koos.io/created-by-", context="bob")
    assert result.returncode != 0
    assert "cannot change" in result.stderr

    after = gate.execution("restamp-1")["metadata"]["annotations"]
    assert after["koos.io/created-by"] == "bob"
    assert after == before


# ---- time, cancellation, restarts ----------------------------------------------------------


@pytest.mark.parametrize(
    ("on_timeout", "phase", "reason"),
    [("Approve", "Succeeded", "ApprovedOnTimeout"), ("Reject", "Failed", "ApprovalExpired")],
)
def test_an_approval_times_out(gate: Gate, on_timeout: str, phase: str, reason: str) -> None:
    gate.template("slow", {**SRE, "timeout": "2s", "onTimeout": on_timeout})
    approval = gate.execute("slow-1", "slow")

    expired = gate.wait_approval(approval, "Expired", timeout=10)
    assert expired["status"]["message"].startswith("No decision before ")
    assert condition(expired, "Approved")["status"] == (
        "True" if on_timeout == "Approve" else "False"
    )
    done = gate.wait_execution("slow-1", phase)
    assert step(done, "approve")["reason"] == reason
    gate.refused(
        approval,
        "koos.io/decision=approve",
        context="alice",
        message="approval slow-1-approve is already Expired: it takes no more decisions",
    )


def test_cancelling_the_execution_expires_its_approval(gate: Gate) -> None:
    gate.template("cancel", SRE)
    approval = gate.execute("cancel-1", "cancel")

    gate.kubectl("annotate", "exe", "cancel-1", "koos.io/cancel=true", context="bob")

    expired = gate.wait_approval(approval, "Expired")
    assert expired["status"]["message"] == "The execution was cancelled."
    assert condition(expired, "Approved")["status"] == "False"
    done = gate.wait_execution("cancel-1", "Cancelled")
    assert step(done, "approve")["phase"] == "Cancelled"
    gate.refused(
        approval,
        "koos.io/decision=approve",
        context="alice",
        message="approval cancel-1-approve is already Expired: it takes no more decisions",
    )


def test_webhook_down_refuses_decisions_and_loses_nothing(gate: Gate) -> None:
    gate.template("down", SRE)
    approval = gate.execute("down-1", "down")

    gate.stop_operator()
    stderr = gate.refused(
        approval,
        "koos.io/decision=approve",
        context="alice",
        message='failed calling webhook "decision.koos.io"',
    )
    assert "Internal error occurred" in stderr
    unstamped = gate.kubectl.run(
        "create",
        "-f",
        "-",
        input=yaml.safe_dump(execution_manifest("down-2", "down")),
        context="bob",
        check=False,
    )
    assert unstamped.returncode != 0
    assert 'failed calling webhook "creator.koos.io"' in unstamped.stderr
    assert gate.kubectl.run("get", "exe", "down-2", check=False).returncode != 0

    gate.start_operator()
    still = gate.approval(approval)
    assert still["status"]["phase"] == "Pending"
    assert decisions(still) == []
    assert "koos.io/decision" not in (still["metadata"].get("annotations") or {})
    assert gate.execution("down-1")["status"]["phase"] == "Waiting"

    gate.decide(approval, "koos.io/decision=approve", context="alice")
    gate.wait_execution("down-1", "Succeeded")
    assert decisions(gate.approval(approval)) == [("alice", "approve", None, True)]


def bypass_webhooks(gate: Gate) -> list[dict[str, Any]]:
    """What a cluster admin can do: take koos's webhooks out of the configuration. Returns
    them, to put back with `restore_webhooks`."""
    saved = gate.kubectl.json("get", WEBHOOKS, "koos.io")["webhooks"]
    assert saved
    gate.kubectl("patch", WEBHOOKS, "koos.io", "--type", "merge", "-p", '{"webhooks": []}')
    return list(saved)


def restore_webhooks(gate: Gate, saved: list[dict[str, Any]]) -> None:
    patch = json.dumps({"webhooks": saved})
    gate.kubectl("patch", WEBHOOKS, "koos.io", "--type", "merge", "-p", patch)


def test_decisions_that_bypassed_the_webhook_never_count(gate: Gate) -> None:
    gate.template("bypass", SRE)
    approval = gate.execute("bypass-1", "bypass")
    saved = bypass_webhooks(gate)
    forged = {
        "decisions": [
            {
                "user": "carol",
                "decision": "approve",
                "time": "2030-01-01T00:00:00Z",
                "verified": True,
            }
        ],
        "signature": "0" * 64,
    }

    gate.decide(approval, "koos.io/decision=approve", context="alice")
    gate.decide(approval, f"koos.io/decisions={json.dumps(forged)}", context="bob")

    wait_for(
        lambda: gate.approval(approval)["status"].get("decisions"),
        what="the controller to mirror the forged record",
    )
    ignored = gate.approval(approval)
    assert ignored["status"]["phase"] == "Pending"
    assert ignored["status"]["progress"] == "0/1"
    assert decisions(ignored) == [("carol", "approve", None, False)]
    assert "1 unverified decision(s) ignored" in ignored["status"]["message"]
    assert gate.execution("bypass-1")["status"]["phase"] == "Waiting"
    restore_webhooks(gate, saved)


def test_a_vote_after_a_bypass_is_recorded_or_refused_never_dropped(gate: Gate) -> None:
    gate.template("stale", SRE)
    approval = gate.execute("stale-1", "stale")
    saved = bypass_webhooks(gate)
    gate.decide(approval, "koos.io/decision=approve", context="alice")
    restore_webhooks(gate, saved)

    result = gate.annotate(
        "approval", approval, "koos.io/decision=approve", "--overwrite", context="alice"
    )

    if result.returncode == 0:
        assert decisions_recorded(gate.approval(approval)) == ["alice"]
    else:
        assert "koos.io/decision" in result.stderr


def decisions_recorded(approval: dict[str, Any]) -> list[str]:
    text = (approval["metadata"].get("annotations") or {}).get("koos.io/decisions")
    return [d["user"] for d in json.loads(text)["decisions"]] if text else []


def test_an_operator_restart_while_pending_loses_no_decision(gate: Gate) -> None:
    gate.template("restart", {**SRE, "minApprovals": 2})
    approval = gate.execute("restart-1", "restart")
    gate.decide(approval, "koos.io/decision=approve", context="alice")
    wait_for(lambda: gate.approval(approval)["status"]["progress"] == "1/2", what="1/2")

    gate.stop_operator()
    gate.start_operator()
    assert gate.approval(approval)["status"]["progress"] == "1/2"
    gate.refused(
        approval,
        "koos.io/decision=approve",
        context="alice",
        message='user "alice" already decided approve',
    )
    gate.decide(approval, "koos.io/decision=approve", context="carol")

    gate.wait_execution("restart-1", "Succeeded")
    assert gate.approvals_of("restart-1") == [f"approval.koos.io/{approval}"]
    assert sorted(decisions(gate.approval(approval))) == [
        ("alice", "approve", None, True),
        ("carol", "approve", None, True),
    ]


# ---- notifications -------------------------------------------------------------------------


class Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[int, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("RecordingHook", (Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="hook", daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_notification_webhook_hears_of_pending_and_approved(
    gate: Gate, hook: tuple[int, list[tuple[dict[str, str], bytes]]]
) -> None:
    port, received = hook
    gate.kubectl("create", "secret", "generic", "hooksecret", "--from-literal=key=s3cret")
    notify = {
        "webhook": {
            "url": f"http://127.0.0.1:{port}/hook",
            "secretRef": {"name": "hooksecret", "key": "key"},
        }
    }
    gate.template("hooked", {**SRE, "notify": notify})
    approval = gate.execute("hooked-1", "hooked")
    wait_for(lambda: len(received) >= 1, what="the Pending notification")
    gate.decide(approval, "koos.io/decision=approve", context="alice")
    gate.wait_execution("hooked-1", "Succeeded")
    wait_for(lambda: len(received) >= 2, what="the Approved notification")

    messages = []
    for headers, body in received:
        signature = {k.lower(): v for k, v in headers.items()}["x-koos-signature"]
        expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert signature == f"sha256={expected}"
        messages.append(json.loads(body))
    assert [m["phase"] for m in messages] == ["Pending", "Approved"]
    for message in messages:
        assert (message["approval"], message["execution"]) == (approval, "hooked-1")
        assert message["commands"]["approve"] == (
            f"kubectl annotate approval {approval} -n {gate.ns} koos.io/decision=approve"
        )
        assert message["commands"]["reject"].startswith(
            f"kubectl annotate approval {approval} -n {gate.ns} koos.io/decision=reject"
        )
        assert message["message"] == "Restart web?"
    pending, approved = messages
    assert approval in pending["text"] and "Restart web?" in pending["text"]
    assert pending["commands"]["approve"] in pending["text"]
    assert "Approved by alice." in approved["text"]
