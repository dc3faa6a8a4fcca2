"""RBAC for real (issue 12; issue 10's gate-bypass routes): the roles koos ships, bound on a
real kube-apiserver with the RBAC authorizer, asked with `kubectl auth can-i` and tried with
real requests by the ground's users (alice in sre, bob in dev) through the real kubectl.

- People (`manifests/rbac/user-roles.yaml`): what each role is for succeeds and one step
  beyond is Forbidden; no role opens a gate (approvals/status, executions/status, create
  approvals); koos-view aggregates into the built-in view.
- The operator (`manifests/rbac/operator.yaml`): `koos operator` as its own process,
  authenticated as koos-system/koos-operator with exactly those rights, webhooks on, a node
  agent running the steps' Pods. The README's approval runbook runs to Succeeded (created by
  bob, decided by alice); a step acts as its Template's ServiceAccount and no more; a
  Schedule is served; the webhooks still refuse a person granted what no person should have;
  the operator's account is Forbidden one step beyond its role. Last, the API server's audit
  log of all that: no request of the operator refused, each one granted by operator.yaml, and
  every right it grants used, but for the documented NOT_EXERCISED. And on a ground of its
  own with OwnerReferencesPermissionEnforcement on, a gated run still ends Succeeded.

The people's tests run first, before the operator is started (its webhooks would refuse the
admin's hand-made Approval): the operator is a module fixture the later tests ask for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..ground.realplane import RealPlane, wait_for
from .access import (
    BYPASS_STATUS,
    RBAC,
    STEP_PASSED,
    approval_manifest,
    bind,
    can,
    create,
    create_refused,
    execution_manifest,
    forbidden,
    gate_routes_refused,
    koos,
    refused,
    status_patch_refused,
)
from .conftest import Kubectl
from .operator_run import (
    OPERATOR_USER,
    OPERATOR_YAML,
    USER_ROLES_YAML,
    Operator,
    install,
    role_denials,
    running_koos,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "approval"
NODE = "rbac-node"


# ---- koos installed as an admin installs it ---------------------------------------------


@pytest.fixture(scope="module")
def installed(realplane: RealPlane, kubectl: Kubectl) -> Iterator[None]:
    """The CRDs and both RBAC files applied; the RBAC removed after the module (the CRDs
    stay: the session's other tests use them)."""
    install(realplane, kubectl)
    yield
    kubectl("delete", "--ignore-not-found", "--wait=false", "-f", str(OPERATOR_YAML))
    kubectl("delete", "--ignore-not-found", "--wait=false", "-f", str(USER_ROLES_YAML))


# ---- people -----------------------------------------------------------------------------


def test_an_approver_decides_and_goes_no_further(
    installed: None, realplane: RealPlane, kubectl: Kubectl, namespace: str
) -> None:
    bind(kubectl, namespace, "koos-approve", "alice")
    approval = approval_manifest("run-1-approve", namespace, ["alice"])
    create(kubectl, approval)
    create(kubectl, execution_manifest("run-1", namespace, "t"))
    ns = ("-n", namespace)

    assert can(kubectl, "alice", "patch", "approvals.koos.io", *ns)
    assert can(kubectl, "alice", "get", "executions.koos.io", *ns)
    # What she is for, for real: the annotation a decision is.
    kubectl("annotate", "approval", "run-1-approve", "koos.io/decision=approve", *ns, user="alice")
    # One step beyond: the three ways past a gate, and touching the run itself.
    gate_routes_refused(kubectl, realplane, "alice", namespace)
    assert not can(kubectl, "alice", "patch", "executions.koos.io", *ns)
    assert not can(kubectl, "alice", "delete", "approvals.koos.io", *ns)
    assert not can(kubectl, "alice", "patch", "approvals.koos.io", "-n", "default")
    stderr = refused(kubectl, "alice", "delete", "approval", "run-1-approve", *ns)
    forbidden(stderr, "alice", "delete", "approvals")


def test_a_runner_creates_executions_and_goes_no_further(
    installed: None, realplane: RealPlane, kubectl: Kubectl, namespace: str
) -> None:
    bind(kubectl, namespace, "koos-run", "bob")
    ns = ("-n", namespace)
    template = koos(
        "Template",
        "t",
        namespace,
        {"steps": [{"name": "a", "run": {"image": "busybox", "script": "true"}}]},
    )
    create(kubectl, template)

    assert can(kubectl, "bob", "create", "executions.koos.io", *ns)
    create(kubectl, execution_manifest("run-1", namespace, "t"), user="bob")
    assert kubectl("get", "templates", "-o", "name", *ns, user="bob").split() == [
        "template.koos.io/t"
    ]
    # One step beyond: changing or deleting what exists, deciding, reading Secrets.
    for verb, resource in (
        ("delete", "templates"),
        ("patch", "templates"),
        ("create", "templates"),
        ("delete", "executions"),
        ("patch", "executions"),
        ("patch", "approvals"),
        ("create", "approvals"),
    ):
        assert not can(kubectl, "bob", verb, f"{resource}.koos.io", *ns), (verb, resource)
    assert not can(kubectl, "bob", "patch", "executions.koos.io", "--subresource=status", *ns)
    assert not can(kubectl, "bob", "get", "secrets", *ns)
    assert not can(kubectl, "bob", "create", "executions.koos.io", "-n", "default")
    forbidden(refused(kubectl, "bob", "delete", "template", "t", *ns), "bob", "delete", "templates")
    stderr = refused(kubectl, "bob", "annotate", "execution", "run-1", "koos.io/cancel=true", *ns)
    forbidden(stderr, "bob", "patch", "executions")
    forbidden(refused(kubectl, "bob", "get", "secrets", *ns), "bob", "list", "secrets", group="")
    message = status_patch_refused(
        kubectl, realplane, "bob", "execution", "run-1", namespace, STEP_PASSED
    )
    forbidden(message, "bob", "patch", "executions/status")


def test_a_viewer_reads_and_writes_nothing(
    installed: None, kubectl: Kubectl, namespace: str
) -> None:
    bind(kubectl, namespace, "koos-view", "bob")
    create(kubectl, execution_manifest("run-1", namespace, "t"))
    ns = ("-n", namespace)
    for kind in ("templates", "executions", "schedules", "approvals"):
        assert can(kubectl, "bob", "list", f"{kind}.koos.io", *ns)
        assert not can(kubectl, "bob", "create", f"{kind}.koos.io", *ns)
        assert not can(kubectl, "bob", "patch", f"{kind}.koos.io", *ns)
        assert not can(kubectl, "bob", "delete", f"{kind}.koos.io", *ns)
    names = kubectl("get", "executions", "-o", "name", *ns, user="bob").split()
    assert names == ["execution.koos.io/run-1"]
    stderr = refused(kubectl, "bob", "annotate", "execution", "run-1", "koos.io/cancel=true", *ns)
    forbidden(stderr, "bob", "patch", "executions")
    stderr = create_refused(kubectl, "bob", execution_manifest("run-2", namespace, "t"))
    forbidden(stderr, "bob", "create", "executions")


def test_koos_view_aggregates_into_the_built_in_view(
    installed: None, kubectl: Kubectl, namespace: str
) -> None:
    bind(kubectl, namespace, "view", "bob")
    # The aggregation controller copies koos-view's rules into view.
    wait_for(
        "koos-view's rules in the view ClusterRole",
        lambda: any(
            "koos.io" in (rule.get("apiGroups") or [])
            for rule in json.loads(kubectl("get", "clusterrole", "view", "-o", "json"))["rules"]
        ),
        timeout=30,
    )
    ns = ("-n", namespace)
    assert can(kubectl, "bob", "list", "approvals.koos.io", *ns)
    assert not can(kubectl, "bob", "patch", "approvals.koos.io", *ns)
    assert kubectl("get", "executions", *ns, user="bob") == ""
    stderr = create_refused(kubectl, "bob", execution_manifest("run-1", namespace, "t"))
    forbidden(stderr, "bob", "create", "executions")


PEOPLE = ("koos-view", "koos-run", "koos-edit", "koos-approve")


@pytest.mark.parametrize("role", PEOPLE)
def test_no_role_for_people_opens_a_gate(
    installed: None, realplane: RealPlane, kubectl: Kubectl, namespace: str, role: str
) -> None:
    """Issue 10's three routes past a gate, for anyone holding one of the roles koos ships:
    refused by RBAC itself, before any webhook is asked."""
    bind(kubectl, namespace, role, "bob")
    create(kubectl, approval_manifest("run-1-approve", namespace, ["alice"]))
    create(kubectl, execution_manifest("run-1", namespace, "t"))
    gate_routes_refused(kubectl, realplane, "bob", namespace)


# ---- the operator, with its own role ----------------------------------------------------


@pytest.fixture(scope="module")
def operator(
    installed: None,
    realplane: RealPlane,
    kubectl: Kubectl,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operator]:
    with running_koos(realplane, kubectl, tmp_path_factory.mktemp("rbac-operator"), NODE) as op:
        yield op


def execution(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("get", "execution", name, "-n", namespace, "-o", "json")))


