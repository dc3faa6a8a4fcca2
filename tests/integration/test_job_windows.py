"""The windows in which a step's outcome could be lost, or its Job deleted, each made on
purpose: the Execution controller's reconcile runs against the sandbox's API server with
an index of Jobs the test sets, as a watch that is behind, or lost the Job, would leave it.

- the status write after a Job's create fails, and the Job ends before the next pass;
- the index still shows a Job as running after it ended (a dropped watch), while the step
  is settled, or while the run is being cancelled;
- the Job's name is taken by a Job an earlier Execution of the same name left behind.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from koos.handlers.execution import ExecutionController
from koos.k8s.client import Kube, KubeError
from koos.k8s.gather import compact_job
from koos_sandbox.app import Sandbox
from koos_sandbox.testing import async_wait_for
from koos_sandbox.writes import WriteOptions

from .conftest import NS, ROOT, Koos

pytestmark = pytest.mark.sandbox_only(
    "drives the Execution controller without kopf against the sandbox, seeing its index "
    "and store at chosen moments"
)


class Ground:
    """The sandbox, a user's hands on it, and an Execution controller without kopf: the
    test says what the controller's Job index holds."""

    def __init__(self, koos: Koos, controller: ExecutionController) -> None:
        self.koos, self.controller = koos, controller

    def index(self, execution: str, *jobs: dict[str, Any]) -> None:
        self.controller.jobs = {(NS, execution): [compact_job(job) for job in jobs]}

    async def reconcile(self, execution: str) -> None:
        await self.controller.reconcile((NS, execution))

    def job(self, name: str) -> dict[str, Any] | None:
        return next((j for j in self.koos.jobs() if j["metadata"]["name"] == name), None)

    async def ended(self, name: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            job = self.job(name) or {}
            conditions = (job.get("status") or {}).get("conditions") or []
            finished = any(
                c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions
            )
            return job if finished else None

        return await async_wait_for(done, what=f"Job {name} to end")

    def deleted_jobs(self, mark: int) -> list[str]:
        return [
            r.name
            for r in self.koos.sandbox.requests.since(mark)
            if r.verb == "delete" and r.resource == "jobs"
        ]


@pytest.fixture
async def ground(tmp_path: Path) -> AsyncIterator[Ground]:
    sandbox = Sandbox(crds=ROOT / "crds", jobs_mode="scripted", bookmark_interval=0.5)
    await sandbox.start()
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    kube = await Kube.connect(str(kubeconfig))
    try:
        yield Ground(Koos(sandbox, kubeconfig, threading.Event()), ExecutionController(kube))
    finally:
        await kube.close()
        await sandbox.stop()


def template(name: str, count: int) -> dict[str, Any]:
    steps = [{"name": f"s{i}", "run": {"image": "busybox", "script": "true"}} for i in range(count)]
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": name},
        "spec": {"steps": steps},
    }


def execution(name: str, template: str) -> dict[str, Any]:
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": template}},
    }


def as_created(job: dict[str, Any]) -> dict[str, Any]:
    """The Job as a watch that fell behind last delivered it: before it ended."""
    return {**job, "status": {}}


# ---- the status write after a create fails; the Job ends before the next pass -----------


OUTCOMES = {
    "succeeded": ({"message": '{"size": "7"}'}, "Succeeded", "Completed", {"size": "7"}, ""),
    "failed": ({"exit_code": 3, "logs": "disk full\n"}, "Failed", "Failed", None, "exit code 3"),
}


