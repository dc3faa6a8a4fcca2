"""Modes and run commands end to end: Debug paused before each step, FailurePause with
retry, skip and cancel, rerun-from with bounded attempts, admission refusals, and a command
consumed once across an operator restart with its removal failing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from koos_sandbox.errors import ApiError
from koos_sandbox.testing import async_wait_for, wait_for
from koos_sandbox.writes import WriteOptions

from .conftest import ALICE, NS, Koos
from .gates import OperatorThread, sandbox_and_kubectl


def linear(name: str, count: int) -> str:
    steps = [{"name": f"s{i}", "run": {"image": "busybox", "script": "true"}} for i in range(count)]
    return yaml.safe_dump(
        {
            "apiVersion": "koos.io/v1alpha1",
            "kind": "Template",
            "metadata": {"name": name},
            "spec": {"steps": steps},
        }
    )


def execution(name: str, template: str, mode: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "koos.io/v1alpha1",
            "kind": "Execution",
            "metadata": {"name": name},
            "spec": {"templateRef": {"name": template}, "mode": mode},
        }
    )


def record(koos: Koos, name: str, step: str) -> dict[str, Any]:
    """The step's record, empty before the run has started."""
    try:
        return koos.step(name, step)
    except KeyError:
        return {}


def events(koos: Koos, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in koos.sandbox.store.items(("", "events"), NS)
        if e["involvedObject"]["name"] == name
    ]


def reasons(koos: Koos, name: str) -> list[str]:
    return [e["reason"] for e in events(koos, name)]


def status(koos: Koos, name: str) -> dict[str, Any]:
    return dict((koos.execution(name) or {}).get("status") or {})


def annotations(koos: Koos, name: str) -> dict[str, str]:
    return dict(((koos.execution(name) or {}).get("metadata") or {}).get("annotations") or {})


async def awaiting(koos: Koos, name: str, step: str) -> None:
    def paused() -> bool:
        s = status(koos, name)
        return (
            s.get("phase") == "Waiting" and record(koos, name, step).get("awaitingContinue") is True
        )

    await async_wait_for(paused, what=f"{name} to wait for continue={step}")


async def test_debug_pauses_before_each_step_until_continue(koos: Koos) -> None:
    await koos.apply(linear("two", 2))
    await koos.apply(execution("dbg-1", "two", "Debug"))
    await awaiting(koos, "dbg-1", "s0")
    assert koos.jobs("dbg-1") == []
    condition = next(c for c in status(koos, "dbg-1")["conditions"] if c["type"] == "Succeeded")
    assert condition["reason"] == "AwaitingContinue"
    await koos.annotate("dbg-1", "koos.io/continue", "s0", by=ALICE)
    await awaiting(koos, "dbg-1", "s1")
    assert [j["metadata"]["name"] for j in koos.jobs("dbg-1")] == ["dbg-1-s0-1"]
    await koos.annotate("dbg-1", "koos.io/continue", "s1", by=ALICE)
    done = await koos.finished("dbg-1")
    assert done["status"]["phase"] == "Succeeded"
    assert done["status"]["commandsApplied"] == 2
    left = annotations(koos, "dbg-1")
    assert "koos.io/continue" not in left and "koos.io/continue-by" not in left
    assert left["koos.io/commands-consumed"] == "2"
    await async_wait_for(
        lambda: reasons(koos, "dbg-1").count("CommandContinue") == 2, what="the command Events"
    )
    message = next(
        e["message"]
        for e in events(koos, "dbg-1")
        if e["reason"] == "CommandContinue" and "=s0" in e["message"]
    )
    assert "koos.io/continue=s0 from alice: step s0 goes on" in message


