"""The latest body of each object seen on its watch, read instead of a GET when it is known
to be at least as new as the controller's own last write of it.

An informer's cache may lag behind the API server; what must never happen is planning from
a body older than koos's own last write (it would, say, take a Job koos just created for a
stray). So after a write whose response says resourceVersion R, the cached body counts only
once the watch has delivered R (events of one object arrive in order, so anything after R
is newer). The watch may deliver R before the write's response reaches the controller: the
versions seen since the previous write are kept to tell. Until R arrives — or when the
watch relisted past it, or after a reconcile that failed half-way (`distrust`) — `fresh`
says None and the controller reads the object (the next write starts the tracking afresh).
A body older than somebody else's write is harmless: every status write is guarded by the
resourceVersion it was planned from, and that change's own event wakes the object again.

Only objects still in progress are kept (`keep`): finished ones are rarely read again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

from koos.k8s.apply import resource_version

Key = Hashable


class LatestBodies:
    def __init__(self, keep: Callable[[Mapping[str, Any]], bool]) -> None:
        self._keep = keep
        self._bodies: dict[Key, Mapping[str, Any]] = {}
        self._pending: dict[Key, str] = {}  # key → the version of our last write, not seen yet
        self._seen: dict[Key, set[str]] = {}  # key → versions seen since our last write

    def __len__(self) -> int:
        return len(self._bodies)

    def seen(self, key: Key, event_type: str | None, body: Mapping[str, Any]) -> None:
        version = resource_version(body)
        if event_type == "DELETED" or not version or not self._keep(body):
            self.forget(key)
            return
        self._bodies[key] = body
        self._seen.setdefault(key, set()).add(version)
        if self._pending.get(key) == version:
            del self._pending[key]

    def wrote(self, key: Key, versions: tuple[str, ...]) -> None:
        if not versions:
            return  # nothing written: what was pending still is
        latest = versions[-1]
        if latest in self._seen.get(key, ()):
            self._pending.pop(key, None)
        else:
            self._pending[key] = latest
        self._seen[key] = set()

    def items(self) -> list[tuple[Key, Mapping[str, Any]]]:
        """Every kept body, fresh or not (for what does not change with status writes)."""
        return list(self._bodies.items())

    def distrust(self, key: Key) -> None:
        """A write of ours may have landed without us knowing its version (the reconcile
        failed half-way): read the object until the next write of ours is seen."""
        self._pending[key] = ""  # never a real version: only `wrote` clears it

    def fresh(self, key: Key) -> Mapping[str, Any] | None:
        """The cached body, if it is at least as new as our last write."""
        if key in self._pending:
            return None
        return self._bodies.get(key)

    def forget(self, key: Key) -> None:
        self._bodies.pop(key, None)
        self._pending.pop(key, None)
        self._seen.pop(key, None)
