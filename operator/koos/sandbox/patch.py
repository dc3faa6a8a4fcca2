"""PATCH bodies applied as kube-apiserver applies them: merge, JSON and strategic merge patch.

Pure functions: inputs are never mutated, every result is a fresh object. Refusals are the
`ApiError`s handlers/patch.go answers with:

- JSON patch (RFC 6902, as evanphx/json-patch v4 reads it): a body that does not decode as a
  list of operation objects is 400 BadRequest; every failure while applying (failed `test`,
  missing path, bad index, unknown or missing `op`) is the same generic 422 Invalid, because
  the apiserver wraps them with `NewGenericServerResponse`, which drops the detail.
  Like evanphx, negative array indices count from the end and the pointer's first segment
  is ignored (`a/b` reads as `/b`).
- Strategic merge patch: no schema here, so list strategies come from a table of field names
  (see `_merge_key`); lists not in it are replaced atomically. Directive misuse answers as
  `interpretStrategicMergePatchError` does (400 for bad directive formats, 422 for lists of
  lists) and other apimachinery errors surface, as there, as a bare 500.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from koos.sandbox.errors import ApiError, bad_request

_REJECTED_422 = "the server rejected our request due to an error in our request"
_MAX_JSON_PATCH_OPERATIONS = 10000
_MISSING = object()


def _rejected() -> ApiError:
    # NewGenericServerResponse(422, ...) keeps only its canned message, not the cause.
    return ApiError(422, "Invalid", _REJECTED_422)


def _internal(message: str) -> ApiError:
    # A plain Go error reaching the handler: code 500 with StatusReasonUnknown ("").
    return ApiError(500, "", message)


# ---- merge patch (RFC 7386) ---------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---- JSON patch (RFC 6902) ----------------------------------------------------------------

_TYPES = (
    (dict, "object", "map[string]interface {}"),
    (list, "array", "[]interface {}"),
    (bool, "bool", "bool"),
    (str, "string", "string"),
    (int, "number", "int64"),
    (float, "number", "float64"),
)


def _json_kind(value: Any) -> str:
    """The JSON kind Go's decoder names in "cannot unmarshal <kind> into ..."."""
    return next((name for typ, name, _ in _TYPES if isinstance(value, typ)), "null")


def _go_type(value: Any) -> str:
    """reflect.TypeOf of a value decoded from JSON, as apimachinery's messages print it."""
    return next((name for typ, _, name in _TYPES if isinstance(value, typ)), "<nil>")


_OP_TYPE, _OP_FIELD, _STR = "handlers.jsonPatchOp", "jsonPatchOp.", "of type string"


def _decode_operations(operations: Any) -> list[dict[str, Any]]:
    """Decode the body as the apiserver's strict decoder does ([]handlers.jsonPatchOp)."""
    prefix = "error decoding patch: json: cannot unmarshal "
    if operations is None:
        return []
    if not isinstance(operations, list):
        kind = _json_kind(operations)
        raise bad_request(f"{prefix}{kind} into Go value of type []{_OP_TYPE}")
    for op in operations:
        if op is not None and not isinstance(op, dict):
            raise bad_request(f"{prefix}{_json_kind(op)} into Go value of type {_OP_TYPE}")
        for field, value in (op or {}).items():
            if field in ("op", "path", "from") and value is not None and not isinstance(value, str):
                kind = _json_kind(value)
                raise bad_request(f"{prefix}{kind} into Go struct field {_OP_FIELD}{field} {_STR}")
    if len(operations) > _MAX_JSON_PATCH_OPERATIONS:
        raise ApiError(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{_MAX_JSON_PATCH_OPERATIONS}, got {len(operations)}",
        )
    return [op or {} for op in operations]


def _unescape(token: str) -> str:
    return re.sub(r"~[01]", lambda m: "~" if m.group() == "~0" else "/", token)


def _index(token: str, length: int, *, adding: bool = False) -> int:
    """An array index as evanphx reads it (strconv.Atoi, negatives from the end)."""
    if not re.fullmatch(r"[+-]?[0-9]+", token):
        raise _rejected()
    index = int(token)
    size = length + 1 if adding else length
    if index < 0:
        if index < -size:
            raise _rejected()
        index += size
    if index >= size:
        raise _rejected()
    return index


