"""`{{ … }}` expressions: parsing, the names they read, and rendering (DESIGN.md §2).

Expressions are Jinja2 in a sandbox that is strict and small on purpose:
- only `{{ … }}` outputs: `{% … %}` statements and function or method calls are refused, and
  `a.b` / `a['b']` read keys of mappings (and indexes of lists) only, never Python
  attributes — so an output key named `items` or `keys` reads the output, not a dict method;
- an undefined name, key or attribute is an error that names it (StrictUndefined), never "";
- a short list of pure filters (`SAFE_FILTERS`), no globals, no autoescape, no constant
  folding at compile time;
- every value an expression builds, and the work of one rendering, is bounded
  (`koos.engine.expression_limits`): an operation that would pass a bound is refused before
  it runs, so no template can exhaust the operator's memory or hold it busy;
- a text that is exactly one `{{ expr }}` renders to the native value (bool, list, dict,
  number); any other text renders to a string in which non-string values appear as JSON
  (`true`, `["a"]`), the way they reach containers as environment variables.

Everything here is a pure function of its arguments; parsed texts are cached by text.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jinja2 import Template, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.filters import FILTERS
from jinja2.runtime import Context, StrictUndefined, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from koos.engine import expression_limits as limits

__all__ = [
    "SAFE_FILTERS",
    "ExpressionError",
    "has_expression",
    "is_true",
    "references",
    "render",
]

SAFE_FILTERS = (
    "default",
    "length",
    "lower",
    "upper",
    "join",
    "tojson",
    "int",
    "string",
    "trim",
    "replace",
    "first",
    "last",
)
MAX_RESULT_LENGTH = limits.MAX_SIZE
_MAX_POWER_BITS = limits.MAX_INTEGER_BITS
# Longer expression texts are refused before parsing (whose cost grows with the text): no
# field of a valid spec, itself at most 128 KiB, is longer.
MAX_TEXT_LENGTH = 128 * 1024
_SINGLE = re.compile(r"\A\{\{(?P<inner>.*)\}\}\Z", re.DOTALL)
_MARKER = re.compile(r"\{[{%#]")


class ExpressionError(ValueError):
    """An expression that does not parse, reads an undefined name, or fails to evaluate."""


def _finalize(value: Any) -> Any:
    if isinstance(value, str | Undefined):
        return value
    return limits.tojson(value)


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, but `a ~ b` goes through `limits.concat`, which refuses a
    text past the bound before building it (Jinja joins the parts directly)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.koos_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Environment(ImmutableSandboxedEnvironment):
    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+", "-", "/", "//"})
    intercepted_unops = frozenset({"-", "+"})

    @staticmethod
    def koos_concat(values: Sequence[Any]) -> str:
        return limits.concat(values)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed: join with ~")
        if operator == "**" and _power_too_large(left, right):
            raise SecurityError(f"{left!r} ** {right!r} is too large")
        if operator == "*":
            limits.multiply(left, right)
        elif operator == "+":
            limits.plus(left, right)
        return limits.checked(super().call_binop(context, operator, left, right))

    def call_unop(self, context: Context, operator: str, arg: Any) -> Any:
        return limits.checked(super().call_unop(context, operator, arg))

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self.getitem(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        try:
            if isinstance(obj, Mapping):
                return obj[argument]
            if isinstance(obj, Sequence) and isinstance(argument, int | slice):
                return obj[argument]
        except (LookupError, TypeError):
            pass
        return self.undefined(obj=obj, name=argument)


def _power_too_large(left: Any, right: Any) -> bool:
    if not isinstance(left, int | float) or not isinstance(right, int | float):
        return False
    if abs(left) <= 1:
        return False
    return right * math.log2(abs(left)) > _MAX_POWER_BITS


def _make_environment() -> _Environment:
    env = _Environment(
        undefined=StrictUndefined,
        autoescape=False,
        finalize=_finalize,
        keep_trailing_newline=True,
        # Constant folding would evaluate operations at compile time, outside the bounds.
        optimized=False,
    )
    env.globals.clear()
    env.filters = {name: _bounded_filter(FILTERS[name]) for name in SAFE_FILTERS}
    env.filters["tojson"] = limits.tojson
    env.filters["replace"] = limits.replace
    env.filters["join"] = limits.join
    env.filters["string"] = limits.string
    return env


def _bounded_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` whose every result is checked against the bounds (`int` makes integers,
    `upper` may lengthen a text)."""

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        return limits.checked(function(*args, **kwargs))

    return bounded


_ENV = _make_environment()


def has_expression(text: str) -> bool:
    """Whether `text` holds template syntax (`{{`, `{%` or `{#`) and so must be rendered."""
    return bool(_MARKER.search(text))


@functools.lru_cache(maxsize=2048)
def _parse(text: str) -> nodes.Template:
    """The checked syntax tree of `text`; ExpressionError saying what is wrong and where."""
    if len(text) > MAX_TEXT_LENGTH:
        raise ExpressionError(
            f"expression text is {len(text)} characters long, over the limit of {MAX_TEXT_LENGTH}"
        )
    try:
        tree = _ENV.parse(text)
    except TemplateSyntaxError as error:
        raise ExpressionError(
            f"expression does not parse (line {error.lineno}): {error.message}; "
            "to write {{ literally, wrap it in {% raw %}…{% endraw %}"
        ) from None
    except (RecursionError, MemoryError):
        raise ExpressionError("expression is nested too deeply to parse") from None
    except Exception as error:  # e.g. an integer literal of over 4,300 digits
        raise ExpressionError(f"expression does not parse: {error}") from None
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            raise ExpressionError(
                f"only {{{{ … }}}} expressions are allowed, not {{% … %}} statements "
                f"(line {node.lineno})"
            )
    for node in tree.find_all((nodes.Call, nodes.Filter, nodes.Test)):
        if isinstance(node, nodes.Call):
            raise ExpressionError(
                f"function and method calls are not allowed, use filters (line {node.lineno})"
            )
        if isinstance(node, nodes.Filter) and node.name not in _ENV.filters:
            raise ExpressionError(
                f"unknown filter {node.name!r} (line {node.lineno}); "
                f"filters: {', '.join(SAFE_FILTERS)}"
            )
        if isinstance(node, nodes.Test) and node.name not in _ENV.tests:
            raise ExpressionError(f"unknown test {node.name!r} (line {node.lineno})")
    return tree


