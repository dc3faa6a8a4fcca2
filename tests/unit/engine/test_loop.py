"""Loop steps through the planner (`koos.engine.execution.plan` → `koos.engine.loop`).

A small simulated cluster (`World`) runs the plans: it creates the Jobs a plan creates,
ends them as a test's `outcome` says, and deletes the ones a plan deletes or releases, so a
whole loop runs pass after pass as the operator would run it. The snapshot comes from the
engine tests' `snapshots` module.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from koos.api.constants import (
    ANNOTATION_CANCEL,
    ANNOTATION_COMMANDS_CONSUMED,
    ANNOTATION_CONTINUE,
    ANNOTATION_RERUN_FROM,
    ANNOTATION_RETRY,
    ANNOTATION_SKIP,
    LABEL_ATTEMPT,
    LABEL_ITEM,
    LABEL_STEP,
)
from koos.api.execution import ExecutionStatus, StepStatus
from koos.api.template import TemplateSpec
from koos.engine.execution import plan
from koos.engine.facts import ExecutionSnapshot, JobFacts, Plan
from koos.engine.index_set import format_ranges, parse_ranges
from koos.engine.loop_settings import MAX_ITEMS
from koos.engine.template import validate_template

from .snapshots import execution_snapshot

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
STATUS_BOUND = 256 * 1024

# What a Job does: (succeeded, termination message or log tail), by item index and attempt.
Outcome = Callable[[int, int], tuple[bool, str]]


def ok(index: int, attempt: int) -> tuple[bool, str]:
    return True, ""


def template(loop: dict[str, Any], *after: dict[str, Any], **step: Any) -> TemplateSpec:
    main = {
        "name": "each",
        "loop": loop,
        "run": {
            "image": "busybox",
            "script": 'echo "$KOOS_ITEM"',
            "env": [
                {"name": "HOST", "value": "{{ item }}"},
                {"name": "AT", "value": "{{ index }}"},
            ],
        },
        **step,
    }
    return TemplateSpec.model_validate({"steps": [main, *after], "parameters": {}})


def snapshot(
    spec: TemplateSpec | None = None,
    status: ExecutionStatus | None = None,
    jobs: dict[str, JobFacts] | None = None,
    mode: str = "Automatic",
    annotations: dict[str, str] | None = None,
) -> ExecutionSnapshot:
    return execution_snapshot(
        spec=spec, status=status, jobs=jobs, mode=mode, annotations=annotations
    )


def record(status: ExecutionStatus, name: str = "each") -> StepStatus:
    return next(s for s in status.steps or [] if s.name == name)


def size(status: ExecutionStatus) -> int:
    data = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return len(json.dumps(data, separators=(",", ":")).encode())


@dataclass
class World:
    """The Execution's status as last written and its Jobs, run plan after plan."""

    spec: TemplateSpec
    outcome: Outcome = ok
    now: datetime = T0
    status: ExecutionStatus = field(default_factory=ExecutionStatus)
    jobs: dict[str, JobFacts] = field(default_factory=dict)
    started: list[tuple[int, int]] = field(default_factory=list)  # (index, attempt) per create
    plans: list[Plan] = field(default_factory=list)
    max_live: int = 0
    max_size: int = 0
    mode: str = "Automatic"
    annotations: dict[str, str] = field(default_factory=dict)  # the Execution's, as written

    def step(self, end_jobs: bool = True) -> Plan:
        """One pass, then (when `end_jobs`) every live Job ends as `outcome` says."""
        first = self.status.template is None
        result = plan(
            snapshot(
                self.spec if first else None, self.status, self.jobs, self.mode, self.annotations
            ),
            self.now,
        )
        self.plans.append(result)
        self.status = result.status
        for key in result.consume_annotations:
            self.annotations.pop(key, None)
        self.annotations.update(result.set_annotations)
        self.max_size = max(self.max_size, size(self.status))
        for name in (*result.delete_jobs, *result.release_jobs):
            self.jobs.pop(name, None)
        for manifest in result.create_jobs:
            labels = manifest["metadata"]["labels"]
            item = labels.get(LABEL_ITEM)
            index = int(item) if item is not None else None
            attempt = int(labels[LABEL_ATTEMPT])
            if index is not None:
                self.started.append((index, attempt))
            name = manifest["metadata"]["name"]
            self.jobs[name] = JobFacts(
                name=name,
                phase="Active",
                created=self.now,
                uid=f"uid-{name}",
                step=labels[LABEL_STEP],
                index=index,
                attempt=attempt,
            )
        self.max_live = max(self.max_live, sum(j.phase == "Active" for j in self.jobs.values()))
        if end_jobs:
            for name, job in list(self.jobs.items()):
                if job.phase == "Active":
                    assert job.attempt is not None
                    good, text = self.outcome(-1 if job.index is None else job.index, job.attempt)
                    self.jobs[name] = replace(
                        job,
                        phase="Succeeded" if good else "Failed",
                        message=text,
                        exit_code=0 if good else 1,
                    )
        self.now += timedelta(seconds=1)
        return result

    def run(self, passes: int = 100_000) -> ExecutionStatus:
        for _ in range(passes):
            self.step()
            if self.status.phase in ("Succeeded", "Failed", "Cancelled", "Waiting"):
                return self.status
            if self.plans[-1].wake_at is not None and not self.plans[-1].create_jobs:
                self.now = max(self.now, self.plans[-1].wake_at)
        raise AssertionError("the loop did not settle")


