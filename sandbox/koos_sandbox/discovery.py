"""Discovery documents (`/api`, `/apis`, `/apis/{g}/{v}`, `/version`) built from the registry.

Only the legacy (unaggregated) discovery format is served; kubectl falls back to it when the
response is not an `APIGroupDiscoveryList`, as it does against older servers.
"""

from __future__ import annotations

from typing import Any

from koos_sandbox.registry import Registry, ResourceType

# Resources that are verbs, not stored objects (SelfSubjectReview and friends).
VIRTUAL: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("authentication.k8s.io", "v1"): [
        {
            "name": "selfsubjectreviews",
            "singularName": "selfsubjectreview",
            "namespaced": False,
            "kind": "SelfSubjectReview",
            "verbs": ["create"],
        },
    ],
    ("authorization.k8s.io", "v1"): [
        {
            "name": "selfsubjectaccessreviews",
            "singularName": "selfsubjectaccessreview",
            "namespaced": False,
            "kind": "SelfSubjectAccessReview",
            "verbs": ["create"],
        },
        {
            "name": "subjectaccessreviews",
            "singularName": "subjectaccessreview",
            "namespaced": False,
            "kind": "SubjectAccessReview",
            "verbs": ["create"],
        },
    ],
}

SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "log": ["get"],
    "token": ["create"],
    "binding": ["create"],
}
SUBRESOURCE_KINDS = {"log": "Pod", "token": "TokenRequest", "binding": "Binding"}

VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-koos-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_versions(registry: Registry) -> dict[str, list[str]]:
    groups = {g: v for g, v in registry.groups().items() if g}
    for group, version in VIRTUAL:
        groups.setdefault(group, []).append(version)
    return groups


def _group_doc(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [_group_doc(name, versions) for name, versions in _group_versions(registry).items()]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = _group_versions(registry).get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def _resource_entries(rt: ResourceType) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    if rt.categories:
        main["categories"] = list(rt.categories)
    entries = [main]
    for sub in rt.subresources:
        entries.append(
            {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": SUBRESOURCE_KINDS.get(sub, rt.kind),
                "verbs": SUBRESOURCE_VERBS.get(sub, ["get"]),
            }
        )
    return entries


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    virtual = VIRTUAL.get((group, version), [])
    if not types and not virtual:
        return None
    resources = [entry for rt in types for entry in _resource_entries(rt)] + virtual
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
