"""Refuse CRD schemas kube-apiserver would refuse, with its field paths and wording.

Three stages, as apiextensions validation runs them on an apiextensions.k8s.io/v1 CRD: the
generic OpenAPI checks (`ValidateCustomResourceDefinitionOpenAPISchema`), then — only if the
schema could be turned into a structural one — the structural invariants
(`schema.ValidateStructural`), then each `default` validated against its own schema. Paths
read like apiserver's: `properties[spec].items.type`, `anyOf[0].type`.

Invariants: pure; errors of each stage are sorted by text (the apiserver's map iteration makes
its own order random). Not covered: the completeness rule (every field named inside
anyOf/allOf/oneOf/not must also be declared outside), RE2 pattern compilation, CEL rule
compilation, and defaults' pruning check.
"""

from __future__ import annotations

from typing import Any

from koos_sandbox.goformat import bad_value, go_quote
from koos_sandbox.schema_validate import Cause, value_causes

_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_UNSUPPORTED = ("id", "additionalItems", "patternProperties", "definitions", "dependencies", "$ref")
_NESTED_FORBIDDEN = (
    ("type", "must be empty to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("externalDocs", "must be undefined to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
)
_NESTED_FLAGS: tuple[str, ...] = ("nullable", "x-kubernetes-preserve-unknown-fields")
_NESTED_FLAGS += ("x-kubernetes-embedded-resource", "x-kubernetes-int-or-string")
_META = ("apiVersion", "kind", "metadata")


def _at(path: str, child: str) -> str:
    return f"{path}.{child}" if path else child


def _required(path: str, detail: str) -> Cause:
    return (path, f"Required value: {detail}")


def _forbidden(path: str, detail: str) -> Cause:
    return (path, f"Forbidden: {detail}")


def _invalid(path: str, value: Any, detail: str) -> Cause:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        shown = "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
        return (path, f"Invalid value: {shown}: {detail}")
    return (path, f"Invalid value: {bad_value(value)}: {detail}")


def _not_supported(path: str, value: Any, valid: tuple[str, ...]) -> Cause:
    shown = ", ".join(go_quote(v) for v in valid)
    return (path, f"Unsupported value: {bad_value(value)}: supported values: {shown}")


def _children(schema: dict[str, Any], path: str) -> list[tuple[dict[str, Any], str, str]]:
    """(child schema, path, property name) for every sub-schema the generic checks visit."""
    found: list[tuple[dict[str, Any], str, str]] = []
    for key, sub in (schema.get("properties") or {}).items():
        found.append((sub, f"{_at(path, 'properties')}[{key}]", key))
    for key in ("additionalProperties", "items", "not"):
        if isinstance(schema.get(key), dict):
            found.append((schema[key], _at(path, key), ""))
    for key in ("allOf", "oneOf", "anyOf"):
        for i, sub in enumerate(schema.get(key) or []):
            found.append((sub, f"{_at(path, key)}[{i}]", ""))
    return [(sub, p, k) for sub, p, k in found if isinstance(sub, dict)]


def _generic(
    schema: dict[str, Any], path: str, root: bool, no_default: str, out: list[Cause]
) -> None:
    kind = schema.get("type", "")
    if kind and kind not in _TYPES:
        out.append(_not_supported(_at(path, "type"), kind, _TYPES))
    if "default" in schema and no_default:
        out.append(_forbidden(_at(path, "default"), f"must not be set {no_default}"))
    for key in _UNSUPPORTED:
        if schema.get(key):
            out.append(_forbidden(_at(path, key), f"{key} is not supported"))
    if kind == "null":
        detail = "type cannot be set to null, use nullable as an alternative"
        out.append(_forbidden(_at(path, "type"), detail))
    if isinstance(schema.get("items"), list):
        out.append(_forbidden(_at(path, "items"), "items must be a schema object and not an array"))
    if schema.get("uniqueItems") is True:
        detail = "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
        out.append(_forbidden(_at(path, "uniqueItems"), detail))
    extra = schema.get("additionalProperties")
    if (
        extra is not None
        and schema.get("properties")
        and (extra is False or isinstance(extra, dict))
    ):
        detail = "additionalProperties and properties are mutual exclusive"
        out.append(_forbidden(_at(path, "additionalProperties"), detail))
    elif extra is False:
        out.append(_forbidden(_at(path, "additionalProperties"), "cannot be set to false"))
    if schema.get("x-kubernetes-preserve-unknown-fields") is False:
        field = _at(path, "x-kubernetes-preserve-unknown-fields")
        out.append(_invalid(field, False, "must be true or undefined"))
    _list_and_map_types(schema, path, out)
    for rule_index, rule in enumerate(schema.get("x-kubernetes-validations") or []):
        if not str((rule or {}).get("rule", "")).strip():
            field = f"{_at(path, 'x-kubernetes-validations')}[{rule_index}].rule"
            out.append(_required(field, "rule is not specified"))
    for sub, sub_path, name in _children(schema, path):
        inner = no_default
        if root and name in _META:
            inner = f"in top-level {name}"
        _generic(sub, sub_path, False, inner, out)


def _list_and_map_types(schema: dict[str, Any], path: str, out: list[Cause]) -> None:
    kind = schema.get("type", "")
    map_type, list_type = schema.get("x-kubernetes-map-type"), schema.get("x-kubernetes-list-type")
    keys = schema.get("x-kubernetes-list-map-keys") or []
    for ext, want, value in (("map", "object", map_type), ("list", "array", list_type)):
        if value is not None and kind != want:
            detail = f"must be {want} if x-kubernetes-{ext}-type is specified"
            field = _at(path, "type")
            out.append(_invalid(field, kind, detail) if kind else _required(field, detail))
    if map_type is not None and map_type not in ("atomic", "granular"):
        out.append(
            _not_supported(_at(path, "x-kubernetes-map-type"), map_type, ("atomic", "granular"))
        )
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        valid = ("atomic", "set", "map")
        out.append(_not_supported(_at(path, "x-kubernetes-list-type"), list_type, valid))
    if keys and list_type != "map":
        detail, field = (
            "must be map if x-kubernetes-list-map-keys is non-empty",
            _at(path, "x-kubernetes-list-type"),
        )
        out.append(
            _required(field, detail) if list_type is None else _invalid(field, list_type, detail)
        )
    items = schema.get("items") if isinstance(schema.get("items"), dict) else None
    if list_type in ("set", "map") and items is not None and items.get("nullable"):
        detail = f"cannot be nullable when x-kubernetes-list-type is {list_type}"
        out.append(_forbidden(_at(path, "items.nullable"), detail))
    if list_type != "map":
        return
    if not keys:
        detail = "must not be empty if x-kubernetes-list-type is map"
        out.append(_required(_at(path, "x-kubernetes-list-map-keys"), detail))
    if items is None:
        out.append(
            _required(_at(path, "items"), "must have a schema if x-kubernetes-list-type is map")
        )
        return
    if items.get("type") != "object":
        detail = "must be object if parent array's x-kubernetes-list-type is map"
        out.append(_invalid(_at(path, "items.type"), items.get("type", ""), detail))
        return
    props, required = items.get("properties") or {}, items.get("required") or []
    for i, key in enumerate(keys):
        prop_path = f"{_at(path, 'items.properties')}[{key}]"
        if key not in props:
            detail = "entries must all be names of item properties"
            out.append(_invalid(_at(path, "x-kubernetes-list-map-keys"), keys, detail))
            continue
        if props[key].get("type") in ("array", "object"):
            detail = "must be a scalar type if parent array's x-kubernetes-list-type is map"
            out.append(_invalid(_at(prop_path, "type"), "object", detail))
        if key in keys[:i]:
            detail = "must not contain duplicate entries"
            out.append(_invalid(_at(path, "x-kubernetes-list-map-keys"), keys, detail))
        if key not in required and props[key].get("default") is None:
            detail = (
                "this property is in x-kubernetes-list-map-keys, so it must have a default or "
                "be a required property"
            )
            out.append(_required(_at(prop_path, "default"), detail))
        if props[key].get("nullable"):
            detail = "this property is in x-kubernetes-list-map-keys, so it cannot be nullable"
            out.append(_forbidden(_at(prop_path, "nullable"), detail))


def _is_int_or_string_any_of(any_of: Any) -> bool:
    return bool(any_of == [{"type": "integer"}, {"type": "string"}])


def _nested(schema: dict[str, Any], path: str, skip_any_of: bool, out: list[Cause]) -> None:
    """Rules for anyOf/allOf/oneOf/not sub-schemas (NestedValueValidation)."""
    _value_validation(schema, path, skip_any_of, out)
    if isinstance(schema.get("items"), dict):
        _nested(schema["items"], _at(path, "items"), False, out)
    for key, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, dict):
            _nested(sub, f"{_at(path, 'properties')}[{key}]", False, out)
    if schema.get("additionalProperties") is not None:
        detail = "must be undefined to be structural"
        out.append(_forbidden(_at(path, "additionalProperties"), detail))
    for key, detail in _NESTED_FORBIDDEN:
        if schema.get(key) not in (None, "", [], {}):
            out.append(_forbidden(_at(path, key), detail))
    for key in _NESTED_FLAGS:
        if schema.get(key):
            out.append(_forbidden(_at(path, key), "must be false to be structural"))
    if "metadata" in (schema.get("properties") or {}):
        field = f"{_at(path, 'properties')}[metadata]"
        out.append(_forbidden(field, "must not be specified in a nested context"))


