"""kube-openapi's schema validator for custom objects, with apiextensions' error wording.

Runs the validators kube-openapi's SchemaValidator runs, in its order (type, anyOf/oneOf/allOf/
not, string, format, number, array, enum, object), and converts each error the way apiextensions'
`kubeOpenAPIResultToFieldErrors` does in kube-apiserver 1.32, so kubectl prints familiar text.
A field is named by kube-openapi's own path string ("spec.replicas", "spec.items[0]",
"spec.labels.app"); errors without a path (anyOf/oneOf/allOf/not) have field "" here, which
callers render as "<nil>" like apiserver does.

Invariants: pure, never mutates its inputs; property errors come in schema order where Go's
map iteration would give a random one; `x-kubernetes-validations` (CEL) are not evaluated.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from koos_sandbox.goformat import bad_value, go_float, go_json, go_quote
from koos_sandbox.schema_formats import STRING_FORMATS, format_ok, go_regex

Cause = tuple[str, str]

_MAX_JSON_INT = float(2**53 - 1)


class _Result:
    """A kube-openapi Result: errors plus a match count used to pick anyOf/oneOf failures."""

    __slots__ = ("causes", "matches")

    def __init__(self) -> None:
        self.causes: list[Cause] = []
        self.matches = 0

    def merge(self, other: _Result) -> None:
        self.causes.extend(other.causes)
        self.matches += other.matches


def _field(name: str) -> str:
    """kube-openapi name -> field path: the leading "." of root-level names is trimmed."""
    return name[1:] if name.startswith(".") else name


def _in(name: str) -> str:
    return f"{name} in body"


def _invalid(name: str, value: Any, detail: str) -> Cause:
    return (_field(name), f"Invalid value: {bad_value(value)}: {detail}")


def _type_invalid(name: str, type_name: str, value: str) -> Cause:
    return _invalid(name, value, f"{_in(name)} must be of type {type_name}: {go_quote(value)}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _types(schema: dict[str, Any]) -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    kind = schema.get("type")
    return [kind] if isinstance(kind, str) and kind else []


def _format(schema: dict[str, Any], types: list[str]) -> str:
    fmt = schema.get("format")
    if not isinstance(fmt, str) or not fmt:
        return ""
    kind = types[0] if len(types) == 1 else ""
    if kind in ("", "string"):
        return fmt if fmt.replace("-", "") in STRING_FORMATS else ""
    allowed = {"integer": ("int32", "int64"), "number": ("float", "double")}.get(kind, ())
    return fmt if fmt in allowed else ""


def _json_integer(value: float) -> bool:
    return abs(value) <= _MAX_JSON_INT and float(value).is_integer()


def deep_equal(a: Any, b: Any) -> bool:
    """Go's reflect.DeepEqual on decoded JSON: int64 and float64 never compare equal."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _enum_match(data: Any, member: Any) -> bool:
    if member is None or data is None:
        return False  # a nil enum member has no type, and a nil datum converts to nothing
    numeric = (int, float)
    if type(member) in numeric and type(data) in numeric:
        return bool((int(data) if type(member) is int else float(data)) == member)
    return deep_equal(data, member)


def _check_type(value: Any, schema: dict[str, Any], name: str, res: _Result) -> bool:
    types = _types(schema)
    fmt = _format(schema, types)
    if not types and not fmt:
        return True
    if value is None:
        if types and not schema.get("nullable"):
            res.causes.append(_type_invalid(name, ",".join(types), "null"))
            return False
        return True
    kind = _kind(value)
    found_fmt = {"integer": "int64", "number": "float64"}.get(kind, "")
    float_int = kind == "number" and _json_integer(value) and "integer" in types
    int_float = kind == "integer" and "number" in types
    matched = kind in types or float_int or int_float
    if kind not in ("string", "array") and fmt and not (matched or found_fmt == fmt):
        res.causes.append(_type_invalid(name, fmt, found_fmt))
        return False
    if fmt and kind in ("string", "array") and not {"number", "integer"} & set(types):
        return True
    if not matched:
        res.causes.append(_type_invalid(name, ",".join(types), kind))
        return False
    return True


