"""koos installed on the real ground as a cluster admin would install it, and run as its own
processes: the operator (`python -m koos.cli.main operator`) authenticated as ServiceAccount
koos-system/koos-operator with exactly the rights of `manifests/rbac/operator.yaml`, and a
node agent (`python -m koos_sandbox.node_agent`) that runs the steps' Pods as local processes.

Each process has a process group of its own and a log file; `stop()` ends the group (TERM,
then KILL past a grace period), so nothing is left running. Plain Python: no pytest here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..ground.realplane import RealPlane, build_kubeconfig, wait_for

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
