"""Loop steps through the real operator on the sandbox, with instant scripted Jobs.

The store's listeners watch every write as it happens (no sleeps, no polling of sizes): the
Execution's size at each write, and the Jobs and Pods alive at once. Requests are counted
from the sandbox's request log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from koos_sandbox.errors import ApiError
from koos_sandbox.store import Event
from koos_sandbox.testing import async_wait_for

from .conftest import Koos

STATUS_BOUND = 256 * 1024


def template(name: str, loop: dict[str, Any], **step: Any) -> dict[str, Any]:
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": name},
        "spec": {
            "steps": [
                {
                    "name": "each",
                    "loop": loop,
                    "run": {
                        "image": "busybox",
                        "script": 'echo "on $KOOS_ITEM"',
                        "env": [{"name": "HOST", "value": "{{ item }}"}],
                    },
                    **step,
                }
            ],
            "outputs": {"oks": "{{ steps.each.outputs.ok }}"},
        },
    }


def execution(name: str, template_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": template_name}},
    }


@dataclass
class Census:
    """Every write seen by the store: the largest Execution, the most Jobs and Pods alive at
    once, each Job created, and each Job deleted with whether its outcome was recorded."""

    name: str
    largest: int = 0
    jobs: set[str] = field(default_factory=set)
    pods: set[str] = field(default_factory=set)
    most_jobs: int = 0
    most_pods: int = 0
    created: list[str] = field(default_factory=list)
    unrecorded_deletes: list[str] = field(default_factory=list)
    recorded: set[int] = field(default_factory=set)  # indexes the status says are settled

    def __call__(self, event: Event) -> None:
        meta = event.obj.get("metadata") or {}
        if event.key[1] == "executions" and meta.get("name") == self.name:
            self.largest = max(self.largest, len(json.dumps(event.obj).encode()))
            loop = (next(iter((event.obj.get("status") or {}).get("steps") or []), {})).get(
                "loop"
            ) or {}
            self.recorded = ranges(loop.get("completedIndexes")) | ranges(loop.get("failedIndexes"))
            return
        labels = meta.get("labels") or {}
        if labels.get("koos.io/execution") != self.name:
            return
        live = self.jobs if event.key == ("batch", "jobs") else self.pods
        if event.key not in (("batch", "jobs"), ("", "pods")):
            return
        gone = event.type == "DELETED" or "deletionTimestamp" in meta
        if gone:
            index = int(labels.get("koos.io/item", -1))
            job = event.key == ("batch", "jobs") and meta["name"] in self.jobs
            if job and index not in self.recorded:
                self.unrecorded_deletes.append(meta["name"])
            live.discard(meta["name"])
        else:
            if event.type == "ADDED" and event.key == ("batch", "jobs"):
                self.created.append(meta["name"])
            live.add(meta["name"])
        self.most_jobs = max(self.most_jobs, len(self.jobs))
        self.most_pods = max(self.most_pods, len(self.pods))


def ranges(text: str | None) -> set[int]:
    found: set[int] = set()
    for part in (text or "").split(","):
        if part:
            first, _, last = part.partition("-")
            found.update(range(int(first), int(last or first) + 1))
    return found


async def run_loop(koos: Koos, name: str, timeout: float = 120) -> dict[str, Any]:
    await koos.apply(execution(name, name))
    return await koos.finished(name, timeout=timeout)


async def test_300_items_stay_small_few_and_cheap(koos: Koos) -> None:
    name = "scale"
    koos.sandbox.jobs.script(f"{name}-each-*", message=json.dumps({"ok": True}))
    await koos.apply(template(name, {"items": list(range(300)), "concurrency": 20}))
    census = Census(name)
    koos.sandbox.store.listeners.append(census)
    mark = koos.sandbox.requests.mark()
    try:
        done = await run_loop(koos, name)
    finally:
        koos.sandbox.store.listeners.remove(census)
    status = done["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    loop = status["steps"][0]["loop"]
    assert (loop["succeeded"], loop["failed"], loop["completedIndexes"]) == (300, 0, "0-299")
    assert status["outputs"] == {"oks": [True] * 300}
    assert census.largest < STATUS_BOUND
    assert census.most_jobs <= 20 + 10, census.most_jobs
    assert census.most_pods <= 20 + 10, census.most_pods
    assert len(census.created) == len(set(census.created)) == 300
    assert census.unrecorded_deletes == []
    writes = [
        r
        for r in koos.sandbox.requests.since(mark)
        if r.user != "system:admin"
        and r.verb in ("create", "update", "patch", "delete")
        and r.resource in ("jobs", "executions")
    ]
    status_writes = [r for r in writes if r.subresource == "status"]
    print(f"writes={len(writes)} status writes={len(status_writes)} largest={census.largest}")
    assert len(writes) <= 3 * 300
    assert len(status_writes) < 300


@pytest.mark.parametrize(("failing", "phase"), [(3, "Succeeded"), (30, "Failed")])
async def test_500_items_with_max_errors_five_percent(koos: Koos, failing: int, phase: str) -> None:
    name = f"five-{failing}"
    bad = list(range(100, 100 + failing))
    for index in bad:
        koos.sandbox.jobs.script(
            f"{name}-each-{index}-*", exit_code=1, logs=f"item {index} broke\n"
        )
    await koos.apply(
        template(name, {"items": list(range(500)), "concurrency": 10, "maxErrors": "5%"})
    )
    census = Census(name)
    koos.sandbox.store.listeners.append(census)
    try:
        done = await run_loop(koos, name)
    finally:
        koos.sandbox.store.listeners.remove(census)
    status = done["status"]
    step = status["steps"][0]
    assert status["phase"] == phase, status.get("message")
    loop = step["loop"]
    if failing == 3:
        assert (loop["succeeded"], loop["failed"]) == (497, 3)
        assert loop["failedIndexes"] == "100-102"
    else:
        assert step["reason"] == "TooManyErrors"
        assert loop["failed"] >= 26 and loop["pending"] > 0
        assert "item 100 broke" in step["message"]
        # The 26th failure is item 125: only items already in flight (at most 10) started.
        started = sorted(int(n.split("-")[3]) for n in census.created)
        assert started[-1] < 125 + 10, started[-1]
        assert loop["succeeded"] + loop["failed"] == len(census.created)


async def test_a_canary_batch_waits_for_continue(koos: Koos) -> None:
    name = "canary"
    await koos.apply(
        template(
            name,
            {"items": list(range(6)), "concurrency": 3, "batchSize": 2, "pause": "AfterFirstBatch"},
        )
    )
    await koos.apply(execution(name, name))

    def waiting() -> dict[str, Any] | None:
        status = (koos.execution(name) or {}).get("status") or {}
        return status if status.get("phase") == "Waiting" else None

    status = await async_wait_for(waiting, timeout=20, what="the canary batch to pause")
    step = status["steps"][0]
    assert step["awaitingContinue"] is True and step["reason"] == "AwaitingContinue"
    assert status["conditions"][0]["reason"] == "AwaitingContinue"
    assert step["loop"]["completedIndexes"] == "0-1" and step["loop"]["pending"] == 4
    # The status write comes first, the release of the batch's Jobs after it; nothing new starts.
    await async_wait_for(
        lambda: not koos.jobs(name), timeout=10, what="the first batch's Jobs to be released"
    )
    assert (koos.execution(name) or {})["status"]["steps"][0]["loop"]["pending"] == 4
    # What the continue command does for a loop: clear the flag in the status (written
    # straight into the store, as the operator's own status write would land).
    obj = koos.execution(name) or {}
    steps = [
        {k: v for k, v in s.items() if k != "awaitingContinue"} for s in obj["status"]["steps"]
    ]
    rt = koos.rt("executions")
    koos.sandbox.store.replace(rt, obj, {**obj, "status": {**obj["status"], "steps": steps}})
    done = await koos.finished(name)
    assert done["status"]["phase"] == "Succeeded", done["status"].get("message")


async def test_deletes_failing_after_the_status_write_lose_nothing_and_run_nothing_twice(
    koos: Koos,
) -> None:
    """The fault falls between the two writes that matter: the status records the items,
    then the first dozen Job deletes fail. Passes retry, release again, and the loop ends
    with each item run once and no Job deleted before its outcome was recorded."""
    name = "faulty"
    for index in range(40):
        koos.sandbox.jobs.script(f"{name}-each-{index}-*", message=json.dumps({"ok": index}))
    await koos.apply(template(name, {"items": list(range(40)), "concurrency": 8}))
    census = Census(name)
    koos.sandbox.store.listeners.append(census)
    rule = koos.sandbox.faults.fail("delete", "jobs", code=500, times=12)
    try:
        done = await run_loop(koos, name, timeout=60)
        await async_wait_for(lambda: not koos.jobs(name), timeout=20, what="every Job released")
    finally:
        koos.sandbox.faults.clear()
        koos.sandbox.store.listeners.remove(census)
    assert rule.remaining == 0  # the fault did fire
    status = done["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["outputs"] == {"oks": list(range(40))}
    assert sorted(census.created) == sorted(set(census.created)) and len(census.created) == 40
    assert census.unrecorded_deletes == []


async def test_an_operator_restarted_mid_loop_runs_no_item_twice_and_loses_no_result(
    koos: Koos,
) -> None:
    name = "restart"
    for index in range(40):
        koos.sandbox.jobs.script(
            f"{name}-each-{index}-*", duration=0.2, message=json.dumps({"ok": index})
        )
    await koos.apply(template(name, {"items": list(range(40)), "concurrency": 5}))
    census = Census(name)
    koos.sandbox.store.listeners.append(census)
    try:
        await koos.apply(execution(name, name))
        await async_wait_for(
            lambda: len(census.recorded) >= 10, timeout=30, what="ten items recorded"
        )
        await koos.stop_operator()
        # Items in flight end while nobody watches: their results are only in their Pods.
        await async_wait_for(
            lambda: any(
                "Complete" in [c["type"] for c in (j.get("status") or {}).get("conditions") or []]
                for j in koos.jobs(name)
            ),
            timeout=10,
            what="an item to end while the operator is down",
        )
        await koos.start_operator()
        done = await koos.finished(name, timeout=60)
    finally:
        koos.sandbox.store.listeners.remove(census)
    status = done["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["outputs"] == {"oks": list(range(40))}
    assert sorted(census.created) == sorted(set(census.created)) and len(census.created) == 40
    assert census.unrecorded_deletes == []


async def test_a_loop_template_with_bad_literals_is_refused_at_apply_naming_each_field(
    koos: Koos,
) -> None:
    bad = template(
        "bad-loop",
        {"items": "web-1", "concurrency": 0, "maxErrors": "150%", "pause": "EveryBatch"},
    )
    bad["spec"]["steps"].append(
        {
            "name": "after",
            "run": {
                "image": "busybox",
                "script": "true",
                "env": [{"name": "X", "value": "{{ item }}"}],
            },
        }
    )
    with pytest.raises(ApiError) as refused:
        await koos.apply(bad)
    message = refused.value.message
    for fragment in (
        "spec.steps[0].loop.items: give a list of items",
        "spec.steps[0].loop.concurrency: must be from 1 to 500",
        "spec.steps[0].loop.maxErrors: a percentage of the items must be at most 100%",
        "spec.steps[0].loop.pause: pause: EveryBatch needs batchSize",
        "spec.steps[1].run.env[0].value: item is defined only in the run of a step with a loop",
    ):
        assert fragment in message, message
    assert koos.template("bad-loop") is None


async def test_a_non_list_from_an_expression_fails_the_step_naming_loop_items(
    koos: Koos,
) -> None:
    name = "not-a-list"
    spec = template(name, {"items": "{{ params.hosts }}"})
    spec["spec"]["parameters"] = {"hosts": {"type": "string", "default": "web-1"}}
    await koos.apply(spec)
    done = await run_loop(koos, name, timeout=20)
    step = done["status"]["steps"][0]
    assert (step["phase"], step["reason"]) == ("Failed", "InvalidSpec")
    assert step["message"] == "loop.items must be a list, but it renders to a string"
    assert koos.jobs(name) == []
