"""The sandbox's etcd: objects, the global resourceVersion, and the watch event log.

Invariants:
- Stored objects are never mutated: every write stores a new dict, so a dict handed to a
  watcher or a response stays valid after later writes. Callers must not mutate what they get.
- `resourceVersion` is one global counter bumped on every write that changes bytes (a write
  that changes nothing is a no-op, as in the real API server), including status writes and
  deletion marks.
- The event log keeps the last `window` events; a watch from an older version gets 410.
- Everything runs on one asyncio loop; methods are synchronous and atomic with respect to it.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from koos_sandbox import errors
from koos_sandbox.objects import Obj as Obj
from koos_sandbox.objects import now_rfc3339 as now_rfc3339
from koos_sandbox.registry import Registry, ResourceType, tracks_generation

Key = tuple[str, str]  # (group, plural)


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: Key
    namespace: str
    obj: Obj
    old: Obj | None


class StaleObject(Exception):
    """The object changed since the caller read it (a failed compare-and-swap)."""


class WatchExpired(Exception):
    """The requested resourceVersion is older than the retained log."""


class WatchClosed(Exception):
    """The server asked every watch to close (fault injection or shutdown)."""


class Store:
    def __init__(self, registry: Registry, *, window: int = 20000) -> None:
        self.registry = registry
        self.rv = 1
        self.window = window
        self._objects: dict[Key, dict[tuple[str, str], Obj]] = {}
        self._by_uid: dict[str, tuple[Key, str, str]] = {}
        self._log: list[Event] = []
        self._log_rvs: list[int] = []
        self._compacted = 0  # watches from a version below this get 410
        self._wakeup = asyncio.Event()
        self._epoch = 0  # bumped to close every open watch
        self._forced_expiry: list[Key | None] = []
        self.listeners: list[Callable[[Event], None]] = []

    # ---- reads ---------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self._objects.get(rt.key, {}).get((namespace, name))
        if obj is None:
            raise errors.not_found(rt.plural, name, rt.group)
        return obj

    def find(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        return self._objects.get(rt.key, {}).get((namespace, name))

    def by_uid(self, uid: str) -> tuple[Key, Obj] | None:
        where = self._by_uid.get(uid)
        if where is None:
            return None
        key, namespace, name = where
        return key, self._objects[key][(namespace, name)]

    def items(self, key: Key, namespace: str | None = None) -> list[Obj]:
        """Objects of a collection (all namespaces when `namespace` is None), sorted by
        namespace and name like etcd keys."""
        found = self._objects.get(key, {})
        # etcd keys are "<namespace>/<name>": list in their byte order, as the apiserver does.
        keys = sorted(
            (k for k in found if namespace is None or k[0] == namespace),
            key=lambda k: f"{k[0]}/{k[1]}",
        )
        return [found[k] for k in keys]

    def all_items(self) -> Iterable[tuple[Key, Obj]]:
        for key, objects in list(self._objects.items()):
            for obj in list(objects.values()):
                yield key, obj

    # ---- writes --------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str, obj: Obj, uid: str | None = None) -> Obj:
        """Store a new object whose name is set; fills the metadata the server owns."""
        meta = obj["metadata"]
        name = meta["name"]
        collection = self._objects.setdefault(rt.key, {})
        if (namespace, name) in collection:
            raise errors.already_exists(rt.plural, name, rt.group)
        new = copy.deepcopy(obj)
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        meta = new["metadata"]
        if rt.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta["uid"] = uid or str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        for owned in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(owned, None)
        if tracks_generation(rt):
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        collection[(namespace, name)] = new
        self._by_uid[meta["uid"]] = (rt.key, namespace, name)
        self._emit(Event(self.rv, "ADDED", rt.key, namespace, new, None))
        return new

    def replace(self, rt: ResourceType, old: Obj, new: Obj, *, expect_current: bool = False) -> Obj:
        """Store `new` in place of `old` (same object). The caller has already applied the
        update rules; here the server-owned fields are kept and the version bumped. An
        object marked for deletion whose last finalizer is gone is removed."""
        meta_old = old["metadata"]
        namespace, name = meta_old.get("namespace", ""), meta_old["name"]
        if expect_current and self._objects.get(rt.key, {}).get((namespace, name)) is not old:
            raise StaleObject(name)
        new = copy.deepcopy(new)
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        meta = new.setdefault("metadata", {})
        for owned in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp"):
            if owned in meta_old:
                meta[owned] = meta_old[owned]
            else:
                meta.pop(owned, None)
        if "deletionGracePeriodSeconds" in meta_old:
            meta["deletionGracePeriodSeconds"] = meta_old["deletionGracePeriodSeconds"]
        meta["resourceVersion"] = meta_old["resourceVersion"]
        if tracks_generation(rt):
            meta["generation"] = meta_old.get("generation", 1)
            if _spec_of(new) != _spec_of(old):
                meta["generation"] += 1
        if new == old:
            return old
        if (
            "deletionTimestamp" in meta
            and not meta.get("finalizers")
            and not meta.get("deletionGracePeriodSeconds")
        ):
            meta.pop("finalizers", None)
            return self._remove(rt, namespace, name, new)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        self._objects[rt.key][(namespace, name)] = new
        self._emit(Event(self.rv, "MODIFIED", rt.key, namespace, new, old))
        return new

    def mark_deleted(
        self,
        rt: ResourceType,
        old: Obj,
        finalizers: list[str],
        grace: int = 0,
        status: Obj | None = None,
    ) -> Obj:
        """Set deletionTimestamp (and the given finalizers, and a new status in the same
        write, as a Namespace's Terminating); the object stays until the finalizers are all
        removed — and, with a grace period (Pods), until its kubelet removes it."""
        new = copy.deepcopy(old)
        if status is not None:
            new["status"] = status
        meta = new["metadata"]
        if "deletionTimestamp" not in meta:
            meta["deletionTimestamp"] = now_rfc3339()
            meta["deletionGracePeriodSeconds"] = grace
        meta["finalizers"] = finalizers
        if tracks_generation(rt):
            # The apiserver bumps generation when it sets deletionTimestamp.
            meta["generation"] = meta.get("generation", 1) + 1
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        namespace, name = meta.get("namespace", ""), meta["name"]
        self._objects[rt.key][(namespace, name)] = new
        self._emit(Event(self.rv, "MODIFIED", rt.key, namespace, new, old))
        return new

    def shorten_grace(self, rt: ResourceType, old: Obj, grace: int) -> Obj:
        """A Pod marked for deletion gets a shorter grace period (0: it goes as soon as its
        last finalizer does)."""
        new = copy.deepcopy(old)
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        self.rv += 1
        new["metadata"]["resourceVersion"] = str(self.rv)
        meta = new["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        self._objects[rt.key][(namespace, name)] = new
        self._emit(Event(self.rv, "MODIFIED", rt.key, namespace, new, old))
        return new

    def remove(self, rt: ResourceType, old: Obj) -> Obj:
        meta = old["metadata"]
        return self._remove(rt, meta.get("namespace", ""), meta["name"], old)

    def _remove(self, rt: ResourceType, namespace: str, name: str, last: Obj) -> Obj:
        collection = self._objects.get(rt.key, {})
        current = collection.pop((namespace, name), None)
        if current is None:
            raise errors.not_found(rt.plural, name, rt.group)
        self._by_uid.pop(current["metadata"]["uid"], None)
        self.rv += 1
        gone = copy.deepcopy(last)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self._emit(Event(self.rv, "DELETED", rt.key, namespace, gone, current))
        return gone

    # ---- watch ---------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self._log.append(event)
        self._log_rvs.append(event.rv)
        if len(self._log) > 2 * self.window:
            cut = len(self._log) - self.window
            self._compacted = self._log_rvs[cut - 1]
            del self._log[:cut]
            del self._log_rvs[:cut]
        wake, self._wakeup = self._wakeup, asyncio.Event()
        wake.set()
        for listener in list(self.listeners):
            listener(event)

    def compact(self) -> None:
        """Forget history: the next watch from any older version gets 410 (a test fault)."""
        self._compacted = self.rv
        self._log.clear()
        self._log_rvs.clear()

    def expire_next_watch(self, key: Key | None = None) -> None:
        """The next watch (of collection `key`, or of any) that resumes from a version gets
        410 Gone, as after an etcd compaction; the relist and watch after it work."""
        self._forced_expiry.append(key)

    def take_forced_expiry(self, key: Key) -> bool:
        for i, wanted in enumerate(self._forced_expiry):
            if wanted is None or wanted == key:
                del self._forced_expiry[i]
                return True
        return False

    def close_watches(self, *, expire: bool = False) -> None:
        """End every open watch stream, as when an API server restarts or a proxy drops.
        With `expire`, history before this moment is gone too, as when the restarted server
        finds etcd compacted: a watch resumed from any older version gets 410 Gone, and a
        relist (whose version is now current) watches on as usual."""
        if expire:
            self.rv += 1  # the relist's version must not be older than the cut
            self.compact()
        self._epoch += 1
        wake, self._wakeup = self._wakeup, asyncio.Event()
        wake.set()

    def check_watchable(self, since: int) -> None:
        if since < self._compacted:
            raise WatchExpired(f"too old resource version: {since} ({self._compacted + 1})")

    async def events_since(
        self, since: int, key: Key | None = None, *, bookmark_every: float | None = None
    ) -> AsyncIterator[Event | int]:
        """Every event after version `since` (of collection `key`), forever. Every
        `bookmark_every` seconds without an event of `key` for this watcher, yields the
        version up to which it has seen everything (an int): a bookmark never claims an
        event that was not delivered."""
        self.check_watchable(since)
        epoch = self._epoch
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while True:
            if self._epoch != epoch:
                raise WatchClosed()
            if since < self._compacted:
                raise WatchExpired(f"too old resource version: {since} ({self._compacted + 1})")
            # The log may have been trimmed since we last looked: find our place again.
            position = bisect.bisect_right(self._log_rvs, since)
            if position < len(self._log):
                event = self._log[position]
                since = event.rv
                if key is None or event.key == key:
                    quiet_since = loop.time()
                    yield event
                continue
            wake = self._wakeup
            timeout = None
            if bookmark_every is not None:
                timeout = max(quiet_since + bookmark_every - loop.time(), 0)
            try:
                await asyncio.wait_for(wake.wait(), timeout)
            except TimeoutError:
                quiet_since = loop.time()
                yield since


def _spec_of(obj: Obj) -> Obj:
    """Everything but metadata and status: a change here bumps metadata.generation."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