def _value_validation(
    schema: dict[str, Any], path: str, skip_any_of: bool, out: list[Cause]
) -> None:
    any_of, all_of = schema.get("anyOf") or [], schema.get("allOf") or []
    if not skip_any_of:
        for i, sub in enumerate(any_of):
            _nested(sub, f"{_at(path, 'anyOf')}[{i}]", False, out)
    skip_first = bool(all_of) and _is_int_or_string_any_of((all_of[0] or {}).get("anyOf"))
    for i, sub in enumerate(all_of):
        _nested(sub, f"{_at(path, 'allOf')}[{i}]", skip_first and i == 0, out)
    for i, sub in enumerate(schema.get("oneOf") or []):
        _nested(sub, f"{_at(path, 'oneOf')}[{i}]", False, out)
    if isinstance(schema.get("not"), dict):
        _nested(schema["not"], _at(path, "not"), False, out)


def _structural(schema: dict[str, Any], level: str, path: str, out: list[Cause]) -> None:
    """schema.validateStructuralInvariants; level is "root", "item" or "field"."""
    kind = schema.get("type", "")
    items = schema.get("items")
    if kind == "array" and not isinstance(items, dict):
        out.append(_required(_at(path, "items"), "must be specified"))
    if isinstance(items, dict):
        _structural(items, "item", _at(path, "items"), out)
    props = schema.get("properties") or {}
    for key, sub in props.items():
        if isinstance(sub, dict):
            _structural(sub, "field", f"{_at(path, 'properties')}[{key}]", out)
    extra = schema.get("additionalProperties")
    if extra is not None:
        if level == "root":
            out.append(
                _forbidden(_at(path, "additionalProperties"), "must not be used at the root")
            )
        if isinstance(extra, dict):
            _structural(extra, "field", _at(path, "additionalProperties"), out)
    int_or_string = bool(schema.get("x-kubernetes-int-or-string"))
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    embedded = bool(schema.get("x-kubernetes-embedded-resource"))
    if int_or_string and preserve:
        field = _at(path, "x-kubernetes-preserve-unknown-fields")
        out.append(_invalid(field, True, "must be false if x-kubernetes-int-or-string is true"))
    if int_or_string and embedded:
        field = _at(path, "x-kubernetes-embedded-resource")
        out.append(_invalid(field, True, "must be false if x-kubernetes-int-or-string is true"))
    skip_any_of = _is_int_or_string_any_of(schema.get("anyOf"))
    _value_validation(schema, path, skip_any_of, out)
    if embedded and kind != "object":
        detail, field = (
            "must be object if x-kubernetes-embedded-resource is true",
            _at(path, "type"),
        )
        out.append(_invalid(field, kind, detail) if kind else _required(field, detail))
    elif not kind and not int_or_string and not preserve:
        where = {"root": "at the root", "item": "for specified array items"}.get(
            level, "for specified object fields"
        )
        out.append(_required(_at(path, "type"), f"must not be empty {where}"))
    if embedded and extra is not None:
        detail = "must not be used if x-kubernetes-embedded-resource is set"
        out.append(_forbidden(_at(path, "additionalProperties"), detail))
    if level == "root" and kind and kind != "object":
        out.append(_invalid(_at(path, "type"), kind, "must be object at the root"))
    check_meta = level == "root" or embedded
    for key in ("kind", "apiVersion"):
        if (
            check_meta
            and isinstance(props.get(key), dict)
            and props[key].get("type", "") != "string"
        ):
            field = f"{_at(path, 'properties')}[{key}].type"
            out.append(_invalid(field, props[key].get("type", ""), "must be string"))
    if isinstance(props.get("metadata"), dict):
        _metadata(
            props["metadata"],
            check_meta,
            level == "root",
            f"{_at(path, 'properties')}[metadata]",
            out,
        )
    if embedded and not preserve and not props:
        detail = (
            "must not be empty if x-kubernetes-embedded-resource is true without "
            "x-kubernetes-preserve-unknown-fields"
        )
        out.append(_required(_at(path, "properties"), detail))


