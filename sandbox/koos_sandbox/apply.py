"""Server-side apply and `metadata.managedFields`, a faithful-enough subset.

What is emulated:
- `PATCH` with `application/apply-patch+yaml` and a `fieldManager`: creates the object when
  it is missing (201), else merges the applied configuration into it.
- Ownership, per manager and operation, recorded in `metadata.managedFields` (FieldsV1):
  an apply makes its manager own exactly the fields it sent; a field another manager owns
  with a different value is a 409 Conflict listing every such field (message and causes as
  kube-apiserver words them), unless `force=true`, which takes the fields over. A field
  owned by another manager with the same value becomes shared, without a conflict.
- A field the manager applied before and no longer applies is removed from the object,
  unless another manager still owns it.
- Other writes (create, update, patch) to an object that has managedFields record their
  changes as an `Update` entry of their manager (the `fieldManager` query parameter, or the
  client's User-Agent up to its first "/", as the apiserver does) and take those fields from
  everyone else. An object with no managedFields that is applied to for the first time has
  its existing fields attributed to the manager `before-first-apply`.

Not emulated (README, "Known differences"): every list is atomic (one field) — no
associative lists by key (`k:{...}`), sets (`v:...`) or `x-kubernetes-list-type`; maps are
always granular (`x-kubernetes-map-type: atomic` is ignored); writes to an object that was
never applied do not start managedFields; fields set by defaulting or admission are not
attributed; a request's own `metadata.managedFields` is ignored.

Invariant: pure functions over JSON data; inputs are never mutated.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from koos_sandbox import errors
from koos_sandbox.errors import ApiError
from koos_sandbox.store import Obj, now_rfc3339

Path = tuple[str, ...]
BEFORE_FIRST_APPLY = "before-first-apply"
_SERVER_META = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    }
)
_MISSING = object()


def manager_of(field_manager: str, user_agent: str) -> str:
    """The manager of a write: the `fieldManager` parameter, else the User-Agent's prefix."""
    return field_manager or user_agent.split("/", 1)[0][:128]


# ---- field sets ----------------------------------------------------------------------------


def fields_of(obj: Any, status_separate: bool, subresource: str = "") -> set[Path]:
    """The leaf fields of an object (lists and scalars are leaves; so are empty maps), without
    what the server owns; `status` only on its subresource when it has one."""
    found: set[Path] = set()
    if not isinstance(obj, dict):
        return found
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if status_separate and (key == "status") != (subresource == "status"):
            continue
        if key == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _SERVER_META}
            if not value:
                continue  # a name alone is not a field anyone owns
        stack: list[tuple[Path, Any]] = [((key,), value)]
        while stack:
            path, node = stack.pop()
            if isinstance(node, dict) and node:
                stack.extend(((*path, k), v) for k, v in node.items())
            else:
                found.add(path)
    return found


def value_at(obj: Any, path: Path) -> Any:
    node = obj
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def encode(paths: set[Path]) -> Obj:
    """A field set as FieldsV1: nested `f:<name>` keys, `{}` at each leaf."""
    root: Obj = {}
    for path in sorted(paths):
        node = root
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return root


def decode(fields: Any) -> set[Path]:
    """FieldsV1 back to a field set. An element of a list (`k:`, `v:`, `i:`) counts as the
    whole list, which is how the sandbox owns lists."""
    found: set[Path] = set()
    stack: list[tuple[Path, Any]] = [((), fields)]
    while stack:
        path, node = stack.pop()
        children = [k for k in (node or {}) if isinstance(k, str) and k.startswith("f:")]
        if path and (not children or any(k[:2] in ("k:", "v:", "i:") for k in node or {})):
            found.add(path)
            continue
        stack.extend(((*path, k[2:]), node[k]) for k in children)
    return found


def _overlaps(a: Path, b: Path) -> bool:
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def _path_text(path: Path) -> str:
    return "".join(f".{k}" for k in path)


# ---- entries -------------------------------------------------------------------------------


def _entries(obj: Obj | None, status_separate: bool) -> list[Obj]:
    """managedFields as a list of {manager, operation, apiVersion, time, subresource,
    fields: set}. An existing object without any is owned by before-first-apply."""
    if obj is None:
        return []
    found = []
    for entry in obj["metadata"].get("managedFields") or []:
        if isinstance(entry, dict) and entry.get("manager"):
            found.append({**entry, "fields": decode(entry.get("fieldsV1") or {})})
    if found or "managedFields" in obj["metadata"]:
        return found
    owned = fields_of(obj, status_separate) | (
        fields_of(obj, True, "status") if status_separate else set()
    )
    return [
        {
            "manager": BEFORE_FIRST_APPLY,
            "operation": "Update",
            "apiVersion": obj.get("apiVersion", ""),
            "fields": owned,
        }
    ]


def _render(entries: list[Obj]) -> list[Obj]:
    rendered = []
    for entry in entries:
        if not entry["fields"]:
            continue
        out = {
            "manager": entry["manager"],
            "operation": entry["operation"],
            "apiVersion": entry.get("apiVersion", ""),
            "time": entry.get("time") or now_rfc3339(),
            "fieldsType": "FieldsV1",
            "fieldsV1": encode(entry["fields"]),
        }
        if entry.get("subresource"):
            out["subresource"] = entry["subresource"]
        rendered.append(out)
    return rendered


