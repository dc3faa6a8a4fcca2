"""Executions end to end: the real operator, the sandbox's API server and Job runner."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from koos_sandbox.errors import ApiError
from koos_sandbox.store import Event
from koos_sandbox.testing import async_wait_for

from .conftest import NS, ROOT, Koos

QUICKSTART = ROOT / "examples" / "quickstart"


def linear(name: str, count: int, **step: object) -> str:
    steps = [
        {"name": f"s{i}", "run": {"image": "busybox", "script": "true"}, **step}
        for i in range(count)
    ]
    return yaml.safe_dump(
        {
            "apiVersion": "koos.io/v1alpha1",
            "kind": "Template",
            "metadata": {"name": name},
            "spec": {"steps": steps},
        }
    )


def execution(name: str, template: str, **parameters: object) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "koos.io/v1alpha1",
            "kind": "Execution",
            "metadata": {"name": name},
            "spec": {"templateRef": {"name": template}, "parameters": parameters},
        }
    )


async def test_the_quickstart_runs_to_success_with_outputs(koos: Koos) -> None:
    koos.outcome("quickstart-1-plan-*", message='{"batch": "checkout-check"}')
    koos.outcome("quickstart-1-check-capacity-*", message='{"free": "42%"}')
    koos.outcome("quickstart-1-summarize-*", message='{"verdict": "healthy"}')
    await koos.apply((QUICKSTART / "template.yaml").read_text())
    await koos.apply((QUICKSTART / "execution.yaml").read_text())
    done = await koos.finished("quickstart-1")
    status = done["status"]
    assert status["phase"] == "Succeeded", (
        status["message"],
        [(s["name"], s["phase"], s.get("reason"), s.get("message")) for s in status["steps"]],
    )
    assert status["outputs"] == {"verdict": "healthy", "batch": "checkout-check"}
    assert status["progress"] == "5/5"
    assert [s["phase"] for s in status["steps"]] == ["Succeeded"] * 5
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "True"
    assert conditions["Ready"]["status"] == "True"
    summarize = next(j for j in koos.jobs("quickstart-1") if "summarize" in j["metadata"]["name"])
    env = {
        e["name"]: e.get("value")
        for e in summarize["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["BATCH"] == "checkout-check"  # an output passed to a later step
    assert env["FREE"] == "42%"
    assert env["KOOS_PARAM_SERVICE"] == "checkout"


async def test_parallel_branches_start_together(koos: Koos) -> None:
    koos.outcome("par-1-plan-*", message='{"batch": "b"}')
    koos.outcome("par-1-check-*", duration=1.0, message='{"free": "1%"}')
    await koos.apply((QUICKSTART / "template.yaml").read_text())
    await koos.apply(execution("par-1", "quickstart"))

    def both_running() -> bool:
        obj = koos.execution("par-1") or {}
        running = {
            s["name"] for s in obj.get("status", {}).get("steps", []) if s["phase"] == "Running"
        }
        return {"check-dns", "check-capacity"} <= running

    await async_wait_for(both_running, what="both checks to run at once")


@pytest.mark.sandbox_only("counts the operator's requests, which only the sandbox records")
async def test_a_linear_run_costs_few_writes_and_nothing_while_waiting(koos: Koos) -> None:
    await koos.apply(linear("five", 5))
    koos.sandbox.jobs.script("eco-1-s2-*", duration=2.0)
    changes: dict[str, float] = {}

    def watch_s2(event: Event) -> None:
        # When s2's Job is created, and when its Pod ends.
        name = event.obj["metadata"]["name"]
        if event.key == ("batch", "jobs") and name.startswith("eco-1-s2"):
            changes.setdefault("created", time.time())
        pod = event.key == ("", "pods") and name.startswith("eco-1-s2")
        if pod and event.obj.get("status", {}).get("phase") == "Succeeded":
            changes.setdefault("ended", time.time())

    koos.sandbox.store.listeners.append(watch_s2)
    await async_wait_for(
        lambda: (koos.template("five") or {}).get("status", {}).get("conditions"),
        what="the template to be validated",
    )
    mark = koos.sandbox.requests.mark()
    await koos.apply(execution("eco-1", "five"))

    def settled_on_s2() -> bool:
        # The reconcile that started s2 has ended (its last request is the Event after the
        # status write): the operator is waiting now, while s2's Job and Pod keep changing.
        created = changes.get("created")
        return (
            created is not None
            and "ended" not in changes
            and any(
                r.verb == "create" and r.resource == "events" and r.time > created
                for r in koos.sandbox.requests.since(mark)
            )
        )

    await async_wait_for(settled_on_s2, what="the operator to wait on step s2")
    waiting = koos.sandbox.requests.mark()
    done = await koos.finished("eco-1")
    assert done["status"]["phase"] == "Succeeded"
    during = [
        r
        for r in koos.sandbox.requests.since(waiting)
        if r.time < changes["ended"] and r.verb != "watch" and r.user == "admin"
    ]
    assert during == []  # watches only: no polling, no writes while a step runs
    writes = [r for r in koos.sandbox.requests.since(mark) if r.is_write and r.user == "admin"]
    assert len(writes) <= 3 * 5 + 4, [(r.verb, r.resource, r.subresource) for r in writes]


async def test_a_failed_attempt_is_retried_as_a_new_job(koos: Koos) -> None:
    fail_first = 'if [ "$KOOS_ATTEMPT" = 1 ]; then echo boom; exit 3; fi'
    retries = {"limit": 2, "backoff": "1s"}
    await koos.apply(
        linear("flaky", 1, retries=retries, run={"image": "busybox", "script": fail_first})
    )
    koos.outcome("retry-1-s0-1-*", exit_code=3, logs="boom\n")
    await koos.apply(execution("retry-1", "flaky"))
    done = await koos.finished("retry-1")
    assert done["status"]["phase"] == "Succeeded"
    assert koos.step("retry-1", "s0")["attempt"] == 2
    assert sorted(j["metadata"]["name"] for j in koos.jobs("retry-1")) == [
        "retry-1-s0-1",
        "retry-1-s0-2",
    ]


async def test_on_error_abort_fails_the_run_and_runs_finally(koos: Koos) -> None:
    template = {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": "abort"},
        "spec": {
            "steps": [
                {"name": "break", "run": {"image": "busybox", "script": "echo disk full; exit 1"}},
                {"name": "never", "run": {"image": "busybox", "script": "true"}},
            ],
            "finally": [{"name": "cleanup", "run": {"image": "busybox", "script": "true"}}],
        },
    }
    koos.outcome("ab-1-break-*", exit_code=1, message="disk full")
    await koos.apply(template)
    await koos.apply(execution("ab-1", "abort"))
    done = await koos.finished("ab-1")
    assert done["status"]["phase"] == "Failed"
    assert koos.step("ab-1", "break")["phase"] == "Failed"
    assert "disk full" in koos.step("ab-1", "break")["message"]
    assert koos.step("ab-1", "never")["phase"] == "Skipped"
    assert koos.step("ab-1", "cleanup")["phase"] == "Succeeded"
    failed = {c["type"]: c for c in done["status"]["conditions"]}["Succeeded"]
    assert (failed["status"], failed["reason"]) == ("False", "Failed")


async def test_cancel_deletes_running_jobs_and_still_runs_finally(koos: Koos) -> None:
    template = {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": "long"},
        "spec": {
            "steps": [{"name": "wait", "run": {"image": "busybox", "script": "sleep 600"}}],
            "finally": [{"name": "report", "run": {"image": "busybox", "script": "true"}}],
        },
    }
    koos.outcome("cx-1-wait-*", duration=600)
    await koos.apply(template)
    await koos.apply(execution("cx-1", "long"))
    await async_wait_for(lambda: len(koos.jobs("cx-1")) == 1, what="the first Job")
    await koos.annotate("cx-1", "koos.io/cancel", "true")
    done = await koos.finished("cx-1")
    assert done["status"]["phase"] == "Cancelled", (
        done["status"]["steps"],
        done["status"].get("cancelRequested"),
    )
    assert koos.step("cx-1", "wait")["phase"] == "Cancelled"
    assert koos.step("cx-1", "report")["phase"] == "Succeeded"
    assert "koos.io/cancel" not in (done["metadata"].get("annotations") or {})
    await async_wait_for(
        lambda: not any("cx-1-wait" in j["metadata"]["name"] for j in koos.jobs("cx-1")),
        what="the cancelled Job to be deleted",
    )


async def test_when_false_skips_and_dependants_still_run(koos: Koos) -> None:
    template = {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": "cond"},
        "spec": {
            "parameters": {"dryRun": {"type": "boolean", "default": True}},
            "steps": [
                {
                    "name": "change",
                    "when": "{{ not params.dryRun }}",
                    "run": {"image": "busybox", "script": "true"},
                },
                {"name": "verify", "run": {"image": "busybox", "script": "true"}},
            ],
        },
    }
    await koos.apply(template)
    await koos.apply(execution("cond-1", "cond"))
    done = await koos.finished("cond-1")
    assert done["status"]["phase"] == "Succeeded"
    assert koos.step("cond-1", "change")["phase"] == "Skipped"
    assert koos.step("cond-1", "verify")["phase"] == "Succeeded"
    assert [j["metadata"]["name"] for j in koos.jobs("cond-1")] == ["cond-1-verify-1"]


async def test_bad_input_fails_with_invalid_spec_and_runs_nothing(koos: Koos) -> None:
    await koos.apply(linear("ok", 1))
    await koos.apply((QUICKSTART / "template.yaml").read_text())
    cases = {
        "no-template": (execution("no-template", "missing"), 'Template "missing" not found'),
        "unknown-param": (execution("unknown-param", "ok", colour="red"), "colour"),
        "wrong-type": (execution("wrong-type", "quickstart", replicas="many"), "replicas"),
        "too-many": (execution("too-many", "quickstart", replicas=11), "replicas"),
    }
    for manifest, _ in cases.values():
        await koos.apply(manifest)
    for name, (_, fragment) in cases.items():
        done = await koos.finished(name)
        assert done["status"]["phase"] == "Failed", name
        condition = {c["type"]: c for c in done["status"]["conditions"]}["Succeeded"]
        assert condition["reason"] == "InvalidSpec", name
        assert fragment in condition["message"], (name, condition["message"])
        assert koos.jobs(name) == []


@pytest.mark.sandbox_only("stores a template past the admission webhook, in the sandbox's store")
async def test_an_invalid_template_is_not_ready_and_says_why(koos: Koos) -> None:
    template = {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": "cyclic"},
        "spec": {
            "steps": [
                {"name": "a", "dependsOn": ["b"], "run": {"image": "busybox", "script": "true"}},
                {"name": "b", "dependsOn": ["a"], "run": {"image": "busybox", "script": "true"}},
                {"name": "c", "dependsOn": ["nope"], "run": {"image": "busybox", "script": "true"}},
            ]
        },
    }
    with pytest.raises(ApiError) as refused:  # the admission webhook refuses it at apply
        await koos.apply(template)
    assert "cycle" in refused.value.message
    assert "nope" in refused.value.message
    assert koos.template("cyclic") is None
    # Stored anyway (as with webhooks off), it is reported in its Ready condition.
    koos.sandbox.store.create(koos.rt("templates"), NS, template)

    def ready() -> dict[str, object] | None:
        obj = koos.template("cyclic") or {}
        return next(
            (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None
        )

    condition = await async_wait_for(ready, what="the template's Ready condition")
    assert condition["status"] == "False"
    assert condition["reason"] == "InvalidSpec"
    assert "cycle" in condition["message"]
    assert "nope" in condition["message"]


async def test_bad_outputs_fail_the_step_with_a_reason(koos: Koos) -> None:
    write = (
        'case "$KOOS_EXECUTION" in out-bad) echo "not json";; out-list) echo "[1, 2]";;'
        ' out-big) printf \'{"x": "%05000d"}\' 0;; esac > "$KOOS_OUTPUT"'
    )
    await koos.apply(linear("one", 1, run={"image": "busybox", "script": write}))
    koos.outcome("out-bad-*", message="not json")
    koos.outcome("out-list-*", message="[1, 2]")
    koos.outcome("out-big-*", message=json.dumps({"x": "0" * 5000}))
    for name in ("out-bad", "out-list", "out-big"):
        await koos.apply(execution(name, "one"))
    reasons = {}
    for name in ("out-bad", "out-list", "out-big"):
        await koos.finished(name)
        reasons[name] = koos.step(name, "s0")["reason"]
    assert reasons == {
        "out-bad": "InvalidOutput",
        "out-list": "InvalidOutput",
        "out-big": "OutputTooLarge",
    }


@pytest.mark.sandbox_only("a container that never starts is a scripted image-pull failure")
async def test_a_pod_that_never_starts_times_out(koos: Koos) -> None:
    await koos.apply(linear("stuck", 1, timeout="2s"))
    koos.sandbox.jobs.script("stuck-1-*", pending=True)
    await koos.apply(execution("stuck-1", "stuck"))
    done = await koos.finished("stuck-1")
    assert done["status"]["phase"] == "Failed"
    assert koos.step("stuck-1", "s0")["reason"] == "TimedOut"
    condition = {c["type"]: c for c in done["status"]["conditions"]}["Succeeded"]
    assert condition["reason"] == "TimedOut"


async def test_deleting_the_template_does_not_stop_a_run(koos: Koos) -> None:
    await koos.apply(linear("gone", 2, run={"image": "busybox", "script": "sleep 1"}))
    koos.outcome("snap-1-s0-*", duration=1.0)
    await koos.apply(execution("snap-1", "gone"))
    await async_wait_for(lambda: len(koos.jobs("snap-1")) == 1, what="the first Job")
    await koos.delete("templates", "gone")
    done = await koos.finished("snap-1")
    assert done["status"]["phase"] == "Succeeded"
    assert done["status"]["template"]["name"] == "gone"


@pytest.mark.sandbox_only("evicts the Pod with the sandbox's node controls")
async def test_an_evicted_pod_is_a_failed_attempt_that_retries(koos: Koos) -> None:
    await koos.apply(linear("evict", 1, retries={"limit": 1, "backoff": "1s"}))
    koos.sandbox.jobs.script("ev-1-s0-1-*", duration=600)
    await koos.apply(execution("ev-1", "evict"))

    def running_pod() -> dict[str, object] | None:
        return next(
            (
                p
                for p in koos.sandbox.store.items(("", "pods"), NS)
                if p["metadata"]["name"].startswith("ev-1-s0-1-")
                and p.get("status", {}).get("phase") == "Running"
            ),
            None,
        )

    pod = await async_wait_for(running_pod, what="the first attempt's pod to run")
    koos.sandbox.jobs.evict_pod(NS, pod["metadata"]["name"])
    done = await koos.finished("ev-1")
    assert done["status"]["phase"] == "Succeeded"
    assert koos.step("ev-1", "s0")["attempt"] == 2


async def test_applying_the_same_execution_again_does_not_rerun_it(koos: Koos) -> None:
    await koos.apply(linear("again", 1))
    await koos.apply(execution("again-1", "again"))
    first = await koos.finished("again-1")
    await koos.apply(execution("again-1", "again"))
    second = koos.execution("again-1")
    assert second is not None
    assert second["status"]["completionTime"] == first["status"]["completionTime"]
    assert len(koos.jobs("again-1")) == 1


async def test_a_restarted_operator_creates_no_duplicate_and_finishes(koos: Koos) -> None:
    await koos.apply(linear("restart", 3, run={"image": "busybox", "script": "sleep 1.5"}))
    koos.outcome("rs-1-s1-*", duration=1.5)
    await koos.apply(execution("rs-1", "restart"))
    await async_wait_for(lambda: len(koos.jobs("rs-1")) == 2, what="the second Job")
    await koos.stop_operator()
    await koos.start_operator()
    done = await koos.finished("rs-1")
    assert done["status"]["phase"] == "Succeeded"
    assert sorted(j["metadata"]["name"] for j in koos.jobs("rs-1")) == [
        "rs-1-s0-1",
        "rs-1-s1-1",
        "rs-1-s2-1",
    ]


async def test_secret_parameters_never_appear_in_clear(koos: Koos) -> None:
    await koos.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "stringData": {"token": "s3cr3t-value"},
        }
    )
    template = {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": "secretive"},
        "spec": {
            "parameters": {"token": {"type": "string", "secret": True}},
            "steps": [{"name": "use", "run": {"image": "busybox", "script": "true"}}],
        },
    }
    await koos.apply(template)
    await koos.apply(
        yaml.safe_dump(
            {
                "apiVersion": "koos.io/v1alpha1",
                "kind": "Execution",
                "metadata": {"name": "sec-1"},
                "spec": {
                    "templateRef": {"name": "secretive"},
                    "parameters": {
                        "token": {"valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}
                    },
                },
            }
        )
    )
    done = await koos.finished("sec-1")
    assert done["status"]["phase"] == "Succeeded"
    job = koos.jobs("sec-1")[0]
    everything = json.dumps([done, job])
    assert "s3cr3t-value" not in everything
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KOOS_PARAM_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "creds", "key": "token"}
