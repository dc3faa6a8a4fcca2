"""Resilience: the world misbehaves while Executions run, and no run is lost or doubled.

Jobs and Pods deleted by a person, a node lost mid-step, the operator stopped and started
again at the moments that matter; every failure of a child is a failed attempt (the retry
policy applies), no Execution stays Running without a live child, and a restart neither
duplicates a Job nor loses a step.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import pytest

from koos.handlers import metrics
from koos_sandbox.app import Sandbox
from koos_sandbox.testing import async_wait_for

from .conftest import ROOT, Koos

DEADLINE = 10.0  # seconds a run may take to notice a lost child and settle


def template(name: str, count: int, **step: object) -> dict[str, Any]:
    """A template of `count` run steps s0…s(count-1) in order; `step` adds to each."""
    steps = [
        {"name": f"s{i}", "run": {"image": "busybox", "script": "true"}, **step}
        for i in range(count)
    ]
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": name},
        "spec": {"steps": steps},
    }


def sleeps(seconds: float, step: str | None = None, attempt: int | None = None) -> dict[str, Any]:
    """A run whose script sleeps `seconds` (in step `step`, attempt `attempt`, if given), as
    the tests script the sandbox's outcomes to: the real ground runs the script."""
    tests = [f'[ "$KOOS_STEP" = {step} ]'] if step else []
    tests += [f'[ "$KOOS_ATTEMPT" = {attempt} ]'] if attempt else []
    script = f"sleep {seconds}"
    if tests:
        script = f"if {' && '.join(tests)}; then {script}; fi"
    return {"image": "busybox", "script": script}


def execution(name: str, template: str) -> dict[str, Any]:
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": template}},
    }


def job_names(koos: Koos, execution: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in koos.jobs(execution))


def job(koos: Koos, name: str) -> dict[str, Any] | None:
    return next((j for j in koos.jobs() if j["metadata"]["name"] == name), None)


def job_condition(koos: Koos, name: str) -> str | None:
    """The Job's terminal condition (Complete or Failed), or None while it is unfinished."""
    for condition in (job(koos, name) or {}).get("status", {}).get("conditions", []):
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return str(condition["type"])
    return None


def events(koos: Koos, execution: str) -> list[dict[str, Any]]:
    return [
        e
        for e in koos.events()
        if e.get("involvedObject", {}).get("name") == execution
        and e.get("involvedObject", {}).get("kind") == "Execution"
    ]


