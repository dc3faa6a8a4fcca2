"""WorkQueue wake-ups: the wake-up a processing returns replaces the one set before it, so a
run that ended is not woken (and read) again by a timer set while it ran."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from koos.handlers.queue import WorkQueue


class Runs:
    def __init__(self, wakes: list[float | None]) -> None:
        self.wakes = wakes  # seconds from now each processing of "run" asks to be woken at
        self.log: list[str] = []
        self.changed = asyncio.Event()
        self.queue = WorkQueue(self.process, workers=2)

    async def process(self, key: object) -> datetime | None:
        self.log.append(str(key))
        self.changed.set()
        if key != "run" or not self.wakes:
            return None
        delay = self.wakes.pop(0)
        return None if delay is None else datetime.now(UTC) + timedelta(seconds=delay)

    async def until(self, count: int, key: str) -> None:
        async with asyncio.timeout(5):
            while self.log.count(key) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_a_processing_that_wants_no_wake_up_cancels_the_earlier_one() -> None:
    runs = Runs([0.2, None])
    await runs.queue.start()
    try:
        runs.queue.add("run")
        await runs.until(1, "run")
        runs.queue.add("run")  # the run ended: this processing asks for nothing
        await runs.until(2, "run")
        runs.queue.add_at("marker", datetime.now(UTC) + timedelta(seconds=0.4))
        await runs.until(1, "marker")
        assert runs.log == ["run", "run", "marker"]  # the 0.2 s timer did not fire
    finally:
        await runs.queue.stop()


async def test_a_later_wake_up_replaces_an_earlier_one() -> None:
    runs = Runs([0.1, 0.5])
    await runs.queue.start()
    try:
        runs.queue.add("run")
        await runs.until(1, "run")
        runs.queue.add("run")
        await runs.until(2, "run")
        runs.queue.add_at("marker", datetime.now(UTC) + timedelta(seconds=0.3))
        await runs.until(3, "run")
        assert runs.log == ["run", "run", "marker", "run"]
    finally:
        await runs.queue.stop()