def ended(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    body = execution(kubectl, namespace, name)
    phase = (body.get("status") or {}).get("phase")
    return body if phase in ("Succeeded", "Failed", "Cancelled") else None


def deployment(kubectl: Kubectl, namespace: str) -> None:
    """Deployment web, scaled to 0 (a restart changes its template all the same)."""
    labels = {"app": "web"}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(body))


def test_the_operator_runs_the_readmes_approval_runbook_with_its_own_role(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    """examples/approval as written: bob (koos-run) starts it, alice (koos-approve, in sre)
    approves, the restart step runs `kubectl rollout restart` as koos-runner."""
    bind(kubectl, namespace, "koos-run", "bob")
    bind(kubectl, namespace, "koos-approve", "alice")
    ns = ("-n", namespace)
    deployment(kubectl, namespace)
    for name in ("serviceaccount.yaml", "template.yaml"):
        kubectl("apply", "-f", str(EXAMPLE / name), *ns)
    began = time.monotonic()
    kubectl("create", "-f", str(EXAMPLE / "execution.yaml"), *ns, user="bob")
    approval = "restart-web-1-approve"

    def pending() -> bool:
        result = kubectl.run(
            "get", "approval", approval, *ns, "-o", "json", user="alice", check=False
        )
        return (
            result.returncode == 0
            and json.loads(result.stdout).get("status", {}).get("phase") == "Pending"
        )

    wait_for("the Approval, pending", pending, timeout=60)
    run = execution(kubectl, namespace, "restart-web-1")
    assert run["status"]["phase"] == "Waiting"
    assert run["metadata"]["annotations"]["koos.io/created-by"] == "bob"
    kubectl("annotate", "approval", approval, "koos.io/decision=approve", *ns, user="alice")
    done = wait_for(
        "the run to end", lambda: ended(kubectl, namespace, "restart-web-1"), timeout=90
    )
    assert done["status"]["phase"] == "Succeeded", json.dumps(done["status"], indent=1)
    steps = {step["name"]: step for step in done["status"]["steps"]}
    assert [steps[s]["phase"] for s in ("approve", "restart", "report")] == ["Succeeded"] * 3
    # The step acted as koos-runner: the Deployment was restarted.
    web = json.loads(kubectl("get", "deployment", "web", *ns, "-o", "json"))
    assert "kubectl.kubernetes.io/restartedAt" in web["spec"]["template"]["metadata"]["annotations"]
    decided = json.loads(kubectl("get", "approval", approval, *ns, "-o", "json"))["status"]
    assert [(d["user"], d["verified"]) for d in decided["decisions"]] == [("alice", True)]
    print(f"run to Succeeded in {time.monotonic() - began:.1f} s (approval included)")
    operator.assert_never_refused()


def test_a_step_does_no_more_than_its_templates_service_account_may(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    """The README: serviceAccountName is the identity every Job of the runbook runs as. A step
    asks who it is, then deletes the Deployment, which koos-runner may not."""
    ns = ("-n", namespace)
    deployment(kubectl, namespace)
    kubectl("apply", "-f", str(EXAMPLE / "serviceaccount.yaml"), *ns)
    kubectl("create", "secret", "generic", "db", "--from-literal=password=s3cret-value", *ns)
    secret = {"name": "db", "key": "password"}
    whoami = (
        'printf \'{"user": "%s", "password": "%s"}\' '
        '"$(kubectl auth whoami -o jsonpath=\'{.status.userInfo.username}\')" "$PASSWORD" '
        '> "$KOOS_OUTPUT"'
    )
    template = koos(
        "Template",
        "overreach",
        namespace,
        {
            "serviceAccountName": "koos-runner",
            "parameters": {"deployment": {"type": "string", "pattern": "^[a-z0-9-]+$"}},
            "steps": [
                {
                    "name": "whoami",
                    "run": {
                        "image": "bitnami/kubectl",
                        "script": whoami,
                        # A Secret the step sees: koos reads it (get secrets) to mask it.
                        "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": secret}}],
                    },
                },
                {
                    "name": "delete",
                    "run": {
                        "image": "bitnami/kubectl",
                        "script": 'kubectl delete deployment "$KOOS_PARAM_DEPLOYMENT"',
                    },
                },
            ],
        },
    )
    kubectl("apply", "-f", "-", input=json.dumps(template))
    create(kubectl, execution_manifest("over-1", namespace, "overreach", deployment="web"))
    done = wait_for("the run to end", lambda: ended(kubectl, namespace, "over-1"), timeout=90)
    assert done["status"]["phase"] == "Failed", json.dumps(done["status"], indent=1)
    steps = {step["name"]: step for step in done["status"]["steps"]}
    assert steps["whoami"]["phase"] == "Succeeded"
    who = f"system:serviceaccount:{namespace}:koos-runner"
    assert steps["whoami"]["outputs"] == {"user": who, "password": "***"}
    assert steps["delete"]["phase"] == "Failed"
    wanted = f'User "{who}" cannot delete resource "deployments" in API group "apps"'
    assert wanted in steps["delete"]["message"], steps["delete"]
    kubectl("get", "deployment", "web", *ns)  # still there
    # The step's refusal is the step's, not the operator's.
    operator.assert_never_refused()