def succeeded_condition(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Succeeded")


async def running_pod(koos: Koos, execution: str, job_name: str) -> dict[str, Any]:
    """Wait until the Job's Pod runs and the Execution's status names the Job."""

    def found() -> dict[str, Any] | None:
        recorded = any(
            s.get("jobName") == job_name and s["phase"] == "Running"
            for s in (koos.execution(execution) or {}).get("status", {}).get("steps", [])
        )
        pod = next(
            (
                p
                for p in koos.pods()
                if p["metadata"]["name"].startswith(f"{job_name}-")
                and p.get("status", {}).get("phase") == "Running"
            ),
            None,
        )
        return pod if recorded else None

    return await async_wait_for(found, what=f"the Pod of Job {job_name} to run")


# ---- children that disappear -------------------------------------------------------------


async def test_a_job_deleted_mid_run_is_a_failed_attempt_that_is_retried(koos: Koos) -> None:
    retries = {"limit": 1, "backoff": "1s"}
    await koos.apply(template("deleted", 1, retries=retries, run=sleeps(600, attempt=1)))
    koos.outcome("jd-1-s0-1-*", duration=600)
    await koos.apply(execution("jd-1", "deleted"))
    await running_pod(koos, "jd-1", "jd-1-s0-1")

    await koos.delete("jobs", "jd-1-s0-1", group="batch", version="v1")

    done = await koos.finished("jd-1", timeout=DEADLINE)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert koos.step("jd-1", "s0")["attempt"] == 2
    assert koos.step("jd-1", "s0")["jobName"] == "jd-1-s0-2"
    assert job_names(koos, "jd-1") == ["jd-1-s0-2"]  # the deleted one is not re-created
    retrying = [e for e in events(koos, "jd-1") if e["reason"] == "StepRetrying"]
    assert retrying, [e["reason"] for e in events(koos, "jd-1")]
    assert "jd-1-s0-1" in retrying[0]["message"]


async def test_a_job_deleted_with_no_retries_left_fails_the_run_naming_the_job(koos: Koos) -> None:
    # Also: no Execution stays Running once its only live child is gone.
    await koos.apply(template("fragile", 2, run=sleeps(600, step="s0")))
    koos.outcome("jl-1-s0-*", duration=600)
    await koos.apply(execution("jl-1", "fragile"))
    await running_pod(koos, "jl-1", "jl-1-s0-1")

    await koos.delete("jobs", "jl-1-s0-1", group="batch", version="v1")

    done = await koos.finished("jl-1", timeout=DEADLINE)
    assert done["status"]["phase"] == "Failed", done["status"]
    step = koos.step("jl-1", "s0")
    assert step["phase"] == "Failed"
    assert step["reason"] in ("JobLost", "Failed"), step
    assert "jl-1-s0-1" in step["message"]
    condition = succeeded_condition(done)
    assert condition["status"] == "False"
    assert condition["reason"] in ("JobLost", "Failed")
    assert "jl-1-s0-1" in condition["message"]
    assert koos.step("jl-1", "s1")["phase"] == "Skipped"  # nothing new starts
    assert koos.jobs("jl-1") == []


@pytest.mark.sandbox_only("takes the node away with the sandbox's node controls")
async def test_a_lost_node_fails_the_attempt_and_the_retry_runs_once_it_is_back(koos: Koos) -> None:
    await koos.apply(template("nodal", 1, retries={"limit": 1, "backoff": "1s"}))
    koos.sandbox.jobs.script("nl-1-s0-1-*", duration=600)
    await koos.apply(execution("nl-1", "nodal"))
    await running_pod(koos, "nl-1", "nl-1-s0-1")

    koos.sandbox.jobs.lose_node()
    # The retry is a new Job; its Pod cannot schedule while the node is away.
    await async_wait_for(lambda: job(koos, "nl-1-s0-2"), what="the retry's Job")
    assert job_condition(koos, "nl-1-s0-1") == "Failed"
    assert koos.execution("nl-1")["status"]["phase"] == "Running"  # type: ignore[index]
    koos.sandbox.jobs.restore_node()

    done = await koos.finished("nl-1", timeout=DEADLINE)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert koos.step("nl-1", "s0")["attempt"] == 2
    assert job_names(koos, "nl-1") == ["nl-1-s0-1", "nl-1-s0-2"]
    assert any(e["reason"] == "StepRetrying" for e in events(koos, "nl-1"))


async def test_a_deleted_pod_is_a_failed_attempt(koos: Koos) -> None:
    retries = {"limit": 1, "backoff": "1s"}
    await koos.apply(template("podless", 1, retries=retries, run=sleeps(600, attempt=1)))
    koos.outcome("pd-1-s0-1-*", duration=600)
    await koos.apply(execution("pd-1", "podless"))
    pod = await running_pod(koos, "pd-1", "pd-1-s0-1")

    await koos.delete("pods", pod["metadata"]["name"], group="", version="v1")

    done = await koos.finished("pd-1", timeout=DEADLINE)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert koos.step("pd-1", "s0")["attempt"] == 2
    assert job_condition(koos, "pd-1-s0-1") == "Failed"
    assert job_names(koos, "pd-1") == ["pd-1-s0-1", "pd-1-s0-2"]


async def test_a_deleted_pod_with_no_retries_fails_the_run(koos: Koos) -> None:
    await koos.apply(template("podless-once", 1, run=sleeps(600, attempt=1)))
    koos.outcome("pf-1-s0-1-*", duration=600)
    await koos.apply(execution("pf-1", "podless-once"))
    pod = await running_pod(koos, "pf-1", "pf-1-s0-1")

    await koos.delete("pods", pod["metadata"]["name"], group="", version="v1")

    done = await koos.finished("pf-1", timeout=DEADLINE)
    assert done["status"]["phase"] == "Failed", done["status"]
    assert koos.step("pf-1", "s0")["phase"] == "Failed"
    assert job_names(koos, "pf-1") == ["pf-1-s0-1"]


# ---- the operator stopped and started again ------------------------------------------------


@pytest.mark.sandbox_only("fails the operator's status writes with the sandbox's fault injection")
async def test_a_restart_right_after_the_execution_is_created_duplicates_nothing(
    koos: Koos,
) -> None:
    # The worst moment: the first Job is created but the status that names it is not
    # written (every status write fails) when the operator goes away.
    await koos.apply(template("early", 3))
    koos.sandbox.jobs.script("re-1-s0-*", duration=1.0)
    koos.sandbox.faults.fail("patch", "executions/status", code=500)
    await koos.apply(execution("re-1", "early"))
    await async_wait_for(lambda: job(koos, "re-1-s0-1"), what="the first Job")
    await koos.stop_operator()
    assert (koos.execution("re-1") or {}).get("status", {}).get("steps") is None
    koos.sandbox.faults.clear()

    await koos.start_operator()

    done = await koos.finished("re-1", timeout=DEADLINE)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert job_names(koos, "re-1") == ["re-1-s0-1", "re-1-s1-1", "re-1-s2-1"]
    assert [s["attempt"] for s in done["status"]["steps"]] == [1, 1, 1]


async def test_a_restart_while_a_job_runs_duplicates_nothing(koos: Koos) -> None:
    await koos.apply(template("middle", 3, run=sleeps(1.5, step="s1")))
    koos.outcome("rm-1-s1-*", duration=1.5)
    await koos.apply(execution("rm-1", "middle"))
    await running_pod(koos, "rm-1", "rm-1-s1-1")

    await koos.stop_operator()
    assert job_condition(koos, "rm-1-s1-1") is None  # still running across the restart
    await koos.start_operator()

    done = await koos.finished("rm-1", timeout=DEADLINE)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert job_names(koos, "rm-1") == ["rm-1-s0-1", "rm-1-s1-1", "rm-1-s2-1"]
    assert [s["phase"] for s in done["status"]["steps"]] == ["Succeeded"] * 3


async def test_a_restart_between_a_job_completing_and_the_next_starting_loses_nothing(
    koos: Koos,
) -> None:
    write = """if [ "$KOOS_STEP" = s1 ]; then sleep 1; echo '{"size": "7"}' > "$KOOS_OUTPUT"; fi"""
    await koos.apply(template("between", 3, run={"image": "busybox", "script": write}))
    koos.outcome("rb-1-s1-*", duration=1.0, message='{"size": "7"}')
    await koos.apply(execution("rb-1", "between"))
    await running_pod(koos, "rb-1", "rb-1-s1-1")
    await koos.stop_operator()

    # s1 ends while nobody watches: complete, yet the run still says it runs, no s2.
    await async_wait_for(
        lambda: job_condition(koos, "rb-1-s1-1") == "Complete", what="s1's Job to complete"
    )
    assert koos.step("rb-1", "s1")["phase"] == "Running"
    assert job(koos, "rb-1-s2-1") is None
    await koos.start_operator()

    done = await koos.finished("rb-1", timeout=DEADLINE)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert job_names(koos, "rb-1") == ["rb-1-s0-1", "rb-1-s1-1", "rb-1-s2-1"]
    assert koos.step("rb-1", "s1")["outputs"] == {"size": "7"}  # its output was not lost


@pytest.mark.sandbox_only("fails the operator's status writes with the sandbox's fault injection")
async def test_a_job_that_ends_while_the_operator_is_down_before_its_status_keeps_its_output(
    koos: Koos,
) -> None:
    # The Job is created, the status write that would name it fails, the operator goes
    # away, and the Job ends meanwhile: the new operator adopts it with its output.
    await koos.apply(template("unwritten", 2))
    koos.sandbox.jobs.script("uw-1-s0-*", duration=1.0, message='{"size": "7"}')
    koos.sandbox.jobs.script("uw-1-s1-*", exit_code=4, logs="s1 broke\n")
    koos.sandbox.faults.fail("patch", "executions/status", code=500)
    await koos.apply(execution("uw-1", "unwritten"))
    await async_wait_for(lambda: job(koos, "uw-1-s0-1"), what="the first Job")
    await koos.stop_operator()
    koos.sandbox.faults.clear()
    assert (koos.execution("uw-1") or {}).get("status", {}).get("steps") is None
    await async_wait_for(
        lambda: job_condition(koos, "uw-1-s0-1") == "Complete", what="s0's Job to complete"
    )

    await koos.start_operator()

    done = await koos.finished("uw-1", timeout=DEADLINE)
    assert done["status"]["phase"] == "Failed", done["status"]  # s1's exit, not a lost output
    assert koos.step("uw-1", "s0")["outputs"] == {"size": "7"}
    s1 = koos.step("uw-1", "s1")
    assert (s1["phase"], s1["reason"]) == ("Failed", "Failed")
    assert "exit code 4" in s1["message"] and "s1 broke" in s1["message"]
    assert job_names(koos, "uw-1") == ["uw-1-s0-1", "uw-1-s1-1"]


async def test_a_re_created_execution_whose_old_jobs_were_orphaned_fails_saying_what_to_delete(
    koos: Koos,
) -> None:
    # `kubectl delete execution or-1 --cascade=orphan`, then the same Execution again: its
    # first Job's name is taken by the old run's Job, which koos must neither adopt nor touch.
    await koos.apply(template("orphaning", 2, run=sleeps(600, step="s0", attempt=1)))
    koos.outcome("or-1-s0-1-*", duration=600)
    await koos.apply(execution("or-1", "orphaning"))
    await running_pod(koos, "or-1", "or-1-s0-1")
    old_uid = koos.execution("or-1")["metadata"]["uid"]  # type: ignore[index]
    await koos.delete("executions", "or-1", propagation="Orphan")
    await async_wait_for(
        lambda: (
            koos.execution("or-1") is None
            and not (job(koos, "or-1-s0-1") or {})["metadata"].get("ownerReferences")
        ),
        what="the Execution to go and its Job to be orphaned",
    )

    await koos.apply(execution("or-1", "orphaning"))

    done = await koos.finished("or-1", timeout=DEADLINE)
    assert done["metadata"]["uid"] != old_uid
    assert done["status"]["phase"] == "Failed", done["status"]
    s0 = koos.step("or-1", "s0")
    assert (s0["phase"], s0["reason"]) == ("Failed", "JobNameTaken"), s0
    assert "Job or-1-s0-1" in s0["message"]
    assert f"kubectl delete jobs -n {koos.ns} -l koos.io/execution=or-1" in s0["message"]
    assert "or-1-s0-1" in done["status"]["message"]
    orphan = job(koos, "or-1-s0-1")
    assert orphan is not None and "deletionTimestamp" not in orphan["metadata"]
    assert job_condition(koos, "or-1-s0-1") is None  # the old run's Job runs on, untouched


async def test_repeated_restarts_through_a_run_duplicate_nothing(koos: Koos) -> None:
    await koos.apply(template("bumpy", 3, run=sleeps(0.5)))
    koos.outcome("rr-1-*", duration=0.5)
    await koos.apply(execution("rr-1", "bumpy"))
    for i in range(3):
        await async_wait_for(lambda i=i: job(koos, f"rr-1-s{i}-1"), what=f"Job of s{i}")
        await koos.stop_operator()
        await koos.start_operator()

    done = await koos.finished("rr-1", timeout=DEADLINE)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert job_names(koos, "rr-1") == ["rr-1-s0-1", "rr-1-s1-1", "rr-1-s2-1"]


async def test_a_job_deleted_while_the_operator_is_down_is_noticed_when_it_returns(
    koos: Koos,
) -> None:
    retries = {"limit": 1, "backoff": "1s"}
    await koos.apply(template("unwatched", 1, retries=retries, run=sleeps(600, attempt=1)))
    koos.outcome("rd-1-s0-1-*", duration=600)
    await koos.apply(execution("rd-1", "unwatched"))
    await running_pod(koos, "rd-1", "rd-1-s0-1")
    await koos.stop_operator()
    await koos.delete("jobs", "rd-1-s0-1", group="batch", version="v1")
    await async_wait_for(lambda: job(koos, "rd-1-s0-1") is None, what="the Job to be gone")

    await koos.start_operator()

    done = await koos.finished("rd-1", timeout=DEADLINE)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert koos.step("rd-1", "s0")["attempt"] == 2
    assert job_names(koos, "rd-1") == ["rd-1-s0-2"]


# ---- metrics ------------------------------------------------------------------------------


def sample(name: str, phase: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, {"phase": phase}) or 0.0


async def test_a_successful_run_is_counted_in_the_metrics(koos: Koos) -> None:
    # The registry is process-global: compare with what it held before this run.
    runs = sample("koos_executions_total", "Succeeded")
    steps = sample("koos_step_duration_seconds_count", "Succeeded")
    failed = sample("koos_executions_total", "Failed")
    active = metrics.REGISTRY.get_sample_value("koos_executions_active") or 0.0
    await koos.apply(template("counted", 2))
    await koos.apply(execution("mx-1", "counted"))

    done = await koos.finished("mx-1", timeout=DEADLINE)
    assert done["status"]["phase"] == "Succeeded"
    # The operator counts just after it writes the status: wait for both counts to move.
    await async_wait_for(
        lambda: (
            sample("koos_executions_total", "Succeeded") > runs
            and sample("koos_step_duration_seconds_count", "Succeeded") >= steps + 2
        ),
        what="the run and its steps to be counted",
    )
    assert sample("koos_executions_total", "Succeeded") == runs + 1
    assert sample("koos_step_duration_seconds_count", "Succeeded") == steps + 2
    assert sample("koos_executions_total", "Failed") == failed
    assert metrics.REGISTRY.get_sample_value("koos_executions_active") == active


@pytest.fixture
async def bare(tmp_path: Path) -> AsyncIterator[Koos]:
    """conftest's harness over a sandbox with koos's CRDs and no operator: the test runs its
    own (as processes, each with counters of its own)."""
    sandbox = Sandbox(crds=ROOT / "crds", jobs_mode="scripted", bookmark_interval=0.5)
    await sandbox.start()
    try:
        yield Koos(sandbox, sandbox.write_kubeconfig(tmp_path / "kubeconfig"), threading.Event())
    finally:
        await sandbox.stop()


class OperatorProcess:
    """`koos operator` as a process of its own, with its metrics on a port: what a restart
    of the operator's Pod gives (a fresh process, fresh counters)."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process, self.port = process, port

    @classmethod
    async def start(cls, kubeconfig: Path, log: Path) -> OperatorProcess:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # No webhooks: a killed process's (persistent, failurePolicy Fail) configuration
        # would refuse Execution updates until the next one registers its own.
        args = ["--kubeconfig", str(kubeconfig), "--metrics-port", str(port), "--no-webhooks"]
        with _open_log(log) as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "koos.cli.main", "operator", *args),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started = cls(process, port)
        await async_wait_for(started.metrics, timeout=20, what="the operator's metrics port")
        return started

    async def metrics(self) -> dict[str, float]:
        def scrape() -> dict[str, float]:
            try:
                url = f"http://127.0.0.1:{self.port}/metrics"
                with urllib.request.urlopen(url, timeout=2) as response:
                    text = response.read().decode()
            except OSError:
                return {}
            pairs = (line.rsplit(" ", 1) for line in text.splitlines() if line[:1] not in "#")
            return {name: float(value) for name, value in pairs}

        return await asyncio.to_thread(scrape)

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


def _open_log(path: Path) -> IO[bytes]:
    return path.open("wb")


@pytest.mark.sandbox_only("runs operator processes against a sandbox of its own (`bare`)")
async def test_a_new_operator_process_that_finishes_a_run_keeps_the_active_gauge_right(
    bare: Koos, tmp_path: Path
) -> None:
    koos = bare
    await koos.apply(template("gauge", 1))
    koos.sandbox.jobs.script("ga-1-s0-*", duration=600)
    first = await OperatorProcess.start(koos.kubeconfig, tmp_path / "first.log")
    second: OperatorProcess | None = None
    try:
        await koos.apply(execution("ga-1", "gauge"))
        await running_pod(koos, "ga-1", "ga-1-s0-1")

        async def active_in_first() -> bool:
            return (await first.metrics()).get("koos_executions_active") == 1

        await async_wait_for(active_in_first, what="the first process to count the run active")
        await first.kill()  # the operator's Pod dies; a new one takes over
        second = await OperatorProcess.start(koos.kubeconfig, tmp_path / "second.log")

        await koos.annotate("ga-1", "koos.io/cancel", "true")
        done = await koos.finished("ga-1", timeout=DEADLINE)
        assert done["status"]["phase"] == "Cancelled"

        async def counted() -> dict[str, float] | None:
            assert second is not None
            found = await second.metrics()
            return found if found.get('koos_executions_total{phase="Cancelled"}') else None

        after = await async_wait_for(counted, what="the new process to count the run")
        assert after["koos_executions_active"] == 0
    finally:
        for process in (first, second):
            if process is not None:
                await process.kill()
