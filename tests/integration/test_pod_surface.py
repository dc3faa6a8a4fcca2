"""What koos copies from a Pod, and Pods that cannot start (issue 10 items 6 and 7), end to
end: the real operator on the sandbox."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from koos_sandbox.testing import async_wait_for

from .conftest import Koos

SECRET = "hunter2-Pa55word"


def secret(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def template(name: str, **step: Any) -> dict[str, Any]:
    run = {"image": "busybox", "script": "set -x; curl -u me:$KOOS_PARAM_TOKEN x"}
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": name},
        "spec": {
            "parameters": {"token": {"secret": True}},
            "steps": [{"name": "call", "run": {**run, **step.pop("run", {})}, **step}],
        },
    }


def execution(name: str, template: str) -> dict[str, Any]:
    token = {"valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": template}, "parameters": {"token": token}},
    }


def events_of(koos: Koos, name: str) -> list[str]:
    return [
        e.get("message", "")
        for e in koos.events()
        if (e.get("involvedObject") or {}).get("name") == name
    ]


@pytest.mark.sandbox_only(
    "scripts logs read from a mounted Secret volume (the node agent mounts no volumes)"
)
async def test_a_secret_printed_by_a_failing_step_is_masked_everywhere(
    koos: Koos, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="koos")
    await koos.apply(secret("api", token=SECRET))
    await koos.apply(secret("tls", key=f"-----BEGIN-----\nline-{SECRET[::-1]}\n-----END-----"))
    volume = {"name": "tls", "mountPath": "/tls", "secret": {"secretName": "tls"}}
    await koos.apply(template("leaky", run={"volumes": [volume]}))
    logs = (
        f"+ curl -u me:{SECRET} x\n"
        f"+ echo {base64.b64encode(SECRET.encode()).decode()}\n"
        f"line-{SECRET[::-1]}\n"
        "curl: (22) The requested URL returned error: 401\n"
    )
    koos.sandbox.jobs.script("leak-1-*", exit_code=22, logs=logs)
    await koos.apply(execution("leak-1", "leaky"))
    done = await koos.finished("leak-1")
    status = done["status"]
    assert status["phase"] == "Failed"
    message = koos.step("leak-1", "call")["message"]
    assert message.startswith("exit code 22: + curl -u me:*** x\n+ echo ***\n***\ncurl: (22)")
    assert "***" in status["message"]
    # Events are posted in the background: wait for the run's last one.
    await async_wait_for(
        lambda: any(e.startswith("Step call failed") for e in events_of(koos, "leak-1")),
        what="the run's Failed Event",
    )
    assert any("***" in e for e in events_of(koos, "leak-1"))
    seen = json.dumps(status) + json.dumps(events_of(koos, "leak-1")) + caplog.text
    for form in (SECRET, base64.b64encode(SECRET.encode()).decode(), SECRET[::-1]):
        assert form not in seen


async def test_an_output_holding_a_secret_is_masked(koos: Koos) -> None:
    await koos.apply(secret("api", token=SECRET))
    write = """printf '{"dsn": "pg://me:%s@db"}' "$KOOS_PARAM_TOKEN" > "$KOOS_OUTPUT" """
    await koos.apply(template("echoes", run={"script": write}))
    koos.outcome("out-1-*", message=json.dumps({"dsn": f"pg://me:{SECRET}@db"}))
    await koos.apply(execution("out-1", "echoes"))
    done = await koos.finished("out-1")
    assert done["status"]["phase"] == "Succeeded"
    assert koos.step("out-1", "call")["outputs"] == {"dsn": "pg://me:***@db"}


MISSING = {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}


def condition_of(koos: Koos, name: str) -> dict[str, Any]:
    status = (koos.execution(name) or {}).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == "Succeeded"), {})


async def test_a_missing_secret_surfaces_at_once_and_fails_the_attempt_in_time(
    koos: Koos,
) -> None:
    await koos.apply(secret("api", token=SECRET))
    await koos.apply(
        template("needs-db", run={"env": [MISSING], "script": "true"}, startTimeout="8s")
    )
    await koos.apply(execution("nodb-1", "needs-db"))

    def surfaced() -> dict[str, Any] | None:
        condition = condition_of(koos, "nodb-1")
        return condition if condition.get("reason") == "CreateContainerConfigError" else None

    condition = await async_wait_for(surfaced, what="the missing Secret in the condition")
    assert condition["status"] == "Unknown"
    assert (
        'Step call is waiting: secret "db" not found (CreateContainerConfigError)'
        in (condition["message"])
    )
    assert koos.step("nodb-1", "call")["reason"] == "CreateContainerConfigError"
    await async_wait_for(
        lambda: any("is waiting" in e for e in events_of(koos, "nodb-1")),
        what="the Warning Event",
    )
    done = await koos.finished("nodb-1")
    step = koos.step("nodb-1", "call")
    assert (done["status"]["phase"], step["reason"]) == ("Failed", "NotStarted")
    assert step["message"] == (
        'its Pod did not start within 8s: secret "db" not found (CreateContainerConfigError)'
    )
    await async_wait_for(lambda: koos.jobs("nodb-1") == [], what="the stuck Job to be deleted")


async def test_a_missing_secret_created_in_time_lets_the_run_succeed(koos: Koos) -> None:
    await koos.apply(secret("api", token=SECRET))
    await koos.apply(template("needs-db", run={"env": [MISSING], "script": "true"}))
    await koos.apply(execution("late-db-1", "needs-db"))
    await async_wait_for(
        lambda: condition_of(koos, "late-db-1").get("reason") == "CreateContainerConfigError",
        what="the missing Secret in the condition",
    )
    await koos.apply(secret("db", password="pw-1234"))
    done = await koos.finished("late-db-1")
    assert done["status"]["phase"] == "Succeeded"
    assert koos.step("late-db-1", "call")["reason"] == "Completed"


@pytest.mark.sandbox_only("an image that cannot be pulled is a scripted outcome (no images here)")
async def test_an_image_that_cannot_be_pulled_surfaces(koos: Koos) -> None:
    await koos.apply(secret("api", token=SECRET))
    await koos.apply(template("bad-image", startTimeout="1h"))
    koos.sandbox.jobs.script("pull-1-*", pending=True)
    await koos.apply(execution("pull-1", "bad-image"))

    def reason() -> str | None:
        found = condition_of(koos, "pull-1").get("reason")
        return found if found in ("ErrImagePull", "ImagePullBackOff") else None

    await async_wait_for(reason, what="the image pull failure in the condition")
    assert "busybox" in condition_of(koos, "pull-1")["message"]
    await koos.annotate("pull-1", "koos.io/cancel", "true")
    assert (await koos.finished("pull-1"))["status"]["phase"] == "Cancelled"


@pytest.mark.sandbox_only("counts the operator's requests, which only the sandbox records")
async def test_a_running_pod_is_never_probed(koos: Koos) -> None:
    await koos.apply(secret("api", token=SECRET))
    await koos.apply(template("quick"))
    koos.sandbox.jobs.script("quick-1-*", duration=7.0)  # past the first look, at 5 s
    mark = koos.sandbox.requests.mark()
    await koos.apply(execution("quick-1", "quick"))
    await koos.finished("quick-1")
    lists = [
        r for r in koos.sandbox.requests.since(mark) if (r.verb, r.resource) == ("list", "pods")
    ]
    assert len(lists) == 1  # only the read of the ended Job's Pod, for its outcome


async def test_an_image_name_that_does_not_parse_surfaces(koos: Koos) -> None:
    await koos.apply(secret("api", token=SECRET))
    await koos.apply(template("bad-name", run={"image": "Busybox:latest"}, startTimeout="8s"))
    await koos.apply(execution("name-1", "bad-name"))
    await async_wait_for(
        lambda: condition_of(koos, "name-1").get("reason") == "InvalidImageName",
        what="InvalidImageName in the condition",
    )
    done = await koos.finished("name-1")
    assert koos.step("name-1", "call")["reason"] == "NotStarted"
    assert "invalid reference format (InvalidImageName)" in done["status"]["message"]


async def test_a_missing_secret_volume_fails_the_attempt_at_its_start_timeout(koos: Koos) -> None:
    await koos.apply(secret("api", token=SECRET))
    volume = {"name": "tls", "mountPath": "/tls", "secret": {"secretName": "tls"}}
    await koos.apply(template("no-tls", run={"volumes": [volume]}, startTimeout="6s"))
    await koos.apply(execution("tls-1", "no-tls"))
    done = await koos.finished("tls-1")
    step = koos.step("tls-1", "call")
    assert (done["status"]["phase"], step["reason"]) == ("Failed", "NotStarted")
    assert step["message"].startswith("its Pod did not start within 6s: ContainerCreating")
