"""Errors the sandbox answers with, as kube-apiserver's `kind: Status` bodies.

Every refusal in the sandbox is an `ApiError`; the HTTP layer turns it into a response with
the same code, reason and message the real API server would use. Helpers below name the
common ones so call sites read like the apiserver's own `errors.NewNotFound(...)`.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A refusal with a Kubernetes `Status` body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:
            body["reason"] = self.reason
        body["code"] = self.code
        if self.details:
            body["details"] = self.details
        return body


def _details(resource: str, name: str, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": resource}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return details


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(resource, group)} "{name}" not found',
        details=_details(resource, name, group),
    )


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        details=_details(resource, name, group),
    )


def conflict(resource: str, name: str, group: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
        details=_details(resource, name, group),
    )


def forbidden(resource: str, name: str, group: str, why: str) -> ApiError:
    """403 Forbidden, worded like apiserver's `errors.NewForbidden` (without a name:
    `<resource> is forbidden: …`)."""
    qualified = _qualified(resource, group)
    subject = f'{qualified} "{name}"' if name else qualified
    return ApiError(
        403, "Forbidden", f"{subject} is forbidden: {why}", details=_details(resource, name, group)
    )


def aggregate(messages: list[str]) -> str:
    """The text of several errors as one, as `utilerrors.NewAggregate` writes it."""
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


def invalid(kind: str, name: str, group: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid, worded like apiserver's `errors.NewInvalid`.

    `causes` are (field path, message) pairs, e.g. ("spec.replicas", "Required value").
    """
    text = aggregate([f"{field}: {msg}" if field else msg for field, msg in causes])
    qualified = _qualified(kind, group)
    details = _details(kind, name, group)
    details["causes"] = [
        {"reason": _cause_reason(msg), "message": msg, "field": field} for field, msg in causes
    ]
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {text}', details=details)


def _cause_reason(message: str) -> str:
    for prefix, reason in (
        ("Required value", "FieldValueRequired"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Forbidden", "FieldValueForbidden"),
        ("Duplicate value", "FieldValueDuplicate"),
        ("Too long", "FieldValueTooLong"),
        ("Too many", "FieldValueTooMany"),
    ):
        if message.startswith(prefix):
            return reason
    return "FieldValueInvalid"


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


PATCH_TYPES = (
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
)


def unsupported_media_type(accepted: str = PATCH_TYPES) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{accepted}",
    )


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
