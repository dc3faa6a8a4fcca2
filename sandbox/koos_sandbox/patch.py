"""PATCH bodies applied as kube-apiserver applies them: merge, JSON and strategic merge patch.

Pure functions: inputs are never mutated, every result is a fresh object. Refusals are the
`ApiError`s handlers/patch.go answers with:

- Merge patch (RFC 7386): never refused.
- JSON patch (RFC 6902, as evanphx/json-patch v4 reads it): a body that does not decode as a
  list of operation objects is 400 BadRequest; every failure while applying (failed `test`,
  missing path, bad index, unknown or missing `op`) is the same generic 422 Invalid, because
  the apiserver wraps them with `NewGenericServerResponse`, which drops the detail.
  Like evanphx, negative array indices count from the end and the pointer's first segment
  is ignored (`a/b` reads as `/b`).
- Strategic merge patch lives in patch_strategic.py and is re-exported here, so the write
  path finds all three patch types in this module; patch_errors.py holds the refusals both
  share.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from koos_sandbox import limits
from koos_sandbox.errors import ApiError, bad_request
from koos_sandbox.patch_errors import json_kind, rejected
from koos_sandbox.patch_strategic import check_strategic_supported, strategic_merge_patch

__all__ = ["check_strategic_supported", "json_patch", "merge_patch", "strategic_merge_patch"]

_MAX_JSON_PATCH_OPERATIONS = 10000
_MISSING = object()


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


_OP_TYPE, _OP_FIELD, _STR = "handlers.jsonPatchOp", "jsonPatchOp.", "of type string"


def _decode_operations(operations: Any) -> list[dict[str, Any]]:
    """Decode the body as the apiserver's strict decoder does ([]handlers.jsonPatchOp)."""
    prefix = "error decoding patch: json: cannot unmarshal "
    if operations is None:
        return []
    if not isinstance(operations, list):
        kind = json_kind(operations)
        raise bad_request(f"{prefix}{kind} into Go value of type []{_OP_TYPE}")
    for op in operations:
        if op is not None and not isinstance(op, dict):
            raise bad_request(f"{prefix}{json_kind(op)} into Go value of type {_OP_TYPE}")
        for field, value in (op or {}).items():
            if field in ("op", "path", "from") and value is not None and not isinstance(value, str):
                kind = json_kind(value)
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
        raise rejected()
    index = int(token)
    size = length + 1 if adding else length
    if index < 0:
        if index < -size:
            raise rejected()
        index += size
    if index >= size:
        raise rejected()
    return index


def _parent(doc: Any, path: Any) -> tuple[Any, str]:
    """The container holding the pointer's last token, and that token."""
    if not isinstance(path, str) or "/" not in path:
        raise rejected()
    tokens = [_unescape(t) for t in path.split("/")[1:]]
    node = doc
    for token in tokens[:-1]:
        node = _get(node, token)
        if not isinstance(node, dict | list):
            raise rejected()
    return node, tokens[-1]


def _get(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token, _MISSING)
    if isinstance(node, list):
        return node[_index(token, len(node))]
    raise rejected()


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
            raise rejected()
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


def _check_nesting(path: Any, value: Any) -> None:
    """Keep the document within limits.MAX_DEPTH as each operation lands, so that no later
    operation (a copy of a copy) recurses into something deeper."""
    above = path.count("/") if isinstance(path, str) else 0
    if above + limits.depth_of(value, limits.MAX_DEPTH - above) > limits.MAX_DEPTH:
        raise limits.too_deep("the patched object could not be decoded")


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 patch the way kube-apiserver (evanphx/json-patch v4) does."""
    doc = copy.deepcopy(target)
    copied = 0
    for op in _decode_operations(operations):
        kind, path, value = op.get("op"), op.get("path"), copy.deepcopy(op.get("value"))
        if kind == "test" and path == "":
            if not _equal(doc, value):
                raise rejected()
            continue
        if kind == "replace" and path == "":
            if not isinstance(value, dict | list):
                raise rejected()
            doc = value
            continue
        if kind in ("move", "copy"):
            source, token = _parent(doc, op.get("from"))
            moved = _get(source, token)
            if moved is _MISSING:
                raise rejected()
            _check_nesting(path, moved)
            if kind == "move":
                _remove(source, token)
            else:
                # The apiserver caps the bytes a patch may copy (JSONPatchMaxCopyBytes):
                # doubling a subtree a few thousand times would otherwise never end.
                copied += len(json.dumps(moved, separators=(",", ":")))
                if copied > limits.MAX_BODY_BYTES:
                    raise rejected()
                moved = copy.deepcopy(moved)
            node, token = _parent(doc, path)
            _add(node, token, moved)
            continue
        if kind not in ("add", "remove", "replace", "test"):
            raise rejected()  # evanphx: "Unexpected kind"
        if kind in ("add", "replace"):
            _check_nesting(path, value)
        node, token = _parent(doc, path)
        if kind == "add":
            _add(node, token, value)
        elif kind == "remove":
            _remove(node, token)
        elif kind == "replace":
            if _get(node, token) is _MISSING:
                raise rejected()
            if isinstance(node, dict):
                node[token] = value
            else:
                node[_index(token, len(node))] = value
        else:
            current = _get(node, token)
            # evanphx: a missing key passes a test for null.
            if not _equal(None if current is _MISSING else current, value):
                raise rejected()
    return doc
