"""What the Execution and Schedule controllers may skip: a GET (the watch's body is at
least as new as their own last write) and a reconcile (all that woke it is their own echo)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from koos.handlers.cache import LatestBodies
from koos.handlers.queue import Echoes, WorkQueue

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


def test_echoes_of_our_own_writes_skip_the_reconcile_and_anything_else_runs_it() -> None:
    async def scenario() -> list[bool]:
        queue = WorkQueue(lambda key: _none(), workers=1)
        echoes = Echoes(queue)
        decisions = []
        echoes.wrote(KEY, ("5", "6"))
        echoes.wake_on_event(KEY, "MODIFIED", body("5"))
        echoes.wake_on_event(KEY, "MODIFIED", body("6"))
        decisions.append(echoes.only_echoes(KEY))  # our two writes: skip
        echoes.wake_on_event(KEY, "MODIFIED", body("6"))
        echoes.wake_on_event(KEY, "MODIFIED", body("7"))
        decisions.append(echoes.only_echoes(KEY))  # somebody else's change: run
        echoes.wake(KEY, "job")
        decisions.append(echoes.only_echoes(KEY))  # a child changed: run
        decisions.append(echoes.only_echoes(KEY))  # a timer or a retry (no cause): run
        echoes.wake_on_event(KEY, "DELETED", body("6"))
        decisions.append(echoes.only_echoes(KEY))  # gone: run
        return decisions

    assert asyncio.run(scenario()) == [True, False, False, False, False]


async def _none() -> datetime | None:
    return None