@pytest.mark.parametrize(
    ("script", "phase", "reason", "outputs", "message"), OUTCOMES.values(), ids=OUTCOMES.keys()
)
async def test_a_job_that_ended_before_its_status_was_written_is_read_in_full(
    ground: Ground,
    script: dict[str, Any],
    phase: str,
    reason: str,
    outputs: dict[str, Any] | None,
    message: str,
) -> None:
    koos = ground.koos
    await koos.apply(template("two", 2))
    koos.sandbox.jobs.script("lw-1-s0-1-*", **script)
    await koos.apply(execution("lw-1", "two"))
    koos.sandbox.faults.fail("patch", "executions/status", code=503, times=1)

    with pytest.raises(KubeError):
        await ground.reconcile("lw-1")  # the Job is created; the status write fails
    assert (koos.execution("lw-1") or {}).get("status", {}).get("steps") is None
    job = await ground.ended("lw-1-s0-1")
    ground.index("lw-1", job)  # the watch delivered the Job, ended
    await ground.reconcile("lw-1")

    s0 = koos.step("lw-1", "s0")
    assert (s0["phase"], s0["reason"], s0.get("outputs")) == (phase, reason, outputs), s0
    assert message in (s0.get("message") or ""), s0
    if phase == "Failed":
        assert "disk full" in s0["message"]
        assert koos.execution("lw-1")["status"]["phase"] == "Failed"  # type: ignore[index]
    else:
        assert koos.step("lw-1", "s1")["phase"] == "Running"


# ---- an index that is behind: nothing that ended is deleted --------------------------------


async def test_a_completed_job_the_index_still_shows_running_is_not_deleted(
    ground: Ground,
) -> None:
    koos = ground.koos
    await koos.apply(template("two", 2))
    koos.sandbox.jobs.script("st-1-s0-1-*", message='{"size": "7"}')
    koos.sandbox.jobs.script("st-1-s1-1-*", duration=600)
    await koos.apply(execution("st-1", "two"))
    ground.index("st-1")
    await ground.reconcile("st-1")  # s0's Job is created; the watch never delivers it
    job = await ground.ended("st-1-s0-1")
    await ground.reconcile("st-1")  # read directly (the status names it): s0 done, s1 starts
    assert koos.step("st-1", "s0")["outputs"] == {"size": "7"}
    running = ground.job("st-1-s1-1")
    assert running is not None

    # The watch catches up from an old version: s0's Job as it was created, still running.
    mark = koos.sandbox.requests.mark()
    ground.index("st-1", as_created(job), running)
    await ground.reconcile("st-1")

    assert ground.deleted_jobs(mark) == []
    kept = ground.job("st-1-s0-1")
    assert kept is not None and "deletionTimestamp" not in kept["metadata"]
    assert [koos.step("st-1", s)["phase"] for s in ("s0", "s1")] == ["Succeeded", "Running"]


async def test_cancelling_while_the_index_shows_a_completed_job_running_records_its_outcome(
    ground: Ground,
) -> None:
    koos = ground.koos
    await koos.apply(template("two", 2))
    koos.sandbox.jobs.script("cs-1-s0-1-*", message='{"size": "7"}')
    await koos.apply(execution("cs-1", "two"))
    ground.index("cs-1")
    await ground.reconcile("cs-1")
    job = await ground.ended("cs-1-s0-1")
    assert koos.step("cs-1", "s0")["phase"] == "Running"

    mark = koos.sandbox.requests.mark()
    ground.index("cs-1", as_created(job))
    await koos.annotate("cs-1", "koos.io/cancel", "true")
    await ground.reconcile("cs-1")

    assert ground.deleted_jobs(mark) == []
    s0 = koos.step("cs-1", "s0")
    assert (s0["phase"], s0.get("outputs")) == ("Succeeded", {"size": "7"}), s0
    assert koos.step("cs-1", "s1")["phase"] == "Cancelled"
    assert koos.execution("cs-1")["status"]["phase"] == "Cancelled"  # type: ignore[index]


async def test_cancelling_deletes_a_running_job_that_is_still_running(ground: Ground) -> None:
    koos = ground.koos
    await koos.apply(template("two", 2))
    koos.sandbox.jobs.script("cr-1-s0-1-*", duration=600)
    await koos.apply(execution("cr-1", "two"))
    ground.index("cr-1")
    await ground.reconcile("cr-1")
    job = ground.job("cr-1-s0-1")
    assert job is not None

    mark = koos.sandbox.requests.mark()
    ground.index("cr-1", job)
    await koos.annotate("cr-1", "koos.io/cancel", "true")
    await ground.reconcile("cr-1")

    assert ground.deleted_jobs(mark) == ["cr-1-s0-1"]
    assert koos.step("cr-1", "s0")["phase"] == "Cancelled"


# ---- a Job name taken by an earlier Execution's Job ------------------------------------------


