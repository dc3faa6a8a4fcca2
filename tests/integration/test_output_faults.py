"""Nothing a step produced is lost or deleted before it is recorded, under API faults.

About a hundred short runs go through the real operator while the sandbox fails 14% of the
operator's own requests (500 and 503, from one seeded generator) and drops every watch
stream every few dozen writes. kopf's watch and list requests are not failed: kopf gives a
watch up after four failed attempts in a row and stops the operator, which is then a
restart (covered by test_resilience); the drops make kopf resume and relist all the same.

Each run's Jobs are scripted: every step writes an output, some steps fail, some fail once
and succeed on their retry. The test counts, per run, the phase against the one the script
implies, every step's outputs against the script's, and every Job deleted before the status
recorded its outcome: all three must be zero.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from koos_sandbox.store import Event
from koos_sandbox.testing import Timeout

from .conftest import Koos

pytestmark = pytest.mark.sandbox_only(
    "injects API errors and watch drops with the sandbox's fault injection"
)

SEED = 1010
RUNS = 100
WAVE = 25  # runs in flight at once
ERROR_RATE = 0.14  # of the operator's own requests, 500 or 503
# Every request koos's reconciles make (kopf's own are its watches and lists of these).
KOOS_REQUESTS = (
    ("get", "executions"),
    ("get", "templates"),
    ("get", "jobs"),
    ("list", "pods"),
    ("create", "jobs"),
    ("delete", "jobs"),
    ("patch", "executions"),
    ("patch", "executions/status"),
    ("create", "events"),
)
DROP_EVERY = 40  # store writes between two drops of every watch stream


def template() -> dict[str, Any]:
    """a → b (reads a's output) → c; b has one retry. The run's outputs read a and b."""
    run = {"image": "busybox", "script": "true"}
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": "outputs"},
        "spec": {
            "steps": [
                {"name": "a", "run": run},
                {
                    "name": "b",
                    "run": {**run, "env": [{"name": "FROM_A", "value": "{{ steps.a.outputs.n }}"}]},
                    "retries": {"limit": 1, "backoff": "1s"},
                },
                {"name": "c", "run": run},
            ],
            "outputs": {"n": "{{ steps.a.outputs.n }}", "m": "{{ steps.b.outputs.m }}"},
        },
    }


@dataclass
class Expected:
    """What run `name` must end as, from how its Jobs are scripted."""

    name: str
    phase: str
    steps: dict[str, tuple[str, dict[str, Any] | None]]  # step → (phase, outputs)
    outputs: dict[str, Any] = field(default_factory=dict)


def script_run(koos: Koos, i: int) -> Expected:
    """Run i: b fails for good when i % 7 == 3, fails once then succeeds when i % 5 == 1."""
    name = f"fo-{i}"
    jobs = koos.sandbox.jobs
    jobs.script(f"{name}-a-*", message=json.dumps({"n": f"n{i}"}))
    jobs.script(f"{name}-c-*", message=json.dumps({"done": True}))
    if i % 7 == 3:
        jobs.script(f"{name}-b-*", exit_code=2, logs=f"b of {name} broke\n")
        return Expected(
            name,
            "Failed",
            {"a": ("Succeeded", {"n": f"n{i}"}), "b": ("Failed", None), "c": ("Skipped", None)},
        )
    jobs.script(f"{name}-b-*", message=json.dumps({"m": f"m{i}"}))
    if i % 5 == 1:
        jobs.script(f"{name}-b-1-*", exit_code=1, logs="first try fails\n")
    return Expected(
        name,
        "Succeeded",
        {
            "a": ("Succeeded", {"n": f"n{i}"}),
            "b": ("Succeeded", {"m": f"m{i}"}),
            "c": ("Succeeded", {"done": True}),
        },
        {"n": f"n{i}", "m": f"m{i}"},
    )


def execution(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": "outputs"}},
    }


class Watcher:
    """Drops every watch stream every `DROP_EVERY` store writes, and records each Job that is
    deleted (or marked for deletion) with whether the Execution had recorded its outcome."""

    def __init__(self, koos: Koos) -> None:
        self.koos = koos
        self.writes = 0
        self.drops = 0
        self.deleted: list[tuple[str, bool]] = []  # Job name, outcome recorded by then

    def __call__(self, event: Event) -> None:
        self.writes += 1
        if self.writes % DROP_EVERY == 0:
            self.drops += 1
            self.koos.sandbox.drop_watches()
        if event.key != ("batch", "jobs"):
            return
        meta = event.obj["metadata"]
        marked = "deletionTimestamp" in meta and "deletionTimestamp" not in (
            (event.old or {}).get("metadata") or {}
        )
        if event.type == "DELETED" and "deletionTimestamp" not in meta:
            marked = True
        if marked:
            self.deleted.append((meta["name"], self.recorded(meta)))

    def recorded(self, job: dict[str, Any]) -> bool:
        execution = (job.get("labels") or {}).get("koos.io/execution", "")
        steps = ((self.koos.execution(execution) or {}).get("status") or {}).get("steps") or []
        return any(
            s.get("jobName") == job["name"] and s["phase"] not in ("Pending", "Running")
            for s in steps
        )


def stuck(koos: Koos, name: str) -> str:
    status = (koos.execution(name) or {}).get("status") or {}
    jobs = {
        j["metadata"]["name"]: [c["type"] for c in (j.get("status") or {}).get("conditions") or []]
        for j in koos.jobs(name)
    }
    return f"status {status}, Jobs {jobs}"


def wrong(expected: Expected, obj: dict[str, Any]) -> list[str]:
    status = obj.get("status") or {}
    problems = []
    if status.get("phase") != expected.phase:
        problems.append(f"phase {status.get('phase')} ({status.get('message')})")
    records = {s["name"]: s for s in status.get("steps") or []}
    for step, (phase, outputs) in expected.steps.items():
        got = records.get(step, {})
        if (got.get("phase"), got.get("outputs")) != (phase, outputs):
            problems.append(
                f"step {step}: {got.get('phase')} {got.get('outputs')} ({got.get('message')})"
            )
    if expected.phase == "Succeeded" and status.get("outputs") != expected.outputs:
        problems.append(f"outputs {status.get('outputs')}")
    return problems


async def test_no_output_is_lost_and_no_job_deleted_under_api_errors_and_watch_drops(
    koos: Koos,
) -> None:
    await koos.apply(template())
    watcher = Watcher(koos)
    koos.sandbox.store.listeners.append(watcher)
    faults = koos.sandbox.faults
    faults.reseed(SEED)
    for i, (verb, resource) in enumerate(KOOS_REQUESTS):
        faults.fail(verb, resource, code=(500, 503)[i % 2], rate=ERROR_RATE)
    mark = koos.sandbox.requests.mark()
    outcomes: dict[str, list[str]] = {}
    try:
        for start in range(0, RUNS, WAVE):
            wave = [script_run(koos, i) for i in range(start, min(start + WAVE, RUNS))]
            for expected in wave:
                await koos.apply(execution(expected.name))
            for expected in wave:
                try:
                    done = await koos.finished(expected.name, timeout=60)
                except Timeout:
                    pytest.fail(f"{expected.name} is stuck: {stuck(koos, expected.name)}")
                outcomes[expected.name] = wrong(expected, done)
    finally:
        faults.clear()
        koos.sandbox.store.listeners.remove(watcher)
    requests = [
        r
        for r in koos.sandbox.requests.since(mark)
        if (r.verb, f"{r.resource}/{r.subresource}".rstrip("/")) in KOOS_REQUESTS
    ]
    failed = [r for r in requests if r.code in (500, 503)]
    print(
        f"runs={RUNS} requests={len(requests)} injected={len(failed)} "
        f"({len(failed) / max(len(requests), 1):.1%}) watch drops={watcher.drops} "
        f"jobs deleted={len(watcher.deleted)}"
    )
    bad = {name: problems for name, problems in outcomes.items() if problems}
    assert bad == {}, f"{len(bad)} of {RUNS} runs ended wrong: {bad}"
    assert [name for name, recorded in watcher.deleted if not recorded] == []
    assert 0.12 <= len(failed) / len(requests) <= 0.16
    assert watcher.drops >= 20
