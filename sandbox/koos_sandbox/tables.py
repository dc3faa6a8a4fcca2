"""`kubectl get` Table responses (meta.k8s.io/v1 Table), as kube-apiserver 1.32 builds them.

Custom resources go through the CRD table convertor: Name plus the version's
additionalPrinterColumns (or a lone Age column), each cell the first JSONPath result typed
by its column. Built-in kinds go through the server-side printers (see `printers`), kinds
without one through the default convertor (Name, Created At). `includeObject` then replaces
each row's object by nothing, its PartialObjectMetadata, or the whole object.

Invariants: pure functions of their arguments and `now`; objects are copied into rows, never
shared or mutated; JSON shapes follow the Go types, so a missing list is `null`, not `[]`.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from koos_sandbox import errors
from koos_sandbox.columns import AGE_DESCRIPTION, NAME
from koos_sandbox.goformat import between, go_float, go_json, go_quote, human_duration, parse_time
from koos_sandbox.jsonpath import JsonPathError, evaluate_jsonpath, find_results
from koos_sandbox.printers import Row, printer_for
from koos_sandbox.registry import ResourceType

__all__ = ["build_table", "evaluate_jsonpath", "human_duration"]

# serveDefaultColumnsIfEmpty: a CRD version without printer columns gets a lone Age column.
_DEFAULT_CRD_COLUMNS = (
    {
        "name": "Age",
        "type": "date",
        "description": AGE_DESCRIPTION,
        "jsonPath": ".metadata.creationTimestamp",
    },
)
_INCLUDE = {"": "Metadata", "Metadata": "Metadata", "Object": "Object", "None": "None"}


def build_table(
    rt: ResourceType,
    objects: list[dict[str, Any]],
    *,
    now: datetime,
    include_object: str | None = "Metadata",
    list_meta: dict[str, Any] | None = None,
    with_column_definitions: bool = True,
) -> dict[str, Any]:
    """A Table for `objects` of kind `rt`; `include_object` None means "None".

    `list_meta` is the list's ListMeta; without it a single object's resourceVersion is used,
    as apiserver does for a GET or a watch event. Column definitions are null when
    `with_column_definitions` is false (kubectl's later watch events ask for no headers).
    """
    mode = _INCLUDE.get("None" if include_object is None else include_object)
    if mode is None:
        raise errors.bad_request(
            f"unrecognized includeObject value: {go_quote(str(include_object))}"
        )
    default_convertor = False
    if rt.custom:
        printer_columns = list(rt.printer_columns) or list(_DEFAULT_CRD_COLUMNS)
        definitions = [NAME, *(_crd_column(c) for c in printer_columns)]
        rows = [_row(obj, _crd_cells(obj, printer_columns, now), mode) for obj in objects]
    else:
        (definitions, printer), default_convertor = printer_for(rt.group, rt.kind)
        rows = [_row(obj, printer(obj, now), mode) for obj in objects]
    meta = dict(list_meta) if list_meta is not None else {}
    if list_meta is None and len(objects) == 1:
        version = (objects[0].get("metadata") or {}).get("resourceVersion")
        if version:
            meta["resourceVersion"] = version
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": copy.deepcopy(definitions) if with_column_definitions else None,
        # The default convertor appends to a nil slice, so an empty list prints as null.
        "rows": None if default_convertor and not rows else rows,
    }


def _row(obj: dict[str, Any], printed: Row, mode: str) -> dict[str, Any]:
    cells, conditions = printed
    row: dict[str, Any] = {"cells": cells}
    if conditions:
        row["conditions"] = copy.deepcopy(conditions)
    if mode == "Object":
        row["object"] = copy.deepcopy(obj)
    elif mode == "Metadata":
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": copy.deepcopy(obj.get("metadata") or {}),
        }
    else:
        row["object"] = None
    return row


def _crd_column(col: dict[str, Any]) -> dict[str, Any]:
    path = col.get("jsonPath", "")
    description = col.get("description") or (
        f"Custom resource definition column (in JSONPath format): {path}"
    )
    return {
        "name": col.get("name", ""),
        "type": col.get("type", ""),
        "format": col.get("format", ""),
        "description": description,
        "priority": int(col.get("priority") or 0),
    }


def _crd_cells(obj: dict[str, Any], printer_columns: list[dict[str, Any]], now: datetime) -> Row:
    cells: list[Any] = [(obj.get("metadata") or {}).get("name", "")]
    for col in printer_columns:
        try:
            results = find_results(obj, col.get("jsonPath", ""))
        except JsonPathError:
            results = []
        if not results:
            cells.append(None)
        elif col.get("type") == "string":
            cells.append(_printed(results[0]))
        else:
            cells.append(_typed(col.get("type", ""), results[0], now))
    return cells, None


def _printed(value: Any) -> str:
    """What client-go's JSONPath PrintResults writes for one value."""
    if value is None:
        return "<no value>"
    if isinstance(value, dict | list):
        return go_json(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return go_float(value) if isinstance(value, float) else str(value)


def _typed(kind: str, value: Any, now: datetime) -> Any:
    """The CRD convertor's cellForJSONValue: a mismatched value leaves the cell null."""
    if value is None or (isinstance(value, bool) and kind != "boolean"):
        return None
    if kind == "integer" and isinstance(value, int | float):
        return int(value)
    if kind == "number" and isinstance(value, int | float):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        if value in ("", "null"):
            return "<unknown>"
        moment = parse_time(value)
        return "<invalid>" if moment is None else between(moment, now)
    return None
