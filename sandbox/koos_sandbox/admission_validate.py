"""What kube-apiserver checks when a Mutating/ValidatingWebhookConfiguration is stored
(admissionregistration/validation), as far as the sandbox goes: each `clientConfig.url` is
an https URL with a host and no user, fragment or query (ValidateWebhookURL); `sideEffects`
is None or NoneOnDryRun (admissionregistration/v1 allows no other); `timeoutSeconds` is
1..30; each `matchConditions[].expression` compiles. Messages are the apiserver's, except
the detail of a CEL compile error, which is the CEL library's."""

from __future__ import annotations

import urllib.parse
from typing import Any

from koos_sandbox import admission_cel
from koos_sandbox.goformat import go_quote

FORM = "; desired format: https://host[/path]"
SIDE_EFFECTS = ("None", "NoneOnDryRun")


def configuration_causes(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for each webhook of a configuration, in the apiserver's order."""
    causes: list[tuple[str, str]] = []
    webhooks = obj.get("webhooks")
    for i, hook in enumerate(webhooks if isinstance(webhooks, list) else []):
        if isinstance(hook, dict):
            causes += _webhook_causes(f"webhooks[{i}]", hook)
    return causes


def _webhook_causes(path: str, hook: dict[str, Any]) -> list[tuple[str, str]]:
    causes: list[tuple[str, str]] = []
    side_effects = hook.get("sideEffects")
    if isinstance(side_effects, str) and side_effects not in SIDE_EFFECTS:
        supported = ", ".join(go_quote(v) for v in SIDE_EFFECTS)
        causes.append(
            (
                f"{path}.sideEffects",
                f"Unsupported value: {go_quote(side_effects)}: supported values: {supported}",
            )
        )
    timeout = hook.get("timeoutSeconds")
    if isinstance(timeout, int) and not 1 <= timeout <= 30:
        causes.append(
            (
                f"{path}.timeoutSeconds",
                f"Invalid value: {timeout}: the timeout value must be between 1 and 30 seconds",
            )
        )
    config = hook.get("clientConfig")
    url = config.get("url") if isinstance(config, dict) else None
    if isinstance(url, str):
        causes += url_causes(f"{path}.clientConfig.url", url)
    conditions = hook.get("matchConditions")
    for j, condition in enumerate(conditions if isinstance(conditions, list) else []):
        expression = condition.get("expression") if isinstance(condition, dict) else None
        if not isinstance(expression, str):
            continue
        error = admission_cel.compile_error(expression)
        if error is not None:
            causes.append(
                (
                    f"{path}.matchConditions[{j}].expression",
                    f"Invalid value: {go_quote(expression)}: compilation failed: {error}",
                )
            )
    return causes


def url_causes(path: str, url: str) -> list[tuple[str, str]]:
    """ValidateWebhookURL with https forced."""
    causes: list[tuple[str, str]] = []
    parts = urllib.parse.urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    if parts.scheme != "https":
        scheme = go_quote(parts.scheme)
        causes.append(
            (path, f"Invalid value: {scheme}: 'https' is the only allowed URL scheme{FORM}")
        )
    if not host:
        causes.append((path, f'Invalid value: "": host must be specified{FORM}'))
    if "@" in parts.netloc:
        causes.append(
            (path, f"Invalid value: {go_quote(user)}: user information is not permitted in the URL")
        )
    if parts.fragment:
        causes.append(
            (
                path,
                f"Invalid value: {go_quote(parts.fragment)}: fragments are not permitted in "
                "the URL",
            )
        )
    if parts.query:
        causes.append(
            (
                path,
                f"Invalid value: {go_quote(parts.query)}: query parameters are not permitted in "
                "the URL",
            )
        )
    return causes
