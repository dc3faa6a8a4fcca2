"""CPU-bound admission work (validating a Template or a Schedule) off the event loop.

`template_problems` and `schedule_problems` are what the webhooks of
`koos.handlers.admission` list; they run through `run_bounded`.

The event loop runs every reconcile and every webhook of the operator; a validation that
takes long on it would stall them all (issue 10, item 3). `run_bounded` runs the validation
in a small pool of worker threads and waits at most `TIMEOUT` seconds for it:

- while a validation runs, the loop goes on serving reconciles and other webhooks (the
  validations are pure Python, so they share the interpreter, but CPython switches threads
  every few milliseconds);
- at most `WORKERS` validations run at once; more wait for a worker, within the same bound;
- past the bound the request is refused with a message that says so (failurePolicy Fail: it
  is refused, never let through). A thread cannot be stopped, so a function that declares a
  `deadline` parameter (`template_problems`) is given the monotonic time by which the caller
  gives up — counted from the request, waiting for a worker included — and the engine's
  validation checks it between parameters and steps and returns early: a validation that
  ran out of time gives its worker back at once instead of holding it while later requests
  queue behind it. Each unit of work between two checks is bounded by the engine (RE2
  patterns with their refusals cached, at most 256 distinct patterns and 50 problems,
  bounded expressions, size limits).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import kopf
from pydantic import ValidationError

from koos.api.schedule import ScheduleSpec
from koos.api.template import TemplateSpec
from koos.engine import schedule as cron
from koos.engine.template import problems_from_pydantic, size_problem, validate_template

__all__ = ["TIMEOUT", "WORKERS", "run_bounded", "schedule_problems", "template_problems"]

Result = TypeVar("Result")

WORKERS = 4
# Below the API server's 10 s default webhook timeout, so the user reads our message.
TIMEOUT = 8.0

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="koos-validate")
    return _pool


async def run_bounded(
    function: Callable[..., Result], *args: object, what: str, timeout: float = TIMEOUT
) -> Result:
    """`function(*args)` in a worker thread; kopf.AdmissionError when it takes over
    `timeout` seconds (waiting for a worker included). A `function` with a `deadline`
    parameter is given `deadline=` the monotonic time at which the caller gives up."""
    loop = asyncio.get_running_loop()
    call = functools.partial(function, *args)
    if "deadline" in inspect.signature(function).parameters:
        call = functools.partial(call, deadline=time.monotonic() + timeout)
    future = loop.run_in_executor(_executor(), call)
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError:
        raise kopf.AdmissionError(
            f"validating the {what} took over {timeout:g} s, so it is refused: make it "
            "smaller or simpler (fewer steps, parameters and expressions), or retry if the "
            "operator was busy",
            code=503,
        ) from None


def template_problems(spec: dict[str, Any], deadline: float | None = None) -> list[str]:
    """Every problem of a Template's spec as the webhook lists them (run in a worker); it
    stops early, saying so, once `time.monotonic()` passes `deadline`."""
    # Refused before parsing: a spec far over the limit costs no model building.
    size = len(json.dumps(spec, separators=(",", ":"), ensure_ascii=False).encode())
    too_large = size_problem(size)
    if too_large is not None:
        return [str(too_large)]

    def stop() -> bool:
        return deadline is not None and time.monotonic() > deadline

    try:
        return [str(p) for p in validate_template(TemplateSpec.model_validate(spec), stop)]
    except ValidationError as error:
        return [str(p) for p in problems_from_pydantic(error)]


def schedule_problems(spec: dict[str, Any], allow_seconds: bool) -> list[str]:
    """Every problem of a Schedule's spec as the webhook lists them (run in a worker)."""
    try:
        parsed = ScheduleSpec.model_validate(spec)
        return [str(p) for p in cron.validate_schedule(parsed, allow_seconds=allow_seconds)]
    except ValidationError as error:
        return [str(p) for p in problems_from_pydantic(error)]
