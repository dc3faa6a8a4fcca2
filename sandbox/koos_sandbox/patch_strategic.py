"""Strategic merge patch on built-in objects, as apimachinery's `strategicpatch` applies it.

No schema here: list strategies come from a table of field names (see `_merge_key`); lists
not in it are replaced atomically. Directives (`$patch`, `$retainKeys`,
`$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>`) are honoured. Directive misuse
answers as `interpretStrategicMergePatchError` does (400 for bad directive formats, 422 for
lists of lists) and other apimachinery errors surface, as there, as a bare 500. Custom
resources refuse strategic merge altogether (`check_strategic_supported`, a 415).

Invariant: inputs are never mutated; `strategic_merge_patch` deep-copies both sides first and
the helpers below mutate only those copies.
"""

from __future__ import annotations

import copy
from typing import Any

from koos_sandbox.errors import ApiError, bad_request
from koos_sandbox.patch_errors import go_type, internal, json_kind, rejected

_MISSING = object()

_CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})
_MERGE_KEYS = {
    **dict.fromkeys(_CONTAINER_LISTS, "name"),
    **dict.fromkeys(["env", "volumes", "imagePullSecrets", "resourceClaims"], "name"),
    **dict.fromkeys(["schedulingGates", "secrets"], "name"),
    **dict.fromkeys(["hostAliases", "podIPs", "hostIPs"], "ip"),
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
}
_PRIMITIVE_SETS = frozenset({"finalizers", "podCIDRs"})
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList"
_SET_ORDER = "$setElementOrder"


def check_strategic_supported(is_custom_resource: bool) -> None:
    """415 as the CRD handler answers: strategic merge is not among a custom resource's types."""
    if is_custom_resource:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, "
            "application/apply-patch+yaml",
        )


def _merge_key(field: str, parent: str, kind: str) -> str | None:
    """The merge key of a list field ("" for a set of primitives), None when atomic.

    Path-agnostic by field name, except where one name means two things: container `ports`
    merge on containerPort and a Service's `spec.ports` on port (other `ports` lists are
    atomic); `addresses` merge on type only in a Node's status.
    """
    if field == "ports":
        if parent in _CONTAINER_LISTS:
            return "containerPort"
        return "port" if kind == "Service" and parent == "spec" else None
    if field == "addresses":
        return "type" if kind == "Node" else None
    return "" if field in _PRIMITIVE_SETS else _MERGE_KEYS.get(field)


def _go(value: Any) -> str:
    """Go's %v of a decoded JSON value, for messages apimachinery formats that way."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go(v) for v in value) + "]"
    return str(value)


def _no_merge_key(element: Any, key: str) -> ApiError:
    return internal(f"map: {_go(element)} does not contain declared merge key: {key}")


def _bad_list(actual: Any) -> ApiError:
    return internal(f"expected a []interface {{}}, but received a {go_type(actual)}")


def _same(a: Any, b: Any) -> bool:
    """Go's == on interface{} values: equal value and equal dynamic type."""
    return go_type(a) == go_type(b) and a == b


def strategic_merge_patch(target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply a strategic merge patch to a built-in object, as apimachinery's mergeMap does."""
    if patch is None:
        return copy.deepcopy(target)
    if not isinstance(patch, dict):
        raise bad_request(
            f"json: cannot unmarshal {json_kind(patch)} into Go value of type "
            "map[string]interface {}"
        )
    kind = str(target.get("kind") or "")
    return _merge_map(copy.deepcopy(target), copy.deepcopy(patch), "", kind)


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], parent: str, kind: str
) -> dict[str, Any]:
    """Merge `patch` into `original` (both owned by the caller, so mutated in place)."""
    if "$patch" in patch:
        directive = patch.pop("$patch")
        if directive == "delete":
            return {}  # apimachinery leaves an empty map, not a missing key
        if directive == "replace":
            return _merge_map({}, patch, parent, kind)
        patch["$patch"] = directive
        raise internal(f"unknown patch type: {directive} in map: {_go(patch)}")
    _retain_keys(original, patch)
    _set_element_order(original, patch, parent, kind)
    for key, value in patch.items():
        deleting = key.startswith(_DELETE_PRIMITIVE)
        if deleting:
            key = _directive_field(key, _DELETE_PRIMITIVE, "primitive list")
        elif key.startswith("$"):
            continue
        if value is None:
            original.pop(key, None)
        elif key not in original or go_type(original[key]) != go_type(value):
            if not deleting:
                original[key] = _clean(value, key, parent, kind)
        elif isinstance(value, dict):
            original[key] = _merge_map(original[key], value, key, kind)
        elif isinstance(value, list):
            original[key] = _merge_list(original[key], value, key, parent, kind, deleting)
        else:
            original[key] = value
    return original


