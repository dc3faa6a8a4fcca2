"""Server-side apply on the sandbox: `kubectl apply --server-side` creates and updates
custom and built-in objects, managedFields record each manager, another manager's field is
a 409 Conflict unless forced, and a field no longer applied is removed."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
import yaml

from koos_sandbox.testing import Kubectl

from .conftest import Ground

APPLY = {"Content-Type": "application/apply-patch+yaml"}
CRD = Path(__file__).resolve().parents[2] / "examples" / "sandbox" / "crd.yaml"


@pytest.fixture
def cfg(ground: Ground) -> str:
    """The path of the ConfigMap `cfg` in the test's namespace."""
    return f"{ground.ns_path('configmaps')}/cfg"


def _cm(**data: str) -> str:
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data}
    )


def _owners(obj: dict) -> dict[tuple[str, str], dict]:
    return {(e["manager"], e["operation"]): e["fieldsV1"] for e in obj["metadata"]["managedFields"]}


async def _apply(
    http: aiohttp.ClientSession, cfg: str, manager: str, body: str, force: bool = False
):
    params = {"fieldManager": manager, **({"force": "true"} if force else {})}
    async with http.patch(cfg, data=body, headers=APPLY, params=params) as r:
        return r.status, await r.json()


async def test_apply_creates_records_owners_and_is_a_no_op_when_repeated(
    http: aiohttp.ClientSession, cfg: str
) -> None:
    code, created = await _apply(http, cfg, "alice", _cm(a="1", b="2"))
    assert code == 201
    assert created["data"] == {"a": "1", "b": "2"}
    assert _owners(created) == {("alice", "Apply"): {"f:data": {"f:a": {}, "f:b": {}}}}
    entry = created["metadata"]["managedFields"][0]
    assert (entry["apiVersion"], entry["fieldsType"]) == ("v1", "FieldsV1")
    code, again = await _apply(http, cfg, "alice", _cm(a="1", b="2"))
    assert code == 200
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_another_managers_field_conflicts_unless_forced_or_equal(
    http: aiohttp.ClientSession, cfg: str
) -> None:
    await _apply(http, cfg, "alice", _cm(a="1", b="2"))
    code, status = await _apply(http, cfg, "bob", _cm(a="9", b="8"))
    assert code == 409
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Apply failed with 2 conflicts: conflicts with "alice":\n- .data.a\n- .data.b'
    )
    assert status["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "alice"', "field": ".data.a"},
        {"reason": "FieldManagerConflict", "message": 'conflict with "alice"', "field": ".data.b"},
    ]
    code, shared = await _apply(http, cfg, "bob", _cm(a="1"))  # the same value: shared, no conflict
    assert code == 200
    assert _owners(shared)[("bob", "Apply")] == {"f:data": {"f:a": {}}}
    code, forced = await _apply(http, cfg, "bob", _cm(b="8"), force=True)
    assert code == 200
    assert forced["data"] == {"a": "1", "b": "8"}  # bob let go of a; alice still owns it
    assert _owners(forced) == {
        ("alice", "Apply"): {"f:data": {"f:a": {}}},
        ("bob", "Apply"): {"f:data": {"f:b": {}}},
    }


async def test_a_field_no_longer_applied_is_removed_unless_someone_else_owns_it(
    http: aiohttp.ClientSession, cfg: str
) -> None:
    await _apply(http, cfg, "alice", _cm(a="1", b="2", c="3"))
    await _apply(http, cfg, "bob", _cm(c="3"))
    code, obj = await _apply(http, cfg, "alice", _cm(a="1"))
    assert code == 200
    assert obj["data"] == {"a": "1", "c": "3"}  # b dropped; c kept, bob owns it


async def test_other_writes_take_the_fields_they_change(
    http: aiohttp.ClientSession, cfg: str
) -> None:
    await _apply(http, cfg, "alice", _cm(a="1", b="2"))
    merge = {"Content-Type": "application/merge-patch+json"}
    params = {"fieldManager": "editor"}
    async with http.patch(cfg, data='{"data":{"b":"5"}}', headers=merge, params=params):
        pass
    code, status = await _apply(http, cfg, "alice", _cm(a="1", b="2"))
    assert code == 409
    assert (
        status["message"]
        == 'Apply failed with 1 conflict: conflict with "editor" using v1: .data.b'
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "editor" using v1',
            "field": ".data.b",
        }
    ]


async def test_apply_needs_a_field_manager(http: aiohttp.ClientSession, cfg: str) -> None:
    async with http.patch(cfg, data=_cm(a="1"), headers=APPLY) as r:
        assert r.status == 422
        status = await r.json()
    assert status["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
        "is required for apply patch"
    )


async def test_force_is_only_for_apply(http: aiohttp.ClientSession, cfg: str) -> None:
    await _apply(http, cfg, "alice", _cm(a="1"))
    merge = {"Content-Type": "application/merge-patch+json"}
    params = {"force": "false"}
    async with http.patch(cfg, data="{}", headers=merge, params=params) as r:
        assert r.status == 422
        status = await r.json()
    assert status["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: '
        "may not be specified for non-apply patch"
    )


@pytest.mark.kubectl
def test_kubectl_apply_server_side_on_custom_and_builtin_objects(kubectl: Kubectl) -> None:
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", str(CRD))
    kubectl("wait", "--for=condition=Established", "crd/greetings.demo.koos.io", "--timeout=10s")
    greeting = {
        "apiVersion": "demo.koos.io/v1",
        "kind": "Greeting",
        "metadata": {"name": "g"},
        "spec": {"message": "hi", "times": 3},
    }
    out = kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(greeting))
    assert "greeting.demo.koos.io/g serverside-applied" in out
    greeting["spec"] = {"message": "hello"}
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(greeting))
    got = kubectl.json("get", "greeting", "g", "--show-managed-fields")
    assert got["spec"] == {"message": "hello", "times": 1}  # times dropped, then defaulted
    assert got["metadata"]["managedFields"][0]["manager"] == "kubectl"

    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
                }
            }
        },
    }
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(job))
    patch = json.dumps({"spec": {"activeDeadlineSeconds": 60}})
    kubectl("patch", "job", "j", "--type=merge", "-p", patch)
    job["spec"]["activeDeadlineSeconds"] = 30
    refused = kubectl.run(
        "apply", "--server-side", "-f", "-", input=yaml.safe_dump(job), check=False
    )
    assert refused.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl-patch"' in refused.stderr
    assert ".spec.activeDeadlineSeconds" in refused.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(job))
    assert kubectl.json("get", "job", "j")["spec"]["activeDeadlineSeconds"] == 30
