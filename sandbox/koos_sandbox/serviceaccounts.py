"""ServiceAccounts as the control plane keeps them: the `default` account of every namespace
and the ServiceAccount admission plugin.

- kube-controller-manager's serviceaccounts controller gives every new namespace a
  ServiceAccount named `default`, and its root-ca-cert-publisher the ConfigMap
  `kube-root-ca.crt` (the CA that projected service-account volumes trust); the sandbox
  creates both in the same turn as the namespace.
- The ServiceAccount admission plugin names `default` in a Pod that names none and refuses a
  Pod whose ServiceAccount does not exist, with kube-apiserver's 403:
  `pods "<name or generateName>" is forbidden: error looking up service account
  <ns>/<sa>: serviceaccount "<sa>" not found`. It applies to every Pod create, the Job
  controller's included; mirror Pods (of static Pods) are exempt.

Invariant: `admit_pod` only reads the store; it changes nothing but the Pod it is given.
"""

from __future__ import annotations

from koos_sandbox import errors
from koos_sandbox.registry import Registry, ResourceType
from koos_sandbox.store import Obj, Store

DEFAULT = "default"
MIRROR = "kubernetes.io/config.mirror"
ROOT_CA = "kube-root-ca.crt"
ROOT_CA_NOTE = "kubernetes.io/description"
ROOT_CA_TEXT = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


def sa_type(registry: Registry) -> ResourceType:
    rt = registry.find("", "v1", "serviceaccounts")
    assert rt is not None
    return rt


def ensure_default(store: Store, rt: ResourceType, namespace: str) -> None:
    """The namespace's `default` ServiceAccount (`rt`: serviceaccounts), created if missing."""
    if store.find(rt, namespace, DEFAULT) is None:
        store.create(rt, namespace, {"metadata": {"name": DEFAULT, "namespace": namespace}})


def ensure_root_ca(store: Store, registry: Registry, namespace: str, ca_pem: str) -> None:
    """The namespace's `kube-root-ca.crt` ConfigMap holding `ca_pem`, created if missing
    (none without a CA)."""
    rt = registry.find("", "v1", "configmaps")
    if not ca_pem or rt is None or store.find(rt, namespace, ROOT_CA) is not None:
        return
    meta = {"name": ROOT_CA, "namespace": namespace, "annotations": {ROOT_CA_NOTE: ROOT_CA_TEXT}}
    store.create(rt, namespace, {"metadata": meta, "data": {"ca.crt": ca_pem}})


def admit_pod(store: Store, rt: ResourceType, namespace: str, pod: Obj) -> None:
    """Name `default` when the Pod names no ServiceAccount; refuse a missing one (403)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec")
    if not isinstance(spec, dict) or MIRROR in (meta.get("annotations") or {}):
        return
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT
    spec["serviceAccountName"] = account
    if store.find(rt, namespace, account) is not None:
        return
    name = meta.get("name") or meta.get("generateName") or "Unknown"
    raise errors.forbidden(
        "pods",
        name,
        "",
        f"error looking up service account {namespace}/{account}: "
        f'serviceaccount "{account}" not found',
    )
