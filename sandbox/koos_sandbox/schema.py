"""CRD openAPIV3Schema behaviour for custom objects: pruning, defaulting, validation.

What apiextensions-apiserver does to a custom resource between decoding and storage, as pure
functions over JSON data: `prune` drops fields the structural schema does not declare,
`apply_defaults` drops non-nullable nulls and fills `default`s, `validate` returns the
(field, message) causes kube-apiserver 1.32 would put in a 422, and `check_structural`
refuses schemas a CRD may not carry.

Invariants: inputs are never mutated (results are deep copies); `metadata` at the root is
neither pruned, defaulted into, nor validated by the CRD schema; `x-kubernetes-validations`
(CEL) rules are accepted on CRDs but never evaluated on objects.
"""

from __future__ import annotations

import copy
from typing import Any

from koos_sandbox.goformat import bad_value, go_json
from koos_sandbox.schema_structural import check_structural, structural_causes
from koos_sandbox.schema_validate import Cause, value_causes

__all__ = ["Cause", "apply_defaults", "check_structural", "prune", "structural_causes", "validate"]

_META_FIELDS = ("apiVersion", "kind", "metadata")


def prune(obj: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Structural pruning (apiextensions' pruning.Prune with root=true) on a copy of obj."""
    result = copy.deepcopy(obj)
    root = dict(schema or {})
    root["x-kubernetes-embedded-resource"] = True  # the root keeps apiVersion/kind/metadata
    _prune(result, root)
    return result


def _prune(value: Any, schema: dict[str, Any] | None) -> None:
    if schema is not None and schema.get("x-kubernetes-preserve-unknown-fields"):
        _skip_prune(value, schema)
        return
    if isinstance(value, dict):
        if schema is None:
            value.clear()
            return
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key in list(value):
            if schema.get("x-kubernetes-embedded-resource") and key in _META_FIELDS:
                continue
            if key in props:
                _prune(value[key], props[key])
            elif extra is not None:
                # additionalProperties: true/false carries no schema: its values keep scalars only
                _prune(value[key], extra if isinstance(extra, dict) else None)
            else:
                del value[key]
    elif isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        for item in value:
            _prune(item, items if isinstance(items, dict) else None)


def _skip_prune(value: Any, schema: dict[str, Any] | None) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            if schema.get("x-kubernetes-embedded-resource") and key in _META_FIELDS:
                continue
            if key in props:
                _prune(sub, props[key])
            elif extra is not None:
                _prune(sub, extra if isinstance(extra, dict) else None)
    elif isinstance(value, list):
        items = schema.get("items")
        for item in value:
            _skip_prune(item, items if isinstance(items, dict) else None)


def apply_defaults(obj: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Drop non-nullable nulls that have no default, then apply `default`s, on a copy of obj.

    This is what the CR decoder does: `PruneNonNullableNullsWithoutDefaults` then `Default`.
    Defaults fill missing fields of objects that exist (never create a parent), recurse into
    array items and additionalProperties values, and replace a null only where the field is
    not nullable. Defaults are deep-copied and defaulted themselves.
    """
    result = copy.deepcopy(obj)
    root = _without_metadata(schema)
    _prune_nulls(result, root)
    _default(result, root)
    return result


def _without_metadata(schema: dict[str, Any] | None) -> dict[str, Any]:
    root = dict(schema or {})
    root["properties"] = {
        k: v for k, v in (root.get("properties") or {}).items() if k != "metadata"
    }
    if isinstance(root.get("required"), list):
        root["required"] = [k for k in root["required"] if k != "metadata"]
    return root


def _field_schema(key: str, schema: dict[str, Any] | None) -> dict[str, Any] | None:
    if schema is None:
        return None
    found = (schema.get("properties") or {}).get(key, schema.get("additionalProperties"))
    return found if isinstance(found, dict) else None


def _drops_null(value: Any, schema: dict[str, Any] | None) -> bool:
    return value is None and schema is not None and not schema.get("nullable")


def _prune_nulls(value: Any, schema: dict[str, Any] | None) -> None:
    if isinstance(value, dict):
        for key in list(value):
            sub = _field_schema(key, schema)
            if _drops_null(value[key], sub) and (sub or {}).get("default") is None:
                del value[key]
            else:
                _prune_nulls(value[key], sub)
    elif isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        for item in value:
            _prune_nulls(item, items if isinstance(items, dict) else None)


def _default(value: Any, schema: dict[str, Any] | None) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if sub.get("default") is not None and (
                key not in value or _drops_null(value[key], sub)
            ):
                value[key] = copy.deepcopy(sub["default"])
        extra = schema.get("additionalProperties")
        for key in value:
            if key in props:
                _default(value[key], props[key])
            elif isinstance(extra, dict):
                if _drops_null(value[key], extra) and extra.get("default") is not None:
                    value[key] = copy.deepcopy(extra["default"])
                _default(value[key], extra)
    elif isinstance(value, list):
        items = schema.get("items")
        if not isinstance(items, dict):
            return
        for i, item in enumerate(value):
            if _drops_null(item, items) and items.get("default") is not None:
                value[i] = copy.deepcopy(items["default"])
            _default(value[i], items)


def validate(obj: dict[str, Any], schema: dict[str, Any]) -> list[Cause]:
    """(field, message) causes for an invalid custom object, [] when it is valid.

    Runs the customresource strategy's checks in its order: the schema (kube-openapi), then
    embedded resources, then x-kubernetes-list-type set/map uniqueness.
    """
    body = {k: v for k, v in obj.items() if k != "metadata"}
    root = _without_metadata(schema)
    props = root["properties"]
    causes = [(field or "<nil>", msg) for field, msg in value_causes(body, root)]
    embedded: list[Cause] = []
    lists: list[Cause] = []
    for key, value in body.items():
        if key in props:
            _embedded_causes(value, props[key], key, embedded)
            _list_causes(value, props[key], key, lists)
    return causes + embedded + lists


def _fp(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def _list_causes(value: Any, schema: Any, fp: str, out: list[Cause]) -> None:
    """apiextensions' listtype.ValidateListSetsAndMaps over a value and its schema."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        extra = schema.get("additionalProperties")
        props = schema.get("properties") or {}
        for key, sub in value.items():
            if isinstance(extra, dict):
                _list_causes(sub, extra, f"{fp}[{key}]", out)
            if key in props:
                _list_causes(sub, props[key], _fp(fp, key), out)
    elif isinstance(value, list):
        kind = schema.get("x-kubernetes-list-type")
        if kind == "set":
            out.extend(
                (f"{fp}[{i}]", f"Duplicate value: {bad_value(value[i])}") for i in _repeats(value)
            )
        elif kind == "map":
            out.extend(_map_list_causes(value, schema.get("x-kubernetes-list-map-keys") or [], fp))
        for i, item in enumerate(value):
            _list_causes(item, schema.get("items"), f"{fp}[{i}]", out)


_UNSET = object()


def _repeats(items: list[Any]) -> list[int]:
    """Index of each value's second occurrence, keyed like Go's map of interface{} scalars."""
    seen: dict[Any, int] = {}
    found: list[int] = []
    for i, item in enumerate(items):
        if isinstance(item, dict | list):
            key: Any = ("compound", go_json(item))
        else:
            key = item if item is _UNSET else (type(item).__name__, item)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == 2:
            found.append(i)
    return found


def _map_list_causes(items: list[Any], keys: list[str], fp: str) -> list[Cause]:
    for i, item in enumerate(items):
        if item is not None and not isinstance(item, dict):
            detail = "must be an object for an array of list-type map"
            return [(f"{fp}[{i}]", f"Invalid value: {bad_value(item)}: {detail}")]
    if len(items) <= 1:
        return []
    if len(keys) == 1:
        key = keys[0]
        values = [_UNSET if x is None or key not in x else x[key] for x in items]
        shown = [{} if v is _UNSET else {key: v} for v in values]
        return [(f"{fp}[{i}]", f"Duplicate value: {bad_value(shown[i])}") for i in _repeats(values)]
    composite = [{k: x[k] for k in keys if k in x} if x else {} for x in items]
    return [
        (f"{fp}[{i}]", f"Duplicate value: {bad_value(composite[i])}") for i in _repeats(composite)
    ]


def _embedded_causes(value: Any, schema: Any, fp: str, out: list[Cause]) -> None:
    """The embedded-resource part of apiextensions' objectmeta.Validate."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        if schema.get("x-kubernetes-embedded-resource"):
            for key in ("apiVersion", "kind"):
                if key not in value:
                    out.append((_fp(fp, key), "Required value: must not be empty"))
                elif not isinstance(value[key], str):
                    out.append(
                        (_fp(fp, key), f"Invalid value: {bad_value(value[key])}: must be a string")
                    )
                elif not value[key]:
                    out.append((_fp(fp, key), 'Invalid value: "": must not be empty'))
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        for key, sub in value.items():
            if key in props:
                _embedded_causes(sub, props[key], _fp(fp, key), out)
            elif isinstance(extra, dict):
                _embedded_causes(sub, extra, f"{fp}[{key}]", out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _embedded_causes(item, schema.get("items"), f"{fp}[{i}]", out)
