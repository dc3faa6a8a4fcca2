"""Field selectors, parsed and matched as apimachinery's `fields` package does.

A `fieldSelector` query is parsed by `fields.ParseSelector` rules (terms split on unescaped
commas, `=`, `==` or `!=`, backslash escapes in values, no trimming), then each field goes
through the kind's field label conversion: built-in kinds accept the fields their
`conversion.go` registers, custom resources only `metadata.name` and (when namespaced)
`metadata.namespace`. A field matches on the string its kind's `GetAttrs` gives it.

Invariants: selectors are immutable once parsed; every parse error is the 400 BadRequest the
apiserver answers, with apimachinery's wording ("field label not supported: ...").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from koos_sandbox.errors import bad_request

_META = "metadata.name metadata.namespace"
_INVOLVED = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
# Kinds with a registered field label conversion (pkg/apis/*/v1/conversion.go).
_FIELD_LABELS: dict[str, tuple[str, ...]] = {
    kind: tuple(fields.split())
    for kind, fields in {
        "Pod": f"{_META} spec.nodeName spec.restartPolicy spec.schedulerName "
        "spec.serviceAccountName spec.hostNetwork status.phase status.podIP "
        "status.nominatedNodeName",
        "Event": f"{_META} reason reportingComponent source type "
        + " ".join(f"involvedObject.{f}" for f in _INVOLVED),
        "Node": "metadata.name spec.unschedulable",
        "Namespace": "metadata.name status.phase",
        "Secret": f"{_META} type",
        "Service": f"{_META} spec.clusterIP spec.type",
        "ReplicationController": f"{_META} status.replicas",
        "ReplicaSet": f"{_META} status.replicas",
        "Job": f"{_META} status.successful",
        "CertificateSigningRequest": "metadata.name spec.signerName",
    }.items()
}
_ALIASES = {("Pod", "spec.host"): "spec.nodeName"}  # old v1 clients


def _quote(value: str) -> str:
    """Go's %q, near enough for field names."""
    return json.dumps(value, ensure_ascii=False)


def _field_value(obj: Mapping[str, Any], field: str) -> str:
    """The value a kind's GetAttrs gives a selectable field ("" when absent)."""
    if field == "spec.hostNetwork" or field == "spec.unschedulable":
        return "true" if _dig(obj, field) is True else "false"
    if field == "status.podIP":
        ips = _dig(obj, "status.podIPs") or []
        return str(ips[0].get("ip", "")) if ips else str(_dig(obj, field) or "")
    if field in ("status.successful", "status.replicas"):
        return str(_dig(obj, "status.succeeded" if field == "status.successful" else field) or 0)
    if field == "reportingComponent":
        return str(obj.get("reportingComponent") or "")
    if field == "source":
        return str(_dig(obj, "source.component") or obj.get("reportingComponent") or "")
    return str(_dig(obj, field) or "")


def _dig(obj: Mapping[str, Any], dotted: str) -> Any:
    node: Any = obj
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str  # "=" (also for "==") or "!="
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (_field_value(obj, self.field) == self.value) == (self.operator == "=")


@dataclass(frozen=True)
class FieldSelector:
    """An AND of field terms; no terms selects everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not backslash-escaped (the backslash stays)."""
    terms, start, escaped = [], 0, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:i])
            start = i + 1
    return [*terms, text[start:]]


def _unescape_value(raw: str) -> str:
    out, escaped = [], False
    for char in raw:
        if escaped:
            if char not in "\\,=":
                raise bad_request(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            # Go formats the rune with %v, so the message shows its code point.
            raise bad_request(f"invalid field selector: unescaped character in value: {ord(char)}")
        else:
            out.append(char)
    if escaped:
        raise bad_request("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _convert_label(field: str, kind: str, custom: bool, namespaced: bool) -> str:
    """scheme.ConvertFieldLabel for the kind: the field to match on, or the apiserver's 400."""
    if custom:
        if field == "metadata.name" or (field == "metadata.namespace" and namespaced):
            return field
        raise bad_request(f"field label not supported: {field}")
    allowed = _FIELD_LABELS.get(kind)
    if allowed is None:
        if field in _META.split():
            return field
        raise bad_request(
            f'{_quote(field)} is not a known field selector: only "metadata.name", '
            '"metadata.namespace"'
        )
    if (kind, field) in _ALIASES:
        return _ALIASES[(kind, field)]
    if field not in allowed:
        raise bad_request(f"field label not supported: {field}")
    return field


def parse_field_selector(
    text: str, kind: str, *, custom: bool = False, namespaced: bool = True
) -> FieldSelector:
    """fields.ParseSelector of a `fieldSelector` query, then the kind's label conversion.

    `custom` marks a custom resource, whose conversion accepts only metadata.name and (when
    namespaced) metadata.namespace. Whitespace is not trimmed, as in apimachinery.
    """
    terms: list[FieldRequirement] = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        match = re.search("!=|==|=", part)
        if match is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op = part[: match.start()], "!=" if match.group() == "!=" else "="
        value = _unescape_value(part[match.end() :])
        terms.append(FieldRequirement(field, op, value))
    converted = []
    for term in terms:
        field = _convert_label(term.field, kind, custom, namespaced)
        converted.append(FieldRequirement(field, term.operator, term.value))
    return FieldSelector(tuple(converted))
