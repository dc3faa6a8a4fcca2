"""The sandbox's Job controller and kubelet stand-in, in local and scripted modes."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from koos_sandbox import jobs
from koos_sandbox.app import Sandbox
from koos_sandbox.errors import ApiError
from koos_sandbox.testing import async_wait_for
from koos_sandbox.writes import WriteOptions

pytestmark = pytest.mark.sandbox_only(
    reason="the sandbox's Job controller and kubelet stand-in, scripted outcomes included"
)

NS = "default"
EXAMPLE_JOB = Path(__file__).resolve().parents[2] / "examples" / "sandbox" / "job.yaml"


@pytest.fixture
async def local() -> AsyncIterator[Sandbox]:
    sb = Sandbox(jobs_mode="local")
    await sb.start()
    try:
        yield sb
    finally:
        await sb.stop()


@pytest.fixture
async def scripted() -> AsyncIterator[Sandbox]:
    sb = Sandbox(jobs_mode="scripted")
    await sb.start()
    try:
        yield sb
    finally:
        await sb.stop()


def rt(sb: Sandbox, plural: str) -> Any:
    group = "batch" if plural == "jobs" else ""
    return sb.state.registry.find(group, "v1", plural)


def admin(sb: Sandbox) -> Any:
    return sb.state.authn.authenticate(f"Bearer {sb.admin_token}", None, [])


def job_body(
    name: str,
    command: list[str] | None = None,
    *,
    container: dict[str, Any] | None = None,
    restart: str = "Never",
    **spec: Any,
) -> dict[str, Any]:
    main: dict[str, Any] = {"name": "main", "image": "busybox:1.36", **(container or {})}
    if command is not None:
        main["command"] = command
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": restart, "containers": [main]}}, **spec},
    }


async def create(sb: Sandbox, body: dict[str, Any], plural: str = "jobs") -> dict[str, Any]:
    return await sb.state.writes.create(admin(sb), rt(sb, plural), NS, body, WriteOptions())


def job(sb: Sandbox, name: str) -> dict[str, Any] | None:
    return sb.store.find(rt(sb, "jobs"), NS, name)


def pods(sb: Sandbox, job_name: str) -> list[dict[str, Any]]:
    return [
        p
        for p in sb.store.items(("", "pods"), NS)
        if p["metadata"].get("labels", {}).get("batch.kubernetes.io/job-name") == job_name
    ]


def cond(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == kind and c["status"] == "True":
            return c
    return None


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]


async def until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    return await async_wait_for(predicate, timeout=timeout, what=what)


async def finished(sb: Sandbox, name: str, kind: str = "Complete") -> dict[str, Any]:
    await until(lambda: cond(job(sb, name), kind), f"job {name} {kind}")
    found = job(sb, name)
    assert found is not None
    return found


# ---- local mode ----------------------------------------------------------------------------


async def test_local_process_logs_and_termination_message(local: Sandbox) -> None:
    body = job_body(
        "hello",
        ["sh", "-c", "echo hi; echo '{\"a\":1}' > $KOOS_OUTPUT"],
        container={"env": [{"name": "KOOS_OUTPUT", "value": "/dev/termination-log"}]},
    )
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {local.admin_token}"},
        connector=aiohttp.TCPConnector(ssl=local.certificates.client_context()),
    ) as http:
        async with http.post(f"{local.url}/apis/batch/v1/namespaces/{NS}/jobs", json=body) as r:
            assert r.status == 201, await r.text()
        done = await finished(local, "hello")
        types = [c["type"] for c in done["status"]["conditions"]]
        assert types == ["SuccessCriteriaMet", "Complete"]
        assert done["status"]["conditions"][1]["reason"] == "CompletionsReached"
        assert done["status"]["succeeded"] == 1 and "completionTime" in done["status"]
        assert done["status"]["ready"] == 0 and done["status"]["terminating"] == 0
        (pod,) = pods(local, "hello")
        assert pod["status"]["phase"] == "Succeeded"
        state = terminated(pod)
        assert (state["exitCode"], state["reason"]) == (0, "Completed")
        assert state["message"].strip() == '{"a":1}'
        assert local.pod_logs.read(NS, pod["metadata"]["name"], "main") == "hi\n"
        url = f"{local.url}/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}/log"
        async with http.get(url) as r:
            assert r.status == 200 and await r.text() == "hi\n"


async def test_exit_code_fails_job_with_backoff_limit_zero(local: Sandbox) -> None:
    await create(local, job_body("three", ["sh", "-c", "exit 3"], backoffLimit=0))
    done = await finished(local, "three", "Failed")
    assert [c["type"] for c in done["status"]["conditions"]] == ["FailureTarget", "Failed"]
    assert cond(done, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    assert done["status"]["failed"] == 1 and "succeeded" not in done["status"]
    (pod,) = pods(local, "three")
    assert pod["status"]["phase"] == "Failed"
    assert (terminated(pod)["exitCode"], terminated(pod)["reason"]) == (3, "Error")
    assert "batch.kubernetes.io/job-tracking" not in pod["metadata"].get("finalizers", [])


async def test_backoff_limit_one_retries_once(local: Sandbox) -> None:
    await create(local, job_body("again", ["sh", "-c", "exit 3"], backoffLimit=1))
    done = await finished(local, "again", "Failed")
    assert done["status"]["failed"] == 2
    assert len(pods(local, "again")) == 2


async def test_active_deadline_kills_the_process(local: Sandbox, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    body = job_body(
        "slow",
        ["sh", "-c", "echo $$$$ > pid; exec sleep 30"],
        backoffLimit=3,
        activeDeadlineSeconds=1,
        container={"workingDir": str(tmp_path)},
    )
    started = time.monotonic()
    await create(local, body)
    await until(pid_file.exists, "the process to start")
    done = await finished(local, "slow", "Failed")
    assert time.monotonic() - started < 6
    failed = cond(done, "Failed")
    assert failed is not None and failed["reason"] == "DeadlineExceeded"
    assert failed["message"] == "Job was active longer than specified deadline"
    assert done["status"]["failed"] == 1
    assert all(p["status"]["phase"] == "Failed" for p in pods(local, "slow"))
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_fallback_to_logs_on_error(local: Sandbox) -> None:
    script = "for i in $(seq 1 100); do echo line $i; done; echo oops >&2; exit 2"
    await create(
        local,
        job_body(
            "fallback",
            ["sh", "-c", script],
            backoffLimit=0,
            container={"terminationMessagePolicy": "FallbackToLogsOnError"},
        ),
    )
    await finished(local, "fallback", "Failed")
    message = terminated(pods(local, "fallback")[0])["message"]
    assert message.endswith("line 100\noops\n")
    assert len(message.splitlines()) == 80 and message.startswith("line 22\n")


async def test_env_from_secret_waits_for_the_secret(local: Sandbox) -> None:
    await create(
        local,
        job_body(
            "secretive",
            ["sh", "-c", "echo $TOKEN $(POD)"],
            container={
                "env": [
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "t"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ]
            },
        ),
    )

    def waiting() -> Any:
        found = pods(local, "secretive")
        statuses = found[0]["status"].get("containerStatuses") if found else None
        return (
            statuses
            and statuses[0]["state"].get("waiting", {}).get("reason")
            == ("CreateContainerConfigError")
            and statuses[0]["state"]["waiting"]
        )

    state = await until(waiting, "CreateContainerConfigError")
    assert state["message"] == 'secret "creds" not found'
    await create(local, {"metadata": {"name": "creds"}, "data": {"t": "czNjcjN0"}}, "secrets")
    await finished(local, "secretive")
    pod = pods(local, "secretive")[0]
    name = pod["metadata"]["name"]
    assert local.pod_logs.read(NS, name, "main") == f"s3cr3t {name}\n"


async def test_missing_command_is_a_start_error(local: Sandbox) -> None:
    await create(local, job_body("nocmd", None, backoffLimit=0))
    await finished(local, "nocmd", "Failed")
    state = terminated(pods(local, "nocmd")[0])
    assert (state["exitCode"], state["reason"]) == (128, "StartError")
    assert "command" in state["message"]


async def test_indexed_job_sets_completion_index(local: Sandbox) -> None:
    await create(
        local,
        job_body(
            "idx",
            ["sh", "-c", "echo $JOB_COMPLETION_INDEX"],
            completions=3,
            parallelism=3,
            completionMode="Indexed",
        ),
    )
    done = await finished(local, "idx")
    assert done["status"]["completedIndexes"] == "0-2" and done["status"]["succeeded"] == 3
    seen = set()
    for pod in pods(local, "idx"):
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert pod["metadata"]["name"].startswith(f"idx-{index}-")
        seen.add(local.pod_logs.read(NS, pod["metadata"]["name"], "main"))
    assert seen == {"0\n", "1\n", "2\n"}


# ---- scripted mode -------------------------------------------------------------------------


async def test_scripted_failure_by_name_pattern(scripted: Sandbox) -> None:
    scripted.jobs.script("*-fail-*", exit_code=1, message='{"a":1}', logs="boom\n")
    await create(scripted, job_body("x-fail-1", backoffLimit=0))
    await create(scripted, job_body("x-ok-1", backoffLimit=0))
    await finished(scripted, "x-fail-1", "Failed")
    await finished(scripted, "x-ok-1")
    pod = pods(scripted, "x-fail-1")[0]
    assert (terminated(pod)["exitCode"], terminated(pod)["message"]) == (1, '{"a":1}')
    assert scripted.state.logs.read(NS, pod["metadata"]["name"], "main") == "boom\n"


async def test_labels_owner_references_and_defaults(scripted: Sandbox) -> None:
    scripted.jobs.script("labels", pending=True)
    created = await create(scripted, job_body("labels"))
    uid = created["metadata"]["uid"]
    spec = (
        created["spec"]
        if "selector" in created["spec"]
        else (
            await until(
                lambda: (
                    (job(scripted, "labels") or {}).get("spec", {}).get("selector")
                    and job(scripted, "labels")
                ),
                "defaulting",
            )
        )["spec"]
    )
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed" and spec["suspend"] is False
    pod = await until(
        lambda: (
            (found := pods(scripted, "labels"))
            and found[0].get("status", {}).get("containerStatuses")
            and found[0]
        ),
        "pod pending",
    )
    meta = pod["metadata"]
    assert meta["name"].startswith("labels-") and len(meta["name"]) == len("labels-") + 5
    assert {
        "batch.kubernetes.io/controller-uid": uid,
        "controller-uid": uid,
        "batch.kubernetes.io/job-name": "labels",
        "job-name": "labels",
    }.items() <= meta["labels"].items()
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "labels",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["finalizers"] == ["batch.kubernetes.io/job-tracking"]
    assert pod["spec"]["nodeName"] == jobs.DEFAULT_NODE
    assert pod["status"]["phase"] == "Pending"
    assert cond(pod, "PodScheduled") is not None
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert job(scripted, "labels")["status"]["active"] == 1  # type: ignore[index]


async def test_parallelism_and_completions(scripted: Sandbox) -> None:
    scripted.jobs.script("par", duration=0.2)
    await create(scripted, job_body("par", parallelism=3, completions=2))
    done = await finished(scripted, "par")
    assert done["status"]["succeeded"] == 2 and len(pods(scripted, "par")) == 2

    most = 0

    def watch(event: Any) -> None:
        nonlocal most
        running = [
            p
            for p in pods(scripted, "wide")
            if p["status"].get("phase") in ("Pending", "Running")
            and "deletionTimestamp" not in p["metadata"]
        ]
        most = max(most, len(running))

    scripted.jobs.script("wide", duration=0.1)
    scripted.store.listeners.append(watch)
    await create(scripted, job_body("wide", parallelism=2, completions=5))
    done = await finished(scripted, "wide")
    assert done["status"]["succeeded"] == 5 and most == 2


async def test_running_pod_is_running_and_ready(scripted: Sandbox) -> None:
    scripted.jobs.script("busy", duration=30)
    await create(scripted, job_body("busy"))
    await until(
        lambda: (job(scripted, "busy") or {}).get("status", {}).get("ready") == 1, "ready 1"
    )
    pod = pods(scripted, "busy")[0]
    assert pod["status"]["phase"] == "Running" and cond(pod, "Ready")
    assert "running" in pod["status"]["containerStatuses"][0]["state"]


async def test_eviction_fails_the_job(scripted: Sandbox) -> None:
    scripted.jobs.script("evicted", duration=30)
    await create(scripted, job_body("evicted", backoffLimit=0))
    await until(lambda: (job(scripted, "evicted") or {}).get("status", {}).get("ready"), "ready")
    name = pods(scripted, "evicted")[0]["metadata"]["name"]
    seen: list[dict[str, Any]] = []
    scripted.store.listeners.append(
        lambda e: e.obj["metadata"]["name"] == name and seen.append(e.obj)
    )
    scripted.jobs.evict_pod(NS, name)
    done = await finished(scripted, "evicted", "Failed")
    assert cond(done, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    assert done["status"]["failed"] == 1 and len(seen) >= 2
    last = seen[-1]
    disruption = cond(last, "DisruptionTarget")
    assert disruption is not None and disruption["reason"] == "EvictionByEvictionAPI"
    assert last["status"]["phase"] == "Failed" and terminated(last)["exitCode"] == 143
    assert pods(scripted, "evicted") == []  # deleted once counted


async def test_deleted_pod_is_replaced_and_counted_failed(scripted: Sandbox) -> None:
    scripted.jobs.script("deleted", duration=30, times=1)
    await create(scripted, job_body("deleted", backoffLimit=1))
    await until(lambda: (job(scripted, "deleted") or {}).get("status", {}).get("ready"), "ready")
    scripted.jobs.delete_pod(NS, pods(scripted, "deleted")[0]["metadata"]["name"])
    done = await finished(scripted, "deleted")
    assert done["status"]["failed"] == 1 and done["status"]["succeeded"] == 1


async def test_lost_node(scripted: Sandbox) -> None:
    scripted.jobs.script("lost", duration=30, times=1)
    await create(scripted, job_body("lost", backoffLimit=1))
    await until(lambda: (job(scripted, "lost") or {}).get("status", {}).get("ready"), "ready")
    first = pods(scripted, "lost")[0]["metadata"]["name"]
    seen: list[dict[str, Any]] = []
    scripted.store.listeners.append(
        lambda e: e.obj["metadata"]["name"] == first and seen.append(e.obj)
    )
    scripted.jobs.lose_node()
    node = scripted.store.find(rt(scripted, "nodes"), "", jobs.DEFAULT_NODE)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")  # type: ignore[index]
    assert ready["status"] == "Unknown"

    def replacement_unschedulable() -> Any:
        found = [p for p in pods(scripted, "lost") if p["metadata"]["name"] != first]
        return found and any(
            c["type"] == "PodScheduled" and c["status"] == "False"
            for c in found[0]["status"].get("conditions", [])
        )

    await until(replacement_unschedulable, "an unschedulable replacement")
    disruption = cond(seen[-1], "DisruptionTarget")
    assert disruption is not None and disruption["reason"] == "DeletionByTaintManager"
    assert seen[-1]["status"]["phase"] == "Failed"
    assert all(p["metadata"]["name"] != first for p in pods(scripted, "lost"))
    scripted.jobs.restore_node()
    done = await finished(scripted, "lost")
    assert done["status"]["failed"] == 1 and done["status"]["succeeded"] == 1


async def test_job_deletion_removes_pods(local: Sandbox, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    await create(
        local,
        job_body(
            "doomed",
            ["sh", "-c", "echo $$$$ > pid; exec sleep 30"],
            container={"workingDir": str(tmp_path)},
        ),
    )
    await until(pid_file.exists, "the process to start")
    await local.state.writes.delete(
        admin(local), rt(local, "jobs"), NS, "doomed", {"propagationPolicy": "Background"}
    )
    await until(lambda: not pods(local, "doomed"), "pods gone")
    pid = int(pid_file.read_text())
    await until(lambda: not _alive(pid), "process killed")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_suspend_and_resume(scripted: Sandbox) -> None:
    created = await create(scripted, job_body("later", suspend=True))
    suspended = await finished(scripted, "later", "Suspended")
    assert pods(scripted, "later") == [] and "startTime" not in suspended["status"]
    current = job(scripted, "later")
    assert current is not None
    resumed = {**current, "spec": {**current["spec"], "suspend": False}}
    await scripted.state.writes.update(
        admin(scripted), rt(scripted, "jobs"), NS, "later", resumed, WriteOptions()
    )
    done = await finished(scripted, "later")
    assert done["metadata"]["uid"] == created["metadata"]["uid"]
    assert any(
        c["type"] == "Suspended" and c["status"] == "False" for c in done["status"]["conditions"]
    )


async def test_on_failure_restarts_in_place(scripted: Sandbox) -> None:
    scripted.jobs.script("flaky", exit_code=1, times=2)
    await create(scripted, job_body("flaky", restart="OnFailure"))
    done = await finished(scripted, "flaky")
    (pod,) = pods(scripted, "flaky")
    status = pod["status"]["containerStatuses"][0]
    assert status["restartCount"] == 2 and status["lastState"]["terminated"]["exitCode"] == 1
    assert done["status"]["succeeded"] == 1 and "failed" not in done["status"]


async def test_termination_message_truncated(scripted: Sandbox) -> None:
    scripted.jobs.script("long", message="x" * 5000)
    await create(scripted, job_body("long"))
    await finished(scripted, "long")
    assert len(terminated(pods(scripted, "long")[0])["message"]) == 4096


async def test_ttl_after_finished_deletes_the_job(scripted: Sandbox) -> None:
    await create(scripted, job_body("brief", ttlSecondsAfterFinished=0))
    await until(
        lambda: job(scripted, "brief") is None and not pods(scripted, "brief"),
        "job and pods deleted",
    )


def test_validate_and_default_job() -> None:
    body = job_body("v", ["true"], restart="Always")
    causes = jobs.validate_job(jobs.default_job(body, "u-1"))
    assert causes == [
        (
            "spec.template.spec.restartPolicy",
            'Unsupported value: "Always": supported values: "OnFailure", "Never"',
        )
    ]
    defaulted = jobs.default_job(job_body("v", ["true"]), "u-1")
    assert defaulted["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == "u-1"
    container = defaulted["spec"]["template"]["spec"]["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert jobs.validate_job(defaulted) == []


async def test_bare_pod_and_pod_deadline(scripted: Sandbox) -> None:
    scripted.jobs.script("bare-slow", duration=30)
    for name, extra in (("bare-ok", {}), ("bare-slow", {"activeDeadlineSeconds": 0})):
        body = {
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "x"}],
                **extra,
            },
        }
        await create(scripted, body, "pods")
    pod_rt = rt(scripted, "pods")

    def phase(name: str) -> str:
        return ((scripted.store.find(pod_rt, NS, name) or {}).get("status") or {}).get("phase", "")

    await until(lambda: phase("bare-ok") == "Succeeded", "bare pod succeeded")
    await until(lambda: phase("bare-slow") == "Failed", "pod deadline")
    slow = scripted.store.find(pod_rt, NS, "bare-slow")
    assert slow is not None and slow["status"]["reason"] == "DeadlineExceeded"


async def test_init_containers_run_first(local: Sandbox, tmp_path: Path) -> None:
    body = job_body("init", ["cat", "made"], container={"workingDir": str(tmp_path)})
    body["spec"]["template"]["spec"]["initContainers"] = [
        {
            "name": "prep",
            "image": "x",
            "command": ["sh", "-c", "echo ready > made"],
            "workingDir": str(tmp_path),
        }
    ]
    await create(local, body)
    await finished(local, "init")
    pod = pods(local, "init")[0]
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert local.pod_logs.read(NS, pod["metadata"]["name"], "main") == "ready\n"


async def test_stop_kills_running_processes(tmp_path: Path) -> None:
    sb = Sandbox(jobs_mode="local")
    await sb.start()
    try:
        pid_file = tmp_path / "pid"
        await create(
            sb,
            job_body(
                "left",
                ["sh", "-c", "echo $$$$ > pid; exec sleep 30"],
                container={"workingDir": str(tmp_path)},
            ),
        )
        await until(pid_file.exists, "the process to start")
    finally:
        await sb.stop()
    assert not _alive(int(pid_file.read_text()))
    assert sb.node_agent is not None and not sb.node_agent.workdir.exists()


async def test_a_malformed_job_is_refused_and_others_run(scripted: Sandbox) -> None:
    broken = job_body("broken")
    broken["spec"]["template"]["spec"]["containers"] = "oops"
    with pytest.raises(ApiError) as refused:
        await create(scripted, broken)
    assert refused.value.code == 400
    assert 'Job in version "v1" cannot be handled as a Job' in refused.value.message
    await create(scripted, job_body("fine"))
    await finished(scripted, "fine")


async def test_the_demo_job_runs_locally(local: Sandbox) -> None:
    await create(local, yaml.safe_load(EXAMPLE_JOB.read_text()))
    await finished(local, "say-hello")
    pod = pods(local, "say-hello")[0]
    assert terminated(pod)["message"].strip() == '{"greeted": 3}'
    logs = local.pod_logs.read(NS, pod["metadata"]["name"], "main")
    assert logs == "hello 1\nhello 2\nhello 3\n"


async def test_a_graceful_pod_delete_ends_with_the_kubelet(scripted: Sandbox) -> None:
    scripted.jobs.script("graceful", duration=30)
    body = {"metadata": {"name": "graceful"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    pod_rt = rt(scripted, "pods")
    await create(scripted, body, "pods")
    await until(lambda: cond(scripted.store.find(pod_rt, NS, "graceful"), "Ready"), "running")
    seen: list[str] = []
    scripted.store.listeners.append(
        lambda e: (
            e.obj["metadata"]["name"] == "graceful"
            and seen.append(f"{e.type} {e.obj['status'].get('phase')}")
        )
    )
    pod = scripted.store.find(pod_rt, NS, "graceful")
    scripted.store.mark_deleted(pod_rt, pod, [])  # type: ignore[arg-type]
    await until(lambda: scripted.store.find(pod_rt, NS, "graceful") is None, "pod removed")
    assert seen[-1] == "DELETED Failed"


async def test_a_nul_in_an_env_value_is_a_start_error_not_a_hang(scripted: Sandbox) -> None:
    # The API server accepts it; runc refuses it when the container starts.
    env = [{"name": "BAD", "value": "s3cret\u0000tail"}, {"name": "OK", "value": "1"}]
    await create(scripted, job_body("nul", container={"env": env}, backoffLimit=0))
    failed = await finished(scripted, "nul", "Failed")
    assert failed["status"]["failed"] == 1
    state = terminated(pods(scripted, "nul")[0])
    assert (state["exitCode"], state["reason"]) == (128, "StartError")
    assert 'invalid environment variable "BAD": contains nul byte' in state["message"]
    assert "s3cret" not in state["message"]  # a value may be a Secret's: never in status
