"""What kube-apiserver's per-kind REST strategies decide, as pure functions of the object.

Create defaults (Namespaces, Jobs, Pods, Secrets), validation beyond the CRD schema (names,
CRDs, Jobs), how a delete proceeds (grace period, propagation policy) and the status the
CRD controllers give an accepted CustomResourceDefinition.
"""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

from koos_sandbox import admission_validate, errors, jobspec, limits, schema
from koos_sandbox.registry import ResourceType
from koos_sandbox.store import Obj, now_rfc3339

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DEFAULT_ORPHAN = frozenset({("batch", "jobs")})  # batch/v1 Jobs still default to orphaning


def validation_causes(rt: ResourceType, obj: Obj) -> list[tuple[str, str]]:
    """(field, message) for every problem of a candidate object, as the apiserver words it."""
    name = obj["metadata"].get("name", "")
    causes: list[tuple[str, str]] = []
    pattern = DNS_LABEL if rt.key == ("", "namespaces") else DNS_SUBDOMAIN
    limit = 63 if pattern is DNS_LABEL else 253
    if not pattern.match(name) or len(name) > limit:
        what = "RFC 1123 label" if pattern is DNS_LABEL else "RFC 1123 subdomain"
        causes.append(
            (
                "metadata.name",
                f'Invalid value: "{name}": a lowercase {what} must consist '
                "of lower case alphanumeric characters, '-'"
                + ("" if pattern is DNS_LABEL else " or '.'")
                + ", and must start and end with an alphanumeric character",
            )
        )
    causes.extend(limits.annotation_causes(obj["metadata"]))
    if rt.key in (("", "configmaps"), ("", "secrets")):
        causes.extend(limits.config_data_causes(rt.kind, obj))
    if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        causes.extend(crd_causes(obj))
    if rt.custom and rt.schema:
        causes.extend(schema.validate(obj, rt.schema))
    if rt.key == ("batch", "jobs"):
        causes.extend(jobspec.validate_job(obj))
    if rt.group == "admissionregistration.k8s.io" and rt.plural.endswith("webhookconfigurations"):
        causes.extend(admission_validate.configuration_causes(obj))
    return causes


def established_status(crd: Obj) -> Obj:
    status = copy.deepcopy(crd.get("status") or {})
    now = now_rfc3339()
    status["acceptedNames"] = crd["spec"]["names"]
    status["storedVersions"] = [v["name"] for v in crd["spec"]["versions"] if v.get("storage")]
    status["conditions"] = [
        {
            "type": "NamesAccepted",
            "status": "True",
            "reason": "NoConflicts",
            "message": "no conflicts found",
            "lastTransitionTime": now,
        },
        {
            "type": "Established",
            "status": "True",
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
            "lastTransitionTime": now,
        },
    ]
    for old in (crd.get("status") or {}).get("conditions") or []:
        for new in status["conditions"]:
            if new["type"] == old.get("type") and new["status"] == old.get("status"):
                new["lastTransitionTime"] = old.get("lastTransitionTime", now)
    return status


def create_defaults(rt: ResourceType, obj: Obj, uid: str) -> Obj:
    """What the apiserver's create strategies fill in for the built-in kinds koos uses."""
    if rt.key == ("", "namespaces"):
        obj["status"] = {"phase": "Active"}
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"][
            "name"
        ]
    elif rt.key == ("batch", "jobs"):
        obj = jobspec.default_job(obj, uid)
    elif rt.key == ("", "pods"):
        obj = jobspec.default_pod(obj)
    elif rt.key == ("", "secrets"):
        obj = secret_string_data(obj)
    return obj


def secret_string_data(secret: Obj) -> Obj:
    """`stringData` is write-only: merged into base64 `data`, never stored."""
    string_data = secret.pop("stringData", None)
    if string_data:
        data = dict(secret.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        secret["data"] = data
    secret.setdefault("type", "Opaque")
    return secret


def grace_period(rt: ResourceType, obj: Obj, options: dict[str, Any]) -> int:
    """A running Pod on a node is deleted gracefully: it shows Terminating until its kubelet
    has stopped the containers and removes it. Anything else goes at once."""
    if rt.key != ("", "pods") or not (obj.get("spec") or {}).get("nodeName"):
        return 0
    if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    requested = options.get("gracePeriodSeconds")
    if requested is not None:
        try:
            return max(int(requested), 0)
        except (TypeError, ValueError) as exc:
            raise errors.bad_request(f"invalid gracePeriodSeconds: {requested!r}") from exc
    return int((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30))


def propagation(rt: ResourceType, options: dict[str, Any]) -> str:
    policy = options.get("propagationPolicy")
    if policy:
        if policy not in ("Foreground", "Background", "Orphan"):
            raise errors.bad_request(f"propagationPolicy {policy!r} is not supported")
        return str(policy)
    if options.get("orphanDependents") is True:
        return "Orphan"
    if options.get("orphanDependents") is False:
        return "Background"
    return "Orphan" if rt.key in DEFAULT_ORPHAN else "Background"


def crd_causes(crd: Obj) -> list[tuple[str, str]]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    causes: list[tuple[str, str]] = []
    expected = f"{names.get('plural', '')}.{spec.get('group', '')}"
    if crd["metadata"].get("name") != expected:
        causes.append(
            (
                "metadata.name",
                f'Invalid value: "{crd["metadata"].get("name")}": must be '
                'spec.names.plural+"."+spec.group',
            )
        )
    for field in ("plural", "kind"):
        if not names.get(field):
            causes.append((f"spec.names.{field}", "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            (
                "spec.scope",
                f'Unsupported value: "{spec.get("scope", "")}": '
                'supported values: "Cluster", "Namespaced"',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(
            (
                "spec.versions",
                "Required value: must have exactly one version marked as storage version",
            )
        )
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            (
                "spec.versions",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    for i, version in enumerate(versions):
        openapi = (version.get("schema") or {}).get("openAPIV3Schema")
        if openapi is None:
            causes.append(
                (
                    f"spec.versions[{i}].schema.openAPIV3Schema",
                    "Required value: schemas are required",
                )
            )
            continue
        causes.extend(
            schema.structural_causes(openapi, f"spec.versions[{i}].schema.openAPIV3Schema")
        )
    return causes


def removed_paths(before: Any, after: Any, path: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for key, value in before.items():
            child = f"{path}.{key}" if path else key
            if key not in after:
                found.append(child)
            else:
                found.extend(removed_paths(value, after[key], child))
        return found
    if isinstance(before, list) and isinstance(after, list):
        return [
            p
            for i, (b, a) in enumerate(zip(before, after, strict=False))
            for p in removed_paths(b, a, f"{path}[{i}]")
        ]
    return []
