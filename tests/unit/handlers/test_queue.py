"""WorkQueue's workers: at most `workers` processings hold one at a time, and a processing
may give its worker up so that waiting keys go first (a Schedule creates its run at once and
writes its status once the other fires are out)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from koos.handlers.queue import WorkQueue


class Fires:
    """Each key 'creates', lets waiting keys go first, then 'writes status'."""

    def __init__(self, workers: int) -> None:
        self.log: list[str] = []
        self.changed = asyncio.Event()
        self.holding = 0  # processings between taking a worker and giving it up
        self.most = 0
        self.done: asyncio.Queue[object] = asyncio.Queue()
        self.queue = WorkQueue(self.process, workers=workers)

    def record(self, line: str) -> None:
        self.log.append(line)
        self.changed.set()

    async def until(self, log: list[str]) -> None:
        """Wait until the log reads `log` (5 s at most)."""
        async with asyncio.timeout(5):
            while self.log != log:
                self.changed.clear()
                await self.changed.wait()

    def hold(self, delta: int) -> None:
        self.holding += delta
        self.most = max(self.most, self.holding)

    async def process(self, key: object) -> datetime | None:
        self.hold(+1)
        self.record(f"create {key}")
        await asyncio.sleep(0)  # a request
        self.hold(-1)
        await self.queue.let_waiting_go_first()
        self.hold(+1)
        self.record(f"status {key}")
        await asyncio.sleep(0)
        self.hold(-1)
        self.done.put_nowait(key)
        return None

    async def wait_for(self, count: int) -> None:
        for _ in range(count):
            await asyncio.wait_for(self.done.get(), 5)


def test_every_waiting_key_creates_before_the_status_writes() -> None:
    async def scenario() -> Fires:
        fires = Fires(workers=2)
        for key in range(8):
            fires.queue.add(key)
        await fires.queue.start()
        await fires.wait_for(8)
        await fires.queue.stop()
        return fires

    fires = asyncio.run(scenario())
    creates = [i for i, line in enumerate(fires.log) if line.startswith("create")]
    statuses = [i for i, line in enumerate(fires.log) if line.startswith("status")]
    assert len(creates) == len(statuses) == 8
    # The last keys found nobody waiting and went on; all others waited for them.
    assert max(creates) < sorted(statuses)[-2]
    assert fires.log[:8] == [f"create {key}" for key in range(8)]
    assert fires.most <= 2  # never more than `workers` at work


def test_nothing_waits_when_no_key_does() -> None:
    async def scenario() -> list[str]:
        fires = Fires(workers=4)
        await fires.queue.start()
        fires.queue.add("only")
        await fires.wait_for(1)
        await fires.queue.stop()
        return fires.log

    assert asyncio.run(scenario()) == ["create only", "status only"]


def test_a_key_stays_taken_while_it_lets_others_go_first() -> None:
    # Woken again while it waits behind the others, the key is processed once more after
    # its first processing ends, never alongside it.
    async def scenario() -> list[str]:
        fires = Fires(workers=1)
        fires.queue.add("a")
        fires.queue.add("b")
        await fires.queue.start()
        await fires.until(["create a"])
        fires.queue.add("a")  # a change to "a" while it waits behind "b"
        await fires.wait_for(3)
        await fires.queue.stop()
        return fires.log

    log = asyncio.run(scenario())
    assert log == ["create a", "create b", "status b", "status a", "create a", "status a"]


def test_a_processing_waits_behind_others_for_a_bounded_time() -> None:
    # Keys keep arriving (each one's processing wakes the next), so some key always waits:
    # the fire still writes its status, after `max_wait_behind`, while the stream goes on.
    async def scenario() -> list[str]:
        log: list[str] = []
        written = asyncio.Event()

        async def process(key: object) -> datetime | None:
            if key == "fire":
                log.append("create fire")
                await queue.let_waiting_go_first()
                log.append("status fire")
                written.set()
            elif isinstance(key, int) and key < 10_000:
                log.append("stream")
                queue.add(key + 1)
                await asyncio.sleep(0.001)  # the stream's own work, so that time passes
            return None

        queue = WorkQueue(process, workers=1)
        queue.max_wait_behind = 0.05
        queue.add("fire")
        queue.add(0)
        await queue.start()
        await asyncio.wait_for(written.wait(), 5)
        await queue.stop()
        return log

    log = asyncio.run(scenario())
    assert log[0] == "create fire"
    assert 1 < log.index("status fire") < 10_000  # behind some of the stream, not all of it


def test_stop_cancels_processings_waiting_behind_others() -> None:
    async def scenario() -> list[str]:
        fires = Fires(workers=1)
        gate = asyncio.Event()

        async def process(key: object) -> datetime | None:
            fires.record(f"create {key}")
            if key == "b":
                await gate.wait()  # holds the only worker
            await fires.queue.let_waiting_go_first()
            fires.record(f"status {key}")
            return None

        fires.queue = WorkQueue(process, workers=1)
        fires.queue.add("a")
        fires.queue.add("b")
        await fires.queue.start()
        await fires.until(["create a", "create b"])
        await asyncio.wait_for(fires.queue.stop(), 5)
        return fires.log

    assert asyncio.run(scenario()) == ["create a", "create b"]
