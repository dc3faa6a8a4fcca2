"""The write path of the API server: what happens between a decoded request and the store.

Order, as in kube-apiserver: decode (prune unknown fields of custom objects) → defaults →
the update rules of the resource (server-owned metadata, status subresource separation,
finalizers) → mutating admission → schema validation → validating admission → store.
`dryRun` runs everything but the store write. Built-in kinds have no schema here: the
sandbox trusts their shape, like a permissive API server would.

Built-in admission runs before the webhooks (ServiceAccounts of Pods, serviceaccounts.py);
the size limits (limits.py) before the store; managedFields follow each write of an object
that has them (apply.py; server-side apply itself is apply_write.py).

This module orders the steps and talks to admission and the store; the checks that need
neither (decode, namespace, built-in validation) and `WriteOptions` live in
`koos_sandbox.write_check`, and `WriteOptions` is re-exported here.
"""

from __future__ import annotations

import copy
import random
import uuid
from dataclasses import dataclass, replace
from typing import Any, Protocol

from koos_sandbox import apply, errors, limits, patch, serviceaccounts, strategies
from koos_sandbox.auth import UserInfo
from koos_sandbox.errors import ApiError
from koos_sandbox.registry import Registry, ResourceType
from koos_sandbox.store import Event, Obj, StaleObject, Store
from koos_sandbox.write_check import WriteOptions as WriteOptions  # re-exported
from koos_sandbox.write_check import (
    check_namespace,
    decode,
    dry_run_result,
    modified_conflict,
    validate,
)

CAS_TRIES = 8
CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


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


