"""Decode Kubernetes protobuf request bodies into the JSON the API server would have printed.

Role: kubectl's typed commands (`create configmap|secret|namespace|serviceaccount|job|cronjob|
deployment|token`, `auth whoami`, `auth can-i`, `drain`'s evictions) send
`Content-Type: application/vnd.kubernetes.protobuf`. `decode_object(body)` turns such a body into
the dict the sandbox would have had from the same object sent as JSON.

The wire format: the 4-byte magic `k8s\\x00`, then a `runtime.Unknown` message
{typeMeta(1): {apiVersion(1), kind(2)}, raw(2), contentEncoding(3), contentType(4)} whose `raw`
is the object's own protobuf message. The message layouts live in `protobuf_schema`.

Invariants:
- The result is what Go's `encoding/json` prints for the struct that gogo-protobuf decodes from
  the same bytes: JSON field names and Go struct order, `kind`/`apiVersion` from the envelope,
  zero values of `omitempty` fields left out, fields without `omitempty` always present (a
  zero `metav1.Time` as `null`, absent required lists as `null`), non-pointer structs always
  present (so `creationTimestamp: null`, `status: {}` and `resources: {}` appear exactly as
  `kubectl create ... --dry-run=client -o json` prints them). `metav1.Time` prints as RFC 3339
  in UTC at second precision (Go's protobuf Time keeps seconds only); `resource.Quantity` as its
  string as sent ("0" when empty; no canonicalisation); `intstr.IntOrString` as int or string;
  `bytes` (Secret.data, ConfigMap.binaryData) as standard base64; map keys sorted.
- Unknown field numbers inside a known message are skipped silently, as gogo-protobuf does, so
  newer clients' fields do not break decoding; they are simply absent from the result.
- Repeated scalars are accepted both unpacked (what gogo's proto2 encoding emits) and packed.
  A non-repeated message field that appears more than once is merged, as protobuf specifies.
- Anything that is not a well-formed envelope around a covered (apiVersion, kind) raises
  `ApiError(415, "UnsupportedMediaType")` worded like kube-apiserver's refusal of a media type
  it does not accept for that resource; the parse error is chained as `__cause__`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from koos_sandbox.errors import ApiError
from koos_sandbox.protobuf_fields import (
    BOOL,
    BYTES,
    FIELDS_V1,
    INLINE,
    INT32,
    INT64,
    INT_OR_STRING,
    LIST,
    MAP,
    MESSAGE,
    OPT,
    PTR,
    PTR_REQ,
    QUANTITY,
    REQ,
    SINGLE,
    STRING,
    STRING_LIST,
    STRUCT,
    TIME,
    VARINTS,
    Field,
)
from koos_sandbox.protobuf_schema import (
    KINDS,
    MESSAGES,
    table_for,
)

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
# What the sandbox accepts instead, for the 415 text.
ACCEPTED_INSTEAD = ("application/json", "application/yaml")

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class WireError(ValueError):
    """The bytes are not a protobuf message of the expected shape."""


def is_protobuf(content_type: str) -> bool:
    """Whether a request's media type (parameters stripped) is Kubernetes protobuf."""
    return content_type.split(";", 1)[0].strip().lower() == MEDIA_TYPE


def supported_kinds() -> frozenset[tuple[str, str]]:
    """The (apiVersion, kind) pairs `decode_object` understands (plus DeleteOptions anywhere)."""
    return frozenset(KINDS)


class UndecodableBody(ApiError):
    """kube-apiserver's 415 for a body in a media type it does not take for this request.

    `why` says, for logs and tests, what could not be decoded; the client sees only the
    apiserver's wording.
    """

    def __init__(self, why: str = "") -> None:
        super().__init__(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(ACCEPTED_INSTEAD),
        )
        self.why = why


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON object (as a dict) carried by a `k8s\\x00`-prefixed protobuf request body."""
    if not body.startswith(MAGIC):
        raise UndecodableBody("the body does not start with the Kubernetes protobuf magic")
    try:
        api_version, kind, raw, encoding = _envelope(body[len(MAGIC) :])
        if encoding:
            raise WireError(f"unsupported contentEncoding {encoding!r}")
        table = table_for(api_version, kind)
        if table is None:
            raise WireError(f"no protobuf table for {api_version or '?'}/{kind or '?'}")
        obj = decode_message(table, raw)
    except WireError as exc:
        raise UndecodableBody(str(exc)) from exc
    return {"kind": kind, "apiVersion": api_version, **obj}


def decode_message(table: str, data: bytes) -> dict[str, Any]:
    """Decode one message of the named table (see `protobuf_schema.MESSAGES`) to its JSON."""
    fields = MESSAGES[table]
    by_number = _index(table)
    seen: dict[int, list[tuple[int, int | bytes]]] = {}
    for number, wire, value in iter_fields(data):
        if number in by_number:
            seen.setdefault(number, []).append((wire, value))
    out: dict[str, Any] = {}
    for field in fields:
        _render(field, seen.get(field.number), out)
    return out


# --- wire format ---


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned varint at `pos`: (value, position after it). At most 10 bytes, 64 bits."""
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


