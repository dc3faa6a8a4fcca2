"""client-go's JSONPath, as CRD printer columns and kubectl evaluate it, over JSON data.

Supports what `k8s.io/client-go/util/jsonpath` parses inside one `{...}` action: `.field`
(with `\\.` escaping a dot), `..` recursive descent, `*` / `[*]`, indexes and slices
(`[0]`, `[-1]`, `[1:3]`), unions (`[0,2]`, `['a','b']`), `['key']` (whose text is read as a
dotted path, so write `['koos\\.io/x']` for a key with dots), and filters
`[?(@.type=="Ready")]` with `== != < > <= >=` or bare existence. One extension: `["a.b"]`
with double quotes selects the literal key `a.b` (client-go rejects that syntax).

Invariants: evaluation never mutates the object; missing keys yield no result (client-go's
AllowMissingKeys, as the CRD table convertor sets it); anything client-go reports as an error
(indexing a non-list, out-of-range index, a filter comparing mismatched types or an element
without the compared field) raises JsonPathError from `find_results` and yields [] from
`evaluate_jsonpath`.
"""

from __future__ import annotations

import re
from typing import Any

Node = tuple[Any, ...]

_TERMINATORS = frozenset(" \t\r\n.,[]$@{}")
_SLICE = re.compile(r"^(-?\d*)(:-?\d*)?(:-?\d*)?$")
_DICT_KEY = re.compile(r"^'([^']*)'$")
_FILTER = re.compile(r"^([^!<>=]+)([!<>=]+)(.+?)$", re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "/": "/"}


class JsonPathError(ValueError):
    """A path client-go would fail to parse or to evaluate."""


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalnum()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> list[Node]:
        nodes: list[Node] = []
        text = self.text
        while self.pos < len(text):
            rest, ch = text[self.pos :], text[self.pos]
            if rest.startswith("[?("):
                nodes.append(self._filter())
            elif rest.startswith(".."):
                if nodes and nodes[-1][0] == "recursive":
                    raise JsonPathError("invalid multiple recursive descent")
                self.pos += 2
                nodes.append(("recursive",))
                if self.pos < len(text) and _is_alnum(text[self.pos]):
                    nodes.append(self._field())
            elif ch in "\r\n":
                raise JsonPathError("unclosed action")
            elif ch in " @$":
                self.pos += 1
            elif ch == "[":
                nodes.extend(self._array())
            elif ch in "\"'":
                nodes.append(self._quote(ch))
            elif ch == ".":
                self.pos += 1
                nodes.append(self._field())
            elif ch in "+-" or ch.isdigit():
                nodes.append(self._number())
            elif _is_alnum(ch):
                nodes.append(self._identifier())
            else:
                raise JsonPathError(f"unrecognized character in action: {ch!r}")
        return nodes

    def _field(self) -> Node:
        start, text = self.pos, self.text
        while self.pos < len(text) and text[self.pos] not in _TERMINATORS:
            self.pos += 2 if text[self.pos] == "\\" else 1
        value = text[start : self.pos]
        return ("wildcard",) if value == "*" else ("field", value.replace("\\", ""))

    def _array(self) -> list[Node]:
        end = self.text.find("]", self.pos)
        if end < 0 or "\n" in self.text[self.pos : end]:
            raise JsonPathError("unterminated array")
        inner = self.text[self.pos + 1 : end]
        self.pos = end + 1
        inner = ":" if inner == "*" else inner
        parts = inner.split(",")
        if len(parts) > 1:
            return [("union", [_Parser(f"[{p.strip(' ')}]").parse() for p in parts])]
        key = _DICT_KEY.match(inner)
        if key:
            return _Parser("." + key.group(1)).parse()
        if len(inner) >= 2 and inner[0] == inner[-1] == '"':
            return [("field", _unquote(inner))]
        match = _SLICE.match(inner)
        if not match:
            raise JsonPathError(f"invalid array index {inner}")
        return [("array", _slice_params(match))]

    def _filter(self) -> Node:
        self.pos += 3
        start, text = self.pos, self.text
        begin = end = False
        pair = ""
        while True:
            if self.pos >= len(text) or text[self.pos] == "\n":
                raise JsonPathError("unterminated filter")
            ch = text[self.pos]
            self.pos += 1
            if ch in "\"'":
                if not begin:
                    begin, pair = True, ch
                elif text[self.pos - 2] != "\\" and ch == pair:
                    end = True
            elif ch == ")" and begin == end:
                break
        if text[self.pos : self.pos + 1] != "]":
            raise JsonPathError("unclosed array expect ]")
        self.pos += 1
        body = text[start : self.pos - 2]
        match = _FILTER.match(body)
        if match is None:
            return ("filter", _Parser(body).parse(), "exists", [])
        left, op, right = match.groups()
        return ("filter", _Parser(left).parse(), op, _Parser(right).parse())

    def _quote(self, quote: str) -> Node:
        start, text = self.pos, self.text
        self.pos += 1
        while True:
            if self.pos >= len(text) or text[self.pos] == "\n":
                raise JsonPathError("unterminated quoted string")
            self.pos += 1
            if text[self.pos - 1] == quote and text[self.pos - 2] != "\\":
                break
        return ("text", _unquote(text[start : self.pos]))

    def _number(self) -> Node:
        start, text = self.pos, self.text
        if text[self.pos] in "+-":
            self.pos += 1
        while self.pos < len(text) and (text[self.pos] == "." or text[self.pos].isdigit()):
            self.pos += 1
        value = text[start : self.pos]
        try:
            return ("int", int(value))
        except ValueError:
            try:
                return ("float", float(value))
            except ValueError:
                raise JsonPathError(f"cannot parse number {value}") from None

    def _identifier(self) -> Node:
        start, text = self.pos, self.text
        while self.pos < len(text) and text[self.pos] not in _TERMINATORS:
            self.pos += 1
        value = text[start : self.pos]
        return ("bool", value == "true") if value in ("true", "false") else ("ident", value)


