"""Size and shape limits of kube-apiserver and etcd, and how the sandbox refuses past them.

- Request body: kube-apiserver reads at most 3 MiB (`MaxRequestBodyBytes`) of a write's body;
  more is 413 `RequestEntityTooLarge`, "Request entity too large: limit is 3145728".
- Nesting: Go's JSON decoder stops at 10,000 levels. The sandbox's Python code recurses per
  level, so it refuses objects nested deeper than `MAX_DEPTH` (a 400, never a 500 or a
  RecursionError); a known difference, listed in the sandbox README.
- Annotations: at most 256 KiB in total (keys and values), a 422 on `metadata.annotations`;
  a ConfigMap's or Secret's data at most 1 MiB, a 422 on `data`.
- Stored object: etcd refuses a request over 1.5 MiB (`--max-request-bytes`); kube-apiserver
  passes its error on as a 500 with no reason, "etcdserver: request is too large". A dry run
  never reaches etcd, so it is not refused.

Invariant: every function here is iterative (no recursion), so it is safe on any input.
"""

from __future__ import annotations

import json
from typing import Any

from koos_sandbox.errors import ApiError

MAX_BODY_BYTES = 3 * 1024 * 1024
MAX_DEPTH = 400
MAX_ANNOTATIONS_BYTES = 256 * 1024
ETCD_MAX_REQUEST_BYTES = 1536 * 1024  # etcd's default --max-request-bytes (1.5 MiB)


def body_too_large() -> ApiError:
    return ApiError(
        413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY_BYTES}"
    )


def depth_of(value: Any, stop_after: int = MAX_DEPTH) -> int:
    """How many objects and arrays are nested at the deepest point of `value` (a scalar is
    0); stops counting once past `stop_after`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > stop_after:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def too_deep(what: str) -> ApiError:
    return ApiError(
        400,
        "BadRequest",
        f"{what}: the object is nested deeper than {MAX_DEPTH} levels, the most this sandbox "
        "accepts (kube-apiserver's JSON decoder accepts up to 10000)",
    )


def check_depth(value: Any, what: str) -> None:
    if depth_of(value) > MAX_DEPTH:
        raise too_deep(what)


def annotation_causes(meta: Any) -> list[tuple[str, str]]:
    """ValidateAnnotationsSize: the bytes of every key and value, together."""
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if not isinstance(annotations, dict):
        return []
    total = sum(
        len(str(k).encode()) + len(v.encode() if isinstance(v, str) else str(v).encode())
        for k, v in annotations.items()
    )
    if total > MAX_ANNOTATIONS_BYTES:
        limit = MAX_ANNOTATIONS_BYTES
        return [("metadata.annotations", f"Too long: may not be more than {limit} bytes")]
    return []


MAX_CONFIG_DATA_BYTES = 1024 * 1024  # corev1.MaxSecretSize: ConfigMaps and Secrets


def config_data_causes(kind: str, obj: Any) -> list[tuple[str, str]]:
    """ValidateConfigMap / ValidateSecret: the (decoded) values of `data` (and `binaryData`)
    together at most 1 MiB; keys do not count. A ConfigMap's error is about the whole
    object (field "", printed `[]`), a Secret's about `data`."""
    fields = ("data", "binaryData") if kind == "ConfigMap" else ("data",)
    total = 0
    for name in fields:
        data = obj.get(name) if isinstance(obj, dict) else None
        for value in (data or {}).values() if isinstance(data, dict) else ():
            text = str(value)
            if kind == "Secret" or name == "binaryData":
                total += len(text) * 3 // 4 - text[-2:].count("=")  # base64 → bytes
            else:
                total += len(text.encode())
    if total > MAX_CONFIG_DATA_BYTES:
        limit = MAX_CONFIG_DATA_BYTES
        field = "[]" if kind == "ConfigMap" else "data"
        return [(field, f"Too long: may not be more than {limit} bytes")]
    return []


def check_stored_size(key: str, obj: Any) -> None:
    """Refuse, as etcd does, an object whose write would be over etcd's request limit. The
    size is the JSON encoding (how custom objects are stored) plus the key."""
    size = len(json.dumps(obj, separators=(",", ":")).encode()) + len(key.encode())
    if size > ETCD_MAX_REQUEST_BYTES:
        raise ApiError(500, "", "etcdserver: request is too large")


def etcd_key(group: str, plural: str, namespace: str, name: str) -> str:
    return "/".join(p for p in ("/registry", group, plural, namespace, name) if p)