# --- Starting items -----------------------------------------------------------------------


def test_items_start_in_list_order_up_to_concurrency_with_item_and_index() -> None:
    world = World(template({"items": ["web-1", {"n": 2}, "web-3"], "concurrency": 2}))
    result = world.step(end_jobs=False)
    names = [m["metadata"]["name"] for m in result.create_jobs]
    assert names == ["demo-each-0-1", "demo-each-1-1"]
    env = {
        v["name"]: v.get("value")
        for v in result.create_jobs[1]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["KOOS_ITEM"] == '{"n":2}'
    assert env["KOOS_INDEX"] == "1"
    assert env["HOST"] == '{"n": 2}'
    assert env["AT"] == "1"
    assert result.create_jobs[0]["metadata"]["labels"][LABEL_ITEM] == "0"
    loop = record(world.status).loop
    assert loop is not None
    assert (loop.total, loop.running, loop.pending) == (3, 2, 1)
    assert world.status.message == "Running each (0/3 items)."


def test_a_whole_loop_collects_outputs_in_item_order_and_releases_every_job() -> None:
    def outcome(index: int, attempt: int) -> tuple[bool, str]:
        return True, json.dumps({"host": f"h{index}", "n": index} if index != 2 else {"n": 2})

    world = World(template({"items": list(range(5)), "concurrency": 2}), outcome)
    status = world.run()
    assert status.phase == "Succeeded", status.message
    step = record(status)
    assert step.outputs == {"host": ["h0", "h1", None, "h3", "h4"], "n": [0, 1, 2, 3, 4]}
    assert step.loop is not None and step.loop.completed_indexes == "0-4"
    assert step.loop.active is None and step.message == "5 of 5 items succeeded."
    assert world.max_live <= 2
    world.step()  # the last pass released its Jobs after the write
    assert not world.jobs


def test_later_steps_read_a_loop_output_as_a_list() -> None:
    env = [{"name": "H", "value": "{{ steps.each.outputs.host }}"}]
    after = {"name": "report", "run": {"image": "busybox", "script": "true", "env": env}}
    world = World(
        template({"items": ["a", "b"]}, after), lambda i, a: (True, json.dumps({"host": f"h{i}"}))
    )
    assert world.run().phase == "Succeeded"
    manifest = next(
        m for p in world.plans for m in p.create_jobs if m["metadata"]["name"] == "demo-report-1"
    )
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert {v["name"]: v.get("value") for v in container["env"]}["H"] == '["h0", "h1"]'


def test_an_empty_list_succeeds_and_says_so() -> None:
    status = World(template({"items": []})).run()
    assert status.phase == "Succeeded"
    assert record(status).message == "The loop has no items: nothing ran."


# --- Rate control -------------------------------------------------------------------------


def failing(*indexes: int) -> Outcome:
    def outcome(index: int, attempt: int) -> tuple[bool, str]:
        return (index not in indexes, "" if index not in indexes else f"line 1\nboom on {index}")

    return outcome


def test_500_items_with_three_failures_within_five_percent_succeed() -> None:
    world = World(
        template({"items": list(range(500)), "concurrency": 20, "maxErrors": "5%"}),
        failing(7, 250, 499),
    )
    status = world.run()
    assert status.phase == "Succeeded", status.message
    loop = record(status).loop
    assert loop is not None
    assert (loop.succeeded, loop.failed, loop.max_errors) == (497, 3, 25)
    assert loop.failed_indexes == "7,250,499"
    assert loop.completed_indexes == "0-6,8-249,251-498"
    assert "(3 failed, within maxErrors 25)" in (record(status).message or "")


def test_30_failures_over_five_percent_stop_early_and_start_nothing_after_the_limit() -> None:
    bad = tuple(range(100, 130))
    world = World(
        template({"items": list(range(500)), "concurrency": 10, "maxErrors": "5%"}), failing(*bad)
    )
    status = world.run()
    assert status.phase == "Failed"
    step = record(status)
    assert step.reason == "TooManyErrors"
    # Items 120-129 were in flight when the 26th failure (item 125) stopped the loop: they
    # finished (and failed), and no item after them started.
    assert step.message is not None and "30 of 500 items failed" in step.message
    assert "#100 (100): Failed: exit code 1: line 1\nboom on 100" in step.message
    assert max(i for i, _ in world.started) == 129
    loop = step.loop
    assert loop is not None and loop.pending > 300
    assert loop.failures is not None and [f.index for f in loop.failures] == [
        100,
        101,
        102,
        103,
        104,
    ]


def test_maxerrors_zero_by_default_fails_on_the_first_failed_item() -> None:
    world = World(template({"items": list(range(10)), "concurrency": 1}), failing(3))
    status = world.run()
    assert record(status).reason == "TooManyErrors"
    assert max(i for i, _ in world.started) == 3


def test_a_failed_item_is_retried_with_a_new_job_name() -> None:
    def outcome(index: int, attempt: int) -> tuple[bool, str]:
        good = index != 1 or attempt == 2
        return good, "" if good else "flaky"

    world = World(
        template({"items": ["a", "b"], "concurrency": 2}, retries={"limit": 1, "backoff": "1s"}),
        outcome,
    )
    status = world.run()
    assert status.phase == "Succeeded"
    assert (1, 2) in world.started
    assert any(
        "demo-each-1-2" in [m["metadata"]["name"] for m in p.create_jobs] for p in world.plans
    )


def test_a_failed_items_message_is_the_tail_of_its_log() -> None:
    log = "\n".join(f"line {n}" for n in range(200)) + "\nERROR: disk full"

    world = World(template({"items": ["a"]}), lambda i, a: (False, log))
    status = world.run()
    loop = record(status).loop
    assert loop is not None and loop.failures is not None
    assert loop.failures[0].message.endswith("ERROR: disk full")
    assert loop.failures[0].message.startswith("…")


# --- Batches and pauses -------------------------------------------------------------------


def test_pause_after_the_first_batch_waits_for_continue_then_runs_the_rest() -> None:
    world = World(
        template(
            {"items": list(range(6)), "concurrency": 5, "batchSize": 2, "pause": "AfterFirstBatch"}
        )
    )
    status = world.run()
    assert status.phase == "Waiting"
    assert status.conditions is not None and status.conditions[0].reason == "AwaitingContinue"
    step = record(status)
    assert step.awaiting_continue is True and step.reason == "AwaitingContinue"
    assert sorted(i for i, _ in world.started) == [0, 1]
    world.step()
    assert not world.plans[-1].create_jobs  # still waiting
    world.annotations[ANNOTATION_CONTINUE] = "each"
    status = world.run()
    assert status.phase == "Succeeded", status.message
    # Batches run one after the other, and AfterFirstBatch pauses once.
    assert [i for i, _ in world.started] == [0, 1, 2, 3, 4, 5]
    assert world.max_live <= 2


def test_every_batch_pauses_at_each_boundary_but_not_after_the_last() -> None:
    world = World(
        template({"items": list(range(5)), "concurrency": 5, "batchSize": 2, "pause": "EveryBatch"})
    )
    pauses = 0
    while True:
        status = world.run()
        if status.phase != "Waiting":
            break
        pauses += 1
        world.annotations[ANNOTATION_CONTINUE] = "each"
    assert status.phase == "Succeeded"
    assert pauses == 2


# --- Outputs bound --------------------------------------------------------------------------


def test_outputs_over_64_kib_fail_the_step_never_truncated() -> None:
    big = json.dumps({"text": "x" * 3000})
    world = World(template({"items": list(range(40)), "concurrency": 4}), lambda i, a: (True, big))
    status = world.run()
    step = record(status)
    assert step.phase == "Failed" and step.reason == "OutputsTooLarge"
    assert step.outputs is None
    assert "collectOutputs: false" in (step.message or "")
    assert max(i for i, _ in world.started) < 40  # stopped starting items


def test_collect_outputs_false_keeps_no_outputs() -> None:
    big = json.dumps({"text": "x" * 3000})
    world = World(
        template({"items": list(range(40)), "concurrency": 4, "collectOutputs": False}),
        lambda i, a: (True, big),
    )
    status = world.run()
    assert status.phase == "Succeeded"
    assert record(status).outputs is None


# --- Status size --------------------------------------------------------------------------


def test_ten_thousand_items_with_alternating_failures_stay_far_below_256_kib() -> None:
    items = list(range(MAX_ITEMS))  # numbers: 10,000 of them fit in a template (128 KiB)

    def outcome(index: int, attempt: int) -> tuple[bool, str]:
        return (index % 2 == 0, json.dumps({"ok": True}) if index % 2 == 0 else "E" * 2000)

    world = World(
        template({"items": items, "concurrency": 500, "maxErrors": "50%", "collectOutputs": False}),
        outcome,
    )
    status = world.run()
    assert status.phase == "Succeeded", status.message
    loop = record(status).loop
    assert loop is not None and (loop.succeeded, loop.failed) == (5000, 5000)
    # The whole Execution status, the template snapshot with its 10,000 items included.
    assert world.max_size < STATUS_BOUND // 2, world.max_size
    assert world.max_live <= 500


# --- Restart safety ------------------------------------------------------------------------


def test_a_lost_status_write_adopts_the_jobs_created_and_runs_no_item_twice() -> None:
    world = World(template({"items": list(range(4)), "concurrency": 2}))
    before = world.status
    world.step(end_jobs=False)
    created = set(world.jobs)
    # The status write was lost: the same pass again, with the Jobs it created live.
    again = plan(snapshot(world.spec, before, world.jobs), world.now)
    assert not again.create_jobs  # the Jobs are adopted, not created again
    assert created == {"demo-each-0-1", "demo-each-1-1"}
    loop = record(again.status).loop
    assert loop is not None and [e.index for e in loop.active or []] == [0, 1]


def test_ended_jobs_of_items_the_status_records_are_released_again_after_a_crash() -> None:
    world = World(template({"items": list(range(3)), "concurrency": 3}))
    world.step()  # creates 3 Jobs, which end
    settled = world.step(end_jobs=False)  # records them and releases their Jobs
    assert set(settled.release_jobs) == {"demo-each-0-1", "demo-each-1-1", "demo-each-2-1"}
    # A crash between the status write and the deletes: the ended Jobs are still there.
    leftover = {
        name: JobFacts(name=name, phase="Succeeded", uid="u", step="each", index=i, attempt=1)
        for i, name in enumerate(sorted(settled.release_jobs))
    }
    again = plan(snapshot(None, world.status, leftover), world.now)
    assert set(again.release_jobs) == set(leftover)
    assert not again.create_jobs


# --- Modes and run commands on loop steps (koos.engine.command) --------------------------


def events(world: World) -> list[tuple[str, str]]:
    """The command Events of the passes so far: (reason, message)."""
    return [
        (p.command_event.reason, p.command_event.message)
        for p in world.plans
        if p.command_event is not None
    ]


def flaky(bad: int, until: int) -> Outcome:
    """Item `bad` fails until its attempt `until`; every other Job succeeds."""

    def outcome(index: int, attempt: int) -> tuple[bool, str]:
        return (True, "") if index != bad or attempt >= until else (False, "flaky")

    return outcome


def after_loop() -> dict[str, Any]:
    return {"name": "after", "run": {"image": "busybox", "script": "true"}}


def test_debug_pauses_before_a_loop_step_then_continue_resumes_it_and_its_batches() -> None:
    world = World(
        template(
            {"items": list(range(4)), "concurrency": 2, "batchSize": 2, "pause": "EveryBatch"}
        ),
        mode="Debug",
    )
    status = world.run()
    step = record(status)
    assert (step.phase, step.awaiting_continue, step.loop) == ("Pending", True, None)
    assert (status.phase, status.conditions and status.conditions[0].reason) == (
        "Waiting",
        "AwaitingContinue",
    )
    assert status.message == (
        "Step each waits to start (mode Debug): kubectl annotate exe demo koos.io/continue=each."
    )
    assert world.started == []
    world.annotations[ANNOTATION_CONTINUE] = "each"
    status = world.run()
    # The same command resumes the loop at its batch boundary.
    assert status.phase == "Waiting" and sorted(world.started) == [(0, 1), (1, 1)]
    assert status.message == (
        "Step each paused after batch 1 of its items: kubectl annotate exe demo "
        "koos.io/continue=each."
    )
    world.annotations[ANNOTATION_CONTINUE] = "each"
    status = world.run()
    assert status.phase == "Succeeded", status.message
    assert status.commands_applied == 2
    assert [r for r, _ in events(world)] == ["CommandContinue", "CommandContinue"]


def test_continue_at_a_batch_boundary_is_consumed_once_and_a_leftover_does_not_skip_a_pause() -> (
    None
):
    world = World(
        template({"items": list(range(6)), "concurrency": 2, "batchSize": 2, "pause": "EveryBatch"})
    )
    world.run()
    world.annotations[ANNOTATION_CONTINUE] = "each"
    world.step(end_jobs=False)  # continue applied: batch 2 starts
    assert world.status.commands_applied == 1
    assert world.annotations == {ANNOTATION_COMMANDS_CONSUMED: "1"}
    # The removal did not land (the operator died after the status write): the command is
    # still there, with the count of the commands consumed behind the status.
    world.annotations = {ANNOTATION_CONTINUE: "each", ANNOTATION_COMMANDS_CONSUMED: "0"}
    status = world.run()
    assert ANNOTATION_CONTINUE not in world.annotations
    assert status.phase == "Waiting" and record(status).loop is not None
    assert record(status).awaiting_continue is True  # batch 3 waits: nothing was skipped
    assert sorted(i for i, _ in world.started) == [0, 1, 2, 3]
    assert status.commands_applied == 1


def test_a_lost_status_write_after_continue_applies_it_again_and_adopts_the_jobs() -> None:
    world = World(
        template({"items": list(range(4)), "concurrency": 2, "batchSize": 2, "pause": "EveryBatch"})
    )
    paused = world.run()
    annotations = {ANNOTATION_CONTINUE: "each"}
    first = plan(snapshot(None, paused, {}, "Automatic", annotations), world.now)
    assert sorted(j["metadata"]["name"] for j in first.create_jobs) == [
        "demo-each-2-1",
        "demo-each-3-1",
    ]
    # The Jobs were created, the status write was lost: the same pass again.
    jobs = {
        m["metadata"]["name"]: JobFacts(
            name=m["metadata"]["name"], phase="Active", uid="u", step="each", index=i, attempt=1
        )
        for i, m in zip((2, 3), first.create_jobs, strict=True)
    }
    again = plan(snapshot(None, paused, jobs, "Automatic", annotations), world.now)
    assert not again.create_jobs
    assert again.status.commands_applied == 1
    loop = record(again.status).loop
    assert loop is not None and [e.index for e in loop.active or []] == [2, 3]


def test_failure_pause_holds_a_failed_loop_step_and_retry_runs_only_its_failed_items() -> None:
    world = World(
        template({"items": list(range(4)), "concurrency": 4}, after_loop()),
        failing(1, 3),
        mode="FailurePause",
    )
    status = world.run()
    step = record(status)
    assert (step.phase, step.reason) == ("Running", "AwaitingFailureDecision")
    assert "TooManyErrors" in (step.message or "")
    assert record(status, "after").phase == "Pending"
    assert status.phase == "Waiting"
    assert status.conditions and status.conditions[0].reason == "AwaitingFailureDecision"
    assert "koos.io/retry=each" in (status.message or "")
    world.annotations[ANNOTATION_RETRY] = "each"
    world.outcome = ok
    world.started.clear()
    status = world.run()
    assert status.phase == "Succeeded", status.message
    assert sorted(world.started) == [(1, 2), (3, 2)]  # only them, under new Job names
    step = record(status)
    assert step.loop is not None and (step.loop.round, step.attempt) == (1, 2)
    assert (step.loop.succeeded, step.loop.failed) == (4, 0)
    assert events(world) == [
        (
            "CommandRetry",
            "koos.io/retry=each from an unverified sender (no admission webhook): "
            "step each runs its 2 failed items again",
        )
    ]


def test_a_loop_retried_twice_never_reuses_an_attempt_number() -> None:
    world = World(
        template(
            {"items": list(range(3)), "concurrency": 3}, retries={"limit": 1, "backoff": "1s"}
        ),
        flaky(2, until=5),
        mode="FailurePause",
    )
    for _ in range(2):
        status = world.run()
        assert record(status).reason == "AwaitingFailureDecision"
        world.annotations[ANNOTATION_RETRY] = "each"
    status = world.run()
    assert status.phase == "Succeeded", status.message
    # Round r uses attempts 2r+1 and 2r+2 (one retry per item).
    assert [a for i, a in world.started if i == 2] == [1, 2, 3, 4, 5]
    assert len(world.started) == len(set(world.started))


def held_loop() -> World:
    """A FailurePause run held by its loop step (item 0 failed), a step waiting after it."""
    world = World(
        template({"items": list(range(2)), "concurrency": 2}, after_loop()),
        failing(0),
        mode="FailurePause",
    )
    assert record(world.run()).reason == "AwaitingFailureDecision"
    return world


def test_skip_of_a_held_loop_step_marks_it_skipped_and_the_run_goes_on() -> None:
    world = held_loop()
    world.annotations[ANNOTATION_SKIP] = "each"
    status = world.run()
    assert status.phase == "Succeeded", status.message
    assert (record(status).phase, record(status).reason) == ("Skipped", "SkippedByCommand")
    assert record(status, "after").phase == "Succeeded"


def test_cancel_of_a_held_loop_step_fails_it_and_cancels_the_run() -> None:
    world = held_loop()
    world.annotations[ANNOTATION_CANCEL] = "true"
    status = world.run()
    assert status.phase == "Cancelled"
    assert record(status).phase == "Failed"
    assert record(status, "after").phase == "Cancelled"


def test_retry_of_a_loop_that_failed_without_failed_items_starts_it_again_from_scratch() -> None:
    big = json.dumps({"text": "x" * 3000})
    world = World(
        template({"items": list(range(40)), "concurrency": 4}),
        lambda i, a: (True, big),
        mode="FailurePause",
    )
    status = world.run()
    assert "OutputsTooLarge" in (record(status).message or "")
    first = set(world.started)
    world.annotations[ANNOTATION_RETRY] = "each"
    world.outcome = lambda i, a: (True, json.dumps({"n": i}))
    world.started.clear()
    status = world.run()
    assert status.phase == "Succeeded", status.message
    assert sorted(world.started) == [(i, 2) for i in range(40)]
    assert not first & set(world.started)
    assert record(status).outputs == {"n": list(range(40))}


@pytest.mark.parametrize("start", ["before", "each"])
def test_rerun_from_a_loop_step_or_before_it_runs_every_item_again_under_new_job_names(
    start: str,
) -> None:
    before = {"name": "before", "run": {"image": "busybox", "script": "true"}}
    spec = TemplateSpec.model_validate(
        {
            "steps": [
                before,
                {
                    "name": "each",
                    "loop": {"items": list(range(3)), "concurrency": 3},
                    "run": {"image": "busybox", "script": "true"},
                    "retries": {"limit": 2, "backoff": "1s"},
                },
            ]
        }
    )
    # Item 1 succeeds on its third attempt: the first run uses attempts 1 to 3.
    world = World(spec, flaky(1, until=3))
    status = world.run()
    assert status.phase == "Succeeded", status.message
    # Ended Jobs of the first run still exist (their deletes have not landed).
    old = {
        f"demo-each-{i}-{a}": JobFacts(
            name=f"demo-each-{i}-{a}", phase="Succeeded", uid="u", step="each", index=i, attempt=a
        )
        for i, a in world.started
    }
    world.jobs.update(old)
    world.annotations[ANNOTATION_RERUN_FROM] = start
    world.started.clear()
    world.outcome = ok
    status = world.run()
    assert status.phase == "Succeeded", status.message
    assert status.attempt == 2
    assert sorted(world.started) == [(0, 4), (1, 4), (2, 4)]  # past every earlier attempt
    assert not {f"demo-each-{i}-{a}" for i, a in world.started} & set(old)
    assert set(old) <= {n for p in world.plans for n in p.release_jobs}  # released, not adopted
    step = record(status)
    assert step.loop is not None and (step.loop.round, step.loop.succeeded) == (1, 3)


def test_a_launch_that_fails_a_held_loop_step_starts_nothing_more_and_keeps_the_reason() -> None:
    """Items rendered anew to launch one no longer match the list the loop started with (its
    source step's record was changed): the step fails, and FailurePause holds it, saying why;
    no further item starts in that pass."""
    pick = {"name": "pick", "run": {"image": "busybox", "script": "true"}}
    spec = TemplateSpec.model_validate(
        {
            "steps": [
                pick,
                {
                    "name": "each",
                    "dependsOn": ["pick"],
                    "loop": {"items": "{{ steps.pick.outputs.hosts }}", "concurrency": 2},
                    "run": {"image": "busybox", "script": "true"},
                },
            ]
        }
    )
    world = World(
        spec,
        lambda i, a: (True, json.dumps({"hosts": [1, 2, 3, 4]} if i < 0 else {})),
        mode="FailurePause",
    )
    while not world.status.steps or record(world.status, "each").phase != "Running":
        world.step()
    steps = [
        s.model_copy(update={"outputs": {"hosts": [1, 2]}}) if s.name == "pick" else s
        for s in world.status.steps or []
    ]
    world.status = world.status.model_copy(update={"steps": steps})
    result = world.step()
    step = record(result.status, "each")
    assert (step.phase, step.reason) == ("Running", "AwaitingFailureDecision")
    assert "no longer renders to the 4 items" in (step.message or "")
    assert not result.create_jobs
    assert result.status.phase == "Waiting"


@pytest.mark.parametrize(
    ("mode", "key", "value", "why"),
    [
        ("Automatic", ANNOTATION_CONTINUE, "nope", "has no step 'nope'"),
        ("Automatic", ANNOTATION_CONTINUE, "each", "step each is not waiting for continue"),
        ("Automatic", ANNOTATION_RETRY, "each", "apply in mode FailurePause"),
        ("FailurePause", ANNOTATION_RETRY, "each", "step each has not failed"),
        ("FailurePause", ANNOTATION_SKIP, "each", "step each has not failed"),
        ("Automatic", ANNOTATION_RERUN_FROM, "each", "rerun-from applies to a finished run"),
    ],
)
def test_a_command_on_a_running_loop_that_does_not_apply_is_refused_and_changes_nothing(
    mode: str, key: str, value: str, why: str
) -> None:
    world = World(template({"items": list(range(4)), "concurrency": 2}), mode=mode)
    world.step()
    running = world.status
    world.annotations[key] = value
    result = world.step()
    assert result.command_event is not None and result.command_event.reason == "CommandRefused"
    assert why in result.command_event.message, result.command_event.message
    assert key not in world.annotations
    assert not result.status.commands_applied
    loop = record(result.status).loop
    assert loop is not None and loop.round == 0 and record(running).attempt == 1
    assert world.run().phase == "Succeeded"


def test_a_continue_sent_twice_applies_once() -> None:
    world = World(
        template(
            {"items": list(range(4)), "concurrency": 2, "batchSize": 2, "pause": "AfterFirstBatch"}
        )
    )
    world.run()
    world.annotations[ANNOTATION_CONTINUE] = "each"
    world.step()
    world.annotations[ANNOTATION_CONTINUE] = "each"  # sent again, after it was consumed
    result = world.step()
    assert result.command_event is not None and result.command_event.reason == "CommandRefused"
    assert world.run().phase == "Succeeded"
    assert world.status.commands_applied == 1


# --- Bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loop", "path", "fragment"),
    [
        ({"items": "web-1"}, "spec.steps[0].loop.items", "give a list of items"),
        ({"items": [1], "concurrency": 0}, "spec.steps[0].loop.concurrency", "0 would run nothing"),
        ({"items": [1], "maxErrors": "150%"}, "spec.steps[0].loop.maxErrors", "at most 100%"),
        ({"items": [1], "pause": "EveryBatch"}, "spec.steps[0].loop.pause", "needs batchSize"),
        ({"items": [1], "batchSize": -1}, "spec.steps[0].loop.batchSize", "0 (no batches)"),
        ({"items": list(range(MAX_ITEMS + 1))}, "spec.steps[0].loop.items", "over the limit"),
    ],
)
def test_template_admission_refuses_what_a_literal_loop_gets_wrong(
    loop: dict[str, Any], path: str, fragment: str
) -> None:
    problems = validate_template(template(loop))
    assert [p.path for p in problems] == [path], problems
    assert fragment in problems[0].message


