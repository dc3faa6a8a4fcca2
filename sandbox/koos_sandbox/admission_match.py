"""Which webhooks admission calls for a request, as kube-apiserver's webhook predicates decide.

The configurations are read from the store and sorted by name, their webhooks taken in order
(`webhooks`, with the v1 defaults of `Webhook`). A webhook is called when, as in
`ShouldCallHook`, its `namespaceSelector`, its `objectSelector` and one of its `rules` all
match (`should_call`; predicates/rules, predicates/namespace, predicates/object). A selector
that does not parse is a 500, answered only when a rule matches too. Admission
configurations and policies themselves are exempt (`is_exempt`).

Invariant: matching only reads (the store, for a Namespace's labels); it never calls a
webhook and never changes the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from koos_sandbox import errors
from koos_sandbox.admission_errors import internal_error
from koos_sandbox.errors import ApiError
from koos_sandbox.registry import Registry, ResourceType
from koos_sandbox.selectors import LabelSelector, selector_from_dict
from koos_sandbox.store import Obj, Store
from koos_sandbox.writes import AdmissionRequest

GROUP = "admissionregistration.k8s.io"
MUTATING = (GROUP, "mutatingwebhookconfigurations")
VALIDATING = (GROUP, "validatingwebhookconfigurations")
EXEMPT_KINDS = frozenset(
    {
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
    }
)
NAMESPACES = ("", "v1", "namespaces")
DEFAULT_TIMEOUT = 10
MAX_TIMEOUT = 30
_REVIEW_VERSIONS = ("v1", "v1beta1")


# ---- webhooks as configured ----------------------------------------------------------------


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Webhook:
    """One entry of a configuration's `webhooks`, with the v1 defaults applied."""

    configuration: str
    mutating: bool
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    @property
    def ignore_failures(self) -> bool:
        return bool(self.spec.get("failurePolicy", "Fail") == "Ignore")

    @property
    def side_effects(self) -> str | None:
        value = self.spec.get("sideEffects")
        return value if isinstance(value, str) else None

    @property
    def timeout(self) -> int:
        value = self.spec.get("timeoutSeconds")
        if not isinstance(value, int) or isinstance(value, bool):
            return DEFAULT_TIMEOUT
        return min(max(value, 1), MAX_TIMEOUT)

    @property
    def rules(self) -> list[dict[str, Any]]:
        return [r for r in as_list(self.spec.get("rules")) if isinstance(r, dict)]

    @property
    def client_config(self) -> dict[str, Any]:
        return as_dict(self.spec.get("clientConfig"))

    @property
    def review_version(self) -> str | None:
        versions = self.spec.get("admissionReviewVersions")
        if versions is None:
            return "v1"
        for version in as_list(versions):
            if version in _REVIEW_VERSIONS:
                return str(version)
        return None


def webhooks(store: Store, key: tuple[str, str], mutating: bool) -> list[Webhook]:
    found: list[Webhook] = []
    configurations = sorted(store.items(key), key=lambda c: c["metadata"]["name"])
    for configuration in configurations:
        name = configuration["metadata"]["name"]
        for spec in as_list(configuration.get("webhooks")):
            if isinstance(spec, dict):
                found.append(Webhook(name, mutating, spec))
    return found


# ---- matching (predicates/rules, predicates/namespace, predicates/object) ------------------


def is_exempt(rt: ResourceType) -> bool:
    return rt.group == GROUP and rt.kind in EXEMPT_KINDS


def review_namespace(request: AdmissionRequest) -> str:
    """The request's namespace as admission sees it: for a Namespace object, its own name
    (set for every operation since Kubernetes 1.20, kubernetes/kubernetes#95012)."""
    if request.rt.key == ("", "namespaces"):
        return request.name
    return request.namespace


def _is_namespace_resource(rt: ResourceType) -> bool:
    return (rt.group, rt.version, rt.plural) == NAMESPACES


def rule_matches(rule: Mapping[str, Any], request: AdmissionRequest) -> bool:
    """`rules.Matcher.Matches`: scope, operation, group, version, resource[/subresource]."""
    rt = request.rt
    scope = rule.get("scope") or "*"
    namespace = review_namespace(request)
    if scope == "Namespaced":
        if _is_namespace_resource(rt) or not namespace:
            return False
    elif scope == "Cluster":
        if not (_is_namespace_resource(rt) or not namespace):
            return False
    elif scope != "*":
        return False
    operations = as_list(rule.get("operations"))
    if "*" not in operations and request.operation not in operations:
        return False
    groups, versions = as_list(rule.get("apiGroups")), as_list(rule.get("apiVersions"))
    if "*" not in groups and rt.group not in groups:
        return False
    if "*" not in versions and rt.version not in versions:
        return False
    for resource in as_list(rule.get("resources")):
        if not isinstance(resource, str):
            continue
        res, _, sub = resource.partition("/")
        if res in ("*", rt.plural) and sub in ("*", request.subresource):
            return True
    return False


def _labels(obj: Obj | None) -> dict[str, str]:
    if obj is None:
        return {}
    return as_dict(as_dict(obj.get("metadata")).get("labels"))


def _parse_selector(selector: Any) -> LabelSelector:
    """`GetParsedNamespaceSelector`/`GetParsedObjectSelector`: unset is `{}` (everything);
    a selector that does not parse is a 500."""
    try:
        return selector_from_dict(as_dict(selector))
    except ApiError as error:
        raise internal_error(error.message) from error
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise internal_error(str(error)) from error


# ---- should the webhook be called? ---------------------------------------------------------


def should_call(hook: Webhook, request: AdmissionRequest, store: Store, registry: Registry) -> bool:
    """`ShouldCallHook`: selectors first; their errors count only if a rule matches."""
    ns_match, ns_error = _match_namespace(hook, request, store, registry)
    if not ns_match and ns_error is None:
        return False
    obj_match, obj_error = _match_object(hook, request)
    if not obj_match and obj_error is None:
        return False
    if not any(rule_matches(rule, request) for rule in hook.rules):
        return False
    if ns_error is not None:
        raise ns_error
    if obj_error is not None:
        raise obj_error
    return True


def _match_namespace(
    hook: Webhook, request: AdmissionRequest, store: Store, registry: Registry
) -> tuple[bool, ApiError | None]:
    namespace = review_namespace(request)
    if not namespace and request.rt.plural != "namespaces":
        return True, None  # cluster-scoped objects are never exempted
    try:
        selector = _parse_selector(hook.spec.get("namespaceSelector"))
    except ApiError as error:
        return False, error
    if selector.empty:
        return True, None
    if (
        request.rt.plural == "namespaces"
        and not request.subresource
        and request.operation in ("CREATE", "UPDATE")
    ):
        labels = _labels(request.obj)
    else:
        ns_type = registry.find(*NAMESPACES)
        found = store.find(ns_type, "", namespace) if ns_type is not None else None
        if found is None:
            return False, errors.not_found("namespaces", namespace)
        labels = _labels(found)
    return bool(selector.matches(labels)), None


def _match_object(hook: Webhook, request: AdmissionRequest) -> tuple[bool, ApiError | None]:
    try:
        selector = _parse_selector(hook.spec.get("objectSelector"))
    except ApiError as error:
        return False, error
    if selector.empty:
        return True, None
    for obj in (request.obj, request.old):
        if obj is not None and selector.matches(_labels(obj)):
            return True, None
    return False, None
