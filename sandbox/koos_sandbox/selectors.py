"""Label selectors, parsed and matched as apimachinery's `labels` package does.

Two ways in: `parse_label_selector` reads a `labelSelector` query (`labels.Parse`), and
`selector_from_dict` reads a metav1.LabelSelector (`matchLabels`, `matchExpressions`) as
`LabelSelectorAsSelector` does. Keys and values are validated as apimachinery's
`util/validation` does, with its messages.

Invariants: selectors are immutable once parsed; every parse error is the 400 BadRequest the
apiserver answers for a bad `labelSelector` query, with apimachinery's own wording
(`labels.Parse` messages, "unable to parse requirement: ..."). Field selectors live in
field_selectors.py and are re-exported here, so both kinds are found in this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from koos_sandbox.errors import bad_request
from koos_sandbox.field_selectors import (
    FieldRequirement,
    FieldSelector,
    parse_field_selector,
)

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "parse_field_selector",
    "parse_label_selector",
    "selector_from_dict",
]

# ---- validation messages (k8s.io/apimachinery/pkg/util/validation) ------------------------

_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character"
)
_DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_FMT = _DNS_LABEL + "(\\." + _DNS_LABEL + ")*"
_DNS_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character"
)
_VALUE_FMT = "(" + _NAME_FMT + ")?"
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character"
)


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _qualified_name_errors(value: str) -> list[str]:
    """validation.IsQualifiedName: an optional DNS-subdomain prefix, "/", a name."""
    examples = ("MyName", "my.name", "123-abc")
    parts = value.split("/")
    if len(parts) > 2:
        return [
            "a qualified name "
            + _regex_error(_NAME_MSG, _NAME_FMT, *examples)
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    errors: list[str] = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errors.append("prefix part must be no more than 253 characters")
            if not re.fullmatch(_DNS_FMT, prefix):
                errors.append("prefix part " + _regex_error(_DNS_MSG, _DNS_FMT, "example.com"))
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if not re.fullmatch(_NAME_FMT, name):
        errors.append("name part " + _regex_error(_NAME_MSG, _NAME_FMT, *examples))
    return errors


def _label_value_errors(value: str) -> list[str]:
    errors = ["must be no more than 63 characters"] if len(value) > 63 else []
    if not re.fullmatch(_VALUE_FMT, value):
        errors.append(_regex_error(_VALUE_MSG, _VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


def _quote(value: str) -> str:
    """Go's %q, near enough for label text."""
    return json.dumps(value, ensure_ascii=False)


def _invalid(path: str, value: str, detail: str) -> str:
    return f"{path}: Invalid value: {value}: {detail}"


def _int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64), or None where it fails."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


# ---- label selectors ----------------------------------------------------------------------

_BINARY = ("in", "notin", "=", "==", "!=", "gt", "lt")


