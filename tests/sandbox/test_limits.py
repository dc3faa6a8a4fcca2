"""Limits of kube-apiserver and etcd the sandbox keeps: the 3 MiB request body (413), nesting
(a 400, never a 500 or a RecursionError), 256 KiB of annotations (422) and etcd's 1.5 MiB
request limit (500 "etcdserver: request is too large")."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml

from koos_sandbox import limits
from koos_sandbox.testing import Kubectl

from .conftest import Ground

NESTING = (
    "the sandbox's own nesting limit (400 levels; kube-apiserver's is 10,000: a known difference)"
)
JSON = {"Content-Type": "application/json"}
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "deeps.x.koos.io"},
    "spec": {
        "group": "x.koos.io",
        "scope": "Namespaced",
        "names": {"kind": "Deep", "plural": "deeps", "singular": "deep"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture
async def http(ground: Ground) -> AsyncIterator[aiohttp.ClientSession]:
    """The admin's session, with the CRD of `deeps` made."""
    ground.make_crd(CRD)
    async with ground.session() as session:
        yield session


@dataclass(frozen=True)
class Paths:
    cm: str  # configmaps in the test's namespace
    deeps: str  # deeps.x.koos.io there


@pytest.fixture
def at(ground: Ground) -> Paths:
    return Paths(ground.ns_path("configmaps"), ground.ns_path("deeps", "x.koos.io/v1"))


def nested(levels: int) -> str:
    """JSON text of arrays and objects nested `levels` deep, alternating."""
    text = "1"
    for i in range(levels):
        text = f'{{"a":{text}}}' if i % 2 else f"[{text}]"
    return text


def deep(name: str, levels: int) -> str:
    # The object, spec and its field `v` are 2 levels over the value.
    return (
        json.dumps({"apiVersion": "x.koos.io/v1", "kind": "Deep", "metadata": {"name": name}})[:-1]
        + f',"spec":{{"v":{nested(levels - 2)}}}}}'
    )


# ---- request body --------------------------------------------------------------------------


async def test_a_body_over_3_mib_is_413_and_one_at_the_limit_is_read(
    http: aiohttp.ClientSession,
    at: Paths,
) -> None:
    small = json.dumps({"metadata": {"name": "padded"}})
    at_limit = small + " " * (limits.MAX_BODY_BYTES - len(small))
    async with http.post(at.cm, data=at_limit + " ", headers=JSON) as r:
        assert r.status == 413
        status = await r.json()
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Request entity too large: limit is 3145728",
        "reason": "RequestEntityTooLarge",
        "code": 413,
    }
    async with http.post(at.cm, data=at_limit, headers=JSON) as r:
        assert r.status == 201  # whitespace counts, but the object itself is small


