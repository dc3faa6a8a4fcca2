"""CustomResourceDefinitions built from the pydantic models: the models are the only source.

The models' JSON-Schema is turned into a structural OpenAPI v3 schema as the API server
demands it: references inlined, `Optional` unwrapped, no titles, a `type` on every node
except free-form values (which get `x-kubernetes-preserve-unknown-fields`), a description
on every property (so `kubectl explain` helps), and no null defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from koos.api.approval import ApprovalSpec, ApprovalStatus
from koos.api.constants import CATEGORY, GROUP, VERSION
from koos.api.execution import ExecutionSpec, ExecutionStatus
from koos.api.schedule import ScheduleSpec, ScheduleStatus
from koos.api.template import TemplateSpec, TemplateStatus

PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"
_DROP = ("title",)


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[dict[str, Any], ...] = field(default=())


def _age() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


KINDS: tuple[Kind, ...] = (
    Kind(
        kind="Template",
        plural="templates",
        short_names=("tpl",),
        description="A reusable runbook: parameters, steps and outputs. Run it with an Execution.",
        spec=TemplateSpec,
        status=TemplateStatus,
        columns=(
            {"name": "Steps", "type": "integer", "jsonPath": ".status.stepCount"},
            {
                "name": "Ready",
                "type": "string",
                "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
            },
            _age(),
        ),
    ),
    Kind(
        kind="Execution",
        plural="executions",
        short_names=("exe",),
        description="One run of a Template with parameters; all its progress is in its status.",
        spec=ExecutionSpec,
        status=ExecutionStatus,
        columns=(
            {"name": "Template", "type": "string", "jsonPath": ".spec.templateRef.name"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
            _age(),
        ),
    ),
    Kind(
        kind="Approval",
        plural="approvals",
        short_names=("appr",),
        description="A human gate of an Execution. Decide it with: kubectl annotate approval "
        "NAME koos.io/decision=approve (or reject) [koos.io/reason=...].",
        spec=ApprovalSpec,
        status=ApprovalStatus,
        columns=(
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Approvals", "type": "string", "jsonPath": ".status.progress"},
            {"name": "Execution", "type": "string", "jsonPath": ".spec.executionRef.name"},
            _age(),
        ),
    ),
    Kind(
        kind="Schedule",
        plural="schedules",
        short_names=("sched",),
        description="Runs a Template on cron, in a time zone, exactly once per fire.",
        spec=ScheduleSpec,
        status=ScheduleStatus,
        columns=(
            {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
            {"name": "TimeZone", "type": "string", "jsonPath": ".spec.timeZone"},
            {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend"},
            {"name": "Next", "type": "date", "jsonPath": ".status.nextScheduleTime"},
            {"name": "Last", "type": "date", "jsonPath": ".status.lastScheduleTime"},
            {"name": "Active", "type": "integer", "jsonPath": ".status.activeCount"},
            _age(),
        ),
    ),
)


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _resolve(defs[node["$ref"].split("/")[-1]], defs)
        siblings = {k: _resolve(v, defs) for k, v in node.items() if k != "$ref"}
        return {**target, **siblings}
    return {k: _resolve(v, defs) for k, v in node.items() if k != "$defs"}


def _structural(node: dict[str, Any]) -> dict[str, Any]:
    node = {k: v for k, v in node.items() if k not in _DROP}
    any_of = node.pop("anyOf", None)
    if any_of is not None:
        options = [o for o in any_of if o.get("type") != "null"]
        if len(options) == 1:
            node = {**options[0], **node}
        elif not node.get(INT_OR_STRING):
            node[PRESERVE] = True
    if node.get("default", 0) is None:
        del node["default"]
    if "properties" in node:
        node["properties"] = {k: _structural(v) for k, v in node["properties"].items()}
        node["type"] = "object"
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _structural(node["additionalProperties"])
    elif node.get("additionalProperties") is True:
        del node["additionalProperties"]
        node[PRESERVE] = True
    if isinstance(node.get("items"), dict):
        node["items"] = _structural(node["items"])
    if "type" not in node and not node.get(PRESERVE) and not node.get(INT_OR_STRING):
        node[PRESERVE] = True
    if node.get(PRESERVE) and "type" not in node:
        node.pop("default", None)
    if "type" in node and node.get("type") == "array" and "items" not in node:
        node["items"] = {PRESERVE: True}
    return node


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="serialization")
    defs = raw.get("$defs", {})
    return _structural(_resolve(raw, defs))


def build_crd(kind: Kind) -> dict[str, Any]:
    spec_schema = schema_of(kind.spec)
    status_schema = schema_of(kind.status)
    spec_schema["description"] = f"Desired state of the {kind.kind}."
    status_schema["description"] = f"Observed state of the {kind.kind}, written by koos."
    root = {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion: koos.io/v1alpha1."},
            "kind": {"type": "string", "description": f"Kind: {kind.kind}."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(kind.columns),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name → CRD, for `make crds`."""
    return {f"{kind.plural}.yaml": build_crd(kind) for kind in KINDS}


def missing_descriptions(schema: dict[str, Any], path: str = "") -> list[str]:
    """Properties without a description: `kubectl explain` would have nothing to say."""
    found: list[str] = []
    for name, prop in (schema.get("properties") or {}).items():
        here = f"{path}.{name}" if path else name
        if name != "metadata" and not prop.get("description"):
            found.append(here)
        found.extend(missing_descriptions(prop, here))
    if isinstance(schema.get("items"), dict):
        found.extend(missing_descriptions(schema["items"], f"{path}[]"))
    if isinstance(schema.get("additionalProperties"), dict):
        found.extend(missing_descriptions(schema["additionalProperties"], f"{path}{{}}"))
    return found