def test_the_operators_role_allows_what_it_lists_and_one_step_beyond_is_forbidden(
    operator: Operator, realplane: RealPlane, namespace: str
) -> None:
    op = operator.kubectl
    ns = ("-n", namespace)
    # What its work needs (each rule of operator.yaml, checked by SubjectAccessReview below).
    assert can(op, None, "create", "jobs.batch", *ns)
    assert can(op, None, "patch", "approvals.koos.io", "--subresource=status", *ns)
    assert can(op, None, "get", "secrets", *ns)  # by name, to mask values
    assert can(op, None, "patch", "validatingwebhookconfigurations/koos.io")
    # One step beyond.
    for args in (
        ("list", "secrets", "-A"),
        ("watch", "secrets", *ns),
        ("create", "secrets", *ns),
        ("delete", "namespaces"),
        ("create", "pods", *ns),
        ("delete", "pods", *ns),
        ("create", "serviceaccounts/token", *ns),
        ("create", "clusterrolebindings"),
        ("impersonate", "users"),
        ("delete", "approvals.koos.io", *ns),
        ("update", "templates.koos.io", *ns),
        ("patch", "validatingwebhookconfigurations/other"),
        ("delete", "validatingwebhookconfigurations/koos.io"),
        ("create", "leases.coordination.k8s.io", *ns),
    ):
        assert not can(op, None, *args), args
    forbidden(refused(op, None, "get", "secrets", "-A"), OPERATOR_USER, "list", "secrets", group="")
    stderr = refused(op, None, "delete", "namespace", namespace, "--wait=false")
    forbidden(stderr, OPERATOR_USER, "delete", "namespaces", group="")
    stderr = refused(op, None, "create", "token", "default", *ns)
    forbidden(stderr, OPERATOR_USER, "create", "serviceaccounts/token", group="")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "direct", "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["true"]}]},
    }
    stderr = refused(op, None, "create", "-f", "-", input=json.dumps(pod))
    forbidden(stderr, OPERATOR_USER, "create", "pods", group="")

    # Every verb of every rule of operator.yaml, granted as written (resourceNames too).
    denied = role_denials(realplane, namespace)
    assert not denied, denied