class Writes:
    def __init__(self, store: Store, registry: Registry, admission: Admission) -> None:
        self.store = store
        self.registry = registry
        self.admission = admission
        # The CA bundle kube-controller-manager's root-ca-cert-publisher puts into every
        # namespace as the ConfigMap `kube-root-ca.crt`; none when empty.
        self.root_ca = ""
        store.listeners.append(self._on_event)

    # ---- create ------------------------------------------------------------------------

    async def create(
        self, user: UserInfo, rt: ResourceType, namespace: str, body: Any, opts: WriteOptions
    ) -> Obj:
        obj = decode(rt, body, namespace, opts)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and not meta.get("generateName"):
            raise errors.invalid(
                rt.kind,
                "",
                rt.group,
                [("metadata.name", "Required value: name or generateName is required")],
            )
        check_namespace(self.store, self.registry, rt, namespace)
        if not opts.applying:  # only server-side apply starts managedFields here
            meta.pop("managedFields", None)
        if rt.has_status and rt.key != ("", "namespaces"):
            obj.pop("status", None)
        if rt.key == ("", "pods"):  # built-in admission runs before the webhooks
            serviceaccounts.admit_pod(
                self.store, serviceaccounts.sa_type(self.registry), namespace, obj
            )
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
            obj = strategies.create_defaults(rt, obj, uid)
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            # The apiserver would fail to decode such a body into its Go type.
            raise errors.bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"malformed object: {exc}"
            ) from exc
        validate(rt, obj)
        await self.admission.validate(replace(request, name=name, obj=obj))
        if self.store.find(rt, namespace, name) is not None:
            raise errors.already_exists(rt.plural, name, rt.group)
        if opts.dry_run:
            return dry_run_result(rt, namespace, obj)
        limits.check_stored_size(limits.etcd_key(rt.group, rt.plural, namespace, name), obj)
        created = self.store.create(rt, namespace, obj, uid=uid)
        if rt.key == ("", "namespaces"):
            serviceaccounts.ensure_default(self.store, serviceaccounts.sa_type(self.registry), name)
            serviceaccounts.ensure_root_ca(self.store, self.registry, name, self.root_ca)
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
    ) -> Obj:
        """PUT. Without a resourceVersion (built-ins only) it is retried against the latest
        object, like etcd's GuaranteedUpdate; with one, a change in between is a 409."""
        for _ in range(CAS_TRIES):
            old = self.store.get(rt, namespace, name)
            obj = decode(rt, body, namespace, opts)
            if (
                not obj["metadata"].get("resourceVersion")
                and not opts.subresource
                and (rt.custom or rt.key == CRD_KEY)
            ):
                raise errors.invalid(
                    rt.kind,
                    name,
                    rt.group,
                    [
                        (
                            "metadata.resourceVersion",
                            "Invalid value: 0x0: must be specified for an update",
                        )
                    ],
                )
            try:
                return await self._update_once(user, rt, namespace, name, old, obj, opts)
            except StaleObject:
                if obj["metadata"].get("resourceVersion"):
                    raise modified_conflict(rt, name) from None
        raise modified_conflict(rt, name)

    async def _update_once(
        self,
        user: UserInfo,
        rt: ResourceType,
        namespace: str,
        name: str,
        old: Obj,
        obj: Obj,
        opts: WriteOptions,
    ) -> Obj:
        meta = obj.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})"
            )
        meta["name"] = name
        sent_rv = meta.get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise modified_conflict(rt, name)
        new = self._apply_update_rules(rt, old, obj, opts.subresource)
        if opts.applying:
            new["metadata"]["managedFields"] = obj["metadata"].get("managedFields") or []
        else:
            new = apply.track_update(
                old,
                new,
                manager=opts.field_manager,
                api_version=rt.api_version,
                status_separate=rt.has_status,
                subresource=opts.subresource,
            )
        if rt.key == ("", "secrets"):
            new = strategies.secret_string_data(new)
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
        limits.check_stored_size(limits.etcd_key(rt.group, rt.plural, namespace, name), new)
        stored = self.store.replace(rt, old, new, expect_current=True)
        if rt.key == CRD_KEY and stored is not old:
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
        """PATCH: the patch is applied to the latest object, again if it changed meanwhile."""
        if content_type == "application/strategic-merge-patch+json":
            patch.check_strategic_supported(rt.custom)
        if content_type == "application/merge-patch+json" and not isinstance(body, dict):
            raise errors.bad_request("Invalid JSON Patch")
        for _ in range(CAS_TRIES):
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
            obj = decode(rt, patched, namespace, opts)
            try:
                return await self._update_once(user, rt, namespace, name, old, obj, opts)
            except StaleObject:
                continue
        raise modified_conflict(rt, name)

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
        if rt.key == ("", "namespaces") and name in PROTECTED_NAMESPACES:
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
            )
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
        if self.store.find(rt, namespace, name) is not obj:
            # Changed while admission ran: decide again on the latest object.
            return await self.delete(user, rt, namespace, name, options, dry_run)
        if dry_run:
            return obj
        policy = strategies.propagation(rt, options)
        finalizers = list(meta.get("finalizers") or [])
        if "deletionTimestamp" in meta:
            # A second delete may shorten a Pod's grace period (a kubelet ends with 0: the
            # Pod goes now, or when its last finalizer does); nothing else changes.
            grace = meta.get("deletionGracePeriodSeconds")
            shorter = strategies.grace_period(rt, obj, options) if grace else None
            if shorter is not None and shorter < grace:
                if shorter == 0 and not finalizers:
                    return self.store.remove(rt, obj)
                return self.store.shorten_grace(rt, obj, shorter)
            return obj
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if rt.key == ("", "namespaces"):
            return self.store.mark_deleted(rt, obj, finalizers, status={"phase": "Terminating"})
        grace = strategies.grace_period(rt, obj, options)
        if finalizers or grace:
            return self.store.mark_deleted(rt, obj, finalizers, grace)
        return self.store.remove(rt, obj)

    # ---- helpers -----------------------------------------------------------------------

    async def _admit(self, request: AdmissionRequest, obj: Obj) -> Obj:
        mutated = await self.admission.mutate(request)
        if mutated is not None:
            obj = mutated
        validate(request.rt, obj)
        await self.admission.validate(replace(request, obj=obj))
        return obj

    def _establish(self, rt: ResourceType, crd: Obj) -> Obj:
        """Register a stored CRD's kinds and mark it Established, as the CRD controllers do."""
        self.registry.set_crd(crd)
        return self.store.replace(rt, crd, {**crd, "status": strategies.established_status(crd)})

    def _on_event(self, event: Event) -> None:
        """A CRD that is gone (by any path: delete, finalizers, GC) takes its kinds and
        objects with it; each object leaves with a DELETED event, as the CRD cleanup does."""
        if event.type != "DELETED" or event.key != CRD_KEY:
            return
        spec = event.obj.get("spec") or {}
        key = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        for rt in [r for r in self.registry.all() if r.key == key][:1]:
            for obj in self.store.items(key):
                self.store.remove(rt, obj)
        self.registry.remove_crd(event.obj["metadata"]["name"])