@dataclass(frozen=True)
class Requirement:
    """One term: `operator` is a selection.Operator ("in", "notin", "=", "==", "!=",
    "exists", "!", "gt", "lt")."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator in ("in", "=", "=="):
            return present and labels[self.key] in self.values
        if self.operator in ("notin", "!="):
            return not present or labels[self.key] not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if not present or len(self.values) != 1:
            return False
        have, want = _int64(labels[self.key]), _int64(self.values[0])
        if have is None or want is None:
            return False
        return have > want if self.operator == "gt" else have < want


@dataclass(frozen=True)
class LabelSelector:
    """An AND of requirements; no requirements selects everything."""

    requirements: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        present = labels or {}
        return all(r.matches(present) for r in self.requirements)


_ARITY = (  # NewRequirement: how many values each operator takes (min, max)
    (("in", "notin"), 1, None, "for 'in', 'notin' operators, values set can't be empty"),
    (("=", "==", "!="), 1, 1, "exact-match compatibility requires one single value"),
    (("exists", "!"), 0, 0, "values set must be empty for exists and does not exist"),
    (("gt", "lt"), 1, 1, "for 'Gt', 'Lt' operators, exactly one value is required"),
)


def _new_requirement(key: str, op: str, values: list[str]) -> Requirement:
    """labels.NewRequirement (no field path): build, or raise its aggregated field errors."""
    errors = []
    if key_errors := _qualified_name_errors(key):
        errors.append(_invalid("key", _quote(key), "; ".join(key_errors)))
    # Go's %#v of the []string.
    shown = "[]string{" + ", ".join(map(_quote, values)) + "}" if values else "[]string(nil)"
    errors += [
        _invalid("values", shown, msg)
        for ops, low, high, msg in _ARITY
        if op in ops and not low <= len(values) <= (len(values) if high is None else high)
    ]
    if op in ("gt", "lt"):
        errors += [
            _invalid(
                f"values[{i}]", _quote(v), "for 'Gt', 'Lt' operators, the value must be an integer"
            )
            for i, v in enumerate(values)
            if _int64(v) is None
        ]
    for i, value in enumerate(values):
        if value_errors := _label_value_errors(value):
            errors.append(_invalid(f"values[{i}][{key}]", _quote(value), "; ".join(value_errors)))
    if errors:
        unique = list(dict.fromkeys(errors))  # ToAggregate drops repeated messages
        raise _SelectorError(unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]")
    return Requirement(key, op, tuple(values))


class _SelectorError(Exception):
    """A labels-package error, before the caller decides how the apiserver words it."""


_SPECIAL = "=!(),><"
_TOKENS = {"=", "==", "!", "!=", "(", ")", ",", ">", "<"}


def _lex(text: str) -> list[tuple[str, str]]:
    """labels.Lexer: (token, literal) pairs; token is "id", "end" or the operator itself."""
    items: list[tuple[str, str]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos == len(text):
            items.append(("end", ""))
            return items
        start = pos
        if text[pos] in _SPECIAL:
            # Longest run of special characters that is still an operator.
            while pos < len(text) and text[start : pos + 1] in _TOKENS:
                pos += 1
            items.append((text[start:pos], text[start:pos]))
            continue
        while pos < len(text) and text[pos] not in _SPECIAL and text[pos] not in " \t\r\n":
            pos += 1
        word = text[start:pos]
        items.append((word if word in ("in", "notin") else "id", word))


class _Parser:
    """labels.Parser: recursive descent over the lexed items, same messages."""

    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.at = 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        tok, lit = self.items[self.at]
        return ("id" if values and tok in ("in", "notin") else tok), lit

    def take(self, values: bool = True) -> tuple[str, str]:
        item = self.peek(values)
        self.at += 1
        return item

    def parse(self) -> list[Requirement]:
        found: list[Requirement] = []
        while True:
            tok, lit = self.peek()
            if tok == "end":
                return found
            if tok not in ("id", "!"):
                raise _SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                found.append(self.requirement())
            except _SelectorError as err:
                raise _SelectorError(f"unable to parse requirement: {err}") from None
            tok, lit = self.take()
            if tok == "end":
                return found
            if tok != ",":
                raise _SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            tok, lit = self.peek()
            if tok not in ("id", "!"):
                raise _SelectorError(f"found '{lit}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        tok, key = self.take()
        negated = tok == "!"
        if negated:
            tok, key = self.take()
        if tok != "id":
            raise _SelectorError(f"found '{key}', expected: identifier")
        key_errors = _qualified_name_errors(key)
        if key_errors:
            raise _SelectorError(_invalid("<nil>", _quote(key), "; ".join(key_errors)))
        if negated or self.peek()[0] in ("end", ","):
            return _new_requirement(key, "!" if negated else "exists", [])
        tok, lit = self.take(values=False)
        op = {"in": "in", "notin": "notin", ">": "gt", "<": "lt"}.get(tok, tok)
        if op not in _BINARY:
            raise _SelectorError(f"found '{lit}', expected: {', '.join(_BINARY)}")
        values = self.value_set() if op in ("in", "notin") else self.exact_value()
        return _new_requirement(key, op, sorted(values))

    def value_set(self) -> set[str]:
        tok, lit = self.take()
        if tok != "(":
            raise _SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.peek()
        if tok == ")":
            self.take()
            return {""}
        if tok not in ("id", ","):
            raise _SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:
            tok, lit = self.take()
            if tok == "id":
                values.add(lit)
                nxt, nlit = self.peek()
                if nxt == ")":
                    self.take()
                    return values
                if nxt != ",":
                    raise _SelectorError(f"found '{nlit}', expected: ',' or ')'")
            elif tok == ",":
                # Empty values around commas: "(,a", "a,,b" and "a,)" all add "".
                if not values:
                    values.add("")
                nxt, _ = self.peek()
                if nxt == ")":
                    self.take()
                    return values | {""}
                if nxt == ",":
                    self.take()
                    values.add("")
            else:
                raise _SelectorError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        tok, lit = self.peek()
        if tok in ("end", ","):
            return {""}
        tok, lit = self.take()
        if tok != "id":
            raise _SelectorError(f"found '{lit}', expected: identifier")
        return {lit}


def parse_label_selector(text: str) -> LabelSelector:
    """labels.Parse of a `labelSelector` query; "" selects everything."""
    try:
        return LabelSelector(tuple(_Parser(text).parse()))
    except _SelectorError as err:
        raise bad_request(str(err)) from None


_EXPRESSION_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A metav1.LabelSelector (matchLabels, matchExpressions) as LabelSelectorAsSelector reads it.

    Unlike LabelSelectorAsSelector (which maps nil to Nothing), None selects everything here,
    as an empty selector does: callers hold selectors the apiserver defaults to `{}`
    (webhook objectSelector/namespaceSelector) or that are always set (Job spec.selector).
    """
    if not selector:
        return LabelSelector()
    found: list[Requirement] = []
    try:
        for key, value in (selector.get("matchLabels") or {}).items():
            found.append(_new_requirement(str(key), "=", [str(value)]))
        for expr in selector.get("matchExpressions") or []:
            operator = expr.get("operator")
            if operator not in _EXPRESSION_OPERATORS:
                raise _SelectorError(
                    f"{_quote(str(operator))} is not a valid label selector operator"
                )
            values = [str(v) for v in expr.get("values") or []]
            op = _EXPRESSION_OPERATORS[operator]
            found.append(_new_requirement(str(expr.get("key", "")), op, values))
    except _SelectorError as err:
        raise bad_request(str(err)) from None
    return LabelSelector(tuple(found))
