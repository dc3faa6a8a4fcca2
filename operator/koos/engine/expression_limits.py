"""Bounds on what one expression may build and how much work it may do (issue 10, item 3).

An expression runs in the operator's process, on the path of every reconcile and webhook, so
nothing a Template says may make it allocate or compute without bound. Every operation that
can grow a value is checked *before* it runs, on the sizes of its operands, so a refused
operation never allocates its result:

- `size(value)` is the deep size of a value: characters of a string, 1 for a number, a
  boolean or null, 1 plus the sizes of the items (and keys) of a list or mapping. It walks at
  most `MAX_SIZE + 1` nodes (it stops as soon as the bound is passed), so measuring is
  bounded too;
- no value an expression builds or returns is larger than `MAX_SIZE`, no integer longer than
  `MAX_INTEGER_BITS` bits, no float infinite or NaN (JSON has no such number);
- `*`, `+`, `~`, `join`, `string`, `tojson` (with any `indent`) and `replace` predict their
  result's size from their operands and refuse past `MAX_SIZE`;
- the sizes of all the values one rendering builds add up to at most `MAX_WORK` (the
  budget), so a long text of operations each under the bound is refused too.

Everything here raises `LimitExceeded` (a SecurityError), which `koos.engine.expressions`
turns into an ExpressionError naming the expression.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined

__all__ = [
    "MAX_INTEGER_BITS",
    "MAX_SIZE",
    "MAX_WORK",
    "LimitExceeded",
    "budget",
    "checked",
    "concat",
    "join",
    "multiply",
    "plus",
    "replace",
    "size",
    "string",
    "tojson",
]

# Far above any output (4 KiB) or parameter a runbook needs; far below hurting the operator.
MAX_SIZE = 1_000_000
# 1,233 decimal digits: far beyond any count or size, and far below CPython's refusal to
# print an integer of more than 4,300 digits (a ValueError wherever it is shown).
MAX_INTEGER_BITS = 4096
MAX_WORK = 20 * MAX_SIZE
# `tojson(indent=…)` is for reading; a wider indent only multiplies the output.
MAX_INDENT = 16


class LimitExceeded(SecurityError):
    """An expression would build a value, or do work, past the bounds of this module."""


@dataclass
class _Budget:
    left: int


_budget: ContextVar[_Budget | None] = ContextVar("koos_expression_budget", default=None)


@contextlib.contextmanager
def budget() -> Iterator[None]:
    """The work budget of one rendering: every checked value is charged to it."""
    token = _budget.set(_Budget(MAX_WORK))
    try:
        yield
    finally:
        _budget.reset(token)


def _charge(amount: int) -> None:
    current = _budget.get()
    if current is None:
        return
    current.left -= amount
    if current.left < 0:
        raise LimitExceeded(
            f"the expression does too much work (its values add up to over {MAX_WORK} "
            "characters or items)"
        )


def size(value: Any, limit: int = MAX_SIZE) -> int:
    """The deep size of `value`, or `limit + 1` as soon as it is known to be larger."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += max(len(item), 1)
        elif isinstance(item, Mapping):
            total += 1
            for key, child in item.items():
                stack.append(key)
                stack.append(child)
        elif isinstance(item, list | tuple | set | frozenset):
            total += 1
            stack.extend(item)
        else:
            total += 1
        if total > limit:
            return limit + 1
    return total


def _refuse_size(what: str) -> LimitExceeded:
    return LimitExceeded(f"{what} would be longer than {MAX_SIZE} characters or items")