def _mine(entry: Obj, manager: str, operation: str, subresource: str) -> bool:
    return bool(
        entry["manager"] == manager
        and entry["operation"] == operation
        and entry.get("subresource", "") == subresource
    )


def _describe(entry: Obj) -> str:
    """printManager: the name, its subresource, and for an Update its version. The manager
    identifier it prints never holds the time (BuildManagerIdentifier leaves it out), so
    kube-apiserver never says "at <time>" either."""
    text = json.dumps(entry["manager"])
    if entry.get("subresource"):
        text += f" with subresource {json.dumps(entry['subresource'])}"
    if entry["operation"] == "Update":
        text += f" using {entry.get('apiVersion', '')}"
    return text


def conflict_error(conflicts: list[tuple[Obj, Path]]) -> ApiError:
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {_describe(entry)}",
            "field": _path_text(path),
        }
        for entry, path in conflicts
    ]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {_describe(entry)}: " + (
            _path_text(path)
        )
    else:
        by_manager: dict[str, list[str]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(_describe(entry), []).append(_path_text(path))
        lines = []
        for who in sorted(by_manager):
            lines.append(f"conflicts with {who}:")
            lines.extend(f"- {p}" for p in by_manager[who])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, details={"causes": causes})


# ---- apply and update ----------------------------------------------------------------------


def apply(
    old: Obj | None,
    config: Any,
    *,
    manager: str,
    force: bool,
    api_version: str,
    status_separate: bool,
    subresource: str = "",
) -> Obj:
    """The object after `manager` applies `config` to `old` (None: it does not exist), with
    its managedFields; a 409 on conflicts unless `force`."""
    if not isinstance(config, dict):
        raise errors.bad_request("the applied configuration must be an object")
    applied = fields_of(config, status_separate, subresource)
    entries = _entries(old, status_separate)
    conflicts: list[tuple[Obj, Path]] = []
    for entry in entries:
        if _mine(entry, manager, "Apply", subresource):
            continue
        for path in sorted(applied):
            clashing = [p for p in entry["fields"] if _overlaps(p, path)]
            if any(value_at(old, p) != value_at(config, p) for p in clashing):
                conflicts.append((entry, path))
    if conflicts and not force:
        raise conflict_error(conflicts)
    for entry, path in conflicts:
        entry["fields"] = {p for p in entry["fields"] if not _overlaps(p, path)}
    mine = next((e for e in entries if _mine(e, manager, "Apply", subresource)), None)
    others = set().union(*(e["fields"] for e in entries if e is not mine))
    new = copy.deepcopy(old) if old is not None else {"metadata": {}}
    for key in ("apiVersion", "kind"):
        if key in config:
            new = {key: config[key], **new}  # first, as the apiserver prints them
    for path in sorted((mine["fields"] if mine else set()) - applied - others, reverse=True):
        _remove(new, path)
    for path in sorted(applied):
        _put(new, path, copy.deepcopy(value_at(config, path)))
    for key in ("apiVersion", "kind"):
        if key in config:
            new[key] = config[key]
    meta = new.setdefault("metadata", {})
    for key in ("name", "namespace", "generateName"):
        if key in (config.get("metadata") or {}):
            meta.setdefault(key, config["metadata"][key])
    if mine is None:
        mine = {"manager": manager, "operation": "Apply", "subresource": subresource}
        entries.append(mine)
    mine.update(fields=applied, apiVersion=api_version, time=now_rfc3339())
    meta["managedFields"] = _render(entries)
    if old is not None and _timeless(new) == _timeless(old):
        return copy.deepcopy(old)  # nothing changed: a no-op, as in the apiserver
    return new


def _timeless(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    entries = [{k: v for k, v in e.items() if k != "time"} for e in meta.get("managedFields") or []]
    return {**obj, "metadata": {**meta, "managedFields": entries}}


def track_update(
    old: Obj, new: Obj, *, manager: str, api_version: str, status_separate: bool, subresource: str
) -> Obj:
    """`new` with managedFields after a non-apply write by `manager`: the fields it changed
    become its own (operation Update), and nobody else's. Only for objects that have
    managedFields already; `new` is returned as is otherwise."""
    if not old["metadata"].get("managedFields"):
        new["metadata"].pop("managedFields", None)
        return new
    entries = _entries(old, status_separate)
    before = fields_of(old, status_separate, subresource)
    after = fields_of(new, status_separate, subresource)
    changed = {p for p in after if value_at(old, p) != value_at(new, p)}
    gone = before - after
    for entry in entries:
        entry["fields"] = {
            p for p in entry["fields"] if not any(_overlaps(p, c) for c in changed | gone)
        }
    if changed:
        mine = next((e for e in entries if _mine(e, manager, "Update", subresource)), None)
        if mine is None:
            mine = {"manager": manager, "operation": "Update", "subresource": subresource}
            entries.append(mine)
        mine.update(
            fields=mine.get("fields", set()) | changed, apiVersion=api_version, time=now_rfc3339()
        )
    result = copy.copy(new)
    result["metadata"] = {**new["metadata"], "managedFields": _render(entries)}
    return result


def _put(obj: Obj, path: Path, value: Any) -> None:
    node = obj
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


def _remove(obj: Obj, path: Path) -> None:
    node: Any = obj
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)
