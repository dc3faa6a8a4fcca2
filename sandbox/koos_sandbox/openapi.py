"""OpenAPI v3 documents, enough for kubectl: the root index and one document per group-version.

kubectl 1.32 reads them to decide whether the server validates fields itself (a PATCH
operation of the kind that takes a `fieldValidation` query parameter): then it sends
`fieldValidation=Strict` instead of validating on the client. Custom resources also get
their schema as a component, so `kubectl explain` can describe them. Built-in kinds carry
no schema here: kubectl falls back to its compiled-in types for strategic merge patches.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from koos_sandbox.registry import Registry, ResourceType

GVK = "x-kubernetes-group-version-kind"
_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(rt: ResourceType) -> str:
    reversed_group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{reversed_group}.{rt.version}.{rt.kind}"


def group_version_doc(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in types:
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        prefix = f"/{_gv_path(group, version)}"
        if rt.namespaced:
            prefix += "/namespaces/{namespace}"
        params = [
            {"name": name, "in": "query", "schema": {"type": "string"}} for name in _QUERY_PARAMS
        ]
        ref = {"$ref": f"#/components/schemas/{_schema_name(rt)}"}
        operation = {
            "operationId": f"patch{rt.kind}",
            "parameters": params,
            GVK: gvk,
            "responses": {"200": {"content": {"application/json": {"schema": ref}}}},
        }
        paths[f"{prefix}/{rt.plural}/{{name}}"] = {
            "get": {**operation, "operationId": f"read{rt.kind}", "parameters": []},
            "put": {**operation, "operationId": f"replace{rt.kind}"},
            "patch": operation,
        }
        paths[f"{prefix}/{rt.plural}"] = {
            "post": {**operation, "operationId": f"create{rt.kind}"},
        }
        body: dict[str, Any] = dict(rt.schema) if rt.schema else {"type": "object"}
        schemas[_schema_name(rt)] = {**body, GVK: [gvk]}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def root_doc(registry: Registry) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for rt in registry.all():
        path = _gv_path(rt.group, rt.version)
        if path in paths:
            continue
        doc = group_version_doc(registry, rt.group, rt.version)
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.upper()}"}
    return {"paths": paths}


# OpenAPI v2 (`/openapi/v2`). kubectl reads it only for what its OpenAPI v3 index lacks: for a
# group/version no resource serves (a kind whose CRD is not installed), it asks v2 whether
# the kind supports server-side field validation, and a 404 there ends `kubectl apply` with
# "failed to download openapi" instead of kube-apiserver's "no matches for kind". The paths
# and definitions are left empty: every served group/version is answered from v3 first.
# Asked for with an "@" (which Go's mime parser refuses in a Content-Type), answered without.
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
V2_INFO = {"title": "Kubernetes", "version": "v1.32.0"}


def v2_doc() -> dict[str, Any]:
    return {"swagger": "2.0", "info": dict(V2_INFO), "paths": {}, "definitions": {}}


def v2_protobuf() -> bytes:
    """The same document as gnostic's `openapi_v2.Document` message, as the API server
    sends it to clients that ask for protobuf (client-go's discovery always does)."""
    info = _text(1, V2_INFO["title"]) + _text(2, V2_INFO["version"])
    return _text(1, "2.0") + _field(2, info) + _field(8, b"") + _field(9, b"")


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _text(number: int, text: str) -> bytes:
    return _field(number, text.encode())


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