def leftover(name: str, execution: str, owner_uid: str | None = None) -> dict[str, Any]:
    """A Job koos made for an earlier Execution named `execution`: without an owner once it
    was deleted with --cascade=orphan, else still owned by its uid."""
    owners = (
        [
            {
                "apiVersion": "koos.io/v1alpha1",
                "kind": "Execution",
                "name": execution,
                "uid": owner_uid,
                "controller": True,
            }
        ]
        if owner_uid
        else []
    )
    labels = {"app.kubernetes.io/managed-by": "koos", "koos.io/execution": execution}
    pod = {"restartPolicy": "Never", "containers": [{"name": "step", "image": "busybox"}]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels, "ownerReferences": owners},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": labels}, "spec": pod}},
    }


async def create_job(koos: Koos, body: dict[str, Any]) -> dict[str, Any]:
    rt = koos.rt("jobs", "batch", "v1")
    return await koos.sandbox.state.writes.create(koos.admin, rt, NS, body, WriteOptions())


async def test_a_job_name_taken_by_an_orphaned_job_fails_the_step_saying_what_to_delete(
    ground: Ground,
) -> None:
    koos = ground.koos
    await koos.apply(template("two", 2))
    await create_job(koos, leftover("or-1-s0-1", "or-1"))
    await koos.apply(execution("or-1", "two"))
    mark = koos.sandbox.requests.mark()
    ground.index("or-1")  # an orphan has no owner: the index, keyed by owner, lacks it

    await ground.reconcile("or-1")

    s0 = koos.step("or-1", "s0")
    assert (s0["phase"], s0["reason"]) == ("Failed", "JobNameTaken"), s0
    assert "or-1-s0-1" in s0["message"]
    assert "kubectl delete jobs -n default -l koos.io/execution=or-1" in s0["message"]
    done = koos.execution("or-1") or {}
    assert done["status"]["phase"] == "Failed"
    assert "JobNameTaken" in {c["reason"] for c in done["status"]["conditions"]} or (
        "or-1-s0-1" in done["status"]["message"]
    )
    assert ground.deleted_jobs(mark) == []  # not ours: never touched
    assert ground.job("or-1-s0-1") is not None


async def test_a_job_name_held_by_an_earlier_executions_job_being_deleted_is_waited_for(
    ground: Ground,
) -> None:
    koos = ground.koos
    await koos.apply(template("one", 1))
    koos.sandbox.jobs.script("ow-1-s0-1-*", message='{"size": "7"}')
    old = leftover("ow-1-s0-1", "ow-1", owner_uid="uid-of-the-earlier-ow-1")
    old["metadata"]["finalizers"] = ["example.com/hold"]
    await create_job(koos, old)
    rt = koos.rt("jobs", "batch", "v1")
    await koos.sandbox.state.writes.delete(koos.admin, rt, NS, "ow-1-s0-1", {})
    await koos.apply(execution("ow-1", "one"))
    # The index is keyed by the owner's name: the earlier Execution's Job is in it.
    ground.index("ow-1", ground.job("ow-1-s0-1") or {})

    await ground.reconcile("ow-1")
    assert koos.step("ow-1", "s0")["phase"] == "Pending"  # not adopted, not failed: waiting
    assert ground.job("ow-1-s0-1")["metadata"]["ownerReferences"][0]["uid"] == (  # type: ignore[index]
        "uid-of-the-earlier-ow-1"
    )

    await koos.sandbox.state.writes.patch(
        koos.admin,
        rt,
        NS,
        "ow-1-s0-1",
        "application/merge-patch+json",
        {"metadata": {"finalizers": None}},
        WriteOptions(),
    )
    await async_wait_for(lambda: ground.job("ow-1-s0-1") is None, what="the old Job to go")
    ground.index("ow-1")
    await ground.reconcile("ow-1")
    ours = await ground.ended("ow-1-s0-1")
    assert (
        ours["metadata"]["ownerReferences"][0]["uid"] == koos.execution("ow-1")["metadata"]["uid"]
    )  # type: ignore[index]
    ground.index("ow-1", ours)
    await ground.reconcile("ow-1")
    assert koos.step("ow-1", "s0")["outputs"] == {"size": "7"}
