"""A real ground for a whole test session: started once, or every test that needs it skipped
(saying why) when its binaries are not built; stopped at the end, and failing if any of its
processes is left running or its folder left behind (the budget of issue 12)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from .realplane import GroundError, missing


class Ground(Protocol):
    def start(self) -> object: ...

    def stop(self) -> object: ...


G = TypeVar("G", bound=Ground)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextmanager
def session_ground(
    ground: G, processes: Callable[[], set[int]], folder: Callable[[], Path]
) -> Iterator[G]:
    """`ground` started for the session; at the end stopped, then checked: none of
    `processes()` (taken just before the stop) runs 10 s later, and `folder()` is gone."""
    reason = missing()
    if reason:
        pytest.skip(f"real ground not available: {reason}")
    try:
        ground.start()
    except GroundError as error:
        pytest.fail(f"the real ground did not start: {error}")
    try:
        yield ground
    finally:
        pids = processes()
        ground.stop()
    deadline = time.monotonic() + 10
    while (left := sorted(p for p in pids if alive(p))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes of the real ground left running after stop(): {left}"
    assert not folder().exists(), f"{folder()} left after stop()"