async def test_failure_pause_retry_skip_and_cancel(koos: Koos) -> None:
    await koos.apply(linear("three", 3))
    koos.sandbox.jobs.script("fp-1-s0-1-*", exit_code=2, logs="flaky\n")
    koos.sandbox.jobs.script("fp-1-s1-*", exit_code=1, logs="broken\n")
    await koos.apply(execution("fp-1", "three", "FailurePause"))

    def paused_on(step: str) -> bool:
        return record(koos, "fp-1", step).get("reason") == "AwaitingFailureDecision" and (
            status(koos, "fp-1").get("phase") == "Waiting"
        )

    await async_wait_for(lambda: paused_on("s0"), what="the run to pause on s0")
    await koos.annotate("fp-1", "koos.io/retry", "s0", by=ALICE)  # the second attempt succeeds
    await async_wait_for(lambda: paused_on("s1"), what="the run to pause on s1")
    assert koos.step("fp-1", "s0")["phase"] == "Succeeded"
    assert koos.step("fp-1", "s0")["attempt"] == 2
    await koos.annotate("fp-1", "koos.io/skip", "s1", by=ALICE)
    done = await koos.finished("fp-1")
    assert done["status"]["phase"] == "Succeeded"
    assert koos.step("fp-1", "s1")["phase"] == "Skipped"
    assert koos.step("fp-1", "s2")["phase"] == "Succeeded"

    koos.sandbox.jobs.script("fp-2-s0-*", exit_code=1)
    await koos.apply(execution("fp-2", "three", "FailurePause"))
    await async_wait_for(
        lambda: record(koos, "fp-2", "s0").get("reason") == "AwaitingFailureDecision",
        what="fp-2 to pause",
    )
    await koos.annotate("fp-2", "koos.io/cancel", "true", by=ALICE)
    cancelled = await koos.finished("fp-2")
    assert cancelled["status"]["phase"] == "Cancelled"
    assert koos.step("fp-2", "s0")["phase"] == "Failed"


async def test_rerun_from_reuses_earlier_outputs_and_keeps_five_attempts(koos: Koos) -> None:
    template = {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": "rr"},
        "spec": {
            "steps": [
                {"name": "pick", "run": {"image": "busybox", "script": "true"}},
                {"name": "use", "run": {"image": "busybox", "script": "true"}},
            ],
            "outputs": {"picked": "{{ steps.pick.outputs.n }}"},
        },
    }
    await koos.apply(template)
    koos.sandbox.jobs.script("rr-1-pick-*", message='{"n": 7}')
    await koos.apply(execution("rr-1", "rr", "Automatic"))
    await koos.finished("rr-1")
    for n in range(6):
        await koos.annotate("rr-1", "koos.io/rerun-from", "use", by=ALICE)
        await async_wait_for(
            lambda n=n: (
                status(koos, "rr-1").get("attempt") == n + 2
                and status(koos, "rr-1").get("phase") == "Succeeded"
            ),
            what=f"attempt {n + 2} to succeed",
        )
    final = status(koos, "rr-1")
    assert [a["number"] for a in final["attempts"]] == [2, 3, 4, 5, 6]
    assert final["outputs"] == {"picked": 7}
    assert koos.step("rr-1", "pick")["attempt"] == 1  # ran once; its outputs were reused
    names = sorted(j["metadata"]["name"] for j in koos.jobs("rr-1"))
    assert names == ["rr-1-pick-1"] + [f"rr-1-use-{i}" for i in range(1, 8)]


async def test_commands_that_cannot_apply_are_refused_at_admission(koos: Koos) -> None:
    await koos.apply(linear("one", 1))
    await koos.apply(execution("adm-1", "one", "Debug"))
    await awaiting(koos, "adm-1", "s0")
    for key, value, why in (
        ("koos.io/continue", "nope", "has no step 'nope'"),
        ("koos.io/retry", "s0", "apply in mode FailurePause"),
        ("koos.io/rerun-from", "s0", "rerun-from applies to a finished run"),
        ("koos.io/commands-consumed", "9", "written by koos only"),
        ("koos.io/continue-by", "mallory", "written by koos only"),
    ):
        with pytest.raises(ApiError) as refused:
            await koos.annotate("adm-1", key, value, by=ALICE)
        assert why in refused.value.message, (key, refused.value.message)
    assert not any(
        k.startswith("koos.io/c") and k != "koos.io/created-by" for k in annotations(koos, "adm-1")
    )
    body = yaml.safe_load(execution("adm-2", "one", "Debug"))
    body["metadata"]["annotations"] = {"koos.io/continue": "s0"}
    with pytest.raises(ApiError) as refused:
        await koos.sandbox.state.writes.create(
            ALICE, koos.rt("executions"), NS, body, WriteOptions()
        )
    assert "create the Execution first" in refused.value.message


