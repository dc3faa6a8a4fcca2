"""Render JSON values and durations the way kube-apiserver's Go code prints them.

kubectl shows apiserver messages verbatim, so the sandbox must reproduce Go's renderings:
`strconv.Quote`, `fmt`'s `%v` and `%#v` for values decoded from JSON, `encoding/json`'s
compact output, apimachinery's `duration.HumanDuration`, and RFC 3339 timestamps. Values are
plain JSON data (dict, list, str, int, float, bool, None): a Python int stands for Go's int64
and a float for float64, exactly as apimachinery's unstructured decoder types them.

Invariant: every function here is pure and total over JSON data; none raises on odd input.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n"}
_ESCAPES |= {"\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(text: str) -> str:
    """`strconv.Quote`: what Go's `%q` prints for a string."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits and the decimal point position, as strconv computes them."""
    _sign, digits, exponent = Decimal(repr(abs(value))).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    point = len(digits) + exponent
    return text, point


def go_float(value: float) -> str:
    """`fmt`'s `%v` for a float64 (strconv 'g' with shortest precision)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = _shortest_digits(value)
    exp = point - 1
    # With shortest precision Go switches to %e at exponent 6, not at 21 like JavaScript.
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def go_v(value: Any) -> str:
    """`fmt`'s `%v` for a JSON scalar (strings unquoted)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    return str(value)


def go_sharp_v(value: Any) -> str:
    """`fmt`'s `%#v` for a value held in an `interface{}` after JSON decoding."""
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, dict):
        inner = ", ".join(f"{go_quote(k)}:{go_sharp_v(value[k])}" for k in sorted(value))
        return "map[string]interface {}{" + inner + "}"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(go_sharp_v(v) for v in value) + "}"
    return go_v(value)


def bad_value(value: Any) -> str:
    """How apimachinery 1.32's `field.Error.ErrorBody` renders a field error's bad value."""
    if value is None:
        return '"null"'
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool | int | float):
        return go_v(value)
    return go_sharp_v(value)


def _json_float(value: float) -> str:
    if not math.isfinite(value):
        return "null"
    if value == 0:
        return "0"
    digits, point = _shortest_digits(value)
    sign = "-" if value < 0 else ""
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        exp = point - 1
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp)}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _json_string(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        encoded = encoded.replace(raw, esc)
    return encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def go_json(value: Any) -> str:
    """`encoding/json.Marshal`: compact, map keys sorted, HTML-escaped strings."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, dict):
        inner = ",".join(f"{_json_string(k)}:{go_json(value[k])}" for k in sorted(value))
        return "{" + inner + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    return _json_string(str(value))


_NS = 1_000_000_000


def _human_ns(ns: int) -> str:
    seconds = int(ns / _NS)  # Go's int(d.Seconds()) truncates toward zero
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = ns // (60 * _NS)
    if minutes < 10:
        sec = (ns // _NS) % 60
        return f"{minutes}m" if sec == 0 else f"{minutes}m{sec}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = ns // (3600 * _NS)
    if hours < 8:
        mins = minutes % 60
        return f"{hours}h" if mins == 0 else f"{hours}h{mins}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def human_duration(seconds: float) -> str:
    """apimachinery `duration.HumanDuration`: "5s", "3m12s", "119m", "7h5m", "2d3h", "3y20d"."""
    return _human_ns(round(seconds * _NS))


def _delta_ns(delta: timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$"
)


def parse_time(text: Any) -> datetime | None:
    """Go's `time.Parse(time.RFC3339, text)` (fractional seconds accepted); None if invalid."""
    if not isinstance(text, str):
        return None
    m = _RFC3339.match(text)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micros = int((m.group(7) or "0")[:6].ljust(6, "0"))
    zone = m.group(8)
    try:
        moment = datetime(year, month, day, hour, minute, second, micros, tzinfo=UTC)
    except ValueError:
        return None
    if zone != "Z":
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        moment = moment - offset if zone[0] == "+" else moment + offset
    return moment


def aware(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def since(timestamp: Any, now: datetime) -> str:
    """printers.go `translateTimestampSince`: "<unknown>" for a missing timestamp."""
    moment = parse_time(timestamp)
    if moment is None:
        return "<unknown>"
    return _human_ns(_delta_ns(aware(now) - moment))


def between(start: datetime, end: datetime) -> str:
    return _human_ns(_delta_ns(aware(end) - aware(start)))
