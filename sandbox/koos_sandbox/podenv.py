"""A container's environment as the kubelet builds it from the Pod spec and its sources.

`env` values get `$(VAR)` expansion against the variables defined before them; `valueFrom`
resolves secretKeyRef, configMapKeyRef, fieldRef (metadata.name/namespace/uid/labels/
annotations, spec.nodeName/serviceAccountName, status.podIP/hostIP) and resourceFieldRef;
`envFrom` imports a whole ConfigMap or Secret with an optional prefix. A missing source or
key that is not `optional` raises `ConfigError` with the kubelet's message, which the
kubelet reports as the waiting reason `CreateContainerConfigError`.

Secrets and ConfigMaps come from a `Lookup` (kind, namespace, name → object or None): the
store-level kubelet reads its store, the node agent what it read through the API
(`sources` lists what a Pod refers to, so it can fetch them first).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Callable

from koos_sandbox.objects import Obj
from koos_sandbox.runtime import expand

Lookup = Callable[[str, str, str], Obj | None]  # (kind, namespace, name) → object or None

HOST_IP = "127.0.0.1"


class ConfigError(Exception):
    """A container's environment refers to a Secret, ConfigMap or key that does not exist."""


def sources(pod: Obj) -> set[tuple[str, str]]:
    """The (kind, name) of every Secret and ConfigMap the Pod's containers and volumes use."""
    spec, found = pod.get("spec") or {}, set()
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for src in c.get("envFrom") or []:
            for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if isinstance(src.get(field), dict):
                    found.add((kind, str(src[field].get("name", ""))))
        for item in c.get("env") or []:
            source = item.get("valueFrom") or {}
            for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                if isinstance(source.get(field), dict):
                    found.add((kind, str(source[field].get("name", ""))))
    for volume in spec.get("volumes") or []:
        for kind, field, key in (
            ("Secret", "secret", "secretName"),
            ("ConfigMap", "configMap", "name"),
        ):
            if isinstance(volume.get(field), dict):
                found.add((kind, str(volume[field].get(key, ""))))
    return found


def _source(lookup: Lookup, ns: str, kind: str, name: str) -> dict[str, str] | None:
    obj = lookup(kind, ns, name)
    if obj is None:
        return None
    data = {k: str(v) for k, v in (obj.get("data") or {}).items()}
    if kind == "Secret":
        for key, value in list(data.items()):
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                data[key] = base64.b64decode(value, validate=True).decode()
        data.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    return data


def _lookup(lookup: Lookup, ns: str, kind: str, ref: Obj, key: str | None) -> dict[str, str] | None:
    name = ref.get("name", "")
    data = _source(lookup, ns, kind, name)
    if data is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{kind.lower()} "{name}" not found')
    if key is not None and key not in data:
        if ref.get("optional"):
            return None
        raise ConfigError(f"couldn't find key {key} in {kind} {ns}/{name}")
    return data


def field_value(pod: Obj, path: str, pod_ip: str) -> str:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    values = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": HOST_IP,
        "status.hostIPs": HOST_IP,
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
    }
    return str(values.get(path) or "")


def resolve_env(lookup: Lookup, pod: Obj, c: Obj, pod_ip: str) -> dict[str, str]:
    """The variables the container's spec defines (nothing from this machine)."""
    ns = pod["metadata"].get("namespace", "")
    env: dict[str, str] = {}
    for src in c.get("envFrom") or []:
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if field in src:
                data = _lookup(lookup, ns, kind, src[field], None) or {}
                env.update({src.get("prefix", "") + k: v for k, v in data.items()})
    for item in c.get("env") or []:
        source = item.get("valueFrom")
        if not source:
            env[item["name"]] = expand(str(item.get("value", "")), env)
            continue
        for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            if field in source:
                ref = source[field]
                found = _lookup(lookup, ns, kind, ref, ref.get("key", ""))
                if found is not None:
                    env[item["name"]] = found[ref.get("key", "")]
        if "fieldRef" in source:
            env[item["name"]] = field_value(pod, source["fieldRef"].get("fieldPath", ""), pod_ip)
        if "resourceFieldRef" in source:
            kind, _, what = source["resourceFieldRef"].get("resource", "").partition(".")
            value = ((c.get("resources") or {}).get(kind) or {}).get(what)
            env[item["name"]] = str(value if value is not None else "0")
    return env
