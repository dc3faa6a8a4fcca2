"""String formats and RE2 patterns as kube-openapi checks them for CRD validation.

`format` values mean what go-openapi's strfmt registry says they mean, and `pattern` is an RE2
expression matched anywhere in the string (Go's `regexp.MatchString`). Only the formats
apiextensions keeps are known here; the rest are stripped before validation upstream.

Invariant: pure functions; a pattern Python cannot compile is reported as None so callers skip
the check instead of inventing an error the real server would not produce.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from datetime import date
from functools import lru_cache

# apiextensions keeps only these string formats (names normalized without dashes).
STRING_FORMATS = frozenset(
    {
        *("bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid"),
        *("uuid3", "uuid4", "uuid5", "isbn", "isbn10", "isbn13", "creditcard", "ssn"),
        *("hexcolor", "rgbcolor", "byte", "password", "date", "duration", "datetime", "quantity"),
    }
)
_UUID = {
    "uuid": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
    "uuid3": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
    "uuid4": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
    "uuid5": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
}
_TIME_PART = re.compile(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$")
_MAC = re.compile(
    r"^(?:[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){5,19}|[0-9a-fA-F]{4}(?:\.[0-9a-fA-F]{4}){2,9})$"
)
_HEXCOLOR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


@lru_cache(maxsize=256)
def go_regex(pattern: str) -> re.Pattern[str] | None:
    """Compile an RE2 pattern; Go's `$` is end-of-text, which is Python's `\\Z`."""
    out: list[str] = []
    i, in_class = 0, False
    multiline = re.search(r"\(\?[a-zA-Z]*m", pattern) is not None
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            pair = pattern[i : i + 2]
            out.append("\\Z" if pair == "\\z" else pair)
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            for lead in ("^", "]"):
                if pattern[i : i + 1] == lead:
                    out.append(lead)
                    i += 1
            continue
        elif ch == "$" and not multiline:
            ch = "\\Z"
        out.append(ch)
        i += 1
    try:
        return re.compile("".join(out), re.ASCII)
    except re.error:
        return None  # RE2-only syntax: the CRD was accepted upstream, so do not invent errors


def format_ok(fmt: str, text: str) -> bool:
    if fmt == "date":
        return _is_date(text)
    if fmt == "datetime":
        parts = text.lower().split("t")
        m = _TIME_PART.match(parts[1]) if len(text) >= 4 and len(parts) >= 2 else None
        return bool(m and _is_date(parts[0]) and m[1] <= "23" and m[2] <= "59" and m[3] <= "59")
    if fmt == "byte":
        try:
            base64.b64decode(text.encode(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return True
    if fmt in _UUID:
        return re.match(_UUID[fmt], text) is not None
    if fmt in ("ipv4", "ipv6", "cidr"):
        return _is_ip(fmt, text)
    if fmt == "mac":
        return _MAC.match(text) is not None
    if fmt == "hexcolor":
        return _HEXCOLOR.match(text) is not None
    return True


def _is_date(text: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return False
    try:
        date(int(text[:4]), int(text[5:7]), int(text[8:]))
    except ValueError:
        return False
    return True


def _is_ip(fmt: str, text: str) -> bool:
    if "%" in text:
        return False  # Go's net.ParseIP rejects zones
    try:
        if fmt == "cidr":
            return "/" in text and ipaddress.ip_network(text, strict=False) is not None
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return ("." if fmt == "ipv4" else ":") in text
