"""Checks of the write path that need no admission webhook, and the options of a write.

`decode` turns a request body into the object to store, as kube-apiserver's decoder does: the
body must be a JSON object whose kind, apiVersion and namespace match the request; unknown
fields of a custom object are pruned (an error with `fieldValidation=Strict`, a warning with
`Warn`) and its schema's defaults applied. `check_namespace` refuses a namespaced create in a
namespace that is missing or terminating; `validate` runs the built-in validation of the
kind; `dry_run_result` is what a dry-run create answers; `modified_conflict` is the 409 of an
update that lost a race. None of these writes to the store or changes the object it is given;
a refusal is an `ApiError`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from koos_sandbox import errors, limits, schema, strategies
from koos_sandbox.errors import ApiError
from koos_sandbox.registry import Registry, ResourceType
from koos_sandbox.requestctx import warn
from koos_sandbox.store import Obj, Store, now_rfc3339


@dataclass(frozen=True)
class WriteOptions:
    dry_run: bool = False
    field_validation: str = ""  # "", Ignore, Warn, Strict
    subresource: str = ""
    field_manager: str = ""  # fieldManager, or the User-Agent's prefix
    force: bool = False  # server-side apply: take over conflicting fields
    applying: bool = False  # the write of a server-side apply (managedFields computed)


def decode(rt: ResourceType, body: Any, namespace: str, opts: WriteOptions) -> Obj:
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request was not a JSON object")
    # A patch can nest a body deeper than the request was: check before any recursion.
    what = f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}'
    limits.check_depth(body, what)
    obj = copy.deepcopy(body)
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    # A custom object must name its apiVersion (its kind: `check_custom_kind`); a built-in
    # one takes both from the URL when it leaves them out.
    version_ok = api_version == rt.api_version or (not api_version and not rt.custom)
    if (kind and kind != rt.kind) or not version_ok:
        raise errors.bad_request(
            f"the API version in the data ({api_version or ''}) does not match the expected "
            f"API version ({rt.api_version})"
            if not version_ok
            else f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
        )
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    if rt.custom and rt.schema:
        pruned = schema.prune(obj, rt.schema)
        unknown = strategies.removed_paths(obj, pruned)
        if unknown and opts.field_validation == "Strict":
            text = ", ".join(f'unknown field "{p}"' for p in unknown)
            raise errors.bad_request(f"strict decoding error: {text}")
        if unknown and opts.field_validation == "Warn":
            for path in unknown:
                warn(f'unknown field "{path}"')
        obj = schema.apply_defaults(pruned, rt.schema)
    return obj


def check_custom_kind(rt: ResourceType, body: Any, raw: bytes) -> None:
    """A custom object created or replaced without `kind` is a 400, as the unstructured
    decoder fails it and the handler words it (transformDecodeError, summarizeData)."""
    if not rt.custom or not isinstance(body, dict) or body.get("kind"):
        return
    text = raw.decode("utf-8", "replace")
    summary = (
        "<empty>"
        if not raw
        else text
        if len(raw) <= 30
        else f"{raw[:30].decode('utf-8', 'replace')} ..."
    )
    raise errors.bad_request(
        f"the object provided is unrecognized (must be of type {rt.kind}): "
        f"Object 'Kind' is missing in '{text}' ({summary})"
    )


def check_namespace(store: Store, registry: Registry, rt: ResourceType, namespace: str) -> None:
    if not rt.namespaced:
        return
    ns_type = registry.find("", "v1", "namespaces")
    assert ns_type is not None
    ns = store.find(ns_type, "", namespace)
    if ns is None:
        raise errors.not_found("namespaces", namespace)
    if "deletionTimestamp" in ns["metadata"]:
        raise ApiError(
            403,
            "Forbidden",
            f"unable to create new content in namespace {namespace} because it is being terminated",
        )


def validate(rt: ResourceType, obj: Obj) -> None:
    # Mutating webhooks may have nested the object further since it was decoded.
    limits.check_depth(obj, f"{rt.kind} could not be validated")
    causes = strategies.validation_causes(rt, obj)
    if causes:
        raise errors.invalid(rt.kind, obj["metadata"].get("name", ""), rt.group, causes)


def dry_run_result(rt: ResourceType, namespace: str, obj: Obj) -> Obj:
    result = copy.deepcopy(obj)
    meta = result["metadata"]
    if rt.namespaced:
        meta["namespace"] = namespace
    meta.setdefault("creationTimestamp", now_rfc3339())
    result["apiVersion"], result["kind"] = rt.api_version, rt.kind
    return result


def modified_conflict(rt: ResourceType, name: str) -> ApiError:
    return errors.conflict(
        rt.plural,
        name,
        rt.group,
        "the object has been modified; please apply your changes to the latest version and "
        "try again",
    )
