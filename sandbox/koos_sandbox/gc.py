"""The garbage collector and the namespace controller, as kube-controller-manager runs them.

- An object whose owners (by uid) are all gone is deleted in the background; an object with
  a live owner and a dangling one loses the dangling reference.
- Foreground deletion (`foregroundDeletion` finalizer): dependents are deleted first; the
  owner goes when none is left.
- Orphan deletion (`orphan` finalizer): dependents lose the owner reference, then the owner goes.
- A namespace marked for deletion has all its content deleted, then disappears.

Controllers react to store events through a queue, asynchronously, like the real ones, so
tests wait for their effects on a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy

from koos_sandbox.errors import ApiError
from koos_sandbox.registry import ResourceType
from koos_sandbox.state import State
from koos_sandbox.store import Event, Key, Obj


class GarbageCollector:
    def __init__(self, state: State) -> None:
        self.state = state
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        state.store.listeners.append(self.queue.put_nowait)
        # owner uid → dependents as (key, namespace, name)
        self.dependents: dict[str, set[tuple[Key, str, str]]] = {}

    def _rt(self, key: Key) -> ResourceType | None:
        for rt in self.state.registry.all():
            if rt.key == key:
                return rt
        return None

    async def run(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                self._handle(event)
            except ApiError as error:
                if error.code != 404:
                    self.state.log.warning("garbage collector: %s", error.message)
            except Exception:
                self.state.log.exception("garbage collector failed on an event")

    def _index(self, event: Event) -> None:
        ref = (event.key, event.namespace, event.obj["metadata"]["name"])
        old_owners = {str(o.get("uid")) for o in _owners(event.old)}
        new_owners = (
            set() if event.type == "DELETED" else {str(o.get("uid")) for o in _owners(event.obj)}
        )
        for uid in old_owners - new_owners:
            self.dependents.get(uid, set()).discard(ref)
        for uid in new_owners - old_owners:
            self.dependents.setdefault(uid, set()).add(ref)

    def _handle(self, event: Event) -> None:
        self._index(event)
        obj = event.obj
        meta = obj["metadata"]
        if event.type == "DELETED":
            self._collect_dependents_of(meta["uid"])
            for owner in _owners(obj):
                self._recheck_owner(owner.get("uid", ""))
            if event.namespace:
                self._recheck_namespace(event.namespace)
            return
        if event.type == "ADDED" and _owners(obj):
            self._check_dangling(event.key, obj)
        if "deletionTimestamp" in meta:
            finalizers = meta.get("finalizers") or []
            if "foregroundDeletion" in finalizers:
                self._foreground(event.key, obj)
            if "orphan" in finalizers:
                self._orphan(event.key, obj)
            if event.key == ("", "namespaces"):
                self._empty_namespace(obj)

    def _live(self, ref: tuple[Key, str, str]) -> Obj | None:
        rt = self._rt(ref[0])
        return None if rt is None else self.state.store.find(rt, ref[1], ref[2])

    def _delete(self, key: Key, obj: Obj, policy: str) -> None:
        rt = self._rt(key)
        if rt is None or "deletionTimestamp" in obj["metadata"]:
            return
        finalizers = list(obj["metadata"].get("finalizers") or [])
        if policy == "Foreground":
            finalizers.append("foregroundDeletion")
        if finalizers:
            self.state.store.mark_deleted(rt, obj, finalizers)
        else:
            self.state.store.remove(rt, obj)

    def _collect_dependents_of(self, uid: str) -> None:
        for ref in sorted(self.dependents.pop(uid, set())):
            dependent = self._live(ref)
            if dependent is None:
                continue
            remaining = [o for o in _owners(dependent) if o.get("uid") != uid]
            if any(self.state.store.by_uid(o.get("uid", "")) for o in remaining):
                self._set_owners(ref[0], dependent, remaining)
            else:
                self._delete(ref[0], dependent, "Background")

    def _check_dangling(self, key: Key, obj: Obj) -> None:
        owners = _owners(obj)
        if not any(self.state.store.by_uid(o.get("uid", "")) for o in owners):
            self._delete(key, obj, "Background")

    def _set_owners(self, key: Key, obj: Obj, owners: list[Obj]) -> None:
        rt = self._rt(key)
        if rt is None:
            return
        new = copy.deepcopy(obj)
        if owners:
            new["metadata"]["ownerReferences"] = owners
        else:
            new["metadata"].pop("ownerReferences", None)
        self.state.store.replace(rt, obj, new)

    def _remove_finalizer(self, key: Key, obj: Obj, finalizer: str) -> None:
        rt = self._rt(key)
        if rt is None:
            return
        new = copy.deepcopy(obj)
        new["metadata"]["finalizers"] = [
            f for f in new["metadata"].get("finalizers") or [] if f != finalizer
        ]
        self.state.store.replace(rt, obj, new)

    def _foreground(self, key: Key, obj: Obj) -> None:
        uid = obj["metadata"]["uid"]
        blocking = False
        for ref in sorted(self.dependents.get(uid, set())):
            dependent = self._live(ref)
            if dependent is None:
                continue
            self._delete(ref[0], dependent, "Foreground")
            if any(o.get("uid") == uid and o.get("blockOwnerDeletion") for o in _owners(dependent)):
                blocking = True
        if not blocking:
            self._remove_finalizer(key, obj, "foregroundDeletion")

    def _recheck_owner(self, uid: str) -> None:
        found = self.state.store.by_uid(uid)
        if found is None:
            return
        key, owner = found
        if "foregroundDeletion" in (owner["metadata"].get("finalizers") or []) and (
            "deletionTimestamp" in owner["metadata"]
        ):
            self._foreground(key, owner)

    def _orphan(self, key: Key, obj: Obj) -> None:
        uid = obj["metadata"]["uid"]
        for ref in sorted(self.dependents.pop(uid, set())):
            dependent = self._live(ref)
            if dependent is not None:
                remaining = [o for o in _owners(dependent) if o.get("uid") != uid]
                self._set_owners(ref[0], dependent, remaining)
        current = self.state.store.by_uid(uid)
        if current is not None:
            self._remove_finalizer(key, current[1], "orphan")

    def _empty_namespace(self, ns: Obj) -> None:
        name = ns["metadata"]["name"]
        for key, obj in list(self.state.store.all_items()):
            if obj["metadata"].get("namespace") != name or key == ("", "namespaces"):
                continue
            with contextlib.suppress(ApiError):
                self._delete(key, obj, "Background")
        if not self._has_content(name):
            rt = self._rt(("", "namespaces"))
            current = self.state.store.by_uid(ns["metadata"]["uid"])
            if (
                rt is not None
                and current is not None
                and not current[1]["metadata"].get("finalizers")
            ):
                self.state.store.remove(rt, current[1])

    def _recheck_namespace(self, name: str) -> None:
        """Content of a namespace went away: a terminating namespace may now be empty."""
        rt = self._rt(("", "namespaces"))
        ns = None if rt is None else self.state.store.find(rt, "", name)
        if ns is not None and "deletionTimestamp" in ns["metadata"]:
            self._empty_namespace(ns)

    def _has_content(self, namespace: str) -> bool:
        return any(
            obj["metadata"].get("namespace") == namespace for _, obj in self.state.store.all_items()
        )


def _owners(obj: Obj | None) -> list[Obj]:
    if obj is None:
        return []
    return list((obj.get("metadata") or {}).get("ownerReferences") or [])
