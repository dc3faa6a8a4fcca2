"""How a PATCH that cannot be applied is refused, shared by JSON and strategic merge patch.

kube-apiserver words patch failures in two ways: failures it wraps with
`NewGenericServerResponse` keep only the canned 422 message (`rejected`), and plain Go errors
reaching the handler are a 500 with an empty reason (`internal`). Messages name JSON values by
the JSON kind Go's decoder prints (`json_kind`) or by their Go type (`go_type`).

Invariant: pure functions; the error constructors return the `ApiError`, they never raise.
"""

from __future__ import annotations

from typing import Any

from koos_sandbox.errors import ApiError

_REJECTED_422 = "the server rejected our request due to an error in our request"


def rejected() -> ApiError:
    # NewGenericServerResponse(422, ...) keeps only its canned message, not the cause.
    return ApiError(422, "Invalid", _REJECTED_422)


def internal(message: str) -> ApiError:
    # A plain Go error reaching the handler: code 500 with StatusReasonUnknown ("").
    return ApiError(500, "", message)


_TYPES = (
    (dict, "object", "map[string]interface {}"),
    (list, "array", "[]interface {}"),
    (bool, "bool", "bool"),
    (str, "string", "string"),
    (int, "number", "int64"),
    (float, "number", "float64"),
)


def json_kind(value: Any) -> str:
    """The JSON kind Go's decoder names in "cannot unmarshal <kind> into ..."."""
    return next((name for typ, name, _ in _TYPES if isinstance(value, typ)), "null")


def go_type(value: Any) -> str:
    """reflect.TypeOf of a value decoded from JSON, as apimachinery's messages print it."""
    return next((name for typ, _, name in _TYPES if isinstance(value, typ)), "<nil>")
