"""The write path of the API server: what happens between a decoded request and the store.

Order, as in kube-apiserver: decode (prune unknown fields of custom objects) → defaults →
the update rules of the resource (server-owned metadata, status subresource separation,
finalizers) → mutating admission → schema validation → validating admission → store.
`dryRun` runs everything but the store write. Built-in kinds have no schema here: the
sandbox trusts their shape, like a permissive API server would.
"""

from __future__ import annotations

import base64
import copy
import random
import re
import uuid
from dataclasses import dataclass, replace
from typing import Any, Protocol

from koos.sandbox import errors, jobspec, patch, schema
from koos.sandbox.auth import UserInfo
from koos.sandbox.errors import ApiError
from koos.sandbox.registry import Registry, ResourceType
from koos.sandbox.requestctx import warn
from koos.sandbox.store import Obj, Store, now_rfc3339

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
DEFAULT_ORPHAN = frozenset({("batch", "jobs")})  # batch/v1 Jobs still default to orphaning


@dataclass(frozen=True)
class AdmissionRequest:
    user: UserInfo
    rt: ResourceType
    operation: str  # CREATE | UPDATE | DELETE
    subresource: str
    namespace: str
    name: str
    obj: Obj | None
    old: Obj | None
    dry_run: bool
    options: dict[str, Any]


class Admission(Protocol):
    async def mutate(self, request: AdmissionRequest) -> Obj | None: ...

    async def validate(self, request: AdmissionRequest) -> None: ...


class NoAdmission:
    async def mutate(self, request: AdmissionRequest) -> Obj | None:
        return request.obj

    async def validate(self, request: AdmissionRequest) -> None:
        return None


@dataclass(frozen=True)
class WriteOptions:
    dry_run: bool = False
    field_validation: str = ""  # "", Ignore, Warn, Strict
    subresource: str = ""