async def test_a_command_is_applied_once_when_its_removal_fails_and_the_operator_restarts(
    koos: Koos,
) -> None:
    await koos.apply(linear("two", 2))
    await koos.apply(execution("cs-1", "two", "Debug"))
    await awaiting(koos, "cs-1", "s0")
    koos.sandbox.faults.fail("patch", "executions", code=500)  # the annotation's removal
    await koos.annotate("cs-1", "koos.io/continue", "s0", by=ALICE)
    await async_wait_for(
        lambda: status(koos, "cs-1").get("commandsApplied") == 1, what="the command applied"
    )
    await koos.stop_operator()
    assert annotations(koos, "cs-1").get("koos.io/continue") == "s0"  # not removed
    koos.sandbox.faults.clear()
    await koos.start_operator()
    await awaiting(koos, "cs-1", "s1")
    await async_wait_for(
        lambda: "koos.io/continue" not in annotations(koos, "cs-1"), what="the leftover removed"
    )
    assert annotations(koos, "cs-1")["koos.io/commands-consumed"] == "1"
    assert status(koos, "cs-1")["commandsApplied"] == 1
    assert [j["metadata"]["name"] for j in koos.jobs("cs-1")] == ["cs-1-s0-1"]
    assert "CommandRefused" not in reasons(koos, "cs-1")


# ---- with the real kubectl, as a person -----------------------------------------------------


@pytest.fixture
def person(tmp_path: Path) -> Iterator[OperatorThread]:
    with sandbox_and_kubectl(tmp_path, {"alice": ("sre",)}) as (runner, kubectl):
        harness = OperatorThread(runner, kubectl)
        try:
            harness.run_operator()
            yield harness
        finally:
            harness.stop_operator()


@pytest.mark.kubectl
def test_kubectl_annotate_is_refused_with_the_reason_and_describe_shows_commands(
    person: OperatorThread,
) -> None:
    kubectl = person.kubectl
    kubectl("apply", "-f", "-", input=linear("two", 2))
    manifest = execution("k-1", "two", "Debug")
    wait_for(
        lambda: (
            kubectl.run(
                "create", "-f", "-", input=manifest, context="alice", check=False
            ).returncode
            == 0
        ),
        what="the operator's webhooks to take the Execution",
    )

    def phase() -> str:
        return str((kubectl.json("get", "exe", "k-1").get("status") or {}).get("phase"))

    wait_for(lambda: phase() == "Waiting", what="k-1 to wait before s0")
    refused = kubectl.run(
        "annotate", "exe", "k-1", "koos.io/continue=s1", context="alice", check=False
    )
    assert refused.returncode != 0
    assert "step s1 is not waiting for continue" in refused.stderr, refused.stderr
    refused = kubectl.run(
        "annotate", "exe", "k-1", "koos.io/rerun-from=s0", context="alice", check=False
    )
    assert "rerun-from applies to a finished run" in refused.stderr, refused.stderr

    out = kubectl("annotate", "exe", "k-1", "koos.io/continue=s0", context="alice")
    assert out.strip() == "execution.koos.io/k-1 annotated"
    wait_for(
        lambda: "CommandContinue" in kubectl("describe", "exe", "k-1"),
        what="describe to show the command's Event",
    )
    described = kubectl("describe", "exe", "k-1")
    assert "koos.io/continue=s0 from alice: step s0 goes on" in described, described