def _unquote(quoted: str) -> str:
    out: list[str] = []
    body, i = quoted[1:-1], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def _slice_params(match: re.Match[str]) -> tuple[int | None, int | None, int | None, bool]:
    raw = [match.group(1), match.group(2), match.group(3)]
    start = int(raw[0]) if raw[0] else None
    single = raw[1] is None  # "[n]": one element, whatever the sign of n
    stop = int(raw[1][1:]) if raw[1] and raw[1] != ":" else None
    cap = int(raw[2][1:]) if raw[2] and raw[2] != ":" else None
    return (start, stop, cap, single)


def _walk(values: list[Any], node: Node) -> list[Any]:
    kind = node[0]
    if kind == "field":
        return [v[node[1]] for v in values if isinstance(v, dict) and node[1] in v]
    if kind == "array":
        return [item for v in values if v is not None for item in _index(v, node[1])]
    if kind == "wildcard":
        return [c for v in values if v is not None for c in _contents(v)]
    if kind == "recursive":
        return _recursive([v for v in values if v is not None])
    if kind == "union":
        return [r for branch in node[1] for r in _eval(values, branch)]
    if kind == "filter":
        return [item for v in values for item in _filter(v, node)]
    if kind in ("text", "int", "float"):
        return [node[1] for _ in values] if kind != "text" else [node[1]]
    raise JsonPathError(f"unrecognized identifier {node[1]}")


def _eval(values: list[Any], nodes: list[Node]) -> list[Any]:
    for node in nodes:
        values = _walk(values, node)
    return values


def _contents(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, str):
        return list(value.encode())  # Go indexes a string by byte
    return list(value) if isinstance(value, list) else []


def _recursive(values: list[Any]) -> list[Any]:
    found: list[Any] = []
    for value in values:
        children = [c for c in _contents(value) if c is not None]
        if _contents(value):
            found.append(value)
            found.extend(_recursive(children))
    return found


def _index(value: Any, params: tuple[int | None, int | None, int | None, bool]) -> list[Any]:
    if not isinstance(value, list):
        raise JsonPathError(f"{type(value).__name__} is not array or slice")
    start, stop, cap, single = params
    length = len(value)
    first = (start or 0) + (length if (start or 0) < 0 else 0)
    stop = length if stop is None else stop + (length if stop < 0 else 0)
    last = first + 1 if single else stop
    if last != first and (first >= length or last > length):
        raise JsonPathError(f"array index out of bounds: index {first}, length {length}")
    if first < 0 or last < first or (cap is not None and not last <= cap <= length):
        raise JsonPathError("slice bounds out of range")
    return value[first:last]


def _basic_kind(value: Any) -> str:
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("string", str)):
        if isinstance(value, types):
            return kind
    raise JsonPathError("invalid type for comparison")


def _compare(op: str, left: Any, right: Any) -> bool:
    kind = _basic_kind(left)
    if kind != _basic_kind(right):
        raise JsonPathError("incompatible types for comparison")
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if kind == "bool":
        raise JsonPathError("invalid type for comparison")
    tests = {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}
    if op not in tests:
        raise JsonPathError(f"unrecognized filter operator {op}")
    return bool(tests[op])


def _filter(value: Any, node: Node) -> list[Any]:
    _, left_nodes, op, right_nodes = node
    if not isinstance(value, list):
        raise JsonPathError("value is not array or slice and cannot be filtered")
    kept: list[Any] = []
    for item in value:
        lefts = _eval([item], left_nodes)
        if op == "exists":
            if lefts:
                kept.append(item)
            continue
        rights = _eval([item], right_nodes)
        if len(lefts) != 1 or len(rights) != 1:
            raise JsonPathError("can only compare one element at a time")
        if _compare(op, lefts[0], rights[0]):
            kept.append(item)
    return kept


def parse(path: str) -> list[Node]:
    """Parse one action, with or without its surrounding braces; raises JsonPathError."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    return _Parser(text).parse()


def find_results(obj: Any, path: str) -> list[Any]:
    """Every value the path selects, in client-go's order; raises JsonPathError."""
    return _eval([obj], parse(path))


def evaluate_jsonpath(obj: Any, path: str) -> list[Any]:
    """Every value the path selects; [] when nothing matches or client-go would fail."""
    try:
        return find_results(obj, path)
    except JsonPathError:
        return []
