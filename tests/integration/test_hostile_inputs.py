"""Hostile inputs through the real operator (issue 10, items 3 and 4): refused at apply with
a message, or the run ends with a phase and a message — and the operator logs no traceback.

A sample of what `tests/unit/engine/test_hostile_inputs.py` generates, end to end: the
admission webhook (off the event loop, RE2 patterns, size and duration limits), then
templates stored past the webhook (as with webhooks off) run by the planner.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from koos_sandbox.errors import ApiError

from .conftest import NS, Koos


def template(name: str, *steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": name},
        "spec": {"steps": list(steps), **spec},
    }


def run(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "run": {"image": "busybox", "script": "true"}, **fields}


def execution(name: str, template: str, **parameters: Any) -> dict[str, Any]:
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": template}, "parameters": parameters},
    }


REFUSED_AT_APPLY = {
    "overflowing sleep": (
        template("t-sleep", {"name": "s", "sleep": {"duration": "100000000d"}}),
        "longer than the limit of 365d",
    ),
    "backreference": (
        template("t-backref", run("s"), parameters={"p": {"pattern": "^(a)\\1$"}}),
        "RE2",
    ),
    "too large": (
        template("t-large", *[run(f"s{i}", description="d" * 1000) for i in range(140)]),
        "over the limit of 128 KiB",
    ),
    "deep default": (
        template(
            "t-deep", run("s"), parameters={"p": {"type": "array", "default": [[[[[[[1]]]]]]] * 1}}
        ),
        None,  # within bounds: accepted (the control case)
    ),
}


@pytest.mark.sandbox_only("stores templates past the admission webhook, in the sandbox's store")
async def test_hostile_inputs_are_refused_or_end_with_a_message(
    koos: Koos, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    # A backtracking pattern with a 30-character default: accepted at once (RE2).
    await koos.apply(
        template("t-redos", run("s"), parameters={"p": {"pattern": "^(a+)+$", "default": "a" * 30}})
    )
    for name, (manifest, fragment) in REFUSED_AT_APPLY.items():
        if fragment is None:
            await koos.apply(manifest)
            continue
        with pytest.raises(ApiError) as refused:
            await koos.apply(manifest)
        assert fragment in refused.value.message, name

    # Past the webhook (stored directly, as with webhooks off): the runs end with a reason.
    stored = [
        template("h-when", run("s", when="{{ ('9' * 4000) | int }}")),
        template(
            "h-join",
            run(
                "s",
                run={
                    "image": "busybox",
                    "script": "true",
                    "env": [{"name": "V", "value": "{{ ([('a' * 999999)] * 300) | join }}"}],
                },
            ),
        ),
        template("h-deep-output", run("s"), run("t")),
        template(
            "h-approvals",
            {"name": "confirm-a", "approve": {"approvers": {"users": ["alice"]}}},
            {"name": "confirm-b", "approve": {"approvers": {"users": ["alice"]}}},
        ),
        template("h-redos", run("s"), parameters={"p": {"pattern": "^(a+)+$"}}),
    ]
    for manifest in stored:
        koos.sandbox.store.create(koos.rt("templates"), NS, manifest)
    koos.sandbox.jobs.script("e-deep-output-s-*", message='{"v": ' + "[" * 1500 + "]" * 1500 + "}")
    runs = {
        "e-when": ("h-when", {}, "when"),
        "e-join": ("h-join", {}, "longer than"),
        "e-deep-output": ("h-deep-output", {}, "nested too deeply"),
        "x" * 250: ("h-approvals", {}, "would both ask for Approval"),
        "e-redos": ("h-redos", {"p": "a" * 40 + "b"}, "must match the pattern"),
        "e-redos-ok": ("h-redos", {"p": "a" * 40}, None),
    }
    for name, (tpl, parameters, _) in runs.items():
        await koos.apply(execution(name, tpl, **parameters))
    for name, (_, _, fragment) in runs.items():
        done = await koos.finished(name)
        status = done["status"]
        assert status.get("message"), name
        if fragment is None:
            assert status["phase"] == "Succeeded", (name, status.get("message"))
        else:
            assert status["phase"] == "Failed", name
            steps = " ".join(s.get("message") or "" for s in status.get("steps") or [])
            assert fragment in status["message"] + " " + steps, (name, status["message"], steps)
    tracebacks = [r for r in caplog.records if r.exc_info and r.name.startswith("koos")]
    assert tracebacks == []