def test_item_outside_a_loop_and_a_step_named_like_an_item_are_refused() -> None:
    spec = TemplateSpec.model_validate(
        {
            "steps": [
                {
                    "name": "each",
                    "loop": {"items": [1], "concurrency": "{{ item }}"},
                    "run": {"image": "b", "script": "true"},
                },
                {
                    "name": "each-1",
                    "run": {
                        "image": "b",
                        "script": "true",
                        "env": [{"name": "X", "value": "{{ index }}"}],
                    },
                },
            ]
        }
    )
    problems = {p.path: p.message for p in validate_template(spec)}
    assert (
        "item is defined only in the run of a step with a loop"
        in problems["spec.steps[0].loop.concurrency"]
    )
    assert "index is defined only" in problems["spec.steps[1].run.env[0].value"]
    assert "share names" in problems["spec.steps[1].name"]


@pytest.mark.parametrize(
    ("loop", "fragment"),
    [
        ({"items": "{{ 'web' }}"}, "loop.items must be a list, but it renders to a string"),
        ({"items": [1], "concurrency": "{{ 0 }}"}, "loop.concurrency: must be from 1 to 500"),
        ({"items": [1], "maxErrors": "{{ '150%' }}"}, "loop.maxErrors: a percentage"),
        ({"items": [1], "batchSize": "{{ 0 }}", "pause": "EveryBatch"}, "loop.pause"),
    ],
)
def test_expressions_are_checked_when_the_step_starts(loop: dict[str, Any], fragment: str) -> None:
    status = World(template(loop)).run()
    step = record(status)
    assert step.phase == "Failed" and step.reason == "InvalidSpec"
    assert step.message is not None and fragment in step.message


