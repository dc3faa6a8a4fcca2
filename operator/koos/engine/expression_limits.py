"""Bounds on what one expression may build and how much work it may do (issue 10, item 3).

An expression runs in the operator's process, on the path of every reconcile and webhook, so
nothing a Template says may make it allocate or compute without bound. Every operation that
can grow a value is checked *before* it runs, on the sizes of its operands, so a refused
operation never allocates its result:

- a value is measured in characters (of its strings) and items (every list item, key, value
  and number, the containers included); measuring walks at most `MAX_ITEMS + 1` items (it
  stops as soon as a bound is passed);
- no value an expression builds or returns holds over `MAX_SIZE` characters or `MAX_ITEMS`
  items (a list or object costs far more CPU per item than a string per character), no
  integer longer than `MAX_INTEGER_BITS` bits, no float infinite or NaN (JSON has no such
  number);
- `*`, `+`, `~`, `join`, `string`, `tojson` (with any `indent`) and `replace` predict their
  result's size from their operands and refuse past the bounds;
- one rendering has a budget of `MAX_WORK`: the characters of every value it builds, and
  `ITEM_COST` for every item any check walks (measuring an operand, checking a result), are
  charged to it, so CPU spent on checks is bounded per rendering, not only per operation, and
  a long text of operations each under the bounds is refused too.

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
    "ITEM_COST",
    "MAX_INTEGER_BITS",
    "MAX_ITEMS",
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
# Items (list items, keys and values of objects, numbers) cost far more CPU to walk than
# characters, so a list or object is bounded ten times lower than a string.
MAX_ITEMS = 100_000
# 1,233 decimal digits: far beyond any count or size, and far below CPython's refusal to
# print an integer of more than 4,300 digits (a ValueError wherever it is shown).
MAX_INTEGER_BITS = 4096
# The budget of one rendering, in characters; every item walked (measuring, checking) costs
# ITEM_COST, so one rendering walks at most MAX_WORK / ITEM_COST = 500,000 items in all.
ITEM_COST = 40
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
            f"the expression does too much work (the values it builds and walks add up to "
            f"over {MAX_WORK} characters, an item counting {ITEM_COST})"
        )


def _measure(value: Any, check_numbers: bool = False) -> tuple[int, int]:
    """(characters, items) of `value`, stopping as soon as either passes its bound (so the
    result then exceeds it); every item walked is charged to the budget, so measuring the
    same large value again and again is bounded by the rendering's budget too.

    With `check_numbers`, an integer or float met on the way is checked as well (one walk,
    not one per number)."""
    chars = items = 0
    stack = [value]
    while stack:
        item = stack.pop()
        items += 1
        if isinstance(item, str):
            chars += len(item)
        elif isinstance(item, Mapping):
            for key, child in item.items():
                stack.append(key)
                stack.append(child)
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif check_numbers and not isinstance(item, bool):
            _check_number(item, "an item of the result")
        if chars > MAX_SIZE or items > MAX_ITEMS:
            break
    _charge(items * ITEM_COST)
    return chars, items


def size(value: Any, limit: int = MAX_SIZE) -> int:
    """The deep size of `value` (characters and items), or `limit + 1` as soon as it is known
    to be larger or to hold over MAX_ITEMS items."""
    chars, items = _measure(value)
    if items > MAX_ITEMS or chars + items > limit:
        return limit + 1
    return chars + items


def _refuse_size(what: str) -> LimitExceeded:
    return LimitExceeded(
        f"{what} would be longer than {MAX_SIZE} characters or hold over {MAX_ITEMS} items"
    )


def _check_number(value: Any, what: str) -> None:
    if isinstance(value, int) and value.bit_length() > MAX_INTEGER_BITS:
        raise LimitExceeded(f"{what} is an integer of over {MAX_INTEGER_BITS} bits")
    if isinstance(value, float) and not math.isfinite(value):
        raise LimitExceeded(f"{what} is not a finite number")


def checked(value: Any, what: str = "the result") -> Any:
    """`value` when it is within bounds (charged to the budget); LimitExceeded otherwise."""
    if isinstance(value, bool) or value is None or isinstance(value, Undefined):
        return value
    if isinstance(value, int | float):
        _check_number(value, what)
        return value
    if isinstance(value, str):
        if len(value) > MAX_SIZE:
            raise _refuse_size(what)
        _charge(len(value) + ITEM_COST)
        return value
    # An integer or float inside a list is a result too (`[2 ** 4000 * 2 ** 4000]`): checked
    # in the same walk that measures.
    chars, items = _measure(value, check_numbers=True)
    if chars > MAX_SIZE or items > MAX_ITEMS:
        raise _refuse_size(what)
    _charge(chars)
    return value


def _text_size(value: Any) -> int:
    """An upper bound of len(str(value)) for a value within MAX_SIZE, without building it."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int | float | bool) or value is None:
        return 32 if not isinstance(value, int) else value.bit_length() // 3 + 2
    # repr of a container: quotes, separators and escapes, at most ~8 characters per unit.
    chars, items = _measure(value)
    return 8 * (chars + items)


def multiply(left: Any, right: Any) -> None:
    """Refuse `left * right` before it is computed when its result is too large."""
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, str) and isinstance(count, int):
            if count > 0 and len(sequence) * count > MAX_SIZE:
                raise _refuse_size(f"str * {count}")
            return
        if isinstance(sequence, list | tuple) and isinstance(count, int):
            if count > 0:
                chars, items = _measure(sequence)
                # The copy holds `count` times the items, plus the list itself.
                if chars * count > MAX_SIZE or (items - 1) * count + 1 > MAX_ITEMS:
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
    if isinstance(left, str) and isinstance(right, str):
        if len(left) + len(right) > MAX_SIZE:
            raise _refuse_size("the sum")
        return
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        left_chars, left_items = _measure(left)
        right_chars, right_items = _measure(right)
        if left_chars + right_chars > MAX_SIZE or left_items + right_items - 1 > MAX_ITEMS:
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
    if isinstance(value, str):
        return str(checked(value))
    chars, items = _measure(value)
    if chars > MAX_SIZE or items > MAX_ITEMS:
        raise _refuse_size("the text")
    return str(checked(_text(value)))


def tojson(value: Any, indent: int | None = None) -> str:
    """The `tojson` filter: JSON with sorted keys, not escaped for HTML (Jinja's own escapes
    <, >, & and ', which have no place in a container's environment or a Job spec)."""
    if indent is not None and not (isinstance(indent, int) and 0 <= indent <= MAX_INDENT):
        raise LimitExceeded(f"tojson indent must be a whole number from 0 to {MAX_INDENT}")
    chars, items = _measure(value)
    if chars > MAX_SIZE or items > MAX_ITEMS:
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
