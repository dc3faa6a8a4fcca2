"""The admission check of run commands (`koos.handlers.command.check_commands`)."""

from __future__ import annotations

from typing import Any

from koos.handlers.admission import own_requests_skipped
from koos.handlers.command import check_commands


def body(annotations: dict[str, str], mode: str = "Debug", **status: Any) -> dict[str, Any]:
    steps = [
        {"name": "s0", "phase": "Pending", "awaitingContinue": True},
        {"name": "s1", "phase": "Pending"},
    ]
    run = {
        "phase": "Waiting",
        "template": {
            "name": "t",
            "uid": "u",
            "generation": 1,
            "hash": "h",
            "spec": {"steps": [{"name": n, "run": {"image": "busybox"}} for n in ("s0", "s1")]},
        },
        "steps": steps,
        **status,
    }
    return {
        "metadata": {"name": "x", "annotations": annotations},
        "spec": {"templateRef": {"name": "t"}, "mode": mode},
        "status": run,
    }


def test_a_valid_command_is_allowed_and_stamped() -> None:
    assert check_commands(body({}), body({"koos.io/continue": "s0"})) == (
        None,
        ["koos.io/continue"],
    )


def test_commands_that_cannot_apply_are_refused_with_the_reason() -> None:
    for notes, why in (
        ({"koos.io/continue": "s1"}, "step s1 is not waiting for continue"),
        ({"koos.io/continue": "zz"}, "has no step 'zz'"),
        ({"koos.io/skip": "s0"}, "mode FailurePause"),
        ({"koos.io/rerun-from": "s0"}, "finished run"),
        ({"koos.io/commands-consumed": "3"}, "written by koos only"),
        ({"koos.io/retry-by": "alice"}, "written by koos only"),
    ):
        problem, stamps = check_commands(body({}), body(notes))
        assert problem is not None and why in problem, (notes, problem)
        assert stamps == []


def test_a_command_left_as_it_was_is_not_checked_again() -> None:
    old = body({"koos.io/continue": "s1"})
    assert check_commands(old, body({"koos.io/continue": "s1", "team": "a"})) == (None, [])


def test_a_command_in_a_new_execution_is_refused() -> None:
    problem, _ = check_commands(None, body({"koos.io/continue": "s0"}))
    assert problem is not None and "create the Execution first" in problem


def test_the_operators_own_removals_skip_the_webhook() -> None:
    conditions = own_requests_skipped("mutatingwebhookconfigurations", "commands.koos.io", "op")
    assert conditions == [
        {"name": "not-koos-itself", "expression": 'request.userInfo.username != "op"'}
    ]