class Writes:
    def __init__(self, store: Store, registry: Registry, admission: Admission) -> None:
        self.store = store
        self.registry = registry
        self.admission = admission

    # ---- create ------------------------------------------------------------------------

    async def create(
        self, user: UserInfo, rt: ResourceType, namespace: str, body: Any, opts: WriteOptions
    ) -> Obj:
        obj = self._decode(rt, body, namespace, opts)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and not meta.get("generateName"):
            raise errors.invalid(
                rt.kind,
                "",
                rt.group,
                [("metadata.name", "Required value: name or generateName is required")],
            )
        self._check_namespace(rt, namespace)
        if rt.has_status and rt.key != ("", "namespaces"):
            obj.pop("status", None)
        request = AdmissionRequest(
            user,
            rt,
            "CREATE",
            "",
            namespace,
            meta.get("name", ""),
            obj,
            None,
            opts.dry_run,
            {"kind": "CreateOptions"},
        )
        # As in the apiserver: mutating admission sees no generated name; the name, the
        # server's defaults and validation come after it; validating admission sees them all.
        obj = await self.admission.mutate(request) or obj
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            meta["name"] = meta["generateName"] + "".join(random.choices(_GENERATE_ALPHABET, k=5))
        name = meta["name"]
        uid = str(uuid.uuid4())
        try:
            obj = _create_defaults(rt, obj, uid)
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            # The apiserver would fail to decode such a body into its Go type.
            raise errors.bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"malformed object: {exc}"
            ) from exc
        self._validate(rt, obj)
        await self.admission.validate(replace(request, name=name, obj=obj))
        if self.store.find(rt, namespace, name) is not None:
            raise errors.already_exists(rt.plural, name, rt.group)
        if opts.dry_run:
            return self._dry_run_result(rt, namespace, obj)
        created = self.store.create(rt, namespace, obj, uid=uid)
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            created = self._establish(rt, created)
        return created

    # ---- update and patch ---------------------------------------------------------------

    async def update(
        self,
        user: UserInfo,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        opts: WriteOptions,
        *,
        operation_old: Obj | None = None,
    ) -> Obj:
        old = operation_old or self.store.get(rt, namespace, name)
        obj = self._decode(rt, body, namespace, opts)
        meta = obj.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})"
            )
        meta["name"] = name
        sent_rv = meta.get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(
                rt.plural,
                name,
                rt.group,
                "the object has been modified; please apply your changes to the latest "
                "version and try again",
            )
        new = self._apply_update_rules(rt, old, obj, opts.subresource)
        if rt.key == ("", "secrets"):
            new = _secret_string_data(new)
        request = AdmissionRequest(
            user,
            rt,
            "UPDATE",
            opts.subresource,
            namespace,
            name,
            new,
            old,
            opts.dry_run,
            {"kind": "UpdateOptions"},
        )
        new = await self._admit(request, new)
        if opts.dry_run:
            return new
        stored = self.store.replace(rt, old, new)
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions") and stored is not old:
            stored = self._establish(rt, stored)
        return stored

    def _apply_update_rules(self, rt: ResourceType, old: Obj, obj: Obj, subresource: str) -> Obj:
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            return new
        new = obj
        if rt.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        old_meta, meta = old["metadata"], new["metadata"]
        if "deletionTimestamp" in old_meta:
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise errors.invalid(
                    rt.kind,
                    old_meta["name"],
                    rt.group,
                    [
                        (
                            "metadata.finalizers",
                            "Forbidden: no new finalizers can be added if "
                            "the object is being deleted, found new finalizers "
                            + str(sorted(added)).replace("'", '"'),
                        )
                    ],
                )
        return new

    async def patch(
        self,
        user: UserInfo,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        body: Any,
        opts: WriteOptions,
    ) -> Obj:
        if content_type == "application/strategic-merge-patch+json":
            patch.check_strategic_supported(rt.custom)
        if content_type == "application/merge-patch+json" and not isinstance(body, dict):
            raise errors.bad_request("Invalid JSON Patch")
        old = self.store.get(rt, namespace, name)
        if content_type == "application/merge-patch+json":
            patched = patch.merge_patch(old, body)
        elif content_type == "application/json-patch+json":
            patched = patch.json_patch(old, body)
        elif content_type == "application/strategic-merge-patch+json":
            patched = patch.strategic_merge_patch(old, body)
        else:
            raise errors.unsupported_media_type()
        if not isinstance(patched, dict):
            raise errors.bad_request("the patch must leave a JSON object")
        return await self.update(user, rt, namespace, name, patched, opts, operation_old=old)

    # ---- delete ------------------------------------------------------------------------

    async def delete(
        self,
        user: UserInfo,
        rt: ResourceType,
        namespace: str,
        name: str,
        options: dict[str, Any],
        dry_run: bool = False,
    ) -> Obj:
        obj = self.store.get(rt, namespace, name)
        meta = obj["metadata"]
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != meta["uid"]:
            raise errors.conflict(
                rt.plural,
                name,
                rt.group,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {meta['uid']}",
            )
        if preconditions.get("resourceVersion") and (
            preconditions["resourceVersion"] != meta["resourceVersion"]
        ):
            raise errors.conflict(
                rt.plural,
                name,
                rt.group,
                "Precondition failed: ResourceVersion in precondition: "
                f"{preconditions['resourceVersion']}, ResourceVersion in object meta: "
                f"{meta['resourceVersion']}",
            )
        request = AdmissionRequest(
            user,
            rt,
            "DELETE",
            "",
            namespace,
            name,
            None,
            obj,
            dry_run,
            {"kind": "DeleteOptions", **options},
        )
        await self.admission.validate(request)
        if dry_run:
            return obj
        policy = _propagation(rt, options)
        finalizers = list(meta.get("finalizers") or [])
        if "deletionTimestamp" in meta:
            # A second delete only switches an orphaning delete to another policy.
            return obj
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if rt.key == ("", "namespaces"):
            marked = copy.deepcopy(obj)
            marked["status"] = {"phase": "Terminating"}
            self.store.replace(rt, obj, marked)
            return self.store.mark_deleted(rt, self.store.get(rt, namespace, name), finalizers)
        grace = _grace_period(rt, obj, options)
        if finalizers or grace:
            return self.store.mark_deleted(rt, obj, finalizers, grace)
        gone = self.store.remove(rt, obj)
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._forget_crd(gone)
        return gone

    # ---- helpers -----------------------------------------------------------------------

    def _decode(self, rt: ResourceType, body: Any, namespace: str, opts: WriteOptions) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        obj = copy.deepcopy(body)
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if (kind and kind != rt.kind) or (api_version and api_version != rt.api_version):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
                if api_version != rt.api_version
                else f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        if rt.custom and rt.schema:
            pruned = schema.prune(obj, rt.schema)
            unknown = _removed_paths(obj, pruned)
            if unknown and opts.field_validation == "Strict":
                text = ", ".join(f'unknown field "{p}"' for p in unknown)
                raise errors.bad_request(f"strict decoding error: {text}")
            if unknown and opts.field_validation == "Warn":
                for path in unknown:
                    warn(f'unknown field "{path}"')
            obj = schema.apply_defaults(pruned, rt.schema)
        return obj

    def _check_namespace(self, rt: ResourceType, namespace: str) -> None:
        if not rt.namespaced:
            return
        ns_type = self.registry.find("", "v1", "namespaces")
        assert ns_type is not None
        ns = self.store.find(ns_type, "", namespace)
        if ns is None:
            raise errors.not_found("namespaces", namespace)
        if "deletionTimestamp" in ns["metadata"]:
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
            )

    async def _admit(self, request: AdmissionRequest, obj: Obj) -> Obj:
        mutated = await self.admission.mutate(request)
        if mutated is not None:
            obj = mutated
        self._validate(request.rt, obj)
        await self.admission.validate(replace(request, obj=obj))
        return obj

    def _validate(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        name = meta.get("name", "")
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
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            causes.extend(_crd_causes(obj))
        if rt.custom and rt.schema:
            causes.extend(schema.validate(obj, rt.schema))
        if rt.key == ("batch", "jobs"):
            causes.extend(jobspec.validate_job(obj))
        if causes:
            raise errors.invalid(rt.kind, name, rt.group, causes)

    def _dry_run_result(self, rt: ResourceType, namespace: str, obj: Obj) -> Obj:
        result = copy.deepcopy(obj)
        meta = result["metadata"]
        if rt.namespaced:
            meta["namespace"] = namespace
        meta.setdefault("creationTimestamp", now_rfc3339())
        result["apiVersion"], result["kind"] = rt.api_version, rt.kind
        return result

    def _establish(self, rt: ResourceType, crd: Obj) -> Obj:
        """Register a stored CRD's kinds and mark it Established, as the CRD controllers do."""
        self.registry.set_crd(crd)
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
        return self.store.replace(rt, crd, {**crd, "status": status})

    def _forget_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        self.registry.remove_crd(crd["metadata"]["name"])
        self.store.drop_collection((spec.get("group", ""), spec.get("names", {}).get("plural", "")))


def _create_defaults(rt: ResourceType, obj: Obj, uid: str) -> Obj:
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
        obj = _secret_string_data(obj)
    return obj


def _secret_string_data(secret: Obj) -> Obj:
    """`stringData` is write-only: merged into base64 `data`, never stored."""
    string_data = secret.pop("stringData", None)
    if string_data:
        data = dict(secret.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        secret["data"] = data
    secret.setdefault("type", "Opaque")
    return secret


def _grace_period(rt: ResourceType, obj: Obj, options: dict[str, Any]) -> int:
    """A running Pod on a node is deleted gracefully: it shows Terminating until its kubelet
    has stopped the containers and removes it. Anything else goes at once."""
    if rt.key != ("", "pods") or not (obj.get("spec") or {}).get("nodeName"):
        return 0
    if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    requested = options.get("gracePeriodSeconds")
    if requested is not None:
        return max(int(requested), 0)
    return int((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30))


def _propagation(rt: ResourceType, options: dict[str, Any]) -> str:
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


def _crd_causes(crd: Obj) -> list[tuple[str, str]]:
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


def _removed_paths(before: Any, after: Any, path: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for key, value in before.items():
            child = f"{path}.{key}" if path else key
            if key not in after:
                found.append(child)
            else:
                found.extend(_removed_paths(value, after[key], child))
        return found
    if isinstance(before, list) and isinstance(after, list):
        return [
            p
            for i, (b, a) in enumerate(zip(before, after, strict=False))
            for p in _removed_paths(b, a, f"{path}[{i}]")
        ]
    return []