def _directive_field(key: str, prefix: str, what: str) -> str:
    head, _, field = key.partition("/")
    if head != prefix or not field:
        raise bad_request(f"invalid patch format of {what}")
    return field


def _retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if "$retainKeys" not in patch:
        return
    keep = patch.pop("$retainKeys")
    if not isinstance(keep, list):
        raise bad_request("invalid patch format of retainKeys")
    for key, value in patch.items():
        skipped = key.startswith((_DELETE_PRIMITIVE, _SET_ORDER))
        if value is not None and not skipped and key not in keep:
            raise bad_request("invalid patch format of retainKeys")
    for key in [k for k in original if k not in keep]:
        del original[key]


def _clean(value: Any, field: str, parent: str, kind: str) -> Any:
    """A patch value taken whole, with its nulls and directives resolved against nothing."""
    if isinstance(value, dict):
        return _merge_map({}, value, field, kind)
    if isinstance(value, list):
        # apimachinery stores such a list raw and the typed decode drops `$patch` keys;
        # here list directives just vanish, with the elements they were attached to.
        return [
            _clean(v, field, parent, kind) if isinstance(v, dict) else v
            for v in value
            if not (isinstance(v, dict) and "$patch" in v)
        ]
    return value


def _merge_list(
    original: list[Any], patch: list[Any], field: str, parent: str, kind: str, deleting: bool
) -> list[Any]:
    if deleting:
        return [v for v in original if not any(_same(v, d) for d in patch)]
    key = _merge_key(field, parent, kind)
    if key is None:
        return _clean(patch, field, parent, kind)  # type: ignore[no-any-return]
    return _merge_slice(original, patch, key, field, kind)


def _element_type(*lists: list[Any]) -> str:
    types = {go_type(v) for items in lists for v in items}
    if "[]interface {}" in types:
        raise rejected()  # ErrNoListOfLists, wrapped as a generic 422
    if len(types) > 1:
        raise internal(f"list element types are not identical: {_go(list(lists))}")
    return types.pop() if types else ""


def _merge_slice(
    original: list[Any], patch: list[Any], key: str, field: str, kind: str
) -> list[Any]:
    if not original and not patch:
        return original
    if _element_type(original, patch) != "map[string]interface {}":
        merged: list[Any] = []
        for value in original + patch:
            if not any(_same(value, m) for m in merged):
                merged.append(value)
        return _order(merged, patch, original, "")
    if not key:
        raise internal(f"cannot merge lists without merge key for {field}")
    items: list[Any] = []
    replace = False
    for element in patch:
        directive = element.get("$patch", _MISSING)
        if directive is _MISSING:
            items.append(element)
        elif directive == "delete":
            if key not in element:
                raise _no_merge_key(element, key)
            original = [
                o for i, o in enumerate(original) if not _matches(original, i, element, key)
            ]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise internal("merging lists cannot yet be specified in the patch")
        else:
            raise internal(f"unknown patch type: {directive} in map: {_go(element)}")
    if replace:
        original, items = [_merge_map({}, e, field, kind) for e in items], []
    merged = list(original)
    for element in items:
        if key not in element:
            raise _no_merge_key(element, key)
        found = next((i for i in range(len(merged)) if _matches(merged, i, element, key)), None)
        if found is None:
            merged.append(_merge_map({}, element, field, kind))
        else:
            merged[found] = _merge_map(merged[found], element, field, kind)
    return _order(merged, items, original, key)