def _parent(doc: Any, path: Any) -> tuple[Any, str]:
    """The container holding the pointer's last token, and that token."""
    if not isinstance(path, str) or "/" not in path:
        raise _rejected()
    tokens = [_unescape(t) for t in path.split("/")[1:]]
    node = doc
    for token in tokens[:-1]:
        node = _get(node, token)
        if not isinstance(node, dict | list):
            raise _rejected()
    return node, tokens[-1]


def _get(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token, _MISSING)
    if isinstance(node, list):
        return node[_index(token, len(node))]
    raise _rejected()


def _add(node: Any, token: str, value: Any) -> None:
    if isinstance(node, dict):
        node[token] = value
    elif token == "-":
        node.append(value)
    else:
        node.insert(_index(token, len(node), adding=True), value)


def _remove(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        if token not in node:
            raise _rejected()
        return node.pop(token)
    return node.pop(_index(token, len(node)))


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 patch the way kube-apiserver (evanphx/json-patch v4) does."""
    doc = copy.deepcopy(target)
    for op in _decode_operations(operations):
        kind, path, value = op.get("op"), op.get("path"), copy.deepcopy(op.get("value"))
        if kind == "test" and path == "":
            if not _equal(doc, value):
                raise _rejected()
            continue
        if kind == "replace" and path == "":
            if not isinstance(value, dict | list):
                raise _rejected()
            doc = value
            continue
        if kind in ("move", "copy"):
            source, token = _parent(doc, op.get("from"))
            moved = _get(source, token)
            if moved is _MISSING:
                raise _rejected()
            if kind == "move":
                _remove(source, token)
            else:
                moved = copy.deepcopy(moved)
            node, token = _parent(doc, path)
            _add(node, token, moved)
            continue
        if kind not in ("add", "remove", "replace", "test"):
            raise _rejected()  # evanphx: "Unexpected kind"
        node, token = _parent(doc, path)
        if kind == "add":
            _add(node, token, value)
        elif kind == "remove":
            _remove(node, token)
        elif kind == "replace":
            if _get(node, token) is _MISSING:
                raise _rejected()
            if isinstance(node, dict):
                node[token] = value
            else:
                node[_index(token, len(node))] = value
        else:
            current = _get(node, token)
            # evanphx: a missing key passes a test for null.
            if not _equal(None if current is _MISSING else current, value):
                raise _rejected()
    return doc


# ---- strategic merge patch ----------------------------------------------------------------

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
    return _internal(f"map: {_go(element)} does not contain declared merge key: {key}")


def _bad_list(actual: Any) -> ApiError:
    return _internal(f"expected a []interface {{}}, but received a {_go_type(actual)}")


def _same(a: Any, b: Any) -> bool:
    """Go's == on interface{} values: equal value and equal dynamic type."""
    return _go_type(a) == _go_type(b) and a == b


def strategic_merge_patch(target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply a strategic merge patch to a built-in object, as apimachinery's mergeMap does."""
    if patch is None:
        return copy.deepcopy(target)
    if not isinstance(patch, dict):
        raise bad_request(
            f"json: cannot unmarshal {_json_kind(patch)} into Go value of type "
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
        raise _internal(f"unknown patch type: {directive} in map: {_go(patch)}")
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
        elif key not in original or _go_type(original[key]) != _go_type(value):
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
    types = {_go_type(v) for items in lists for v in items}
    if "[]interface {}" in types:
        raise _rejected()  # ErrNoListOfLists, wrapped as a generic 422
    if len(types) > 1:
        raise _internal(f"list element types are not identical: {_go(list(lists))}")
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
        raise _internal(f"cannot merge lists without merge key for {field}")
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
            raise _internal("merging lists cannot yet be specified in the patch")
        else:
            raise _internal(f"unknown patch type: {directive} in map: {_go(element)}")
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
        raise _internal(f"value for key {index} is not a map")
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
        raise _internal(
            f"The order in patch list:\n{_go(given)}\n doesn't match {_SET_ORDER} list:\n"
            f"{_go(order)}\n"
        )
