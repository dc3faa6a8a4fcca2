"""The write of a server-side apply: what `apply.apply` computed, stored through the same
create and update path (admission, validation, limits) as every other write.

A missing object is created (the caller answers 201); an existing one is updated with a
compare-and-swap, recomputed when it changed meanwhile. A missing `fieldManager` is the 422
kube-apiserver answers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from koos_sandbox import apply, errors
from koos_sandbox.auth import UserInfo
from koos_sandbox.errors import ApiError
from koos_sandbox.registry import ResourceType
from koos_sandbox.store import Obj, StaleObject
from koos_sandbox.write_check import WriteOptions, decode, modified_conflict
from koos_sandbox.writes import CAS_TRIES, Writes


async def apply_write(
    writes: Writes,
    user: UserInfo,
    rt: ResourceType,
    namespace: str,
    name: str,
    body: Any,
    opts: WriteOptions,
) -> tuple[Obj, bool]:
    """PATCH with application/apply-patch+yaml: (the object, whether it was created)."""
    if not opts.field_manager:
        raise errors.invalid(
            "PatchOptions",
            "",
            "meta.k8s.io",
            [("fieldManager", "Required value: is required for apply patch")],
        )
    opts = replace(opts, applying=True)
    for _ in range(CAS_TRIES):
        old = writes.store.find(rt, namespace, name)
        new = apply.apply(
            old,
            body,
            manager=opts.field_manager,
            force=opts.force,
            api_version=rt.api_version,
            status_separate=rt.has_status,
            subresource=opts.subresource,
        )
        if old is None:
            if opts.subresource:
                raise errors.not_found(rt.plural, name, rt.group)
            new["metadata"].setdefault("name", name)
            if new["metadata"]["name"] != name:
                raise errors.bad_request(
                    f"the name of the object ({new['metadata']['name']}) does not match "
                    f"the name on the URL ({name})"
                )
            try:
                return await writes.create(user, rt, namespace, new, opts), True
            except ApiError as error:
                if error.reason == "AlreadyExists":
                    continue  # created meanwhile: apply to it
                raise
        obj = decode(rt, new, namespace, opts)
        try:
            return await writes._update_once(user, rt, namespace, name, old, obj, opts), False
        except StaleObject:
            continue
    raise modified_conflict(rt, name)
