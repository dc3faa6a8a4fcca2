"""Loop steps through the planner (`koos.engine.execution.plan` → `koos.engine.loop`).

A small simulated cluster (`World`) runs the plans: it creates the Jobs a plan creates,
ends them as a test's `outcome` says, and deletes the ones a plan deletes or releases, so a
whole loop runs pass after pass as the operator would run it. Helpers are repeated from
test_steps.py because pytest's importlib mode lets no test module import another.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from koos.api.constants import LABEL_ATTEMPT, LABEL_ITEM, LABEL_STEP
from koos.api.execution import ExecutionSpec, ExecutionStatus, StepStatus
from koos.api.template import TemplateSpec
from koos.engine.execution import plan
from koos.engine.facts import ExecutionSnapshot, JobFacts, Plan, TemplateFacts
from koos.engine.index_set import format_ranges, parse_ranges
from koos.engine.loop import continue_step, retry_failed_items
from koos.engine.loop_settings import MAX_ITEMS
from koos.engine.template import validate_template

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
) -> ExecutionSnapshot:
    return ExecutionSnapshot(
        name="demo",
        namespace="ops",
        uid="exe-uid",
        generation=1,
        spec=ExecutionSpec.model_validate({"templateRef": {"name": "tpl"}}),
        status=status or ExecutionStatus(),
        template=None if spec is None else TemplateFacts("tpl", "tpl-uid", 1, spec),
        jobs=jobs or {},
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

    def step(self, end_jobs: bool = True) -> Plan:
        """One pass, then (when `end_jobs`) every live Job ends as `outcome` says."""
        first = self.status.template is None
        result = plan(snapshot(self.spec if first else None, self.status, self.jobs), self.now)
        self.plans.append(result)
        self.status = result.status
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
    world.status = continue_step(world.status, "each")
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
        world.status = continue_step(world.status, "each")
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


def test_retry_failed_items_runs_only_them_again_in_a_new_round() -> None:
    world = World(template({"items": list(range(4)), "concurrency": 4}), failing(1, 3))
    status = world.run()
    assert record(status).reason == "TooManyErrors"
    retried = retry_failed_items(record(status))
    assert retried.phase == "Running" and retried.loop is not None
    assert retried.loop.failed_indexes is None and retried.loop.round == 1
    steps = [retried if s.name == "each" else s for s in status.steps or []]
    world.status = status.model_copy(
        update={"steps": steps, "phase": "Running", "completion_time": None}
    )
    world.outcome = ok
    world.started.clear()
    status = world.run()
    assert status.phase == "Succeeded", status.message
    assert sorted(world.started) == [(1, 2), (3, 2)]  # attempt numbers go on: new Job names


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
