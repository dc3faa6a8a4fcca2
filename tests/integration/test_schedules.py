"""Schedules end to end: the operator fires Executions on (second-granularity, tests only)
cron, exactly once, with concurrency, history and bad-input handling."""

from __future__ import annotations

import pytest
import yaml

from koos.handlers.admission import own_requests_skipped
from koos_sandbox.auth import UserInfo
from koos_sandbox.errors import ApiError
from koos_sandbox.testing import async_wait_for
from koos_sandbox.writes import WriteOptions

from .conftest import Koos


def template(name: str, **step: object) -> str:
    run = {"name": "s0", "run": {"image": "busybox", "script": "true"}, **step}
    return yaml.safe_dump(
        {
            "apiVersion": "koos.io/v1alpha1",
            "kind": "Template",
            "metadata": {"name": name},
            "spec": {"steps": [run]},
        }
    )


def schedule(name: str, template_name: str, cron: str = "*/1 * * * * *", **spec: object) -> str:
    body = {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name},
        "spec": {
            "schedule": cron,
            "executionTemplate": {
                "metadata": {"labels": {"team": "sre"}},
                "spec": {"templateRef": {"name": template_name}},
            },
            **spec,
        },
    }
    return yaml.safe_dump(body)


def runs(koos: Koos, schedule_name: str) -> list[dict[str, object]]:
    items = koos.objects("executions")
    return [
        e
        for e in items
        if (e["metadata"].get("labels") or {}).get("koos.io/schedule") == schedule_name
    ]


def status(koos: Koos, name: str) -> dict[str, object]:
    obj = koos.object("schedules", name) or {}
    return obj.get("status") or {}


async def test_a_schedule_fires_runs_that_succeed(koos: Koos) -> None:
    await koos.apply(template("tick"))
    await koos.apply(schedule("every-second", "tick"))
    await async_wait_for(lambda: len(runs(koos, "every-second")) >= 2, timeout=15, what="two fires")
    first = runs(koos, "every-second")[0]
    assert first["metadata"]["labels"]["team"] == "sre"
    assert first["metadata"]["annotations"]["koos.io/scheduled-time"]
    assert first["metadata"]["ownerReferences"][0]["kind"] == "Schedule"
    done = await koos.finished(first["metadata"]["name"])
    assert done["status"]["phase"] == "Succeeded"

    def recorded() -> dict[str, object] | None:
        st = status(koos, "every-second")
        return st if st.get("lastSuccessfulTime") and st.get("fired", 0) >= 2 else None

    st = await async_wait_for(recorded, what="the status to record two fires and a success")
    assert st["nextScheduleTime"] > st["lastScheduleTime"]


async def test_history_limits_collect_old_runs(koos: Koos) -> None:
    await koos.apply(template("tock"))
    await koos.apply(schedule("kept", "tock", successfulExecutionsHistoryLimit=1))
    await async_wait_for(
        lambda: status(koos, "kept").get("fired", 0) >= 4, timeout=20, what="four fires"
    )
    await async_wait_for(
        lambda: (
            len(
                [
                    r
                    for r in runs(koos, "kept")
                    if (r.get("status") or {}).get("phase") == "Succeeded"
                ]
            )
            <= 1
        ),
        what="old successful runs to be deleted",
    )


async def test_forbid_skips_fires_while_a_run_is_active(koos: Koos) -> None:
    await koos.apply(template("slow", run={"image": "busybox", "script": "sleep 4"}))
    koos.outcome("single-*", duration=4)
    await koos.apply(schedule("single", "slow", concurrencyPolicy="Forbid"))
    await async_wait_for(
        lambda: status(koos, "single").get("skipped", 0) >= 2,
        timeout=15,
        what="fires skipped while the run is active",
    )
    active = [
        r
        for r in runs(koos, "single")
        if (r.get("status") or {}).get("phase") not in ("Succeeded", "Failed", "Cancelled")
    ]
    assert len(active) <= 1


async def test_suspend_fires_nothing(koos: Koos) -> None:
    await koos.apply(template("paused"))
    await koos.apply(schedule("held", "paused", suspend=True))
    await async_wait_for(lambda: status(koos, "held").get("nextScheduleTime"), what="a status")
    await async_wait_for(
        lambda: status(koos, "held").get("skipped", 0) >= 2,
        timeout=15,
        what="suspended fires counted",
    )
    assert runs(koos, "held") == []


async def test_bad_schedules_are_refused_at_admission(koos: Koos) -> None:
    await koos.apply(template("fine"))
    cases = {
        "bad-cron": (schedule("bad-cron", "fine", cron="61 * * * *"), "spec.schedule"),
        "bad-zone": (schedule("bad-zone", "fine", timeZone="Mars/Olympus"), "spec.timeZone"),
        "backwards": (
            schedule(
                "backwards",
                "fine",
                startTime="2030-01-02T00:00:00Z",
                endTime="2030-01-01T00:00:00Z",
            ),
            "endTime",
        ),
        "negative": (
            schedule("negative", "fine", failedExecutionsHistoryLimit=-1),
            "failedExecutionsHistoryLimit",
        ),
    }
    for name, (manifest, fragment) in cases.items():
        with pytest.raises(ApiError) as refused:
            await koos.apply(manifest)
        assert fragment in refused.value.message, (name, refused.value.message)
        assert koos.object("schedules", name) is None
    await koos.apply(schedule("good", "fine"))
    await async_wait_for(lambda: runs(koos, "good"), what="a good schedule to fire anyway")