def iter_fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field: ints for varint/fixed, bytes otherwise."""
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0 or number > 0x1FFFFFFF:
            raise WireError(f"illegal field number {number}")
        value: int | bytes
        if wire == VARINT:
            value, pos = read_varint(data, pos)
        elif wire == LENGTH:
            size, pos = read_varint(data, pos)
            if size > end - pos:
                raise WireError(f"field {number}: length {size} runs past the end")
            value = data[pos : pos + size]
            pos += size
        elif wire in (FIXED64, FIXED32):
            width = 8 if wire == FIXED64 else 4
            if width > end - pos:
                raise WireError(f"field {number}: truncated fixed-width value")
            value = int.from_bytes(data[pos : pos + width], "little")
            pos += width
        else:
            raise WireError(f"field {number}: unsupported wire type {wire}")
        yield number, wire, value


def signed(value: int, bits: int) -> int:
    """Two's complement: a varint's low `bits` bits as a signed integer (Go's int32/int64)."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _envelope(data: bytes) -> tuple[str, str, bytes, str]:
    api_version = kind = encoding = ""
    raw = b""
    for number, wire, value in iter_fields(data):
        if number == 1:
            for sub, sub_wire, sub_value in iter_fields(_bytes(wire, value, "typeMeta")):
                if sub == 1:
                    api_version = _text(sub_wire, sub_value, "apiVersion")
                elif sub == 2:
                    kind = _text(sub_wire, sub_value, "kind")
        elif number == 2:
            raw = _bytes(wire, value, "raw")
        elif number == 3:
            encoding = _text(wire, value, "contentEncoding")
    return api_version, kind, raw, encoding


# --- values ---

_INDEXES: dict[str, dict[int, Field]] = {}


def _index(table: str) -> dict[int, Field]:
    index = _INDEXES.get(table)
    if index is None:
        index = _INDEXES[table] = {field.number: field for field in MESSAGES[table]}
    return index


def _bytes(wire: int, value: int | bytes, what: str) -> bytes:
    if wire != LENGTH or not isinstance(value, bytes):
        raise WireError(f"{what}: wrong wire type {wire}")
    return value


def _text(wire: int, value: int | bytes, what: str) -> str:
    # Go keeps invalid UTF-8 in strings; its JSON encoder prints U+FFFD for it.
    return _bytes(wire, value, what).decode("utf-8", errors="replace")


def _scalar(field: Field, wire: int, value: int | bytes) -> Any:
    if field.kind in VARINTS:
        if wire != VARINT or not isinstance(value, int):
            raise WireError(f"{field.json}: wrong wire type {wire}")
        if field.kind == INT32:
            return signed(value, 32)
        if field.kind == INT64:
            return signed(value, 64)
        return value != 0
    if field.kind == STRING:
        return _text(wire, value, field.json)
    if field.kind == BYTES:
        return base64.b64encode(_bytes(wire, value, field.json)).decode("ascii")
    return _struct(field, _bytes(wire, value, field.json))


def _zero(field: Field) -> Any:
    if field.kind in (INT32, INT64):
        return 0
    if field.kind == BOOL:
        return False
    if field.kind in (STRING, BYTES):
        return ""
    return _struct(field, b"")


def _struct(field: Field, data: bytes) -> Any:
    """A message-valued field's JSON; `data` is empty for a zero (or absent) value."""
    kind = field.kind
    if kind == MESSAGE:
        return decode_message(field.type, data)
    if kind == TIME:
        if not data:
            return None  # Go: zero metav1.Time, which prints as null
        seconds = 0
        for number, wire, value in iter_fields(data):
            if number == 1:
                seconds = signed(_varint(wire, value, "seconds"), 64)
        # Go's protobuf Time drops nanos; JSON prints RFC 3339 seconds in UTC.
        try:
            when = _EPOCH + timedelta(seconds=seconds)
        except OverflowError as exc:
            raise WireError(f"{field.json}: time out of range") from exc
        return (
            f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
            f"T{when.hour:02d}:{when.minute:02d}:{when.second:02d}Z"
        )
    if kind == QUANTITY:
        text = ""
        for number, wire, value in iter_fields(data):
            if number == 1:
                text = _text(wire, value, field.json)
        return text or "0"
    if kind == INT_OR_STRING:
        type_, int_val, str_val = 0, 0, ""
        for number, wire, value in iter_fields(data):
            if number == 1:
                type_ = signed(_varint(wire, value, "type"), 64)
            elif number == 2:
                int_val = signed(_varint(wire, value, "intVal"), 32)
            elif number == 3:
                str_val = _text(wire, value, "strVal")
        return str_val if type_ == 1 else int_val
    if kind == FIELDS_V1:
        raw = b""
        for number, wire, value in iter_fields(data):
            if number == 1:
                raw = _bytes(wire, value, field.json)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise WireError(f"{field.json}: not JSON") from exc
    if kind == STRING_LIST:
        return [_text(w, v, field.json) for n, w, v in iter_fields(data) if n == 1]
    raise WireError(f"{field.json}: no decoder for kind {kind}")  # pragma: no cover


def _varint(wire: int, value: int | bytes, what: str) -> int:
    if wire != VARINT or not isinstance(value, int):
        raise WireError(f"{what}: wrong wire type {wire}")
    return value


def _render(field: Field, items: list[tuple[int, int | bytes]] | None, out: dict[str, Any]) -> None:
    if field.shape == LIST:
        values = _list(field, items or [])
        if values or field.presence == REQ:
            out[field.json] = values or None
        return
    if field.shape == MAP:
        entries = _map(field, items or [])
        if entries or field.presence == REQ:
            out[field.json] = entries or None
        return
    assert field.shape == SINGLE
    value: Any = None
    if items and (field.kind in VARINTS or field.kind in (STRING, BYTES)):
        value = _scalar(field, *items[-1])  # a scalar seen more than once: the last one wins
    elif items:
        # A message field seen more than once merges: decode the concatenation.
        value = _struct(field, b"".join(_bytes(w, v, field.json) for w, v in items))
    presence = field.presence
    if presence == INLINE:
        out.update(value if items else _struct(field, b""))
    elif presence == OPT:
        if value:  # only scalars are OPT: zero / empty is omitted
            out[field.json] = value
    elif presence in (REQ, STRUCT):
        out[field.json] = value if items else _zero(field)
    elif presence == PTR:
        if items:
            out[field.json] = value
    elif presence == PTR_REQ:
        out[field.json] = value
    else:  # pragma: no cover
        raise WireError(f"{field.json}: unknown presence {presence}")


def _list(field: Field, items: list[tuple[int, int | bytes]]) -> list[Any]:
    values: list[Any] = []
    for wire, value in items:
        if field.kind in VARINTS and wire == LENGTH and isinstance(value, bytes):
            pos = 0  # packed
            while pos < len(value):
                number, pos = read_varint(value, pos)
                values.append(_scalar(field, VARINT, number))
        else:
            values.append(_scalar(field, wire, value))
    return values


def _map(field: Field, items: list[tuple[int, int | bytes]]) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    for wire, value in items:
        key = ""
        found: tuple[int, int | bytes] | None = None
        for number, entry_wire, entry_value in iter_fields(_bytes(wire, value, field.json)):
            if number == 1:
                key = _text(entry_wire, entry_value, field.json)
            elif number == 2:
                found = (entry_wire, entry_value)
        entries[key] = _scalar(field, *found) if found else _zero(field)
    return dict(sorted(entries.items()))


__all__ = [
    "MAGIC",
    "MEDIA_TYPE",
    "UndecodableBody",
    "WireError",
    "decode_message",
    "decode_object",
    "is_protobuf",
    "iter_fields",
    "read_varint",
    "signed",
    "supported_kinds",
]
