"""Loops and run commands together, through the real operator on the sandbox: Debug pauses
before a loop step, `koos.io/continue` goes on from that pause and from a batch boundary alike,
FailurePause holds a failed loop (retry runs only its failed items, skip and cancel end it),
rerun-from runs every item again under Job names no earlier attempt used (even while that
attempt's Jobs still exist), and commands that cannot apply, sent twice, or caught by an
operator restart apply at most once. Every wait is on a condition, with a deadline.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from koos_sandbox.errors import ApiError
from koos_sandbox.testing import async_wait_for

from .conftest import ALICE, NS, Koos


def template(name: str, loop: dict[str, Any], after: bool = False) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"name": "each", "loop": loop, "run": {"image": "busybox", "script": "true"}}
    ]
    if after:
        steps.append({"name": "after", "run": {"image": "busybox", "script": "true"}})
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": name},
        "spec": {"steps": steps, "outputs": {"oks": "{{ steps.each.outputs.ok }}"}},
    }


def execution(name: str, mode: str = "Automatic") -> dict[str, Any]:
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": name}, "mode": mode},
    }


def status(koos: Koos, name: str) -> dict[str, Any]:
    return dict((koos.execution(name) or {}).get("status") or {})


def each(koos: Koos, name: str) -> dict[str, Any]:
    """The loop step's record (empty before the run has started)."""
    return next((s for s in status(koos, name).get("steps") or [] if s["name"] == "each"), {})


def annotations(koos: Koos, name: str) -> dict[str, str]:
    return dict(((koos.execution(name) or {}).get("metadata") or {}).get("annotations") or {})


def reasons(koos: Koos, name: str) -> list[str]:
    return [
        e["reason"]
        for e in koos.sandbox.store.items(("", "events"), NS)
        if e["involvedObject"]["name"] == name
    ]


class Created:
    """The names of the Jobs created for one Execution, in order, from the store's writes."""

    def __init__(self, koos: Koos, name: str) -> None:
        self.names: list[str] = []
        self.koos, self.name = koos, name
        koos.sandbox.store.listeners.append(self)

    def __call__(self, event: Any) -> None:
        meta = event.obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        if (
            event.key == ("batch", "jobs")
            and event.type == "ADDED"
            and labels.get("koos.io/execution") == self.name
        ):
            self.names.append(meta["name"])

    def close(self) -> None:
        self.koos.sandbox.store.listeners.remove(self)


async def waiting(koos: Koos, name: str, reason: str, says: str) -> dict[str, Any]:
    """The run's status once it is Waiting with `reason` on its Succeeded condition and a
    message that `says` so."""

    def found() -> dict[str, Any] | None:
        current = status(koos, name)
        condition = next(
            (c for c in current.get("conditions") or [] if c["type"] == "Succeeded"), {}
        )
        ok = current.get("phase") == "Waiting" and condition.get("reason") == reason
        return current if ok and says in current.get("message", "") else None

    return await async_wait_for(found, timeout=30, what=f"{name} Waiting ({reason}): {says}")


async def test_debug_pauses_before_a_loop_then_continue_resumes_it_and_its_canary(
    koos: Koos,
) -> None:
    name = "lc-debug"
    loop = {"items": list(range(4)), "concurrency": 2, "batchSize": 2, "pause": "AfterFirstBatch"}
    await koos.apply(template(name, loop))
    created = Created(koos, name)
    try:
        await koos.apply(execution(name, "Debug"))
        await waiting(koos, name, "AwaitingContinue", "Step each waits to start (mode Debug)")
        assert each(koos, name)["phase"] == "Pending" and each(koos, name)["awaitingContinue"]
        assert created.names == []
        await koos.annotate(name, "koos.io/continue", "each", by=ALICE)
        await waiting(koos, name, "AwaitingContinue", "Step each paused after batch 1 of its items")
        assert each(koos, name)["loop"]["completedIndexes"] == "0-1"
        assert sorted(created.names) == [f"{name}-each-0-1", f"{name}-each-1-1"]
        await koos.annotate(name, "koos.io/continue", "each", by=ALICE)
        done = await koos.finished(name)
    finally:
        created.close()
    assert done["status"]["phase"] == "Succeeded", done["status"].get("message")
    assert done["status"]["commandsApplied"] == 2
    assert sorted(created.names) == [f"{name}-each-{i}-1" for i in range(4)]
    assert reasons(koos, name).count("CommandContinue") == 2


