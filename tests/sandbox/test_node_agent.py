"""The node agent (koos_sandbox.node_agent) against the sandbox, through its HTTPS API only:
Pods bound and run as local processes, their environment, status and logs, the Pod's
ServiceAccount identity for `kubectl` inside a step, deletes, deadlines, and no process left
behind. The same agent is what `--jobs local` starts in-process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from koos_sandbox.app import Sandbox
from koos_sandbox.errors import ApiError
from koos_sandbox.node_agent import Credentials, NodeAgent
from koos_sandbox.testing import async_wait_for
from koos_sandbox.writes import WriteOptions

pytestmark = pytest.mark.sandbox_only(
    reason="the node agent on the sandbox's store (tests/realplane runs it on the real ground)"
)

NS = "default"
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="needs a kubectl on PATH")


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Sandbox]:
    sb = Sandbox(jobs_mode="local", workdir=tmp_path / "node")
    await sb.start()
    try:
        yield sb
    finally:
        await sb.stop()


def rt(sb: Sandbox, plural: str) -> Any:
    found = sb.state.registry.find("batch" if plural == "jobs" else "", "v1", plural)
    assert found is not None
    return found


def admin(sb: Sandbox) -> Any:
    return sb.state.authn.authenticate(f"Bearer {sb.admin_token}", None, [])


async def create(sb: Sandbox, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    return await sb.state.writes.create(admin(sb), rt(sb, plural), NS, body, WriteOptions())


def pod_body(name: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}
    container.update(spec.pop("container", {}))
    return {
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def pod(sb: Sandbox, name: str) -> dict[str, Any] | None:
    return sb.store.find(rt(sb, "pods"), NS, name)


async def ended(sb: Sandbox, name: str, timeout: float = 15.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = pod(sb, name)
        phase = ((found or {}).get("status") or {}).get("phase")
        return found if phase in ("Succeeded", "Failed") else None

    return await async_wait_for(done, timeout=timeout, what=f"pod {name} to end")


def state_of(found: dict[str, Any]) -> dict[str, Any]:
    return dict(found["status"]["containerStatuses"][0]["state"])


async def kubectl(sb: Sandbox, tmp_path: Path, *args: str) -> tuple[int, str]:
    assert KUBECTL is not None
    config = sb.write_kubeconfig(tmp_path / "kubeconfig")
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        "--kubeconfig",
        str(config),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent may not have reaped it yet).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def test_the_agent_registers_a_ready_node_and_renews_its_lease(tmp_path: Path) -> None:
    sb = Sandbox(jobs_mode="scripted")
    await sb.start()
    agent = NodeAgent(
        Credentials(sb.url, sb.certificates.ca_pem, sb.admin_token),
        "agent-1",
        tmp_path,
        heartbeat=0.1,
    )
    try:
        await agent.start()
        node = sb.store.find(rt(sb, "nodes"), "", "agent-1")
        assert node is not None
        ready = {c["type"]: c for c in node["status"]["conditions"]}["Ready"]
        assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
        assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == agent.port
        assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
        assert node["status"]["allocatable"]["pods"] == "110"
        leases = sb.state.registry.find("coordination.k8s.io", "v1", "leases")
        lease = sb.store.find(leases, "kube-node-lease", "agent-1")
        assert lease is not None and lease["spec"]["holderIdentity"] == "agent-1"
        assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
        first = lease["spec"]["renewTime"]
        await async_wait_for(
            lambda: (
                sb.store.find(leases, "kube-node-lease", "agent-1")["spec"]["renewTime"] != first
            ),
            what="the lease to be renewed",
        )
    finally:
        await agent.stop()
        await sb.stop()


async def test_an_unscheduled_pod_is_bound_through_the_binding_api(local: Sandbox) -> None:
    await create(local, "pods", pod_body("bound", "true"))
    done = await ended(local, "bound")
    assert done["spec"]["nodeName"] == "sandbox-node"
    bindings = [r for r in local.requests.records if r.subresource == "binding"]
    assert [(r.verb, r.name, r.code) for r in bindings] == [("create", "bound", 201)]
    # A Pod bound already is a 409, as kube-apiserver answers.
    with pytest.raises(ApiError) as again:
        from koos_sandbox import nodeapi

        nodeapi.bind(local.state, NS, "bound", {"target": {"name": "other"}})
    assert again.value.code == 409 and 'already assigned to node "sandbox-node"' in str(
        again.value.message
    )


async def test_env_from_a_secret_exit_code_and_termination_message(local: Sandbox) -> None:
    await create(
        local,
        "secrets",
        {"metadata": {"name": "creds"}, "stringData": {"password": "s3cr3t"}},
    )
    script = 'echo "pw=$PW pod=$POD sa=$SA"; echo done > /dev/termination-log; exit 3'
    env = [
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
    ]
    await create(local, "pods", pod_body("envy", script, container={"env": env}))
    done = await ended(local, "envy")
    assert done["status"]["phase"] == "Failed"
    term = state_of(done)["terminated"]
    assert (term["exitCode"], term["reason"], term["message"]) == (3, "Error", "done\n")
    assert local.pod_logs.read(NS, "envy", "main") == "pw=s3cr3t pod=envy sa=default\n"
    assert "s3cr3t" not in json.dumps(done)


async def test_a_missing_secret_waits_then_runs_when_it_appears(local: Sandbox) -> None:
    env = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "later", "key": "pw"}}}]
    await create(local, "pods", pod_body("waits", 'echo "$PW"', container={"env": env}))

    def waiting() -> str:
        statuses = ((pod(local, "waits") or {}).get("status") or {}).get("containerStatuses")
        return str((statuses or [{}])[0].get("state", {}).get("waiting", {}).get("reason", ""))

    await async_wait_for(lambda: waiting() == "CreateContainerConfigError", what="config error")
    await create(local, "secrets", {"metadata": {"name": "later"}, "stringData": {"pw": "x1"}})
    done = await ended(local, "waits")
    assert done["status"]["phase"] == "Succeeded"
    assert local.pod_logs.read(NS, "waits", "main") == "x1\n"


async def test_fallback_to_logs_on_error(local: Sandbox) -> None:
    body = pod_body(
        "fallback",
        "echo first; echo last; exit 1",
        container={"terminationMessagePolicy": "FallbackToLogsOnError"},
    )
    await create(local, "pods", body)
    assert state_of(await ended(local, "fallback"))["terminated"]["message"] == "first\nlast\n"


async def test_active_deadline_fails_the_pod_and_kills_the_process(
    local: Sandbox, tmp_path: Path
) -> None:
    pid = tmp_path / "pid"
    body = pod_body("late", f"echo $$$$ > {pid}; exec sleep 30", activeDeadlineSeconds=1)
    await create(local, "pods", body)
    done = await ended(local, "late")
    assert (done["status"]["phase"], done["status"]["reason"]) == ("Failed", "DeadlineExceeded")
    assert not alive(int(pid.read_text()))


async def test_delete_stops_the_process_and_removes_the_pod(local: Sandbox, tmp_path: Path) -> None:
    pid = tmp_path / "pid"
    await create(local, "pods", pod_body("doomed", f"echo $$$$ > {pid}; exec sleep 30"))
    await async_wait_for(pid.exists, what="the process to start")
    await async_wait_for(
        lambda: (pod(local, "doomed") or {}).get("status", {}).get("phase") == "Running",
        what="Running",
    )
    deleted = await local.state.writes.delete(admin(local), rt(local, "pods"), NS, "doomed", {})
    assert deleted["metadata"]["deletionGracePeriodSeconds"] == 30  # Terminating, graceful
    await async_wait_for(lambda: pod(local, "doomed") is None, what="the pod to go")
    assert not alive(int(pid.read_text()))
    deletes = [r for r in local.requests.records if r.verb == "delete" and r.name == "doomed"]
    # The test's delete did not go through HTTP: this one is the agent's, ending it (grace 0).
    assert [r.code for r in deletes] == [200]


async def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    sb = Sandbox(jobs_mode="local", workdir=tmp_path / "node")
    await sb.start()
    try:
        # The main process ignores SIGTERM and has a child of its own.
        script = (
            f"trap '' TERM; sleep 30 & echo $! > {tmp_path}/child; "
            f"echo $$$$ > {tmp_path}/main; wait"
        )
        await create(sb, "pods", pod_body("stubborn", script))
        await async_wait_for((tmp_path / "main").exists, what="the process to start")
    finally:
        await sb.stop()
    for name in ("main", "child"):
        assert not alive(int((tmp_path / name).read_text())), name
    assert not (tmp_path / "node" / "pods").exists()


@needs_kubectl
async def test_kubectl_logs_through_the_kubelet_endpoint(local: Sandbox, tmp_path: Path) -> None:
    await create(local, "pods", pod_body("talk", "echo one; echo two; echo three"))
    await ended(local, "talk")
    code, out = await kubectl(local, tmp_path, "logs", "talk")
    assert (code, out) == (0, "one\ntwo\nthree\n")
    code, out = await kubectl(local, tmp_path, "logs", "talk", "--tail=1", "--timestamps")
    assert code == 0 and out.endswith(" three\n") and out.startswith("20"), out
    code, out = await kubectl(local, tmp_path, "logs", "-f", "talk", "--limit-bytes=4")
    assert (code, out) == (0, "one\n")
    records = [r for r in local.requests.records if r.subresource == "log"]
    assert len(records) == 3


@needs_kubectl
async def test_kubectl_logs_of_a_waiting_container_says_why(local: Sandbox, tmp_path: Path) -> None:
    body = pod_body("bad-image", "true", container={"image": "Not//Valid"})
    await create(local, "pods", body)

    def reason() -> str:
        statuses = ((pod(local, "bad-image") or {}).get("status") or {}).get("containerStatuses")
        return str((statuses or [{}])[0].get("state", {}).get("waiting", {}).get("reason", ""))

    await async_wait_for(lambda: reason() == "InvalidImageName", what="InvalidImageName")
    code, out = await kubectl(local, tmp_path, "logs", "bad-image")
    assert code == 1
    assert 'container "main" in pod "bad-image" is waiting to start: InvalidImageName' in out


@needs_kubectl
async def test_kubectl_inside_a_step_acts_as_the_pods_service_account(local: Sandbox) -> None:
    await create(local, "serviceaccounts", {"metadata": {"name": "runner"}})
    script = (
        "echo host=$KUBERNETES_SERVICE_HOST port=$KUBERNETES_SERVICE_PORT; "
        'stat -c %a "$KUBECONFIG"; '
        "kubectl auth whoami -o jsonpath='{.status.userInfo.username}'; echo; "
        "kubectl get sa runner -o jsonpath='{.metadata.name}'"
    )
    await create(local, "pods", pod_body("whoami", script, serviceAccountName="runner"))
    done = await ended(local, "whoami", timeout=30)
    logs = local.pod_logs.read(NS, "whoami", "main") or ""
    port = local.url.rsplit(":", 1)[1]
    assert logs.splitlines() == [
        f"host=127.0.0.1 port={port}",
        "600",
        "system:serviceaccount:default:runner",
        "runner",
    ], logs
    assert done["status"]["phase"] == "Succeeded"


@needs_kubectl
async def test_no_token_when_automount_is_off(local: Sandbox) -> None:
    await create(
        local,
        "serviceaccounts",
        {"metadata": {"name": "quiet"}, "automountServiceAccountToken": False},
    )
    script = "kubectl auth whoami 2>&1; true"
    await create(local, "pods", pod_body("quiet", script, serviceAccountName="quiet"))
    await ended(local, "quiet", timeout=30)
    out = local.pod_logs.read(NS, "quiet", "main") or ""
    assert "localhost:8080" in out and "system:serviceaccount" not in out, out
    tokens = [r for r in local.requests.records if r.subresource == "token"]
    assert tokens == []


async def test_a_bound_token_is_refused_once_its_pod_is_gone_or_it_expires(
    local: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from koos_sandbox import auth, nodeapi

    await create(local, "pods", pod_body("holder", "sleep 30"))
    holder = pod(local, "holder")
    assert holder is not None
    ref = {"kind": "Pod", "name": "holder", "uid": holder["metadata"]["uid"]}
    body = {"spec": {"boundObjectRef": ref, "expirationSeconds": 600}}
    token = nodeapi.token_request(local.state, NS, "default", body)["status"]["token"]
    other = nodeapi.token_request(local.state, NS, "default", body)["status"]["token"]
    user = local.state.authn.authenticate(f"Bearer {token}", None, [])
    assert user.username == "system:serviceaccount:default:default"
    assert set(user.groups) >= {"system:serviceaccounts", "system:serviceaccounts:default"}
    now = auth.time.time()
    monkeypatch.setattr(auth.time, "time", lambda: now + 601)
    with pytest.raises(ApiError) as expired:
        local.state.authn.authenticate(f"Bearer {other}", None, [])
    assert expired.value.code == 401
    monkeypatch.undo()
    await local.state.writes.delete(
        admin(local), rt(local, "pods"), NS, "holder", {"gracePeriodSeconds": 0}
    )
    await async_wait_for(lambda: pod(local, "holder") is None, what="the pod to go")
    with pytest.raises(ApiError) as refused:
        local.state.authn.authenticate(f"Bearer {token}", None, [])
    assert refused.value.code == 401
    with pytest.raises(ApiError) as short:
        nodeapi.token_request(local.state, NS, "default", {"spec": {"expirationSeconds": 60}})
    assert short.value.code == 422


async def test_the_agent_program_runs_a_pod_and_stops_on_sigterm(tmp_path: Path) -> None:
    sb = Sandbox(jobs_mode="scripted")
    await sb.start()
    config = sb.write_kubeconfig(tmp_path / "kubeconfig")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "koos_sandbox.node_agent",
        "--kubeconfig",
        str(config),
        "--node-name",
        "cli-node",
        "--workdir",
        str(tmp_path / "work"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert "node agent cli-node ready" in line, line
        pid = tmp_path / "pid"
        body = pod_body("remote", f"echo $$$$ > {pid}; exec sleep 30", nodeName="cli-node")
        await create(sb, "pods", body)
        await async_wait_for(
            lambda: (pod(sb, "remote") or {}).get("status", {}).get("phase") == "Running",
            what="Running",
        )
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert not alive(int(pid.read_text()))
        assert not (tmp_path / "work" / "pods").exists()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await sb.stop()


@needs_kubectl
async def test_kubectl_rollout_restart_inside_a_step_works(local: Sandbox) -> None:
    # The issue's newcomer case: it used to dial localhost:8080.
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }
    deployments = local.state.registry.find("apps", "v1", "deployments")
    await local.state.writes.create(admin(local), deployments, NS, deployment, WriteOptions())
    await create(local, "pods", pod_body("restart", "kubectl rollout restart deployment/web"))
    done = await ended(local, "restart", timeout=30)
    assert done["status"]["phase"] == "Succeeded", local.pod_logs.read(NS, "restart", "main")
    web = local.store.find(deployments, NS, "web")
    assert web is not None
    annotations = web["spec"]["template"]["metadata"].get("annotations") or {}
    assert "kubectl.kubernetes.io/restartedAt" in annotations
