"""Per-request state that must not leak between requests served at the same time.

aiohttp serves every request in a task of its own, with a copy of the context, so a context
variable set while serving a request belongs to that request even while other requests
interleave at awaits (webhook calls). Today it holds the request's warnings: webhook
`warnings` and unknown-field notices of `fieldValidation=Warn`, sent back as
`Warning: 299 - "..."` headers.
"""

from __future__ import annotations

import contextvars

_WARNINGS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "koos_sandbox_request_warnings", default=None
)


def request_warnings() -> list[str]:
    """The live, de-duplicated warning list of the current request."""
    current = _WARNINGS.get()
    if current is None:
        current = []
        _WARNINGS.set(current)
    return current


def reset_request_warnings() -> None:
    """Start an empty warning list for the current request."""
    _WARNINGS.set([])


def warn(text: str) -> None:
    warnings = request_warnings()
    if text and text not in warnings:
        warnings.append(text)
