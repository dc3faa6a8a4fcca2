"""The vocabulary of the protobuf message tables: value kinds, presence rules, `Field`.

Shared by `protobuf_schema` (meta/v1 and the API groups other than core) and
`protobuf_core` (core/v1, which alone is longer than the rest); see `protobuf_schema` for
where the field numbers come from and the invariants the tables keep.
"""

from __future__ import annotations

from dataclasses import dataclass

# Value kinds. Scalars map to one protobuf scalar type each; the rest are Kubernetes types
# with a JSON form of their own.
STRING = "string"
INT32 = "int32"
INT64 = "int64"
BOOL = "bool"
BYTES = "bytes"  # JSON: base64
MESSAGE = "message"  # JSON: object, from the table named by Field.type
TIME = "time"  # metav1.Time {seconds(1), nanos(2)}: JSON RFC 3339 string, zero -> null
QUANTITY = "quantity"  # resource.Quantity {string(1)}: JSON string
INT_OR_STRING = "intstr"  # intstr.IntOrString {type(1), intVal(2), strVal(3)}: int or string
FIELDS_V1 = "fieldsv1"  # metav1.FieldsV1 {Raw(1)}: the raw JSON it carries
STRING_LIST = "stringlist"  # authentication/authorization ExtraValue {items(1)}: list

SCALARS = frozenset({STRING, INT32, INT64, BOOL, BYTES})
VARINTS = frozenset({INT32, INT64, BOOL})

# Shapes.
SINGLE = "single"
LIST = "list"  # repeated
MAP = "map"  # repeated entry message {key(1): string, value(2)}

# Presence: what Go's encoding/json prints for the field.
OPT = "omitempty"  # non-pointer with `omitempty`: omitted when zero / empty
REQ = "required"  # no `omitempty`: always printed; a zero value when absent, lists/maps null
PTR = "pointer"  # pointer with `omitempty`: printed iff present on the wire
PTR_REQ = "pointer-required"  # pointer without `omitempty`: the value, or null when absent
STRUCT = "struct"  # non-pointer struct (omitempty has no effect): always printed
INLINE = "inline"  # embedded struct with `json:",inline"`: its fields merge into the parent


@dataclass(frozen=True, slots=True)
class Field:
    """One protobuf field of a message and the JSON field it becomes."""

    number: int
    json: str  # "" for INLINE
    kind: str
    type: str = ""  # the table name when kind is MESSAGE
    shape: str = SINGLE
    presence: str = OPT


def _s(number: int, name: str, presence: str = OPT) -> Field:
    return Field(number, name, STRING, presence=presence)


def _i32(number: int, name: str, presence: str = OPT) -> Field:
    return Field(number, name, INT32, presence=presence)


def _i64(number: int, name: str, presence: str = OPT) -> Field:
    return Field(number, name, INT64, presence=presence)


def _b(number: int, name: str, presence: str = OPT) -> Field:
    return Field(number, name, BOOL, presence=presence)


def _m(number: int, name: str, type_: str, presence: str = STRUCT) -> Field:
    return Field(number, name, MESSAGE, type_, presence=presence)


def _p(number: int, name: str, type_: str) -> Field:
    """A pointer to a message (`*T` with omitempty)."""
    return Field(number, name, MESSAGE, type_, presence=PTR)


def _inline(number: int, type_: str) -> Field:
    return Field(number, "", MESSAGE, type_, presence=INLINE)


def _time(number: int, name: str, presence: str = STRUCT) -> Field:
    return Field(number, name, TIME, presence=presence)


def _strs(number: int, name: str, presence: str = OPT) -> Field:
    return Field(number, name, STRING, shape=LIST, presence=presence)


def _msgs(number: int, name: str, type_: str, presence: str = OPT) -> Field:
    return Field(number, name, MESSAGE, type_, shape=LIST, presence=presence)


def _map(number: int, name: str, kind: str = STRING, type_: str = "") -> Field:
    return Field(number, name, kind, type_, shape=MAP)


META = "metadata"