async def test_failure_pause_holds_a_failed_loop_and_retry_runs_only_its_failed_items(
    koos: Koos,
) -> None:
    name = "lc-retry"
    for index in range(4):
        koos.sandbox.jobs.script(f"{name}-each-{index}-*", message=json.dumps({"ok": index}))
    for index in (1, 3):  # their first attempt fails (the last matching rule wins)
        koos.sandbox.jobs.script(f"{name}-each-{index}-1-*", exit_code=1, logs=f"{index} broke\n")
    await koos.apply(template(name, {"items": list(range(4)), "concurrency": 4}, after=True))
    created = Created(koos, name)
    try:
        await koos.apply(execution(name, "FailurePause"))
        await waiting(koos, name, "AwaitingFailureDecision", "koos.io/retry=each")
        step = each(koos, name)
        assert (step["phase"], step["reason"]) == ("Running", "AwaitingFailureDecision")
        assert "TooManyErrors" in step["message"]
        assert koos.step(name, "after")["phase"] == "Pending"
        await koos.annotate(name, "koos.io/retry", "each", by=ALICE)
        done = await koos.finished(name)
    finally:
        created.close()
    assert done["status"]["phase"] == "Succeeded", done["status"].get("message")
    assert done["status"]["outputs"] == {"oks": [0, 1, 2, 3]}
    retried = sorted(n for n in created.names if n.endswith("-2"))
    assert retried == [f"{name}-each-1-2", f"{name}-each-3-2"]  # only the failed ones
    assert len(created.names) == len(set(created.names)) == 7  # 4 + 2 items, and after
    loop = koos.step(name, "each")["loop"]
    assert (loop["round"], loop["succeeded"], loop["failed"]) == (1, 4, 0)


@pytest.mark.parametrize(
    ("command", "value", "phase"), [("skip", "each", "Succeeded"), ("cancel", "true", "Cancelled")]
)
async def test_skip_or_cancel_ends_a_held_loop(
    koos: Koos, command: str, value: str, phase: str
) -> None:
    name = f"lc-{command}"
    koos.sandbox.jobs.script(f"{name}-each-0-*", exit_code=1, logs="broke\n")
    await koos.apply(template(name, {"items": list(range(2)), "concurrency": 2}, after=True))
    await koos.apply(execution(name, "FailurePause"))
    await waiting(koos, name, "AwaitingFailureDecision", "Step each failed")
    await koos.annotate(name, f"koos.io/{command}", value, by=ALICE)
    done = await koos.finished(name)
    assert done["status"]["phase"] == phase, done["status"].get("message")
    step = koos.step(name, "each")
    if command == "skip":
        assert (step["phase"], step["reason"]) == ("Skipped", "SkippedByCommand")
        assert koos.step(name, "after")["phase"] == "Succeeded"
    else:
        assert step["phase"] == "Failed" and koos.step(name, "after")["phase"] == "Cancelled"


async def test_rerun_from_a_loop_runs_every_item_again_while_old_jobs_still_exist(
    koos: Koos,
) -> None:
    name = "lc-rerun"
    await koos.apply(template(name, {"items": list(range(3)), "concurrency": 3}))
    # Every release fails: the first attempt's Jobs stay, as after a crash before deletes.
    koos.sandbox.faults.fail("delete", "jobs", code=500)
    created = Created(koos, name)
    try:
        await koos.apply(execution(name))
        await koos.finished(name)
        first = {j["metadata"]["name"] for j in koos.jobs(name)}
        assert first == {f"{name}-each-{i}-1" for i in range(3)}
        await koos.annotate(name, "koos.io/rerun-from", "each", by=ALICE)

        def second() -> dict[str, Any] | None:
            current = status(koos, name)
            ok = current.get("attempt") == 2 and current.get("phase") == "Succeeded"
            return current if ok else None

        done = await async_wait_for(second, timeout=30, what="attempt 2 to succeed")
        assert {f"{name}-each-{i}-2" for i in range(3)} <= {
            j["metadata"]["name"] for j in koos.jobs(name)
        }
        koos.sandbox.faults.clear()
        await async_wait_for(lambda: not koos.jobs(name), timeout=30, what="every Job released")
    finally:
        koos.sandbox.faults.clear()
        created.close()
    assert done["attempts"][0]["number"] == 1
    assert each(koos, name)["loop"]["round"] == 1
    assert sorted(created.names) == sorted(
        [f"{name}-each-{i}-1" for i in range(3)] + [f"{name}-each-{i}-2" for i in range(3)]
    )