@pytest.mark.kubectl
def test_kubectl_reports_the_413(kubectl: Kubectl, tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    data = {f"k{i}": "x" * 1000 for i in range(3200)}
    big.write_text(
        yaml.safe_dump(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": data}
        )
    )
    result = kubectl.run("create", "-f", str(big), check=False)
    assert result.returncode == 1
    assert "Error from server (RequestEntityTooLarge)" in result.stderr
    assert "Request entity too large: limit is 3145728" in result.stderr


@pytest.mark.kubectl
def test_kubectl_reports_the_object_limits(kubectl: Kubectl, tmp_path: Path) -> None:
    big = tmp_path / "data.yaml"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "data"}}
    # Values count, keys do not: 1 MiB of values fits, one byte more does not.
    fits = {"k": "x" * (512 * 1024), "other-key": "y" * (512 * 1024)}
    big.write_text(yaml.safe_dump({**body, "data": fits}))
    kubectl("create", "-f", str(big))
    kubectl("delete", "configmap", "data")
    big.write_text(yaml.safe_dump({**body, "data": {**fits, "k": "x" * (512 * 1024 + 1)}}))
    result = kubectl.run("create", "-f", str(big), check=False)
    assert 'The ConfigMap "data" is invalid: []: Too long: may not be more than 1048576 bytes' in (
        result.stderr
    )
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "data"}}
    over = base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()
    big.write_text(yaml.safe_dump({**secret, "data": {"k": over}}))
    result = kubectl.run("create", "-f", str(big), check=False)
    assert 'The Secret "data" is invalid: data: Too long: may not be more than 1048576 bytes' in (
        result.stderr
    )
    kubectl("create", "-f", "-", input=json.dumps(CRD))
    kubectl("wait", "--for=condition=Established", "crd/deeps.x.koos.io", "--timeout=10s")
    huge = {"apiVersion": "x.koos.io/v1", "kind": "Deep", "metadata": {"name": "huge"}}
    big.write_text(json.dumps({**huge, "spec": {"blob": "z" * (1600 * 1024)}}))
    result = kubectl.run("create", "-f", str(big), check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("Error from server: error when creating")  # no reason
    assert result.stderr.rstrip().endswith(": etcdserver: request is too large")


# ---- nesting -------------------------------------------------------------------------------


async def test_nesting_up_to_the_limit_works_on_every_path(
    http: aiohttp.ClientSession, at: Paths
) -> None:
    async with http.post(at.deeps, data=deep("edge", limits.MAX_DEPTH), headers=JSON) as r:
        assert r.status == 201, await r.text()
    async with http.get(f"{at.deeps}/edge") as r:
        assert r.status == 200
    table = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    async with http.get(at.deeps, headers=table) as r:
        assert r.status == 200
    patch = json.dumps({"spec": {"w": json.loads(nested(limits.MAX_DEPTH - 2))}})
    async with http.patch(f"{at.deeps}/edge", data=patch, headers=MERGE) as r:
        assert r.status == 200


@pytest.mark.sandbox_only(reason=NESTING)
async def test_deeper_nesting_is_a_400_on_every_path_and_never_a_recursion_error(
    http: aiohttp.ClientSession, at: Paths, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "koos_sandbox")
    async with http.post(at.deeps, data=deep("ok", 10), headers=JSON) as r:
        assert r.status == 201
    attempts = [
        ("post", at.deeps, deep("too-deep", 600), JSON),
        ("post", at.deeps, deep("far-too-deep", 100_000), JSON),
        ("post", at.cm, f'{{"metadata":{{"name":"c"}},"x":{nested(600)}}}', JSON),
        (
            "post",
            at.cm,
            "a:\n" + "".join(" " * i + "- \n" for i in range(2000)),
            {"Content-Type": "application/yaml"},
        ),
        ("patch", f"{at.deeps}/ok", f'{{"spec":{{"w":{nested(600)}}}}}', MERGE),
        (
            "patch",
            f"{at.cm}/c",
            f'{{"x":{nested(600)}}}',
            {"Content-Type": "application/strategic-merge-patch+json"},
        ),
        # Each operation stays under the limit; together they would not.
        (
            "patch",
            f"{at.deeps}/ok",
            json.dumps(
                [
                    {"op": "add", "path": "/spec/w", "value": json.loads(nested(300))},
                    {
                        "op": "copy",
                        "from": "/spec/w",
                        "path": "/spec/w" + "/a/0" * 75 + "/b",
                    },
                ]
            ),
            JSON_PATCH,
        ),
        # A subtree copied into itself: one level deeper each time.
        (
            "patch",
            f"{at.deeps}/ok",
            json.dumps([{"op": "copy", "from": "/spec", "path": "/spec/v"}] * 450),
            JSON_PATCH,
        ),
        # Copied beside itself: twice the size each time (the apiserver caps copies).
        (
            "patch",
            f"{at.deeps}/ok",
            json.dumps([{"op": "copy", "from": "/spec", "path": f"/spec/k{i}"} for i in range(60)]),
            JSON_PATCH,
        ),
    ]
    for method, path, body, headers in attempts:
        async with http.request(method, path, data=body, headers=headers) as r:
            status = await r.json()
            assert r.status in (400, 422), (path, status)
            assert status["kind"] == "Status"
    messages = [json.dumps(r.getMessage()) for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info], messages
    async with http.post(at.deeps, data=deep("too-deep", 600), headers=JSON) as r:
        message = (await r.json())["message"]
    assert "nested deeper than 400 levels" in message


# ---- annotations and object size ----------------------------------------------------------


async def test_annotations_over_256_kib_are_invalid(http: aiohttp.ClientSession, at: Paths) -> None:
    fits = {"metadata": {"name": "notes", "annotations": {"a": "x" * (262144 - 1)}}}
    async with http.post(at.cm, json=fits) as r:
        assert r.status == 201
    over = {"metadata": {"annotations": {"b": "y"}}}
    async with http.patch(f"{at.cm}/notes", data=json.dumps(over), headers=MERGE) as r:
        assert r.status == 422
        status = await r.json()
    assert status["message"] == (
        'ConfigMap "notes" is invalid: metadata.annotations: '
        "Too long: may not be more than 262144 bytes"
    )
    assert status["details"]["causes"][0]["reason"] == "FieldValueTooLong"


async def test_an_object_over_etcds_limit_is_refused_as_etcd_refuses_it(
    http: aiohttp.ClientSession,
    at: Paths,
) -> None:
    body = {"apiVersion": "x.koos.io/v1", "kind": "Deep", "metadata": {"name": "huge"}}
    body["spec"] = {"blob": "z" * (1536 * 1024)}
    async with http.post(f"{at.deeps}?dryRun=All", json=body) as r:
        assert r.status == 201  # a dry run never reaches etcd
    async with http.post(at.deeps, json=body) as r:
        assert r.status == 500
        status = await r.json()
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "etcdserver: request is too large",
        "code": 500,
    }
    body["spec"] = {"blob": "z" * (1400 * 1024)}
    async with http.post(at.deeps, json=body) as r:
        assert r.status == 201
    grow = json.dumps({"spec": {"more": "z" * (200 * 1024)}})
    async with http.patch(f"{at.deeps}/huge", data=grow, headers=MERGE) as r:
        assert r.status == 500  # an update that would grow past the limit, too


