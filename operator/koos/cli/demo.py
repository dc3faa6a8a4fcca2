"""`make demo`: the sandbox, the operator and the quickstart runbook, end to end.

Starts `koos-sandbox --jobs local` (steps run as local processes; a program of the sandbox
distribution, run as a subprocess: the operator package never imports it) and `koos operator`,
applies examples/quickstart with the real kubectl, shows the steps as they progress until
the Execution succeeds, prints `kubectl get exe` and the outputs, then stops everything.
Exits non-zero, saying why, when anything fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
QUICKSTART = ROOT / "examples" / "quickstart"
DEADLINE = 60.0


class DemoError(Exception):
    pass


def _start_sandbox(workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], Path]:
    kubeconfig = workdir / "kubeconfig"
    argv = [
        sys.executable,
        "-m",
        "koos_sandbox",
        "--kubeconfig",
        str(kubeconfig),
        "--jobs",
        "local",
        "--crds",
        str(ROOT / "crds"),
    ]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready" not in line:
        proc.kill()
        raise DemoError(f"the sandbox did not start: {line.strip() or proc.wait()}")
    print(f"$ koos-sandbox --kubeconfig {kubeconfig} --jobs local --crds crds/\n{line.rstrip()}")
    return proc, kubeconfig


def operator_command(kubeconfig: Path) -> list[str]:
    """`koos operator` against `kubeconfig`, without a metrics port, as this interpreter runs
    it (the demo and the benchmarks start it in a process of its own)."""
    module = [sys.executable, "-m", "koos.cli.main", "operator"]
    return [*module, "--kubeconfig", str(kubeconfig), "--metrics-port", "0"]


def _start_operator(kubeconfig: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    print(f"$ koos operator --kubeconfig {kubeconfig} --metrics-port 0   (log: {log})")
    with open(log, "wb") as out:
        return subprocess.Popen(
            operator_command(kubeconfig),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def kubectl_binary() -> str | None:
    """The machine's kubectl, else the pinned one `make` installs beside this Python."""
    pinned = Path(sysconfig.get_path("scripts")) / "kubectl"
    return shutil.which("kubectl") or (str(pinned) if pinned.is_file() else None)


def _kubectl(env: dict[str, str], *args: str, show: bool = True) -> str:
    if show:
        print(f"\n$ kubectl {' '.join(args)}", flush=True)
    result = subprocess.run(
        [kubectl_binary() or "kubectl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise DemoError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    if show and result.stdout.strip():
        print(result.stdout.rstrip(), flush=True)
    return result.stdout


def _follow(env: dict[str, str], name: str) -> dict[str, Any]:
    """Print each step's phase as it changes until the Execution ends (the demo's display)."""
    print(f"\nprogress of execution/{name}:")
    seen: dict[str, str] = {}
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        obj: dict[str, Any] = json.loads(
            _kubectl(env, "get", "execution", name, "-o", "json", show=False)
        )
        status = obj.get("status") or {}
        for step in status.get("steps") or []:
            line = f"{step['phase']}"
            if step.get("jobName") and step["phase"] == "Running":
                line += f" (Job {step['jobName']})"
            if step.get("message") and step["phase"] not in ("Running", "Succeeded"):
                line += f" — {step['message']}"
            if seen.get(step["name"]) != line:
                seen[step["name"]] = line
                print(f"  {time.strftime('%H:%M:%S')}  {step['name']:<16} {line}", flush=True)
        if status.get("phase") in ("Succeeded", "Failed", "Cancelled"):
            return obj
        time.sleep(0.3)  # a display refresh, not a wait in a test
    raise DemoError(f"execution/{name} did not finish within {DEADLINE:.0f}s")


def run() -> None:
    if kubectl_binary() is None:
        raise DemoError("no kubectl: none on the PATH and `make install` did not install one")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="koos-demo-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "KUBECACHEDIR": str(workdir / "cache")}
        sandbox, kubeconfig = _start_sandbox(workdir, env)
        env["KUBECONFIG"] = str(kubeconfig)
        log = workdir / "operator.log"
        operator = _start_operator(kubeconfig, log, env)
        try:
            _kubectl(env, "apply", "-f", str(QUICKSTART / "template.yaml"))
            _kubectl(env, "wait", "--for=condition=Ready", "template/quickstart", "--timeout=30s")
            _kubectl(env, "get", "templates")
            _kubectl(env, "apply", "-f", str(QUICKSTART / "execution.yaml"))
            done = _follow(env, "quickstart-1")
            _kubectl(env, "get", "executions")
            if done["status"]["phase"] != "Succeeded":
                raise DemoError(
                    f"the run ended {done['status']['phase']}: {done['status'].get('message')}"
                )
            print("\noutputs:", json.dumps(done["status"].get("outputs"), indent=2))
            _kubectl(env, "get", "jobs", "-l", "koos.io/execution=quickstart-1")
            _kubectl(env, "logs", "job/quickstart-1-summarize-1")
            _kubectl(
                env,
                "get",
                "events",
                "--field-selector",
                "involvedObject.kind=Execution",
                "--sort-by=.metadata.creationTimestamp",
            )
        except DemoError:
            print(
                "\noperator log (last lines):\n"
                + "\n".join(log.read_text(errors="replace").splitlines()[-30:]),
                file=sys.stderr,
            )
            raise
        finally:
            for proc in (operator, sandbox):
                proc.terminate()
            for proc in (operator, sandbox):
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print(f"\ndemo finished in {time.monotonic() - started:.0f}s: the quickstart runbook succeeded")


def main() -> int:
    try:
        run()
    except DemoError as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
