"""Bounds on the JSON values users hand koos: parameters, defaults, enums, schemas, outputs.

A value nested hundreds of levels deep makes every recursive walk of it (JSON encoding,
schema validation, status models) raise RecursionError somewhere in the operator, and an
integer of thousands of digits cannot even be printed (CPython refuses past 4,300 digits);
either left a run stuck with no phase (issue 10, item 4). So a value is refused, with a
message, where it enters:

- nesting (lists and objects inside each other) is at most `MAX_NESTING` levels;
- an integer is within ±2^63 (what Kubernetes and JSON tools keep exactly);
- a float is finite.

`value_problem` walks without recursion and stops at the first problem, so checking a hostile
value is itself bounded by the value's size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_INTEGER", "MAX_NESTING", "value_problem"]

MAX_NESTING = 64
MAX_INTEGER = 2**63


def value_problem(value: Any) -> str | None:
    """Why `value` is out of bounds, or None when it is within them."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            if depth >= MAX_NESTING:
                return f"is nested deeper than {MAX_NESTING} levels"
            children = item.values() if isinstance(item, Mapping) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int) and not -MAX_INTEGER <= item < MAX_INTEGER:
            return "holds an integer beyond ±2^63"
        elif isinstance(item, float) and not math.isfinite(item):
            return "holds a number that is not finite"
    return None