async def test_a_schedule_of_a_missing_template_waits_for_it(koos: Koos) -> None:
    await koos.apply(schedule("early", "later"))

    def ready() -> dict[str, object] | None:
        conditions = status(koos, "early").get("conditions") or []
        return next((c for c in conditions if c["type"] == "Ready"), None)

    condition = await async_wait_for(ready, what="the Ready condition")
    assert condition["status"] == "False"
    assert "later" in condition["message"]
    assert runs(koos, "early") == []
    await koos.apply(template("later"))
    await async_wait_for(lambda: runs(koos, "early"), what="fires once the Template exists")


async def test_a_schedule_says_at_once_when_its_template_goes_away(koos: Koos) -> None:
    # A yearly Schedule is not woken by its own timer: the Template's deletion wakes it.
    await koos.apply(template("gone"))
    await koos.apply(schedule("orphan", "gone", cron="0 0 1 1 *"))

    def ready(value: str) -> dict[str, object] | None:
        conditions = status(koos, "orphan").get("conditions") or []
        return next((c for c in conditions if c["type"] == "Ready" and c["status"] == value), None)

    await async_wait_for(lambda: ready("True"), what="Ready=True")
    await koos.delete("templates", "gone")
    condition = await async_wait_for(lambda: ready("False"), what="Ready=False, Template gone")
    assert '"gone" not found' in str(condition["message"])
    assert runs(koos, "orphan") == []


async def test_replace_cancels_the_active_run(koos: Koos) -> None:
    await koos.apply(template("long", run={"image": "busybox", "script": "sleep 600"}))
    koos.outcome("swap-*", duration=600)
    await koos.apply(schedule("swap", "long", concurrencyPolicy="Replace"))

    def cancelled() -> list[dict[str, object]]:
        return [
            r for r in runs(koos, "swap") if (r.get("status") or {}).get("phase") == "Cancelled"
        ]

    await async_wait_for(cancelled, timeout=15, what="a run replaced by the next fire")


async def test_a_restarted_operator_fires_each_time_once(koos: Koos) -> None:
    await koos.apply(template("once"))
    await koos.apply(schedule("once", "once", catchUp="All"))
    await async_wait_for(lambda: len(runs(koos, "once")) >= 1, what="a first fire")
    await koos.stop_operator()
    await koos.start_operator()
    await async_wait_for(lambda: len(runs(koos, "once")) >= 4, timeout=15, what="more fires")
    times = [r["metadata"]["annotations"]["koos.io/scheduled-time"] for r in runs(koos, "once")]
    assert len(times) == len(set(times))  # no fire twice
    names = sorted(r["metadata"]["name"] for r in runs(koos, "once"))
    assert len(names) == len(set(names))


def conditions(koos: Koos, plural: str, hook: str) -> object:
    config = koos.sandbox.store.find(
        koos.rt(plural, "admissionregistration.k8s.io", "v1"), "", "koos.io"
    )
    for entry in (config or {}).get("webhooks") or []:
        if entry["name"] == hook:
            return entry.get("matchConditions")
    return None


@pytest.mark.sandbox_only("counts admission webhook calls, which only the sandbox records")
async def test_runs_of_schedules_skip_the_creator_webhook(koos: Koos) -> None:
    # The operator stamps its own runs, so the API server need not call the creator webhook
    # for them; a person's Execution is still stamped by it, from the API server's record.
    operator = koos.admin.username  # the harness runs the operator as the sandbox's admin
    for plural, hook in (
        ("mutatingwebhookconfigurations", "creator.koos.io"),
        ("validatingwebhookconfigurations", "creator-kept.koos.io"),
    ):
        await async_wait_for(
            lambda plural=plural, hook=hook: conditions(koos, plural, hook),
            what=f"matchConditions on {hook}",
        )
        assert conditions(koos, plural, hook) == own_requests_skipped(plural, hook, operator)
    calls = koos.sandbox.admission.calls
    before = calls["creator.koos.io"]

    await koos.apply(template("quiet"))
    await koos.apply(schedule("quiet", "quiet"))
    await async_wait_for(lambda: len(runs(koos, "quiet")) >= 2, timeout=15, what="two fires")
    for run in runs(koos, "quiet"):
        assert run["metadata"]["annotations"]["koos.io/created-by"] == operator
    assert calls["creator.koos.io"] == before

    alice = UserInfo("alice", "uid-alice", ("sre",))
    by_hand = {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": "by-hand"},
        "spec": {"templateRef": {"name": "quiet"}},
    }
    created = await koos.sandbox.state.writes.create(
        alice, koos.rt("executions"), "default", by_hand, WriteOptions()
    )
    assert calls["creator.koos.io"] == before + 1
    assert created["metadata"]["annotations"]["koos.io/created-by"] == "alice"
