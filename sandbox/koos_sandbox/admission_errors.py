"""How admission refuses a write, and the Go wording of a webhook call that failed.

Two kinds of failure (see admission.py for when each applies):
- a refusal answered to the client: `denied` (the webhook said no, its Status kept as
  `WebhookStatusError`), `internal_error` (a 500 InternalError), `dry_run_unsupported`;
- `CallFailed`: the webhook could not be asked; its `reason` is worded as client-go and the
  apiserver word it (`http_error`, `transport_error`, `evanphx_error`, `json_type`,
  `bad_base64_at`), and the webhook's failure policy decides what happens next.

Invariant: pure wording; nothing here calls a webhook or reads the store, and the
constructors return their error rather than raise it.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp

from koos_sandbox import errors
from koos_sandbox.errors import ApiError

# ---- errors --------------------------------------------------------------------------------


class CallFailed(Exception):
    """`webhookutil.ErrCallingWebhook`: the webhook could not be asked; the failure policy
    decides. `reason` is the text after `failed calling webhook "<name>": `."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WebhookStatusError(ApiError):
    """A refusal whose Status body comes from a webhook: fields it left empty stay out of
    the body, as Go's `omitempty` leaves them out (a webhook may send no reason)."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(
            int(status["code"]),
            str(status.get("reason") or ""),
            str(status["message"]),
            details=status.get("details") or None,
        )
        self._status = status

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
        for key in ("status", "message", "reason", "details", "code"):
            if self._status.get(key) not in (None, "", {}):
                body[key] = self._status[key]
        return body


def internal_error(message: str) -> ApiError:
    """`apierrors.NewInternalError(err)`."""
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        details={"causes": [{"message": message}]},
    )


def denied(webhook: str, result: Any) -> WebhookStatusError:
    """`webhookerrors.ToStatusErr`: the webhook's own Status, with the apiserver's prefix."""
    status = dict(result) if isinstance(result, Mapping) else {}
    code = status.get("code")
    status["code"] = code if isinstance(code, int) and code >= 400 else 400
    if status.get("status") in (None, "", "Success"):
        status["status"] = "Failure"
    by = f'admission webhook "{webhook}" denied the request'
    if status.get("message"):
        status["message"] = f"{by}: {status['message']}"
    elif status.get("reason"):
        status["message"] = f"{by}: {status['reason']}"
    else:
        status["message"] = f"{by} without explanation"
    return WebhookStatusError(status)


def dry_run_unsupported(webhook: str) -> ApiError:
    return errors.bad_request(f'admission webhook "{webhook}" does not support dry run')


# ---- Go-worded transport errors --------------------------------------------------------------

# What encoding/json says when a review's body is JSON but not an object (findKind).
TYPE_META = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
    'Kind string "json:\\"kind,omitempty\\"" }'
)

_GENERIC_RESPONSES = {
    400: "the server rejected our request for an unknown reason",
    401: "the server has asked for the client to provide credentials",
    404: "the server could not find the requested resource",
    405: "the server does not allow this method on the requested resource",
    409: "the server reported a conflict",
    422: "the server rejected our request due to an error in our request",
    429: "the server has received too many requests and has asked us to try again later",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted, but may still be "
    "processing the request",
}


def json_quote(text: str) -> str:
    """Go's %q, near enough: JSON string quoting (not goformat.go_quote's strconv.Quote)."""
    return json.dumps(text, ensure_ascii=False)


def http_error(code: int, content_type: str, raw: bytes) -> str:
    """client-go's error for a non-2xx answer (rest/request.go transformResponse and
    apierrors.NewGenericServerResponse)."""
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and decoded.get("kind") == "Status" and decoded.get("message"):
        return str(decoded["message"])
    text = "unknown"
    if content_type.startswith("text/plain"):
        text = raw[:2048].decode("utf-8", "replace").strip()
    if code in (403, 406, 415):
        return text
    if code in _GENERIC_RESPONSES:
        return _GENERIC_RESPONSES[code]
    if code >= 500:
        quoted = json_quote(text)
        return f"an error on the server ({quoted}) has prevented the request from succeeding"
    return f"the server responded with the status code {code} but did not return more information"


def _host_port(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}"


def transport_error(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "context deadline exceeded"
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        cert = error.certificate_error
        code = getattr(cert, "verify_code", None)
        if code in (2, 18, 19, 20, 21):
            detail = "certificate signed by unknown authority"
        else:
            detail = getattr(cert, "verify_message", None) or str(cert)
        return f"tls: failed to verify certificate: x509: {detail}"
    dns_error = getattr(aiohttp, "ClientConnectorDNSError", None)
    if dns_error is not None and isinstance(error, dns_error):
        return f"dial tcp: lookup {error.host}: no such host"
    if isinstance(error, aiohttp.ClientConnectorError):
        where = _host_port(error.host, error.port)
        if isinstance(error.os_error, ConnectionRefusedError):
            return f"dial tcp {where}: connect: connection refused"
        reason = error.os_error.strerror or str(error.os_error)
        return f"dial tcp {where}: connect: {reason.lower()}"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "EOF"
    if isinstance(error, aiohttp.ClientSSLError | ssl.SSLError):
        return f"remote error: tls: {error}"
    return str(error) or type(error).__name__


def evanphx_error(op: Mapping[str, Any]) -> str:
    """What evanphx/json-patch v4 says when one operation does not apply (approximate)."""
    kind, path = op.get("op"), op.get("path")
    if kind in ("add", "remove"):
        return f'{kind} operation does not apply: doc is missing path: "{path}": missing value'
    if kind == "replace":
        return f"replace operation does not apply: doc is missing path: {path}: missing value"
    if kind == "test":
        return f"testing value {path} failed: test failed"
    if kind in ("move", "copy"):
        return (
            f"{kind} operation does not apply: doc is missing from path: "
            f"{op.get('from')}: missing value"
        )
    return f"Unexpected kind: {kind}: unknown object type"


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def bad_base64_at(text: str) -> int:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    for index, char in enumerate(text):
        if char == "=":
            return index
        if char not in alphabet:
            return index
    return len(text) - len(text) % 4