def test_cancel_deletes_the_items_in_flight() -> None:
    world = World(template({"items": list(range(5)), "concurrency": 2}))
    world.step(end_jobs=False)
    status = world.status.model_copy(update={"cancel_requested": True})
    result = plan(snapshot(None, status, world.jobs), world.now)
    assert set(result.delete_jobs) == {"demo-each-0-1", "demo-each-1-1"}
    assert record(result.status).phase == "Cancelled"


# --- Index ranges -------------------------------------------------------------------------


def test_index_ranges_round_trip_and_refuse_indexes_past_the_total() -> None:
    assert format_ranges([5002, *range(5000)]) == "0-4999,5002"
    assert parse_ranges("0-4999,5002", 5003) == {*range(5000), 5002}
    assert format_ranges([]) is None
    with pytest.raises(ValueError):
        parse_ranges("0-99999999", 10)


# --- Pods that do not start -----------------------------------------------------------------


def test_an_item_whose_pod_waits_for_a_person_shows_it_then_fails_not_started() -> None:
    world = World(template({"items": ["a", "b"], "concurrency": 2}, startTimeout="2m"))
    world.step(end_jobs=False)
    stuck = {
        name: replace(
            job,
            probed=True,
            ready=0,
            waiting_reason="CreateContainerConfigError",
            waiting_message='secret "db" not found',
        )
        for name, job in world.jobs.items()
    }
    waiting = plan(snapshot(None, world.status, stuck), T0 + timedelta(seconds=10))
    step = record(waiting.status)
    assert step.reason == "CreateContainerConfigError"
    assert (
        step.message is not None and 'item 0\'s Pod waits for secret "db" not found' in step.message
    )
    assert waiting.status.conditions is not None
    assert waiting.status.conditions[0].reason == "CreateContainerConfigError"
    late = plan(snapshot(None, waiting.status, stuck), T0 + timedelta(minutes=3))
    assert set(late.delete_jobs) == set(stuck)
    loop = record(late.status).loop
    assert loop is not None and loop.failures is not None
    assert loop.failures[0].message.startswith("NotStarted: its Pod did not start within 2m")
