"""A loop's items and rate control, resolved: at Template admission what a literal already
says, when the step starts what its expressions render to.

`literal_problems` is part of the Template validation (`koos.engine.template`): a literal
`items` that is not a list or has more than `MAX_ITEMS` items, a literal concurrency outside
1..`MAX_CONCURRENCY`, a `maxErrors` that is neither a count nor a percentage up to 100%, a
negative batchSize, a `pause` without batchSize, and a loop on a step kind that has none
yet. `resolve` does the same checks on the rendered values when the step starts; its
problems name the field, and the step fails with them (reason InvalidSpec).

Limits (documented in the README): at most `MAX_ITEMS` items (the peers stop at 1,000 or
fewer; status stays far below 256 KiB at this size), at most `MAX_CONCURRENCY` items in
flight (each is a Job and a Pod, and a small record in status), and collected outputs of at
most `OUTPUTS_LIMIT` bytes per step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from koos.api.template import Loop, Step
from koos.engine import expressions
from koos.engine.problem import Problem

MAX_ITEMS = 10_000
MAX_CONCURRENCY = 500
OUTPUTS_LIMIT = 64 * 1024
_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")
_COUNT = re.compile(r"\s*\d+\s*")


@dataclass(frozen=True)
class Settings:
    """A loop's rate control as resolved when its step starts."""

    concurrency: int
    max_errors: int  # failed items tolerated, as a count
    batch_size: int  # 0: no batches


def literal_problems(step: Step, path: str) -> list[Problem]:
    """What the loop of `step` (at `path`) gets wrong that is known before any run."""
    loop = step.loop
    if loop is None:
        return []
    where = f"{path}.loop"
    if step.run is None:
        return [Problem(where, "loops run on run steps only (for now): give the step a run")]
    problems: list[Problem] = []
    items = loop.items
    if isinstance(items, str) and not expressions.has_expression(items):
        problems.append(
            Problem(
                f"{where}.items",
                "give a list of items or an expression that renders to one, e.g. "
                "\"{{ steps['get-instances'].outputs.ids }}\"",
            )
        )
    elif isinstance(items, list) and len(items) > MAX_ITEMS:
        problems.append(Problem(f"{where}.items", _too_many(len(items))))
    for field, value, check in (
        ("concurrency", loop.concurrency, _concurrency),
        ("maxErrors", loop.max_errors, _max_errors_text),
        ("batchSize", loop.batch_size, _batch_size),
    ):
        if isinstance(value, str) and expressions.has_expression(value):
            continue
        problem = check(value)
        if problem is not None:
            problems.append(Problem(f"{where}.{field}", problem))
    if loop.pause != "None" and _literal_zero(loop.batch_size):
        problems.append(
            Problem(
                f"{where}.pause",
                f"pause: {loop.pause} needs batchSize (items per batch): without batches "
                "there is nothing to pause between",
            )
        )
    return problems


def resolve_items(loop: Loop, context: dict[str, Any]) -> list[Any] | str:
    """The items, or the problem with them (a sentence naming `loop.items`)."""
    items: Any = loop.items
    if isinstance(items, str):
        try:
            items = expressions.render(items, context)
        except expressions.ExpressionError as error:
            return f"loop.items: {error}"
    if not isinstance(items, list):
        return f"loop.items must be a list, but it renders to a {_kind(items)}"
    if len(items) > MAX_ITEMS:
        return f"loop.items: {_too_many(len(items))}"
    return items


def resolve(loop: Loop, total: int, context: dict[str, Any]) -> Settings | str:
    """The rate control for `total` items, or the problem (naming its field)."""
    values: dict[str, Any] = {}
    for field, name, value in (
        ("concurrency", "concurrency", loop.concurrency),
        ("max_errors", "maxErrors", loop.max_errors),
        ("batch_size", "batchSize", loop.batch_size),
    ):
        if isinstance(value, str) and expressions.has_expression(value):
            try:
                value = expressions.render(value, context)
            except expressions.ExpressionError as error:
                return f"loop.{name}: {error}"
        values[field] = value
    for field, name, check in (
        ("concurrency", "concurrency", _concurrency),
        ("max_errors", "maxErrors", _max_errors_text),
        ("batch_size", "batchSize", _batch_size),
    ):
        problem = check(values[field])
        if problem is not None:
            return f"loop.{name}: {problem}"
    batch = _number(values["batch_size"])
    assert batch is not None
    if loop.pause != "None" and batch == 0:
        return f"loop.pause: {loop.pause} needs a batchSize above 0"
    concurrency = _number(values["concurrency"])
    assert concurrency is not None
    return Settings(
        concurrency=concurrency,
        max_errors=max_errors_count(values["max_errors"], total),
        batch_size=batch,
    )


def max_errors_count(value: Any, total: int) -> int:
    """Failed items tolerated out of `total`: a count as is, a percentage rounded down."""
    if isinstance(value, str) and (match := _PERCENT.fullmatch(value)):
        return int(total * float(match.group(1)) / 100)
    number = _number(value)
    return number if number is not None else 0


def _number(value: Any) -> int | None:
    """A whole number given as an int or as digits (a parameter may be a string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _COUNT.fullmatch(value):
        return int(value)
    return None


def _concurrency(value: Any) -> str | None:
    number = _number(value)
    if number is None:
        return f"must be a whole number from 1 to {MAX_CONCURRENCY}, not {_shown(value)}"
    if not 1 <= number <= MAX_CONCURRENCY:
        return f"must be from 1 to {MAX_CONCURRENCY} (items in flight at once), not {number}" + (
            ": 0 would run nothing" if number <= 0 else ""
        )
    return None


def _max_errors_text(value: Any) -> str | None:
    if isinstance(value, str) and (match := _PERCENT.fullmatch(value)):
        if float(match.group(1)) > 100:
            return f"a percentage of the items must be at most 100%, not {value.strip()}"
        return None
    number = _number(value)
    if number is None or number < 0:
        return f'give a count (0 or more) or a percentage such as "10%", not {_shown(value)}'
    return None


def _batch_size(value: Any) -> str | None:
    number = _number(value)
    if number is None or number < 0:
        return f"must be a whole number, 0 (no batches) or more, not {_shown(value)}"
    return None


def _literal_zero(value: int | str) -> bool:
    if isinstance(value, str) and expressions.has_expression(value):
        return False
    return _number(value) == 0


def _too_many(count: int) -> str:
    return (
        f"{count} items, over the limit of {MAX_ITEMS:,} per loop: split the list (for "
        "example over several Executions)"
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", dict: "object"}.get(
        type(value), type(value).__name__
    )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
