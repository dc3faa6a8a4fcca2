"""`make demo`: start the sandbox, use it with the real kubectl, show the results, stop.

Until the execution engine exists, the demo shows the ground koos stands on: a CRD and a
custom object applied and printed with its columns, and a Job run as a local process with
its logs and termination message. Exits non-zero, saying why, when anything fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "sandbox"


class DemoError(Exception):
    pass


def _start_sandbox(workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], Path]:
    kubeconfig = workdir / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "koos.cli.main",
            "sandbox",
            "--kubeconfig",
            str(kubeconfig),
            "--jobs",
            "local",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise DemoError(f"the sandbox exited before it was ready (code {proc.wait()})")
        if "ready" in line:
            print(f"$ koos sandbox --kubeconfig {kubeconfig} --jobs local\n{line.rstrip()}")
            return proc, kubeconfig
    proc.kill()
    raise DemoError("the sandbox did not say it was ready within 20 s")


def _kubectl(env: dict[str, str], *args: str, show: bool = True) -> str:
    if show:
        print(f"\n$ kubectl {' '.join(args)}", flush=True)
    result = subprocess.run(
        ["kubectl", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise DemoError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    if show:
        print(result.stdout.rstrip(), flush=True)
    return result.stdout


def run() -> None:
    if shutil.which("kubectl") is None:
        raise DemoError("kubectl is not on the PATH; install kubectl 1.32 to run the demo")
    with tempfile.TemporaryDirectory(prefix="koos-demo-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "KUBECACHEDIR": str(workdir / "cache")}
        proc, kubeconfig = _start_sandbox(workdir, env)
        env["KUBECONFIG"] = str(kubeconfig)
        try:
            _kubectl(env, "version")
            _kubectl(env, "apply", "-f", str(EXAMPLES / "crd.yaml"))
            _kubectl(env, "wait", "--for=condition=Established", "crd/greetings.demo.koos.io")
            _kubectl(env, "apply", "-f", str(EXAMPLES / "greeting.yaml"))
            _kubectl(env, "get", "greetings")
            _kubectl(env, "get", "greeting", "hello", "-o", "yaml")
            _kubectl(env, "--context", "alice", "auth", "whoami")
            _kubectl(env, "apply", "-f", str(EXAMPLES / "job.yaml"))
            _kubectl(env, "wait", "--for=condition=Complete", "job/say-hello", "--timeout=30s")
            _kubectl(env, "get", "jobs,pods")
            _kubectl(env, "logs", "job/say-hello")
            message = _kubectl(
                env,
                "get",
                "pods",
                "-l",
                "batch.kubernetes.io/job-name=say-hello",
                "-o",
                "jsonpath={.items[0].status.containerStatuses[0].state.terminated.message}",
                show=False,
            )
            print(f"\ntermination message of the Job's pod: {message.strip()}")
            _kubectl(env, "delete", "-f", str(EXAMPLES / "greeting.yaml"))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print("\ndemo finished: the sandbox served kubectl end to end")


def main() -> int:
    try:
        run()
    except DemoError as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