def _check_string(text: str, schema: dict[str, Any], name: str, res: _Result) -> None:
    limit, least, pattern = schema.get("maxLength"), schema.get("minLength"), schema.get("pattern")
    if isinstance(limit, int) and len(text) > limit:
        unit = "byte" if limit == 1 else "bytes"
        res.causes.append((_field(name), f"Too long: may not be more than {limit} {unit}"))
    elif isinstance(least, int) and len(text) < least:
        res.causes.append(
            _invalid(name, text, f"{_in(name)} should be at least {least} chars long")
        )
    elif isinstance(pattern, str) and pattern:
        compiled = go_regex(pattern)
        if compiled is not None and not compiled.search(text):
            res.causes.append(_invalid(name, text, f"{_in(name)} should match '{pattern}'"))
    fmt = _format(schema, _types(schema)).replace("-", "")
    if fmt and not format_ok(fmt, text):
        res.causes.append(_type_invalid(name, _format(schema, _types(schema)), text))


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_number(num: float, schema: dict[str, Any], name: str, res: _Result) -> None:
    """numberValidator: integers compare against int64(bound), as MaximumNativeType does."""
    is_int = isinstance(num, int)

    def show(bound: float) -> str:
        return str(bound) if is_int else go_float(bound)

    factor = schema.get("multipleOf")
    if _is_number(factor):
        base = int(factor) if is_int else float(factor)
        if base < 0:
            detail = f"factor MultipleOf declared for {name} must be positive: {show(base)}"
            res.causes.append(_invalid(name, base, detail))
        elif base != 0:
            if is_int:
                bad = num % base != 0
            else:
                bad = not _json_integer(1 / base * num if base < 1 else num / base)
            if bad:
                detail = f"{_in(name)} should be a multiple of {show(base)}"
                res.causes.append(_invalid(name, num, detail))
    low, high = schema.get("minimum"), schema.get("maximum")
    if _is_number(low):
        limit = int(low) if is_int else float(low)
        if schema.get("exclusiveMinimum") and num <= limit:
            res.causes.append(
                _invalid(name, num, f"{_in(name)} should be greater than {show(limit)}")
            )
        elif num < limit:
            detail = f"{_in(name)} should be greater than or equal to {show(limit)}"
            res.causes.append(_invalid(name, num, detail))
    if _is_number(high):
        limit = int(high) if is_int else float(high)
        if schema.get("exclusiveMaximum") and num >= limit:
            res.causes.append(_invalid(name, num, f"{_in(name)} should be less than {show(limit)}"))
        elif num > limit:
            detail = f"{_in(name)} should be less than or equal to {show(limit)}"
            res.causes.append(_invalid(name, num, detail))


def _check_array(items: list[Any], schema: dict[str, Any], name: str, res: _Result) -> None:
    sub = schema.get("items")
    if isinstance(sub, dict):
        for i, item in enumerate(items):
            res.merge(_validate(item, sub, f"{name}[{i}]"))
    least, most = schema.get("minItems"), schema.get("maxItems")
    if isinstance(least, int) and len(items) < least:
        res.causes.append(
            _invalid(name, len(items), f"{_in(name)} should have at least {least} items")
        )
    if isinstance(most, int) and len(items) > most:
        unit = "item" if most == 1 else "items"
        res.causes.append(
            (_field(name), f"Too many: {len(items)}: must have at most {most} {unit}")
        )
    unique = schema.get("uniqueItems") is True
    if unique and any(deep_equal(a, b) for i, a in enumerate(items) for b in items[:i]):
        res.causes.append(_invalid(name, "", f"{_in(name)} shouldn't contain duplicates"))
    res.matches += 1