def checked(value: Any, what: str = "the result") -> Any:
    """`value` when it is within bounds (charged to the budget); LimitExceeded otherwise."""
    if isinstance(value, bool) or value is None or isinstance(value, Undefined):
        return value
    if isinstance(value, int):
        if value.bit_length() > MAX_INTEGER_BITS:
            raise LimitExceeded(f"{what} is an integer of over {MAX_INTEGER_BITS} bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LimitExceeded(f"{what} is not a finite number")
        return value
    measured = size(value)
    if measured > MAX_SIZE:
        raise _refuse_size(what)
    _charge(measured)
    if isinstance(value, list | tuple | Mapping):
        # An integer or float inside a list is a result too (`[2 ** 4000 * 2 ** 4000]`).
        for item in _numbers(value):
            checked(item, what)
    return value


def _numbers(value: Any) -> Iterator[int | float]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int | float):
            yield item
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _text_size(value: Any) -> int:
    """An upper bound of len(str(value)) for a value within MAX_SIZE, without building it."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int | float | bool) or value is None:
        return 32 if not isinstance(value, int) else value.bit_length() // 3 + 2
    # repr of a container: quotes, separators and escapes, at most ~8 characters per unit.
    return 8 * size(value)


def multiply(left: Any, right: Any) -> None:
    """Refuse `left * right` before it is computed when its result is too large."""
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(count, int):
            if count > 0 and size(sequence) * count > MAX_SIZE:
                raise _refuse_size(f"{type(sequence).__name__} * {count}")
            return
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > MAX_INTEGER_BITS + 1
    ):
        raise LimitExceeded(f"the product is an integer of over {MAX_INTEGER_BITS} bits")


def plus(left: Any, right: Any) -> None:
    """Refuse `left + right` before it is computed when its result is too large."""
    both = isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
    if both and size(left) + size(right) > MAX_SIZE:
        raise _refuse_size("the sum")


def concat(values: Iterable[Any]) -> str:
    """`a ~ b ~ …`: the texts of the values joined, refused before it is built when too long."""
    items = list(values)
    total = 0
    for item in items:
        total += _text_size(item)
        if total > MAX_SIZE:
            raise _refuse_size("the joined text (~)")
    return str(checked("".join(_text(item) for item in items)))


def _text(value: Any) -> str:
    # A StrictUndefined raises here, naming what is missing.
    return str(value)


def join(value: Any, separator: Any = "", attribute: Any = None) -> str:
    """The `join` filter, refused before it is built when the text would be too long."""
    if attribute is not None:
        raise LimitExceeded("join(attribute=…) is not supported: join the values themselves")
    items = list(value)
    sep = str(separator)
    total = len(sep) * max(len(items) - 1, 0)
    if total > MAX_SIZE:
        raise _refuse_size("the joined text")
    for item in items:
        total += _text_size(item)
        if total > MAX_SIZE:
            raise _refuse_size("the joined text")
    return str(checked(sep.join(_text(item) for item in items)))


def string(value: Any) -> str:
    """The `string` filter, refused before it is built when the text would be too long."""
    if _text_size(value) > 8 * MAX_SIZE or size(value) > MAX_SIZE:
        raise _refuse_size("the text")
    return str(checked(_text(value)))


def tojson(value: Any, indent: int | None = None) -> str:
    """The `tojson` filter: JSON with sorted keys, not escaped for HTML (Jinja's own escapes
    <, >, & and ', which have no place in a container's environment or a Job spec)."""
    if indent is not None and not (isinstance(indent, int) and 0 <= indent <= MAX_INDENT):
        raise LimitExceeded(f"tojson indent must be a whole number from 0 to {MAX_INDENT}")
    if size(value) > MAX_SIZE:
        raise _refuse_size("the JSON text")
    encoder = json.JSONEncoder(indent=indent, sort_keys=True, ensure_ascii=False)
    chunks: list[str] = []
    total = 0
    # Built chunk by chunk: deep nesting with an indent grows the text, not the value.
    for chunk in encoder.iterencode(value):
        total += len(chunk)
        if total > MAX_SIZE:
            raise _refuse_size("the JSON text")
        chunks.append(chunk)
    return str(checked("".join(chunks)))


def replace(value: Any, old: Any, new: Any, count: int | None = None) -> str:
    """The `replace` filter, refused before it is built when the text would be too long."""
    text, old_text, new_text = str(value), str(old), str(new)
    found = text.count(old_text) if old_text else len(text) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    if len(text) + found * (len(new_text) - len(old_text)) > MAX_SIZE:
        raise _refuse_size("the replaced text")
    return str(checked(text.replace(old_text, new_text, -1 if count is None else count)))
