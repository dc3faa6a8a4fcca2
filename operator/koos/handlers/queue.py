"""A work queue of keys with wake-up times, as client-go's workqueue does it.

- A key is processed by one worker at a time; a key added while it is processed is
  processed again afterwards (so no change is lost and no two reconciles of one Execution
  overlap).
- Keys added many times while waiting are processed once.
- `add_at(key, when)` wakes a key at a time (a sleep, a retry, a timeout): waiting costs no
  API request and no polling. The wake-up a processing returns replaces the key's earlier
  one, so a run that ended is not woken again by a timer set while it ran.
- A failed key is retried with a capped exponential backoff. Its log line names the kind of
  error; an error that is not the API server's (a bug, not a passing fault) also has its
  traceback logged, once per run of failures. The controllers end a run for errors that
  retrying cannot mend (`koos.handlers.execution`), so what reaches here is meant to pass.
- A processing may let waiting keys go first (`let_waiting_go_first`): it gives up its
  worker until no key waits for one, then takes one again; its key stays taken meanwhile.
  A Schedule creates its run at once and writes its status when the other fires are out.
- Echoes are not processed: a controller records the resourceVersions its processing of a
  key wrote (`wrote`), a watch event wakes the key with its resourceVersion
  (`add(key, version=…)`), and a key woken by nothing but the echoes of its own last writes
  is skipped. It is decided when processing would start, not when the event arrives (the
  watch may deliver a write's event before the write's response reaches the controller; a
  key is never processed twice at once, so by then the response is recorded). Every other
  wake-up — a timer, a retry, a child, another controller, a deletion — always runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from koos.k8s.apply import NotOurs, resource_version
from koos.k8s.client import KubeError

log = logging.getLogger("koos.queue")

Key = Hashable
Process = Callable[[Key], Awaitable[datetime | None]]


@dataclass
class _Worker:
    """The worker slot a processing holds (one per running processing task)."""

    queue: WorkQueue
    held: bool = True


_worker: ContextVar[_Worker | None] = ContextVar("koos_queue_worker", default=None)


async def wait_drained(queues: tuple[WorkQueue, ...]) -> None:
    """Return once no key waits for a worker in any of `queues`."""
    while any(queue.busy() for queue in queues):
        for queue in queues:
            await queue.drained()


def event_version(event_type: str | None, body: Mapping[str, Any]) -> str | None:
    """The version a watch event wakes a key with (None for a deletion: it always runs)."""
    version = resource_version(body)
    return version if version and event_type != "DELETED" else None


class WorkQueue:
    def __init__(
        self,
        process: Process,
        *,
        workers: int = 16,
        max_backoff: float = 60.0,
        on_skip: Callable[[], None] | None = None,
    ) -> None:
        self._process = process
        self._on_skip = on_skip
        self.yields_to: tuple[WorkQueue, ...] = ()  # queues whose waiting keys go first
        self.max_yield = 1.0  # seconds a key waits at most for them
        self.max_wait_behind = 5.0  # seconds a processing lets waiting keys go first, at most
        self._slots = asyncio.Semaphore(workers)
        self._max_backoff = max_backoff
        self._ready: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()
        self._timers: list[tuple[float, int, Key]] = []
        self._timer_seq = 0
        self._timer_wakeup = asyncio.Event()
        self._due: dict[Key, float] = {}
        self._failures: dict[Key, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._taking = False  # the dispatcher holds a key taken off `_ready`, waiting for a worker
        self._drained = asyncio.Event()  # set while no key waits for a worker
        self._drained.set()
        self._stopped = False
        self._causes: dict[Key, set[str]] = {}  # what woke a key since it was last taken
        self._written: dict[Key, frozenset[str]] = {}  # the versions its last processing wrote

    def add(self, key: Key, *, version: str | None = None) -> None:
        """Wake `key`. `version`: the resourceVersion of the watch event that wakes it; None
        (a timer, a child, another controller, a deletion) always runs."""
        self._causes.setdefault(key, set()).add(version or "")
        self._enqueue(key)

    def wrote(self, key: Key, versions: tuple[str, ...]) -> None:
        """The resourceVersions the processing of `key` now under way wrote (their events
        are echoes)."""
        self._written[key] = frozenset(versions)

    def forget(self, key: Key) -> None:
        self._written.pop(key, None)

    def _only_echoes(self, key: Key) -> bool:
        causes = self._causes.pop(key, None)
        if not causes or "" in causes:
            return False
        return causes <= self._written.get(key, frozenset())

    def _enqueue(self, key: Key) -> None:
        if key in self._active:
            self._dirty.add(key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._ready.put_nowait(key)
            self._drained.clear()

    def add_at(self, key: Key, when: datetime) -> None:
        delay = when.timestamp() - time.time()
        self.add_after(key, delay)

    def add_after(self, key: Key, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        due = time.monotonic() + delay
        pending = self._due.get(key)
        if pending is not None and pending <= due:
            return  # an earlier wake-up of this key is already set
        self._due[key] = due
        self._timer_seq += 1
        heapq.heappush(self._timers, (due, self._timer_seq, key))
        self._timer_wakeup.set()

    def busy(self) -> bool:
        """Keys are waiting for a worker (never once stopped)."""
        return not self._stopped and (self._taking or not self._ready.empty())

    async def drained(self) -> None:
        """Return once no key waits for a worker."""
        await self._drained.wait()

    def __len__(self) -> int:
        return len(self._queued) + len(self._active)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._timer_loop(), name="koos-timers"),
            asyncio.create_task(self._dispatch(), name="koos-dispatch"),
        ]

    async def stop(self) -> None:
        self._stopped = True
        self._drained.set()
        tasks = [*self._tasks, *self._running]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []

    async def let_waiting_go_first(self) -> None:
        """Called by a processing of this queue: give up its worker while keys wait for
        one (for at most `max_wait_behind` seconds), then take a worker again. Its key stays
        taken meanwhile, so no other processing of it starts."""
        worker = _worker.get()
        if worker is None or worker.queue is not self or not worker.held or not self.busy():
            return
        worker.held = False
        self._slots.release()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_wait_behind):
                await self._drained.wait()
        await self._slots.acquire()
        worker.held = True

    async def _yield(self) -> None:
        """Let the keys waiting in `yields_to` go first, for at most `max_yield` seconds."""
        if not any(queue.busy() for queue in self.yields_to):
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_yield):
                await wait_drained(self.yields_to)

    async def _timer_loop(self) -> None:
        while True:
            self._timer_wakeup.clear()
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                due, _, key = heapq.heappop(self._timers)
                if self._due.get(key) != due:
                    continue  # replaced by a later processing's wake-up (or none)
                del self._due[key]
                self.add(key)
            timeout = self._timers[0][0] - now if self._timers else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_wakeup.wait(), timeout)

    async def _dispatch(self) -> None:
        """Start a processing task for each key taken, at most `workers` at once."""
        while True:
            key = await self._ready.get()
            # The key counts as waiting until it has a worker; no worker is held idle, so
            # a processing that gave its worker up always gets one back.
            self._taking = True
            await self._slots.acquire()
            self._taking = False
            if self._ready.empty():
                self._drained.set()
            task = asyncio.create_task(self._run(key), name=f"koos-process-{key}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, key: Key) -> None:
        worker = _Worker(self)
        _worker.set(worker)  # this task's own context
        try:
            await self._yield()
            self._queued.discard(key)
            if self._only_echoes(key):
                if self._on_skip is not None:
                    self._on_skip()
                return
            self._active.add(key)
            try:
                wake = await self._process(key)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                delay = min(0.1 * 2 ** (failures - 1), self._max_backoff)
                log.warning(
                    "Reconcile failed key=%s attempt=%d retry_in=%.1fs error=%s: %s",
                    key,
                    failures,
                    delay,
                    type(error).__name__,
                    error,
                    exc_info=failures == 1 and not isinstance(error, KubeError | NotOurs),
                )
                self.add_after(key, delay)
            else:
                self._failures.pop(key, None)
                # The wake-up this processing asks for replaces any set before: it decided
                # from newer facts (a run that ended needs none).
                self._due.pop(key, None)
                if wake is not None:
                    self.add_at(key, wake)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self._enqueue(key)
        finally:
            if worker.held:
                self._slots.release()