def test_the_webhooks_still_refuse_a_person_granted_too_much(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    """Defence in depth on the real ground: bob given the rights no person should have
    (status of approvals and executions, create approvals) is still refused, by the
    operator's webhooks, for each route past a gate."""
    too_much = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "Role",
        "metadata": {"name": "too-much", "namespace": namespace},
        "rules": [
            {
                "apiGroups": ["koos.io"],
                "resources": ["approvals", "approvals/status", "executions", "executions/status"],
                "verbs": ["get", "list", "create", "patch", "update"],
            }
        ],
    }
    binding = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "bob-too-much", "namespace": namespace},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "too-much"},
        "subjects": [{"kind": "User", "name": "bob", "apiGroup": RBAC}],
    }
    kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [too_much, binding]}),
    )
    ns = ("-n", namespace)
    template = koos(
        "Template",
        "gate",
        namespace,
        {
            "steps": [
                {"name": "approve", "approve": {"approvers": {"groups": ["sre"]}}},
                # Running beside the gate until the run is cancelled, which deletes its Job.
                {
                    "name": "side",
                    "dependsOn": [],
                    "run": {"image": "busybox", "script": "sleep 120"},
                },
            ]
        },
    )
    kubectl("apply", "-f", "-", input=json.dumps(template))
    create(kubectl, execution_manifest("run-1", namespace, "gate"))
    wait_for("the gate and the side step's Pod", lambda: gate_and_side(kubectl, namespace))
    stderr = refused(
        kubectl,
        "bob",
        "patch",
        "approval",
        "run-1-approve",
        *ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        BYPASS_STATUS,
    )
    assert "is written by koos only" in stderr, stderr
    look_alike = approval_manifest("run-2-approve", namespace, ["bob"])
    stderr = create_refused(kubectl, "bob", look_alike)
    assert "approvals are created by koos only" in stderr, stderr
    stderr = refused(
        kubectl,
        "bob",
        "patch",
        "execution",
        "run-1",
        *ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        STEP_PASSED,
    )
    assert "is written by koos only" in stderr, stderr
    assert gate_and_side(kubectl, namespace)  # nothing moved
    kubectl("annotate", "execution", "run-1", "koos.io/cancel=true", *ns)
    done = wait_for("the run to end", lambda: ended(kubectl, namespace, "run-1"), timeout=60)
    assert done["status"]["phase"] == "Cancelled"
    wait_for(
        "the side step's Job, deleted", lambda: kubectl("get", "jobs", "-o", "name", *ns) == ""
    )
    operator.assert_never_refused()


