"""koos installed on the real ground as a cluster admin would install it (`install`), and run
(`running_koos`) as its own processes: the operator (`python -m koos.cli.main operator`)
authenticated as ServiceAccount koos-system/koos-operator with exactly the rights of
`manifests/rbac/operator.yaml`, and a node agent (`python -m koos_sandbox.node_agent`) that
runs the steps' Pods as local processes.

Each process has a process group of its own and a log file; `stop()` ends the group (TERM,
then KILL past a grace period), so nothing is left running. Plain Python: no pytest here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..ground.realplane import RealPlane, build_kubeconfig, wait_for
from .conftest import Kubectl

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_YAML = ROOT / "manifests" / "rbac" / "operator.yaml"
USER_ROLES_YAML = ROOT / "manifests" / "rbac" / "user-roles.yaml"
NAMESPACE, ACCOUNT = "koos-system", "koos-operator"
OPERATOR_USER = f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}"
SIGNING_SECRET = f"{NAMESPACE}/koos-approval-key"
WEBHOOK_CONFIGS = ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")
# The guards of what only koos writes: registered, each sparing the operator's own requests.
GUARDS = ("execution-status.koos.io", "approval-status.koos.io", "approval-created.koos.io")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def check_running(self) -> None:
        code = self.popen.poll()
        if code is not None:
            tail = "\n".join(self.text().splitlines()[-40:])
            raise AssertionError(f"{self.name} exited with {code}; its log ends:\n{tail}")

    def stop(self, grace: float = 15.0) -> int | None:
        """TERM the process group, KILL it after `grace` seconds; the exit code."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.wait()


def spawn(name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Process:
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stop() ends it whole
        )
    return Process(name, popen, log)


def service_account_token(
    realplane: RealPlane, namespace: str, name: str, seconds: int = 3600
) -> str:
    """A token of the ServiceAccount from the TokenRequest API, asked for by the admin."""
    status, body = realplane.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        },
    )
    assert status == 201, body
    return str(body["status"]["token"])


def write_token_kubeconfig(realplane: RealPlane, path: Path, user: str, token: str) -> Path:
    """A kubeconfig holding only `token`, its user and context named `user`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    config = build_kubeconfig(realplane.url, realplane.ca_pem, {user: token}, user)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def start_node_agent(
    realplane: RealPlane, folder: Path, node: str, path_prefix: str | None = None
) -> Process:
    """The node agent as the admin (it binds Pods, as a scheduler; see sandbox/README.md),
    ready once it says so. `path_prefix`: put first on the containers' PATH (kubectl)."""
    env = dict(os.environ)
    if path_prefix:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '')}"
    agent = spawn(
        "node agent",
        [
            sys.executable,
            "-m",
            "koos_sandbox.node_agent",
            f"--kubeconfig={realplane.kubeconfig_path('admin')}",
            f"--node-name={node}",
            f"--workdir={folder / 'node'}",
        ],
        folder / "node-agent.log",
        env,
    )

    def ready() -> bool:
        agent.check_running()
        return f"node agent {node} ready" in agent.text()

    wait_for(f"node agent {node}", ready, timeout=60)
    return agent


def start_operator(kubeconfig: Path, folder: Path) -> Process:
    """`koos operator` on every namespace, webhooks on (https, self-signed for 127.0.0.1)."""
    return spawn(
        "koos operator",
        [
            sys.executable,
            "-m",
            "koos.cli.main",
            "operator",
            f"--kubeconfig={kubeconfig}",
            "--metrics-port=0",
            "--webhook-host=127.0.0.1",
            f"--signing-key-secret={SIGNING_SECRET}",
        ],
        folder / "operator.log",
    )


def webhooks_guarded(realplane: RealPlane) -> bool:
    """The operator's webhook configurations are there, its guards conditioned (it serves)."""
    status, body = realplane.request(
        "GET", f"/apis/admissionregistration.k8s.io/v1/{WEBHOOK_CONFIGS[1]}/koos.io"
    )
    if status != 200:
        return False
    hooks = {hook["name"]: hook for hook in body.get("webhooks") or []}
    return all(hooks.get(name, {}).get("matchConditions") for name in GUARDS)


def remove_webhooks(realplane: RealPlane) -> None:
    """Take koos's webhook configurations out (they outlive the operator by design, and with
    failurePolicy Fail would refuse every later koos write on this ground)."""
    for plural in WEBHOOK_CONFIGS:
        status, body = realplane.request(
            "DELETE", f"/apis/admissionregistration.k8s.io/v1/{plural}/koos.io"
        )
        assert status in (200, 404), body


def established(realplane: RealPlane) -> bool:
    for kind in ("templates", "executions", "schedules", "approvals"):
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{kind}.koos.io"
        status, body = realplane.request("GET", path)
        conditions = (body.get("status") or {}).get("conditions") or [] if status == 200 else []
        if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return False
    return True