def _matches(items: list[Any], index: int, element: dict[str, Any], key: str) -> bool:
    if not isinstance(items[index], dict):
        raise internal(f"value for key {index} is not a map")
    return key in items[index] and _same(items[index][key], element[key])


def _order(merged: list[Any], wanted: list[Any], server: list[Any], key: str) -> list[Any]:
    """Items named in `wanted` take its order, the others keep the server's, interleaved
    as apimachinery's normalizeElementOrder does (new items go before server-only ones)."""

    def ident(item: Any) -> Any:
        if not key:
            return item
        if not isinstance(item, dict) or key not in item:
            raise _no_merge_key(item, key)
        return item[key]

    def position(order: list[Any], item: Any) -> int:
        value = ident(item)
        return next((i for i, o in enumerate(order) if _same(ident(o), value)), -1)

    wanted_ids = [ident(w) for w in wanted if not (isinstance(w, dict) and "$patch" in w)]
    mine = [m for m in merged if any(_same(ident(m), w) for w in wanted_ids)]
    theirs = [m for m in merged if not any(_same(ident(m), w) for w in wanted_ids)]
    mine.sort(key=lambda m: position(wanted, m) % (len(wanted) + 1))
    theirs.sort(key=lambda m: position(server, m) % (len(server) + 1))
    result: list[Any] = []
    while mine or theirs:
        left = position(server, theirs[0]) if theirs else -1
        right = position(server, mine[0]) if mine else -1
        take_theirs = not mine or (theirs and 0 <= left < right)
        result.append(theirs.pop(0) if take_theirs else mine.pop(0))
    return result


def _set_element_order(
    original: dict[str, Any], patch: dict[str, Any], parent: str, kind: str
) -> None:
    for directive in [k for k in patch if k.startswith(_SET_ORDER)]:
        order = patch.pop(directive)
        if not isinstance(order, list):
            raise _bad_list(order)
        field = _directive_field(directive, _SET_ORDER, "setElementOrder list")
        current, given = original.get(field, _MISSING), patch.get(field, _MISSING)
        for value in (current, given):
            if value is not _MISSING and not isinstance(value, list):
                raise _bad_list(value)
        key = _merge_key(field, parent, kind)
        if given is not _MISSING:
            _check_order(given, order, key or "")
        if current is _MISSING and given is _MISSING:
            continue
        if given is _MISSING:
            merged = current
        elif current is _MISSING:
            merged = _clean(given, field, parent, kind)
        else:
            merged = _merge_list(current, given, field, parent, kind, False)
        if key is not None and merged:
            merged = _order(merged, order, [] if current is _MISSING else current, key)
        original[field] = merged
        patch.pop(field, None)


def _check_order(given: list[Any], order: list[Any], key: str) -> None:
    """validatePatchWithSetOrderList: the patch list must follow the order list."""
    kept = [g for g in given if not (key and isinstance(g, dict) and g.get("$patch") == "delete")]
    if not order or not kept:
        return
    at = 0
    for wanted in order:
        while at < len(kept) and isinstance(kept[at], dict) and "$patch" in kept[at]:
            at += 1
        if at == len(kept):
            return
        item = kept[at]
        if key:
            for value in (item, wanted):
                if not isinstance(value, dict) or key not in value:
                    raise _no_merge_key(value, key)
            item, wanted = item[key], wanted[key]
        if _same(item, wanted):
            at += 1
    if at < len(kept):
        raise internal(
            f"The order in patch list:\n{_go(given)}\n doesn't match {_SET_ORDER} list:\n"
            f"{_go(order)}\n"
        )