def references(text: str) -> set[tuple[str, ...]]:
    """The name paths `text` reads, e.g. ("steps", "restart", "outputs", "pods").

    A path stops where a key is not a constant string (`params[x]`, `pods[0]`); the names
    inside such a key are paths of their own.
    """
    found: set[tuple[str, ...]] = set()
    for node in _parse(text).body:
        _collect(node, found)
    return found


def _collect(node: nodes.Node, found: set[tuple[str, ...]]) -> None:
    if isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
        keys: list[str] = []
        current: nodes.Node = node
        while True:
            if isinstance(current, nodes.Getattr):
                keys.append(current.attr)
                current = current.node
            elif isinstance(current, nodes.Getitem):
                if isinstance(current.arg, nodes.Const) and isinstance(current.arg.value, str):
                    keys.append(current.arg.value)
                else:
                    # Keys beyond a computed one are not names we can check.
                    keys.clear()
                    _collect(current.arg, found)
                current = current.node
            else:
                break
        if isinstance(current, nodes.Name):
            found.add((current.name, *reversed(keys)))
            return
        node = current
    for child in node.iter_child_nodes():
        _collect(child, found)


def render(text: str, context: Mapping[str, Any]) -> Any:
    """`text` rendered over `context`: the native value of a lone `{{ expr }}`, else a string."""
    _parse(text)  # refuses what the sandbox alone would allow: statements, calls, filters
    inner = _single_expression(text)
    variables = dict(context)
    try:
        with limits.budget():
            if inner is None:
                return _render_text(_compiled_template(text), variables)
            return limits.checked(_plain(_compiled_expression(inner)(**variables)))
    except RecursionError:
        raise ExpressionError(f"expression {_quoted(text)} is nested too deeply") from None
    except Exception as error:
        raise _explain(text, variables, error) from None


def _render_text(template: Template, variables: dict[str, Any]) -> str:
    """The text of `template`, refused as soon as it passes the size bound."""
    parts: list[str] = []
    total = 0
    for part in template.generate(variables):
        total += len(part)
        if total > MAX_RESULT_LENGTH:
            raise limits.LimitExceeded(
                f"the rendered text would be longer than {MAX_RESULT_LENGTH} characters"
            )
        parts.append(part)
    return "".join(parts)


def _quoted(text: str) -> str:
    stripped = text.strip()
    return repr(stripped if len(stripped) <= 200 else stripped[:199] + "…")


@functools.lru_cache(maxsize=2048)
def _compiled_template(text: str) -> Template:
    return _ENV.from_string(text)


@functools.lru_cache(maxsize=2048)
def _compiled_expression(inner: str) -> Callable[..., Any]:
    return _ENV.compile_expression(inner, undefined_to_none=False)


def _single_expression(text: str) -> str | None:
    """The expression source when `text` is exactly one `{{ expr }}` (blanks around allowed)."""
    match = _SINGLE.match(text.strip())
    if match is None:
        return None
    outputs = [
        node
        for output in _parse(text).body
        for node in output.iter_child_nodes()
        if not (isinstance(node, nodes.TemplateData) and not node.data.strip())
    ]
    if len(outputs) != 1 or isinstance(outputs[0], nodes.TemplateData):
        return None
    # `{{- x -}}` whitespace control: the markers belong to the braces, not the expression.
    return match["inner"].removeprefix("-").removesuffix("-")


def _plain(value: Any) -> Any:
    """`value` as plain JSON-like data; an undefined value anywhere in it is an error."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises here, naming what is missing.
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _explain(text: str, context: Mapping[str, Any], error: Exception) -> ExpressionError:
    if isinstance(error, ExpressionError):
        return error
    if isinstance(error, UndefinedError):
        # Jinja says "'dict object' has no attribute 'x'"; say which name instead.
        missing = _first_missing(text, context)
        if missing is not None:
            return ExpressionError(missing)
    return ExpressionError(f"expression {_quoted(text)} failed: {error}")


def _first_missing(text: str, context: Mapping[str, Any]) -> str | None:
    """Why the first path `text` reads is undefined in `context`, if one is."""
    for path in sorted(references(text)):
        current: Any = context
        for depth, key in enumerate(path):
            if not isinstance(current, Mapping):
                break
            if key not in current:
                if depth == 0:
                    return f"{key} is undefined"
                where = ".".join(path[:depth])
                known = ", ".join(sorted(str(name) for name in current)) or "nothing"
                return f"{where}.{key} is undefined ({where} has: {known})"
            current = current[key]
    return None


def is_true(value: Any) -> bool:
    """The truth of a rendered `when`: True/False, or the strings "true"/"false" in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    shown = json.dumps(value, ensure_ascii=False, default=str)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise ExpressionError(f"when must be true or false, got {shown}")