def gate_and_side(kubectl: Kubectl, namespace: str) -> bool:
    """The run waits at its gate while its side step's Pod runs."""
    steps = execution(kubectl, namespace, "run-1").get("status", {}).get("steps") or []
    phases = {step["name"]: step["phase"] for step in steps}
    if phases != {"approve": "Running", "side": "Running"}:
        return False
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
    return any(pod.get("status", {}).get("phase") == "Running" for pod in pods)


def test_a_schedule_is_served_with_the_operators_role(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    """bob (koos-edit) schedules the README's runbook; the operator stamps him as its
    creator and writes its status (the next fire). He may not write the Template itself."""
    bind(kubectl, namespace, "koos-edit", "bob")
    ns = ("-n", namespace)
    # One step beyond for an editor: a Template that runs as a ServiceAccount, which only
    # those who may create Jobs in the namespace may use (the Template webhook asks the API
    # server with a SubjectAccessReview, on the operator's rights).
    stderr = refused(kubectl, "bob", "apply", "-f", str(EXAMPLE / "template.yaml"), *ns)
    assert "bob may not create Jobs in namespace" in stderr, stderr
    kubectl("apply", "-f", str(EXAMPLE / "template.yaml"), *ns)
    schedule = koos(
        "Schedule",
        "nightly",
        namespace,
        {
            "schedule": "30 2 * * *",
            "timeZone": "Europe/Berlin",
            "executionTemplate": {
                "spec": {
                    "templateRef": {"name": "restart-deployment"},
                    "parameters": {"deployment": "web", "dryRun": True},
                }
            },
        },
    )
    create(kubectl, schedule, user="bob")

    def scheduled() -> dict[str, Any] | None:
        body = json.loads(kubectl("get", "schedule", "nightly", *ns, "-o", "json", user="bob"))
        return body if (body.get("status") or {}).get("nextScheduleTime") else None

    body = wait_for("the Schedule's next fire", scheduled, timeout=60)
    assert body["metadata"]["annotations"]["koos.io/created-by"] == "bob"
    ready = {c["type"]: c for c in body["status"]["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "Scheduled")
    operator.assert_never_refused()


# Rights of operator.yaml that the runs of this module need not use, and why each is kept
# (a Job is read by name only when its watch event is late: used in some runs, not all).
NOT_EXERCISED = {
    ("create", "koos.io", "executions", ""): "a Schedule's fire, which comes at a minute "
    "boundary (tests/integration/test_schedules.py exercises it on the sandbox)",
    ("delete", "koos.io", "executions", ""): "a Schedule's history limits",
    ("update", "koos.io", "executions", "finalizers"): "asked by the admission plugin "
    "OwnerReferencesPermissionEnforcement, not by a request (off on the session's ground; see "
    "test_the_role_holds_where_owner_references_are_enforced)",
    ("update", "koos.io", "schedules", "finalizers"): "the same, for a Schedule's runs",
    ("get", "koos.io", "schedules", ""): "read only when the watch's copy is not trusted "
    "(after a status write that conflicted or was lost)",
    ("get", "batch", "jobs", ""): "a Job the watch has not brought yet, or one met on a 409",
    ("get", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", ""): "read "
    "again only when a patch of its matchConditions failed",
    ("get", "admissionregistration.k8s.io", "validatingwebhookconfigurations", ""): "the same",
}


def granted(rules: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], set[str]]:
    """(verb, group, resource, subresource) → the names it is limited to (empty: any)."""
    out: dict[tuple[str, str, str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for plural in rule["resources"]:
                resource, _, sub = plural.partition("/")
                for verb in rule["verbs"]:
                    names = out.setdefault((verb, group, resource, sub), set(["?"]))
                    limited = set(rule.get("resourceNames") or [])
                    out[(verb, group, resource, sub)] = (
                        set() if not limited or not names else (names - {"?"}) | limited
                    )
    return out


def test_the_operators_real_traffic_is_what_its_role_grants(
    operator: Operator, realplane: RealPlane
) -> None:
    """Read back from kube-apiserver's audit log (the ground records the koos-system
    ServiceAccounts' requests): every request the operator made above was allowed and is
    granted by operator.yaml, and every right operator.yaml grants was used, but for the
    documented NOT_EXERCISED."""
    documents = [d for d in yaml.safe_load_all(OPERATOR_YAML.read_text()) if d]
    rules = [rule for d in documents if d["kind"] in ("ClusterRole", "Role") for rule in d["rules"]]
    rights = granted(rules)
    used: set[tuple[str, str, str, str]] = set()
    refusals, outside = [], []
    for event in realplane.audit_events():
        if event["user"]["username"] != OPERATOR_USER or "objectRef" not in event:
            continue  # another account of koos-system; discovery (system:discovery)
        if str(event.get("userAgent", "")).startswith("kubectl"):
            continue  # the tests' own requests with the operator's token (one step beyond)
        ref = event["objectRef"]
        key = (event["verb"], ref.get("apiGroup", ""), ref["resource"], ref.get("subresource", ""))
        answer = event.get("responseStatus") or {}
        causes = (answer.get("details") or {}).get("causes") or []
        if any(cause.get("reason") == "NamespaceTerminating" for cause in causes):
            continue  # an earlier test's namespace going away: not a matter of rights
        if answer.get("code") == 403:
            refusals.append(f"{key} {event['requestURI']}: {event['responseStatus']}")
        if key == ("create", "authentication.k8s.io", "selfsubjectreviews", ""):
            continue  # every authenticated user may (system:basic-user)
        names = rights.get(key)
        if names is None or (names and ref.get("name") not in names):
            outside.append(f"{key} {event['requestURI']}")
        used.add(key)
    assert used, "no request of the operator in the audit log"
    assert not refusals, "refused:\n" + "\n".join(refusals)
    assert not outside, "not granted by operator.yaml:\n" + "\n".join(outside)
    unused = set(rights) - used
    assert unused <= set(NOT_EXERCISED), (
        f"granted, never used: {sorted(unused - set(NOT_EXERCISED))}"
    )
    assert set(NOT_EXERCISED) <= set(rights)
    print(f"operator requests: {len(used)} kinds; granted, not used here: {sorted(unused)}")


def test_the_role_holds_where_owner_references_are_enforced(
    realplane: RealPlane, kubectl: Kubectl, tmp_path: Path
) -> None:
    """Hardened clusters (OpenShift among them) run the admission plugin
    OwnerReferencesPermissionEnforcement: setting an object's ownerReferences takes `delete`
    on that object, and `blockOwnerDeletion` takes `update` on the owner's finalizers. On a
    ground of its own with the plugin on, a run step's Job and an approve step's Approval are
    made, and the run ends Succeeded, with no request of the operator refused."""
    del realplane  # (the session's ground: only to know the binaries are there)
    plugins = "--enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement"
    with RealPlane(extra_apiserver_args=[plugins], audited_groups=()) as ground:
        own = Kubectl(kubectl.binary, ground.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path)
        install(ground, own)
        namespace = "owners"
        own("create", "namespace", namespace)
        bind(own, namespace, "koos-approve", "alice")
        steps = [
            {"name": "first", "run": {"image": "busybox", "script": "true"}},
            {"name": "approve", "approve": {"approvers": {"users": ["alice"]}}},
        ]
        create(own, koos("Template", "owned", namespace, {"steps": steps}))
        with running_koos(ground, own, tmp_path, "owner-node") as op:
            create(own, execution_manifest("run-1", namespace, "owned"))

            def asked() -> bool:
                op.assert_never_refused()  # fail at once, saying what was refused
                found = own.run("get", "approval", "run-1-approve", "-n", namespace, check=False)
                return found.returncode == 0

            wait_for("the Approval", asked, timeout=60)
            own(
                "annotate", "approval", "run-1-approve", "koos.io/decision=approve",
                "-n", namespace, user="alice",
            )  # fmt: skip
            done = wait_for("the run to end", lambda: ended(own, namespace, "run-1"), timeout=60)
            assert done["status"]["phase"] == "Succeeded", json.dumps(done["status"], indent=1)
            op.assert_never_refused()
