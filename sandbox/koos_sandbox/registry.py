"""The kinds the sandbox serves: built-ins koos uses, plus CustomResourceDefinitions.

A `ResourceType` is everything discovery, routing, validation and Table printing need to know
about one resource (group/version/plural). The registry is mutated only by the store when a
CRD is created, updated or deleted, so discovery always follows the stored CRDs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()  # "status", "log", "token", ...
    # For custom resources: the version's openAPIV3Schema and additionalPrinterColumns.
    schema: dict[str, Any] | None = None
    printer_columns: tuple[dict[str, Any], ...] = ()
    custom: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def key(self) -> tuple[str, str]:
        """Identity of the stored collection, shared by all versions of a resource."""
        return (self.group, self.plural)

    @property
    def group_resource(self) -> str:
        """`jobs.batch`, `pods`: how the apiserver names a resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


def _builtin(
    group: str,
    version: str,
    kind: str,
    plural: str,
    namespaced: bool,
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    subresources: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        short_names=short,
        categories=categories,
        subresources=subresources,
        verbs=verbs,
    )


BUILTINS: tuple[ResourceType, ...] = (
    _builtin(
        "",
        "v1",
        "Namespace",
        "namespaces",
        False,
        ("ns",),
        (),
        ("status",),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _builtin("", "v1", "Event", "events", True, ("ev",)),
    _builtin("", "v1", "Pod", "pods", True, ("po",), ("all",), ("status", "log", "binding")),
    _builtin("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), (), ("token",)),
    _builtin("", "v1", "Secret", "secrets", True),
    _builtin("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    _builtin("", "v1", "Node", "nodes", False, ("no",), (), ("status",)),
    _builtin("batch", "v1", "Job", "jobs", True, (), ("all",), ("status",)),
    _builtin("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("all",), ("status",)),
    _builtin("coordination.k8s.io", "v1", "Lease", "leases", True),
    _builtin(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        ("crd", "crds"),
        ("api-extensions",),
        ("status",),
    ),
    _builtin(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        False,
        (),
        ("api-extensions",),
    ),
    _builtin(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        False,
        (),
        ("api-extensions",),
    ),
    _builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    _builtin("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _builtin("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _builtin("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
)

# Kinds whose objects carry metadata.generation (custom resources always do).
GENERATION_KINDS = frozenset(
    {
        ("batch", "jobs"),
        ("apps", "deployments"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    }
)


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The ResourceTypes a stored CustomResourceDefinition serves, one per served version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group", "")
    out: list[ResourceType] = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = tuple(sorted((version.get("subresources") or {}).keys()))
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        out.append(
            ResourceType(
                group=group,
                version=version["name"],
                kind=names.get("kind", ""),
                plural=names.get("plural", ""),
                singular=names.get("singular") or names.get("kind", "").lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=subresources,
                schema=schema,
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                custom=True,
                extra={"storage": bool(version.get("storage"))},
            )
        )
    return out


class Registry:
    """Every served (group, version, plural), built-ins first, then CRDs as they are stored."""

    def __init__(self) -> None:
        self._builtin: dict[tuple[str, str, str], ResourceType] = {
            (rt.group, rt.version, rt.plural): rt for rt in BUILTINS
        }
        self._custom: dict[str, list[ResourceType]] = {}  # by CRD name

    def set_crd(self, crd: dict[str, Any]) -> None:
        self._custom[crd["metadata"]["name"]] = types_from_crd(crd)

    def remove_crd(self, name: str) -> None:
        self._custom.pop(name, None)

    def all(self) -> list[ResourceType]:
        custom = [rt for types in self._custom.values() for rt in types]
        return [*self._builtin.values(), *custom]

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        rt = self._builtin.get((group, version, plural))
        if rt is not None:
            return rt
        for types in self._custom.values():
            for candidate in types:
                if (candidate.group, candidate.version, candidate.plural) == (
                    group,
                    version,
                    plural,
                ):
                    return candidate
        return None

    def groups(self) -> dict[str, list[str]]:
        """Group name → served versions, the preferred (storage, else first) version first."""
        found: dict[str, list[str]] = {}
        for rt in self.all():
            versions = found.setdefault(rt.group, [])
            if rt.version not in versions:
                if rt.extra.get("storage"):
                    versions.insert(0, rt.version)
                else:
                    versions.append(rt.version)
        return found

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self.all() if rt.group == group and rt.version == version]

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        for rt in self.all():
            if rt.group == group and rt.kind == kind:
                return rt
        return None


def tracks_generation(rt: ResourceType) -> bool:
    return rt.custom or rt.key in GENERATION_KINDS