def _metadata(schema: dict[str, Any], check: bool, root: bool, path: str, out: list[Cause]) -> None:
    if check and schema.get("type", "") != "object":
        out.append(_invalid(_at(path, "type"), schema.get("type", ""), "must be object"))
    if not root:
        return
    # Only name/generateName may be restricted; anything else would narrow ObjectMeta.
    names = set(schema.get("properties") or {})
    extra_keys = set(schema) - {"type", "properties", "default"}
    if extra_keys or not names <= {"name", "generateName"}:
        detail = (
            "must not specify anything other than name and generateName, but metadata is "
            "implicitly specified"
        )
        out.append(_forbidden(path, detail))


def _defaults(schema: dict[str, Any], path: str, in_meta: bool, out: list[Cause]) -> None:
    if schema.get("default") is not None and not in_meta:
        base = _at(path, "default")
        for name, message in value_causes(schema["default"], schema):
            out.append((_at(base, name) if name else base, message))
    for sub, sub_path, name in _children(schema, path):
        _defaults(sub, sub_path, in_meta or (not path and name in _META), out)


def structural_causes(schema: dict[str, Any], path: str = "") -> list[Cause]:
    """(field, message) pairs for an openAPIV3Schema found at `path`, [] when acceptable."""
    generic: list[Cause] = []
    _generic(schema, path, True, "", generic)
    causes = sorted(generic, key=lambda c: f"{c[0]}: {c[1]}")
    if any(msg.endswith(("is not supported", "not an array")) for _, msg in generic):
        return causes  # no structural schema can be built from it: apiserver stops here
    structural: list[Cause] = []
    _structural(schema, "root", path, structural)
    causes += sorted(structural, key=lambda c: f"{c[0]}: {c[1]}")
    if not causes:
        _defaults(schema, path, False, causes)
    return causes


def check_structural(schema: dict[str, Any]) -> list[str]:
    """Problems that make a CRD refuse this openAPIV3Schema, as "path: message" strings.

    Paths are relative to the openAPIV3Schema itself (e.g. "properties[spec].type"); use
    `structural_causes(schema, "spec.versions[0].schema.openAPIV3Schema")` for the exact
    (field, message) causes apiserver reports.
    """
    return [
        f"{field}: {message}" if field else message for field, message in structural_causes(schema)
    ]