def _check_object(obj: dict[str, Any], schema: dict[str, Any], name: str, res: _Result) -> None:
    count, least, most = len(obj), schema.get("minProperties"), schema.get("maxProperties")
    if isinstance(least, int) and count < least:
        detail = f"{_in(name)} should have at least {least} properties"
        res.causes.append(_invalid(name, count, detail))
        return
    if isinstance(most, int) and count > most:
        unit = "item" if most == 1 else "items"
        res.causes.append((_field(name), f"Too many: {count}: must have at most {most} {unit}"))
        return
    found = schema.get("properties")
    props: dict[str, Any] = found if isinstance(found, dict) else {}
    extra = schema.get("additionalProperties")
    for key, value in obj.items():
        if key in props:
            continue
        if extra is False:
            res.causes.append(_invalid(name, key, f"{name}.{key} in body is a forbidden property"))
        elif isinstance(extra, dict):
            res.merge(_validate(value, extra, f"{name}.{key}"))
    for key, sub in props.items():
        if key in obj:
            res.merge(_validate(obj[key], sub, f"{name}.{key}" if name else key))
    for key in schema.get("required") or ():
        if key not in obj:
            res.causes.append((_field(f"{name}.{key}"), "Required value"))


def _composite(name: str, text: str) -> Cause:
    return ("", f'Invalid value: "": {go_quote(name)} {text}')


def _check_combinators(value: Any, schema: dict[str, Any], name: str, res: _Result) -> None:
    any_of, one_of, all_of, negated = (schema.get(k) for k in ("anyOf", "oneOf", "allOf", "not"))
    if isinstance(any_of, list) and any_of:
        best: _Result | None = None
        for sub in any_of:
            got = _validate(value, sub, name)
            if not got.causes:
                res.merge(got)
                break
            if best is None or got.matches > best.matches:
                best = got
        else:
            res.causes.append(_composite(name, "must validate at least one schema (anyOf)"))
            if best is not None:
                res.merge(best)
    if isinstance(one_of, list) and one_of:
        results = [_validate(value, sub, name) for sub in one_of]
        passed = [r for r in results if not r.causes]
        if len(passed) == 1:
            res.merge(passed[0])
        else:
            found = "Found none valid" if not passed else f"Found {len(passed)} valid alternatives"
            text = f"must validate one and only one schema (oneOf). {found}"
            res.causes.append(_composite(name, text))
            if not passed:
                res.merge(max(results, key=lambda r: r.matches))
    if isinstance(all_of, list) and all_of:
        results = [_validate(value, sub, name) for sub in all_of]
        for got in results:
            res.merge(got)
        valid = sum(1 for r in results if not r.causes)
        if valid != len(results):
            tail = ". None validated" if valid == 0 else ""
            res.causes.append(_composite(name, f"must validate all the schemas (allOf){tail}"))
    if isinstance(negated, dict) and not _validate(value, negated, name).causes:
        res.causes.append(_composite(name, "must not validate the schema (not)"))


def _check_enum(value: Any, schema: dict[str, Any], name: str, res: _Result) -> None:
    members = schema.get("enum")
    if not isinstance(members, list) or not members:
        return
    if any(_enum_match(value, m) for m in members):
        return
    shown = ", ".join(go_quote(m if isinstance(m, str) else go_json(m)) for m in members)
    res.causes.append(
        (_field(name), f"Unsupported value: {bad_value(value)}: supported values: {shown}")
    )


def _validate(value: Any, schema: Any, name: str) -> _Result:
    """kube-openapi's SchemaValidator.Validate: validators in its order, errors in that order."""
    res = _Result()
    if not isinstance(schema, dict):
        return res
    if value is None:
        _check_type(None, schema, name, res)
        _check_enum(None, schema, name, res)
        return res
    if _check_type(value, schema, name, res):
        res.matches += 1
    _check_combinators(value, schema, name, res)
    if isinstance(value, str):
        _check_string(value, schema, name, res)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, name, res)
        res.matches += 1
    elif isinstance(value, list):
        _check_array(value, schema, name, res)
    _check_enum(value, schema, name, res)
    if isinstance(value, dict):
        _check_object(value, schema, name, res)
    res.matches += 1
    return res


def value_causes(value: Any, schema: dict[str, Any]) -> list[Cause]:
    """kube-openapi errors for a value validated at the schema root; "" marks a nil field."""
    return _validate(value, schema, "").causes