def install(realplane: RealPlane, kubectl: Kubectl) -> None:
    """The CRDs (established) and both RBAC files, applied by the admin."""
    kubectl("apply", "-f", str(ROOT / "crds"))
    wait_for("the koos CRDs, established", lambda: established(realplane), timeout=60)
    kubectl("apply", "-f", str(USER_ROLES_YAML), "-f", str(OPERATOR_YAML))


@dataclass
class Operator:
    process: Process
    agent: Process
    kubectl: Kubectl  # the operator's own account (its kubeconfig's only context)

    def refusals(self) -> list[str]:
        """Lines of the operator's log where the API server refused it, but for
        NamespaceLifecycle's refusal to write into a namespace being deleted (the earlier
        tests' namespaces, whose runs the operator serves too): not a matter of rights."""
        return [
            line
            for line in self.process.text().splitlines()
            # Every 403 says Forbidden: ours ("403 Forbidden: …"), kopf's APIForbiddenError.
            # (Not "403" alone: a log line's milliseconds may read ",403".)
            if "forbidden" in line.lower() and "because it is being terminated" not in line
        ]

    def assert_never_refused(self) -> None:
        self.process.check_running()
        assert not self.refusals(), "the operator was refused:\n" + "\n".join(self.refusals())


def allowed(realplane: RealPlane, attributes: dict[str, str]) -> bool:
    """The RBAC authorizer's answer for the operator's account (a SubjectAccessReview)."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": OPERATOR_USER,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{NAMESPACE}",
                "system:authenticated",
            ],
            "resourceAttributes": attributes,
        },
    }
    path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    status, body = realplane.request("POST", path, review)
    assert status == 201, body
    return bool(body["status"].get("allowed"))


def role_denials(realplane: RealPlane, namespace: str) -> list[dict[str, str]]:
    """Each verb of each rule of operator.yaml (ClusterRole in `namespace`, Role in
    koos-system) that the API server does not grant the operator now."""
    denied = []
    for doc in yaml.safe_load_all(OPERATOR_YAML.read_text()):
        if not doc or doc["kind"] not in ("ClusterRole", "Role"):
            continue
        where = doc["metadata"].get("namespace", namespace)
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for plural in rule["resources"]:
                    resource, _, sub = plural.partition("/")
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames") or [""]:
                            attributes = {
                                "namespace": where,
                                "verb": verb,
                                "group": group,
                                "resource": resource,
                                "subresource": sub,
                                "name": name,
                            }
                            if not allowed(realplane, attributes):
                                denied.append(attributes)
    return denied


@contextlib.contextmanager
def running_koos(
    realplane: RealPlane, kubectl: Kubectl, folder: Path, node: str
) -> Iterator[Operator]:
    """`koos operator` as koos-system/koos-operator (a TokenRequest token, nothing else) and
    a node agent, until the block ends; then both stopped (exit 0 on SIGTERM, no process
    left) and what would outlive them on the ground removed."""
    # A binding just applied reaches the RBAC authorizer's cache a moment later: start once
    # it is in force, so that any refusal the operator meets is a right it lacks.
    wait_for("the operator's role, in force", lambda: not role_denials(realplane, "default"))
    token = service_account_token(realplane, NAMESPACE, ACCOUNT)
    config = write_token_kubeconfig(realplane, folder / "operator.kubeconfig", ACCOUNT, token)
    as_operator = Kubectl(kubectl.binary, config, folder / "cache")
    who = json.loads(as_operator("auth", "whoami", "-o", "json"))["status"]["userInfo"]
    assert who["username"] == OPERATOR_USER
    agent = start_node_agent(realplane, folder, node, str(Path(kubectl.binary).parent))
    process = start_operator(config, folder)
    try:

        def serving() -> bool:
            process.check_running()
            agent.check_running()
            return webhooks_guarded(realplane)

        wait_for("the operator's webhooks, conditioned", serving, timeout=60)
        yield Operator(process, agent, as_operator)
    finally:
        try:
            code = process.stop()
            agent.stop()
        finally:
            # What would outlive them on the ground: the webhooks (failure policy Fail),
            # Pods bound to a node no agent runs any more, the Node, the signing key.
            remove_webhooks(realplane)
            forget_node(realplane, node)
            kubectl("delete", "secret", "koos-approval-key", "-n", NAMESPACE, "--ignore-not-found")
        for pid in (process.popen.pid, agent.popen.pid):
            assert not Path(f"/proc/{pid}").exists(), f"process {pid} left running"
        tail = "\n".join(process.text().splitlines()[-20:])
        assert code == 0, f"the operator exited {code} on SIGTERM; its log ends:\n{tail}"


def forget_node(realplane: RealPlane, node: str) -> None:
    """Remove the Pods bound to `node` (no kubelet will confirm their end) and the Node."""
    status, pods = realplane.request("GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}")
    assert status == 200, pods
    now = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0}
    for pod in pods["items"]:
        meta = pod["metadata"]
        realplane.request(
            "DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", now
        )
    realplane.request("DELETE", f"/api/v1/nodes/{node}")
