"""What the Execution and Schedule controllers may skip: a GET (the watch's body is at
least as new as their own last write) and a reconcile (all that woke it is their own echo)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from koos.handlers.cache import LatestBodies
from koos.handlers.queue import WorkQueue

KEY = ("default", "run-1")


def body(version: str, phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"name": "run-1", "resourceVersion": version}, "status": {"phase": phase}}


def cache() -> LatestBodies:
    return LatestBodies(keep=lambda b: b["status"]["phase"] != "Succeeded")


def test_a_body_is_fresh_until_we_write_and_again_once_the_write_is_seen() -> None:
    bodies = cache()
    assert bodies.fresh(KEY) is None
    bodies.seen(KEY, "ADDED", body("1"))
    assert bodies.fresh(KEY) == body("1")
    bodies.wrote(KEY, ("5",))
    assert bodies.fresh(KEY) is None  # the watch has not delivered our write yet
    bodies.seen(KEY, "MODIFIED", body("3"))  # an older change, still in flight
    assert bodies.fresh(KEY) is None
    bodies.seen(KEY, "MODIFIED", body("5"))
    assert bodies.fresh(KEY) == body("5")
    bodies.seen(KEY, "MODIFIED", body("7"))  # anything after our write is newer
    assert bodies.fresh(KEY) == body("7")


def test_a_write_seen_before_its_response_counts() -> None:
    bodies = cache()
    bodies.seen(KEY, "ADDED", body("1"))
    bodies.seen(KEY, "MODIFIED", body("5"))  # the echo overtook the response
    bodies.seen(KEY, "MODIFIED", body("6"))  # and somebody else wrote after us
    bodies.wrote(KEY, ("4", "5"))
    assert bodies.fresh(KEY) == body("6")


def test_a_reconcile_that_writes_nothing_keeps_what_is_pending() -> None:
    bodies = cache()
    bodies.seen(KEY, "ADDED", body("1"))
    bodies.wrote(KEY, ("5",))
    bodies.wrote(KEY, ())
    assert bodies.fresh(KEY) is None
    bodies.seen(KEY, "MODIFIED", body("5"))
    assert bodies.fresh(KEY) == body("5")


def test_after_a_half_done_reconcile_only_a_new_write_makes_the_cache_trusted() -> None:
    bodies = cache()
    bodies.seen(KEY, "ADDED", body("1"))
    bodies.distrust(KEY)
    bodies.seen(KEY, "MODIFIED", body("2"))  # may be older than the write we lost track of
    assert bodies.fresh(KEY) is None
    bodies.wrote(KEY, ("9",))
    bodies.seen(KEY, "MODIFIED", body("9"))
    assert bodies.fresh(KEY) == body("9")


def test_finished_and_deleted_objects_are_not_kept() -> None:
    bodies = cache()
    bodies.seen(KEY, "ADDED", body("1"))
    bodies.seen(KEY, "MODIFIED", body("2", phase="Succeeded"))
    assert bodies.fresh(KEY) is None and len(bodies) == 0
    bodies.seen(KEY, "MODIFIED", body("3"))
    bodies.seen(KEY, "DELETED", body("4"))
    assert bodies.fresh(KEY) is None and len(bodies) == 0


class Recorder:
    """Processes a key by noting it and writing version 5; counts skips."""

    def __init__(self) -> None:
        self.outcomes: asyncio.Queue[str] = asyncio.Queue()
        self.queue = WorkQueue(self.process, workers=1, on_skip=lambda: self.note("skipped"))

    def note(self, outcome: str) -> None:
        self.outcomes.put_nowait(outcome)

    async def process(self, key: object) -> datetime | None:
        self.queue.wrote(key, ("5",))
        self.note("processed")
        return None

    async def next(self) -> str:
        return await asyncio.wait_for(self.outcomes.get(), 5)


def test_echoes_of_our_own_writes_are_skipped_and_anything_else_runs() -> None:
    async def scenario() -> list[str]:
        r = Recorder()
        await r.queue.start()
        seen = []
        r.queue.add(KEY, version="1")  # somebody's change
        seen.append(await r.next())
        r.queue.add(KEY, version="5")  # the echo of our write
        seen.append(await r.next())
        r.queue.add(KEY, version="7")  # somebody else's change after it
        seen.append(await r.next())
        r.queue.add(KEY)  # a child, a timer, another controller
        seen.append(await r.next())
        await r.queue.stop()
        return seen

    assert asyncio.run(scenario()) == ["processed", "skipped", "processed", "processed"]


def test_a_wake_up_merged_with_a_waiting_echo_still_runs() -> None:
    # The echo waits in the queue when a timer (or another controller) wakes the same key:
    # the two are one entry, and it must run.
    async def scenario() -> list[str]:
        r = Recorder()
        r.queue.wrote(KEY, ("5",))
        r.queue.add(KEY, version="5")
        r.queue.add_after(KEY, 0)
        await r.queue.start()
        seen = [await r.next()]
        r.queue.add(KEY, version="5")
        r.queue.add(KEY, version=None)  # a deletion
        seen.append(await r.next())
        await r.queue.stop()
        return seen

    assert asyncio.run(scenario()) == ["processed", "processed"]
