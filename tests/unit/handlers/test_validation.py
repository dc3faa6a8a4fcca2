"""Admission validation off the event loop, bounded in time (issue 10, item 3)."""

from __future__ import annotations

import asyncio
import threading

import kopf
import pytest

from koos.handlers.validation import run_bounded, template_problems


async def test_the_event_loop_keeps_serving_while_a_validation_runs() -> None:
    release = threading.Event()
    ticks = 0

    def slow() -> str:
        # Holds its worker until the loop has shown it still runs other work.
        assert release.wait(30)
        return "done"

    async def other_work() -> None:
        nonlocal ticks
        while ticks < 20:
            ticks += 1
            await asyncio.sleep(0)
        release.set()

    result, _ = await asyncio.gather(run_bounded(slow, what="template"), other_work())
    assert result == "done"
    assert ticks == 20


async def test_a_validation_past_the_bound_is_refused_with_a_message() -> None:
    release = threading.Event()
    try:
        with pytest.raises(kopf.AdmissionError, match="validating the template took over"):
            await run_bounded(release.wait, 30, what="template", timeout=0.05)
    finally:
        release.set()


def test_template_problems_refuses_a_spec_over_the_limit_before_parsing_it() -> None:
    steps = [
        {"name": f"s{i}", "run": {"image": "busybox", "script": "x" * 1000}} for i in range(200)
    ]
    [problem] = template_problems({"steps": steps})
    assert "over the limit of 128 KiB" in problem


async def test_a_backtracking_pattern_no_longer_stalls_template_validation() -> None:
    spec = {
        "parameters": {"p": {"pattern": "^(a+)+$", "default": "a" * 40 + "b"}},
        "steps": [{"name": "a", "run": {"image": "busybox", "script": "true"}}],
    }
    problems = await run_bounded(template_problems, spec, what="template", timeout=20)
    assert problems == [
        'spec.parameters.p.default: must match the pattern ^(a+)+$, got string "' + "a" * 40 + 'b"'
    ]


def test_template_problems_past_its_deadline_returns_without_validating() -> None:
    import time

    from koos.engine.template import STOPPED

    parameters = {f"p{i}": {"type": "string", "pattern": rf"\pL{{1,1000}}z{i}"} for i in range(200)}
    spec = {
        "parameters": parameters,
        "steps": [{"name": "a", "run": {"image": "b", "script": "x"}}],
    }
    # A deadline already past: not one of the 200 costly patterns is compiled.
    from koos.engine import patterns

    patterns._compiled.cache_clear()
    problems = template_problems(spec, deadline=time.monotonic() - 1)
    assert problems == [f"spec: {STOPPED}"]
    assert patterns._compiled.cache_info().misses == 0


async def test_run_bounded_gives_a_deadline_to_functions_that_take_one() -> None:
    import time

    seen: list[float] = []

    def takes(value: int, deadline: float) -> int:
        seen.append(deadline)
        return value

    before = time.monotonic()
    assert await run_bounded(takes, 7, what="template", timeout=5) == 7
    [deadline] = seen
    assert before + 5 <= deadline <= time.monotonic() + 5