async def test_loop_commands_that_cannot_apply_or_come_twice_are_refused(koos: Koos) -> None:
    name = "lc-refused"
    loop = {"items": list(range(4)), "concurrency": 2, "batchSize": 2, "pause": "AfterFirstBatch"}
    await koos.apply(template(name, loop))
    await koos.apply(execution(name))
    await waiting(koos, name, "AwaitingContinue", "paused after batch 1")
    for key, value, why in (
        ("koos.io/continue", "nope", "has no step 'nope'"),
        ("koos.io/retry", "each", "apply in mode FailurePause"),
        ("koos.io/skip", "each", "apply in mode FailurePause"),
        ("koos.io/rerun-from", "each", "rerun-from applies to a finished run"),
    ):
        with pytest.raises(ApiError) as refused:
            await koos.annotate(name, key, value, by=ALICE)
        assert why in refused.value.message, (key, refused.value.message)
    await koos.annotate(name, "koos.io/continue", "each", by=ALICE)
    await async_wait_for(
        lambda: "koos.io/continue" not in annotations(koos, name), what="continue consumed"
    )
    # Sent again: the loop no longer waits (it ran on, or finished).
    with pytest.raises(ApiError) as refused:
        await koos.annotate(name, "koos.io/continue", "each", by=ALICE)
    message = refused.value.message
    assert "is not waiting for continue" in message or "is Succeeded" in message, message
    done = await koos.finished(name)
    assert done["status"]["phase"] == "Succeeded" and done["status"]["commandsApplied"] == 1


async def test_a_leftover_continue_after_a_restart_does_not_skip_the_next_batch_pause(
    koos: Koos,
) -> None:
    """The operator dies after the status write that applied continue and before the
    annotation's removal: the command stays on the object. Restarted, the operator removes
    it without applying it, so the loop still pauses at its next batch boundary."""
    name = "lc-leftover"
    loop = {"items": list(range(6)), "concurrency": 2, "batchSize": 2, "pause": "EveryBatch"}
    await koos.apply(template(name, loop))
    await koos.apply(execution(name))
    await waiting(koos, name, "AwaitingContinue", "paused after batch 1")
    koos.sandbox.faults.fail("patch", "executions", code=500)  # the annotation's removal
    await koos.annotate(name, "koos.io/continue", "each", by=ALICE)
    await async_wait_for(
        lambda: (each(koos, name).get("loop") or {}).get("pausedBatch") == 1,
        timeout=30,
        what="batch 2 to run and reach its boundary",
    )
    await koos.stop_operator()
    assert annotations(koos, name).get("koos.io/continue") == "each"  # not removed
    koos.sandbox.faults.clear()
    await koos.start_operator()
    await async_wait_for(
        lambda: "koos.io/continue" not in annotations(koos, name), what="the leftover removed"
    )
    paused = await waiting(koos, name, "AwaitingContinue", "paused after batch 2")
    assert each(koos, name)["loop"]["completedIndexes"] == "0-3"
    assert paused["commandsApplied"] == 1
    assert "CommandRefused" not in reasons(koos, name)


async def test_continue_caught_by_a_restart_before_its_status_write_applies_once(
    koos: Koos,
) -> None:
    """The pass that applies continue creates batch 2's Jobs, then its status write fails and
    the operator restarts: the command, still there, applies once, and the Jobs are adopted,
    not created again."""
    name = "lc-unwritten"
    loop = {"items": list(range(4)), "concurrency": 2, "batchSize": 2, "pause": "AfterFirstBatch"}
    await koos.apply(template(name, loop))
    created = Created(koos, name)
    try:
        await koos.apply(execution(name))
        await waiting(koos, name, "AwaitingContinue", "paused after batch 1")
        koos.sandbox.faults.fail("patch", "executions/status", code=500)
        await koos.annotate(name, "koos.io/continue", "each", by=ALICE)
        await async_wait_for(
            lambda: len(created.names) == 4, timeout=30, what="batch 2's Jobs created"
        )
        await koos.stop_operator()
        assert status(koos, name).get("commandsApplied") is None  # nothing written
        koos.sandbox.faults.clear()
        await koos.start_operator()
        done = await koos.finished(name, timeout=30)
    finally:
        koos.sandbox.faults.clear()
        created.close()
    assert done["status"]["phase"] == "Succeeded", done["status"].get("message")
    assert done["status"]["commandsApplied"] == 1
    assert sorted(created.names) == [f"{name}-each-{i}-1" for i in range(4)]
    assert "koos.io/continue" not in annotations(koos, name)
