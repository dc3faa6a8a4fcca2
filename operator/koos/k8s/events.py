"""Kubernetes Events are posted in the background, in the order they were recorded, as
client-go's event broadcaster does it: a reconcile records its Event and goes on, so a burst
(every Schedule due at midnight, a hundred Jobs ending at once) is not slowed by a request
per transition that decides nothing. One task posts them, and it waits for `idle()` (the
controllers have no work waiting) for up to `max_delay` seconds after each Event was
recorded: under load Events lag, decisions do not.

At most `limit` Events wait; beyond that new ones are dropped and counted in the log (an
Event is information, never state). Failing to post one never fails anything. `stop` gives
the waiting ones a few seconds to go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from koos.k8s.client import Kube, KubeError, event_path

log = logging.getLogger("koos.events")


class EventSink:
    def __init__(
        self,
        kube: Kube,
        idle: Callable[[], Awaitable[None]] | None = None,
        max_delay: float = 5.0,
        limit: int = 10_000,
    ) -> None:
        self.kube = kube
        self.idle = idle
        self.max_delay = max_delay
        self._waiting: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue(maxsize=limit)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def post(self, body: dict[str, Any]) -> None:
        try:
            self._waiting.put_nowait((time.monotonic(), body))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "Events are dropped: %d waiting, %d dropped",
                    self._waiting.qsize(),
                    self.dropped,
                )

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="koos-events")

    async def stop(self, flush_seconds: float = 5.0) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._waiting.join(), flush_seconds)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            recorded, body = await self._waiting.get()
            try:
                remaining = recorded + self.max_delay - time.monotonic()
                if self.idle is not None and remaining > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.idle(), remaining)
                await send(self.kube, body)
            except Exception as error:  # this task must outlive any one Event
                log.warning("Could not post Event reason=%s: %r", body.get("reason"), error)
            finally:
                self._waiting.task_done()


async def send(kube: Kube, body: dict[str, Any]) -> None:
    involved = body["involvedObject"]
    try:
        await kube.create(event_path(body["metadata"]["namespace"]), body)
    except KubeError as error:
        log.warning(
            "Could not post Event reason=%s %s=%s/%s: %s",
            body.get("reason"),
            str(involved.get("kind", "")).lower(),
            involved.get("namespace"),
            involved.get("name"),
            error,
        )