async def test_a_schema_nested_to_the_limit_prunes_defaults_and_validates(
    ground: Ground, http: aiohttp.ClientSession, at: Paths
) -> None:
    """The schema walks (structural check, pruning, defaults, validation, OpenAPI, tables)
    recurse per level too: a CRD whose schema reaches the nesting limit still works."""
    levels = 255  # an array or an object (properties → a) per level: the CRD is ~390 deep
    schema: dict = {"type": "string", "default": "d"}
    value: object = "x"
    for i in range(levels):
        if i % 2:
            schema = {"type": "object", "properties": {"a": schema}, "default": {}}
            value = {"a": value, "unknown": 1}
        else:
            schema, value = {"type": "array", "items": schema}, [value]
    crd = json.loads(json.dumps(CRD).replace("deeps", "trees").replace('"Deep"', '"Tree"'))
    crd["spec"]["names"]["singular"] = "tree"
    version = crd["spec"]["versions"][0]
    version["schema"]["openAPIV3Schema"]["properties"]["spec"] = {
        "type": "object",
        "properties": {"v": schema, "n": {"type": "integer"}},
    }
    version["additionalPrinterColumns"] = [{"name": "V", "type": "string", "jsonPath": ".spec.v"}]
    await asyncio.to_thread(ground.make_crd, crd)  # created, Established and served
    trees = at.deeps.replace("deeps", "trees")
    body = {"apiVersion": "x.koos.io/v1", "kind": "Tree", "metadata": {"name": "t"}}
    async with http.post(trees, json={**body, "spec": {"v": value}}) as r:
        assert r.status == 201, await r.text()
        stored = (await r.json())["spec"]["v"]
    assert "unknown" not in json.dumps(stored)  # pruned at every level
    async with http.post(trees, json={**body, "spec": {"v": value, "n": "one"}}) as r:
        assert r.status == 422  # and validated
    table = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    async with http.get(trees, headers=table) as r:
        assert r.status == 200
    async with http.get("/openapi/v3/apis/x.koos.io/v1") as r:
        assert r.status == 200


@pytest.mark.sandbox_only(reason=NESTING)
async def test_deep_json_inside_a_protobuf_body_is_a_400(
    http: aiohttp.ClientSession, at: Paths
) -> None:
    """managedFields' fieldsV1 travels as raw JSON inside protobuf: nesting there too."""

    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
            value >>= 7
            if not value:
                return bytes(out)

    def length_delimited(number: int, payload: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    for levels in (600, 100_000):
        fields_v1 = length_delimited(1, nested(levels).encode())
        entry = length_delimited(1, b"m") + length_delimited(7, fields_v1)
        meta = length_delimited(1, b"pb") + length_delimited(17, entry)
        config_map = length_delimited(1, meta)
        type_meta = length_delimited(1, b"v1") + length_delimited(2, b"ConfigMap")
        body = b"k8s\x00" + length_delimited(1, type_meta) + length_delimited(2, config_map)
        headers = {"Content-Type": "application/vnd.kubernetes.protobuf"}
        async with http.post(at.cm, data=body, headers=headers) as r:
            assert r.status == 400, await r.text()
