"""The Schedule planner (`koos.engine.schedule.plan_schedule`): spec + status + runs + `now`.

Fires and their Executions (manifest, names), exactly once under re-planning and restarts,
catchUp None/Latest/All with and without startingDeadlineSeconds, suspend and resume,
concurrencyPolicy Allow/Forbid/Replace, history limits, endTime and Completed, conditions and
Events, and invalid specs (each naming its field). Cron maths itself is in test_cron.py.
Schedule `nightly` in namespace `ops` was created at T0; every case passes a fixed clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from koos.api.schedule import ScheduleSpec, ScheduleStatus
from koos.engine import cron
from koos.engine.jobs import label_value
from koos.engine.schedule import (
    RunFacts,
    SchedulePlan,
    execution_name,
    plan_schedule,
)
from koos.engine.template import problems_from_pydantic

T0 = datetime(2025, 1, 1, tzinfo=UTC)
NAME = "nightly"
TEMPLATE = {"spec": {"templateRef": {"name": "tpl"}, "parameters": {"level": "deep"}}}


def at(minutes: float, seconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def spec(schedule: str = "*/10 * * * *", **fields: Any) -> ScheduleSpec:
    return ScheduleSpec.model_validate(
        {"schedule": schedule, "executionTemplate": TEMPLATE, **fields}
    )


def run(
    minute: float,
    phase: str | None = "Running",
    done: float | None = None,
    *,
    cancel: bool = False,
) -> RunFacts:
    """The run of the fire at T0 + `minute`, finished at T0 + `done` minutes if given."""
    return RunFacts(
        name=execution_name(NAME, at(minute)),
        phase=phase,
        scheduled_time=at(minute),
        completion_time=None if done is None else at(done),
        cancel_requested=cancel,
    )


def plan(
    schedule: ScheduleSpec | None,
    now: datetime,
    *,
    status: ScheduleStatus | None = None,
    runs: Sequence[RunFacts] = (),
    template_exists: bool = True,
    problems: Sequence[str] = (),
    allow_seconds: bool = False,
    name: str = NAME,
) -> SchedulePlan:
    return plan_schedule(
        name=name,
        namespace="ops",
        uid="sched-uid",
        generation=3,
        created=T0,
        spec=schedule,
        spec_problems=problems,
        status=status or ScheduleStatus(),
        runs=runs,
        template_exists=template_exists,
        now=now,
        allow_seconds=allow_seconds,
    )


def fired(result: SchedulePlan) -> list[datetime]:
    """The scheduled times of the Executions the plan creates."""
    return [
        cron.parse_time(m["metadata"]["annotations"]["koos.io/scheduled-time"])
        for m in result.create
    ]


def reasons(result: SchedulePlan) -> list[str]:
    return [event.reason for event in result.events]


def condition(result: SchedulePlan, kind: str) -> tuple[str, str]:
    found = [c for c in result.status.conditions or [] if c.type == kind]
    assert len(found) == 1
    return found[0].status, found[0].reason


def counts(result: SchedulePlan) -> tuple[int | None, int | None, int | None]:
    return result.status.fired, result.status.skipped, result.status.missed


# --- a fire, its Execution and the status ----------------------------------------------------


def test_a_due_fire_creates_its_execution() -> None:
    labelled = spec(
        executionTemplate={
            "metadata": {"labels": {"team": "sre"}, "annotations": {"note": "nightly"}},
            **TEMPLATE,
        }
    )
    result = plan(labelled, at(10, 3))
    assert result.create == (
        {
            "apiVersion": "koos.io/v1alpha1",
            "kind": "Execution",
            "metadata": {
                "name": "nightly-28928170",
                "namespace": "ops",
                "labels": {
                    "team": "sre",
                    "koos.io/schedule": "nightly",
                    "app.kubernetes.io/managed-by": "koos",
                },
                "annotations": {
                    "note": "nightly",
                    "koos.io/scheduled-time": "2025-01-01T00:10:00Z",
                },
                "ownerReferences": [
                    {
                        "apiVersion": "koos.io/v1alpha1",
                        "kind": "Schedule",
                        "name": "nightly",
                        "uid": "sched-uid",
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "templateRef": {"name": "tpl"},
                "parameters": {"level": "deep"},
                "mode": "Automatic",
            },
        },
    )
    assert int(at(10).timestamp()) // 60 == 28928170


def test_the_execution_template_passes_the_mode_through() -> None:
    debug = spec(executionTemplate={"spec": {**TEMPLATE["spec"], "mode": "Debug"}})
    (created,) = plan(debug, at(10, 3)).create
    assert created["spec"]["mode"] == "Debug"


def test_status_after_a_fire() -> None:
    result = plan(spec(), at(10, 3))
    status = result.status
    assert status.last_schedule_time == "2025-01-01T00:10:00Z"
    assert status.next_schedule_time == "2025-01-01T00:20:00Z"
    assert result.wake_at == at(20)
    assert [(a.name, a.scheduled_time) for a in status.active or []] == [
        ("nightly-28928170", "2025-01-01T00:10:00Z")
    ]
    assert status.active_count == 1
    assert counts(result) == (1, 0, 0)
    assert status.observed_generation == 3
    assert condition(result, "Ready") == ("True", "Scheduled")
    assert condition(result, "Completed") == ("False", "Scheduling")
    assert reasons(result) == ["Fired", "Scheduled"]
    assert "Created Execution nightly-28928170" in (status.message or "")


def test_nothing_due_yet() -> None:
    first = plan(spec(), at(5))
    assert first.create == ()
    assert first.status.last_schedule_time is None
    assert first.status.next_schedule_time == "2025-01-01T00:10:00Z"
    assert first.wake_at == at(10)
    assert reasons(first) == ["Scheduled"]
    again = plan(spec(), at(9), status=first.status)
    assert again.status == first.status  # nothing happened: nothing to write
    assert again.events == ()


def test_a_fire_at_creation_time_is_not_due() -> None:
    assert plan(spec("@daily"), at(0, 30)).create == ()
    assert plan(spec("@daily"), at(0, 30)).status.next_schedule_time == "2025-01-02T00:00:00Z"


# --- exactly once ---------------------------------------------------------------------------


def test_planning_twice_from_the_same_inputs_gives_the_same_plan() -> None:
    assert plan(spec(), at(10, 3)) == plan(spec(), at(10, 3))


def test_a_run_that_exists_is_not_created_again() -> None:
    """The status write after the create was lost (or the operator restarted before it)."""
    first = plan(spec(), at(10, 3))
    lost = plan(spec(), at(10, 20), runs=[run(10, None)])
    assert lost.create == ()
    assert lost.status.last_schedule_time == "2025-01-01T00:10:00Z"
    assert counts(lost) == counts(first) == (1, 0, 0)
    assert "Fired" not in reasons(lost)
    written = plan(spec(), at(10, 40), status=first.status, runs=[run(10, None)])
    assert written.create == () and written.events == ()
    assert written.status == first.status
    lagging = plan(spec(), at(10, 40), status=first.status)  # the runs index has not caught up
    assert lagging.create == ()


RESTARTS = [
    pytest.param(at(9, 59), [], id="just-before"),
    pytest.param(at(10), [at(10)], id="at"),
    pytest.param(at(10, 45), [at(10)], id="just-after"),
    pytest.param(at(19, 50), [at(10)], id="a-period-later"),
]


@pytest.mark.parametrize(("back", "expected"), RESTARTS)
def test_restart_around_a_due_time_fires_it_exactly_once(
    back: datetime, expected: list[datetime]
) -> None:
    """Down from 00:09:30; back at `back`; then the status write after the first look is
    lost, and a last look a second later starts from what the second one wrote."""
    before = plan(spec(), at(9, 30))
    first = plan(spec(), back, status=before.status)
    created = fired(first)
    assert created == expected
    lost = plan(
        spec(), back + timedelta(seconds=1), status=before.status, runs=[run(10)] * len(created)
    )
    created += fired(lost)
    final = plan(
        spec(), back + timedelta(seconds=2), status=lost.status, runs=[run(10)] * len(created)
    )
    created += fired(final)
    assert created == [at(10)]


def test_a_catch_up_after_a_lost_status_write_keeps_the_runs_it_made() -> None:
    """catchUp None: the fire is now too late, but its run exists: it was fired, not missed."""
    result = plan(spec(catchUp="None"), at(15), runs=[run(10)])
    assert result.create == ()
    assert counts(result) == (1, 0, 0)


# --- catch-up -------------------------------------------------------------------------------

CATCH_UP = [
    # fields, now, runs created (minutes), skipped, missed
    pytest.param({"catchUp": "None"}, at(60, 5), [60], 0, 5, id="none-runs-the-latest-in-60s"),
    pytest.param({"catchUp": "None"}, at(62), [], 0, 6, id="none-latest-over-default-deadline"),
    pytest.param({"catchUp": "None", "startingDeadlineSeconds": 300}, at(62), [60], 0, 5,
                 id="none-with-a-deadline"),
    pytest.param({"catchUp": "Latest"}, at(69), [60], 0, 5, id="latest-no-deadline"),
    pytest.param({}, at(69), [60], 0, 5, id="latest-is-the-default"),
    pytest.param({"catchUp": "Latest", "startingDeadlineSeconds": 60}, at(62), [], 0, 6,
                 id="latest-over-its-deadline"),
    pytest.param({"catchUp": "Latest", "startingDeadlineSeconds": 60}, at(61), [60], 0, 5,
                 id="latest-at-its-deadline"),
    pytest.param({"catchUp": "All"}, at(69), [10, 20, 30, 40, 50, 60], 0, 0, id="all"),
    pytest.param({"catchUp": "All", "maxCatchUp": 2}, at(69), [40, 50, 60], 3, 0,
                 id="all-up-to-max-catch-up"),
    pytest.param({"catchUp": "All", "maxCatchUp": 0}, at(69), [60], 5, 0, id="all-max-zero"),
    pytest.param({"catchUp": "All", "startingDeadlineSeconds": 900}, at(60, 5), [50, 60], 0, 4,
                 id="all-with-a-deadline"),
    pytest.param({"catchUp": "All", "maxCatchUp": 2, "startingDeadlineSeconds": 2500}, at(60, 5),
                 [40, 50, 60], 2, 1, id="all-deadline-and-max"),
    pytest.param({"catchUp": "All", "maxCatchUp": 3, "startingDeadlineSeconds": 1500}, at(60, 5),
                 [40, 50, 60], 0, 3, id="all-the-deadline-comes-first"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "now", "created", "skipped", "missed"), CATCH_UP)
def test_catch_up(
    fields: dict[str, Any], now: datetime, created: list[int], skipped: int, missed: int
) -> None:
    result = plan(spec(**fields), now)
    assert fired(result) == [at(m) for m in created]
    assert counts(result) == (len(created), skipped, missed)
    assert result.status.last_schedule_time == "2025-01-01T01:00:00Z"
    assert ("Missed" in reasons(result)) == bool(missed)
    assert ("Skipped" in reasons(result)) == bool(skipped)


def test_missed_and_skipped_events_summarise_each_kind() -> None:
    result = plan(spec(catchUp="All", maxCatchUp=2, startingDeadlineSeconds=2500), at(60, 5))
    events = {e.reason: e for e in result.events}
    assert [(e.type, e.reason) for e in result.events] == [
        ("Normal", "Fired"),
        ("Warning", "Skipped"),
        ("Warning", "Missed"),
        ("Normal", "Scheduled"),
    ]
    assert events["Missed"].message == (
        "Missed 1 fire at 2025-01-01T00:10:00Z (later than startingDeadlineSeconds 2500)."
    )
    assert events["Skipped"].message == (
        "Skipped 2 fires from 2025-01-01T00:20:00Z to 2025-01-01T00:30:00Z (beyond maxCatchUp 2)."
    )
    assert events["Fired"].message == (
        "Created Executions nightly-28928200, nightly-28928210, nightly-28928220 for the fires at "
        "2025-01-01T00:40:00Z, 2025-01-01T00:50:00Z, 2025-01-01T01:00:00Z."
    )
    latest = plan(spec(), at(69))
    assert latest.events[0].reason == "Fired"
    missed = next(e for e in latest.events if e.reason == "Missed")
    assert missed.message == (
        "Missed 5 fires from 2025-01-01T00:10:00Z to 2025-01-01T00:50:00Z "
        "(a later fire is due, catchUp Latest)."
    )


def test_counters_add_up_across_plans() -> None:
    first = plan(spec(catchUp="None"), at(62))
    second = plan(spec(catchUp="None"), at(90, 5), status=first.status)
    assert counts(first) == (0, 0, 6)
    assert counts(second) == (1, 0, 8)  # 01:10 and 01:20 missed, 01:30 fired
    assert fired(second) == [at(90)]


def test_a_long_outage_counts_up_to_a_limit_and_still_runs_the_latest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cron, "MAX_DUE", 5)
    latest = plan(spec("* * * * *"), at(60, 5))
    assert fired(latest) == [at(60)]
    assert counts(latest) == (1, 0, 6)  # 5 counted, 1 found back from now; the rest not
    assert "not all were counted" in next(e for e in latest.events if e.reason == "Missed").message
    every = plan(spec("* * * * *", catchUp="All", maxCatchUp=3), at(60, 5))
    assert fired(every) == [at(57), at(58), at(59), at(60)]
    assert counts(every) == (4, 6, 0)
    exact = plan(spec(), at(60, 5))  # 6 fires: 5 counted on, the 6th found back: all counted
    assert fired(exact) == [at(60)]
    assert counts(exact) == (1, 0, 5)
    assert "not all were counted" not in (exact.status.message or "")


# --- suspend ----------------------------------------------------------------------------------


def test_suspend_skips_and_resuming_never_floods() -> None:
    suspended = plan(spec(suspend=True, catchUp="All"), at(60, 5))
    assert suspended.create == ()
    assert counts(suspended) == (0, 6, 0)
    assert suspended.status.last_schedule_time == "2025-01-01T01:00:00Z"
    assert suspended.status.next_schedule_time == "2025-01-01T01:10:00Z"
    assert suspended.wake_at == at(70)  # to move the marker on while suspended
    assert condition(suspended, "Ready") == ("True", "Suspended")
    skipped = next(e for e in suspended.events if e.reason == "Skipped")
    assert skipped.type == "Normal" and "spec.suspend" in skipped.message
    still = plan(spec(suspend=True, catchUp="All"), at(120, 5), status=suspended.status)
    assert counts(still) == (0, 12, 0)
    resumed = plan(spec(catchUp="All"), at(125), status=still.status)
    assert resumed.create == ()
    assert condition(resumed, "Ready") == ("True", "Scheduled")
    assert "Scheduled" in reasons(resumed)
    assert fired(plan(spec(catchUp="All"), at(130, 2), status=resumed.status)) == [at(130)]


# --- concurrency ------------------------------------------------------------------------------


def test_allow_overlaps() -> None:
    result = plan(spec(), at(20, 1), status=plan(spec(), at(10, 1)).status, runs=[run(10)])
    assert fired(result) == [at(20)]
    assert [a.name for a in result.status.active or []] == [run(10).name, run(20).name]
    assert result.cancel == ()


@pytest.mark.parametrize("phase", [None, "Pending", "Running", "Waiting"])
def test_forbid_skips_while_a_run_is_active(phase: str | None) -> None:
    before = plan(spec(concurrencyPolicy="Forbid"), at(10, 1))
    result = plan(
        spec(concurrencyPolicy="Forbid"), at(20, 1), status=before.status, runs=[run(10, phase)]
    )
    assert result.create == ()
    assert counts(result) == (1, 1, 0)
    assert result.status.last_schedule_time == "2025-01-01T00:20:00Z"
    skipped = next(e for e in result.events if e.reason == "Skipped")
    assert skipped.type == "Warning"
    assert skipped.message == (
        "Skipped 1 fire at 2025-01-01T00:20:00Z (concurrencyPolicy Forbid and "
        "nightly-28928170 is active)."
    )


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled"])
def test_forbid_fires_once_the_run_finished(phase: str) -> None:
    result = plan(spec(concurrencyPolicy="Forbid"), at(20, 1), runs=[run(10, phase, 15)])
    assert fired(result) == [at(20)]


def test_forbid_during_a_catch_up_runs_the_first_and_skips_the_rest() -> None:
    result = plan(spec(concurrencyPolicy="Forbid", catchUp="All"), at(30, 1))
    assert fired(result) == [at(10)]
    assert counts(result) == (1, 2, 0)


def test_replace_cancels_the_active_runs_and_creates_the_new_one() -> None:
    runs = [run(10, "Running"), run(20, "Waiting", cancel=True), run(0, "Succeeded", 5)]
    result = plan(
        spec(concurrencyPolicy="Replace"),
        at(30, 1),
        status=ScheduleStatus(last_schedule_time="2025-01-01T00:20:00Z"),
        runs=runs,
    )
    assert fired(result) == [at(30)]
    assert result.cancel == (run(10).name,)  # the other is being cancelled already
    assert [a.name for a in result.status.active or []] == [
        run(10).name,
        run(20).name,
        run(30).name,
    ]
    replaced = next(e for e in result.events if e.reason == "Replaced")
    assert replaced.message == "Cancelling nightly-28928170 (concurrencyPolicy Replace)."


def test_replace_runs_only_the_latest_of_a_catch_up() -> None:
    result = plan(spec(concurrencyPolicy="Replace", catchUp="All"), at(30, 1), runs=[])
    assert fired(result) == [at(30)]
    assert counts(result) == (1, 2, 0)
    assert "replaced by the fire at 2025-01-01T00:30:00Z" in (result.status.message or "")


def test_replace_cancels_nothing_when_nothing_fires() -> None:
    late = spec(concurrencyPolicy="Replace", catchUp="None")
    result = plan(
        late,
        at(25),
        status=ScheduleStatus(last_schedule_time="2025-01-01T00:10:00Z"),
        runs=[run(10)],
    )
    assert result.create == () and result.cancel == ()
    assert counts(result) == (0, 0, 1)


def test_replace_after_a_lost_status_write_still_cancels() -> None:
    runs = [run(10, "Running"), run(20, None)]  # 00:20 was created; its status write was lost
    result = plan(
        spec(concurrencyPolicy="Replace"),
        at(20, 30),
        status=ScheduleStatus(last_schedule_time="2025-01-01T00:10:00Z"),
        runs=runs,
    )
    assert result.create == ()
    assert result.cancel == (run(10).name,)


def test_replace_never_creates_a_fire_it_replaced_before() -> None:
    """All and Replace ran 00:20 and skipped 00:10; that status write was lost."""
    replace_all = spec(concurrencyPolicy="Replace", catchUp="All")
    first = plan(replace_all, at(20, 5))
    assert fired(first) == [at(20)]
    again = plan(replace_all, at(20, 10), runs=[run(20, None)])
    assert again.create == ()
    assert counts(again) == counts(first) == (1, 1, 0)


# --- history --------------------------------------------------------------------------------

HISTORY = [
    # runs (minute, phase, done), successful limit, failed limit, deleted (minutes)
    pytest.param([(10, "Succeeded", 12), (20, "Succeeded", 22), (30, "Succeeded", 33),
                  (40, "Succeeded", 41)], 3, 3, [10], id="oldest-success"),
    pytest.param([(10, "Succeeded", 45), (20, "Succeeded", 22), (30, "Succeeded", 33)], 2, 3,
                 [20], id="ordered-by-completion"),
    pytest.param([(10, "Failed", 11), (20, "Cancelled", 21), (30, "Failed", 31),
                  (40, "Succeeded", 41)], 3, 1, [10, 20], id="failed-and-cancelled-together"),
    pytest.param([(10, "Failed", 11), (20, "Succeeded", 21), (30, "Running", None),
                  (40, None, None)], 0, 0, [10, 20], id="limit-zero-keeps-active-runs"),
    pytest.param([(10, "Succeeded", None), (20, "Succeeded", 21)], 1, 1, [10],
                 id="no-completion-time-orders-by-fire"),
    pytest.param([(10, "Succeeded", 11), (50, "Succeeded", 51)], 0, 0, [10],
                 id="a-fire-after-the-recorded-marker-is-kept"),
]  # fmt: skip


@pytest.mark.parametrize(("facts", "good", "bad", "deleted"), HISTORY)
def test_history_limits(
    facts: list[tuple[int, str | None, int | None]], good: int, bad: int, deleted: list[int]
) -> None:
    limits: dict[str, Any] = {
        "successfulExecutionsHistoryLimit": good,
        "failedExecutionsHistoryLimit": bad,
    }
    marker = ScheduleStatus(last_schedule_time="2025-01-01T00:40:00Z")
    runs = [run(m, phase, done) for m, phase, done in facts]
    result = plan(spec(**limits), at(45), status=marker, runs=runs)
    assert result.delete == tuple(sorted(run(m).name for m in deleted))


def test_last_successful_time_outlives_the_runs() -> None:
    first = plan(
        spec(),
        at(45),
        runs=[run(10, "Succeeded", 14), run(20, "Succeeded", 12), run(30, "Failed", 40)],
    )
    assert first.status.last_successful_time == "2025-01-01T00:14:00Z"
    later = plan(spec(), at(46), status=first.status, runs=[run(30, "Failed", 40)])
    assert later.status.last_successful_time == "2025-01-01T00:14:00Z"


# --- endTime and Completed ------------------------------------------------------------------


def test_end_time() -> None:
    bounded = spec(endTime="2025-01-01T00:35:00Z")
    before = plan(bounded, at(30, 1))
    assert fired(before) == [at(30)]
    assert before.status.next_schedule_time is None
    assert before.wake_at == at(35)  # to say Completed at endTime
    running = plan(bounded, at(35), status=before.status, runs=[run(30)])
    assert condition(running, "Completed") == ("False", "RunsActive")
    assert running.wake_at is None  # the run's end re-plans
    done = plan(bounded, at(40), status=running.status, runs=[run(30, "Succeeded", 38)])
    assert condition(done, "Completed") == ("True", "EndTimeReached")
    assert condition(done, "Ready") == ("True", "Scheduled")
    assert reasons(done) == ["EndTimeReached"]
    assert done.wake_at is None and done.create == ()
    again = plan(bounded, at(50), status=done.status, runs=[run(30, "Succeeded", 38)])
    assert again.events == () and again.status == done.status


def test_a_fire_at_end_time_runs() -> None:
    result = plan(spec(endTime="2025-01-01T00:30:00Z"), at(30, 1))
    assert fired(result) == [at(30)]
    assert condition(result, "Completed") == ("False", "RunsActive")


def test_start_time_defers_the_first_fire() -> None:
    later = spec(startTime="2025-01-01T00:25:00Z")
    assert plan(later, at(22)).create == ()
    assert plan(later, at(22)).status.next_schedule_time == "2025-01-01T00:30:00Z"
    assert fired(plan(later, at(30, 1), status=plan(later, at(22)).status)) == [at(30)]


def test_last_transition_time_moves_only_when_a_status_flips() -> None:
    first = plan(spec(), at(5))
    later = plan(spec(), at(10, 1), status=first.status)
    broken = plan(spec(timeZone="Nowhere/Atlantis"), at(12), status=later.status)
    fixed = plan(spec(), at(14), status=broken.status)
    since = [
        {c.type: c.last_transition_time for c in p.status.conditions or []}
        for p in (first, later, broken, fixed)
    ]
    assert (
        since[0]
        == since[1]
        == {"Ready": "2025-01-01T00:05:00Z", "Completed": "2025-01-01T00:05:00Z"}
    )
    assert since[2] == {"Ready": "2025-01-01T00:12:00Z", "Completed": "2025-01-01T00:05:00Z"}
    assert since[3] == {"Ready": "2025-01-01T00:14:00Z", "Completed": "2025-01-01T00:05:00Z"}


# --- invalid specs --------------------------------------------------------------------------


def meta(**metadata: dict[str, str]) -> ScheduleSpec:
    return spec(executionTemplate={"metadata": metadata, **TEMPLATE})


def negative_limit() -> list[str]:
    with pytest.raises(ValidationError) as caught:
        spec(failedExecutionsHistoryLimit=-1)
    return [str(p) for p in problems_from_pydantic(caught.value)]


INVALID = [
    pytest.param(spec("*/10 * * *"), [], "spec.schedule: '*/10 * * *' has 4 fields", id="cron"),
    pytest.param(spec(timeZone="Europe/Atlantis"), [], "spec.timeZone: 'Europe/Atlantis'",
                 id="zone"),
    pytest.param(spec(startTime="2025-02-01T00:00:00Z", endTime="2025-01-15T00:00:00Z"), [],
                 "spec.endTime: 2025-01-15T00:00:00Z is before startTime", id="end-before-start"),
    pytest.param(None, negative_limit(), "spec.failedExecutionsHistoryLimit: ",
                 id="negative-history-limit"),
    pytest.param(meta(labels={"koos.io/schedule": "x"}), [],
                 "spec.executionTemplate.metadata.labels[koos.io/schedule]: ", id="reserved-label"),
    pytest.param(meta(annotations={"koos.io/cancel": "y"}), [],
                 "metadata.annotations[koos.io/cancel]: koos.io/cancel is set by koos",
                 id="reserved-annotation"),
    pytest.param(meta(annotations={"koos.io/rerun-from": "s0"}), [],
                 "metadata.annotations[koos.io/rerun-from]: koos.io/rerun-from is set by koos",
                 id="no-command-smuggled"),
    pytest.param(meta(annotations={"koos.io/continue-by": "alice"}), [],
                 "metadata.annotations[koos.io/continue-by]: koos.io/continue-by is set by koos",
                 id="no-sender-forged"),
    pytest.param(meta(labels={"team": "a b"}), [], "labels[team]: 'a b' is not a valid label value",
                 id="label-value"),
    pytest.param(meta(labels={"-team": "a"}), [], "labels[-team]: is not a valid key",
                 id="label-key"),
]  # fmt: skip


@pytest.mark.parametrize(("schedule", "problems", "words"), INVALID)
def test_an_invalid_spec_fires_nothing_and_names_the_field(
    schedule: ScheduleSpec | None, problems: list[str], words: str
) -> None:
    status = ScheduleStatus(last_schedule_time="2025-01-01T00:10:00Z", fired=1)
    result = plan(schedule, at(60, 5), status=status, problems=problems, runs=[run(10)])
    assert result.create == () and result.cancel == () and result.delete == ()
    assert result.wake_at is None
    assert condition(result, "Ready") == ("False", "InvalidSpec")
    assert condition(result, "Completed") == ("False", "InvalidSpec")
    ready = next(c for c in result.status.conditions or [] if c.type == "Ready")
    assert words in ready.message
    assert result.status.message == ready.message
    assert result.status.last_schedule_time == "2025-01-01T00:10:00Z"  # the marker holds
    assert result.status.next_schedule_time is None
    assert [a.name for a in result.status.active or []] == [run(10).name]
    assert [(e.type, e.reason) for e in result.events] == [("Warning", "InvalidSpec")]
    again = plan(schedule, at(70), status=result.status, problems=problems, runs=[run(10)])
    assert again.events == () and again.status == result.status


def test_every_problem_is_on_its_own_line() -> None:
    result = plan(spec("@sometimes", timeZone="Mars/Olympus"), at(5))
    lines = result.status.message.splitlines() if result.status.message else []
    assert [line.split(":")[0] for line in lines] == ["spec.schedule", "spec.timeZone"]


def test_a_missing_template_fires_nothing_until_it_exists() -> None:
    before = plan(spec(), at(5))
    missing = plan(spec(), at(30, 5), status=before.status, template_exists=False)
    assert missing.create == () and missing.wake_at is None
    assert condition(missing, "Ready") == ("False", "TemplateNotFound")
    assert missing.status.message == (
        'spec.executionTemplate.spec.templateRef.name: Template "tpl" not found in namespace '
        '"ops": create it or fix the name; nothing fires until then'
    )
    assert reasons(missing) == ["TemplateNotFound"]
    assert missing.status.last_schedule_time is None
    found = plan(spec(), at(31), status=missing.status)
    assert fired(found) == [at(30)]  # catchUp Latest: the latest fire since runs now
    assert counts(found) == (1, 0, 2)
    assert condition(found, "Ready") == ("True", "Scheduled")


# --- names and daylight saving through the planner -----------------------------------------


NAMES = [
    pytest.param("nightly", at(10), False, "nightly-28928170", id="minutes"),
    pytest.param("nightly", at(10, 2), True, "nightly-1735690202", id="seconds"),
    pytest.param("a" * 60, at(10), False, "a" * 43 + "-{hash}-28928170", id="long"),
    pytest.param("db.backup", at(10), False, "db-backup-{hash}-28928170", id="dotted"),
]  # fmt: skip


@pytest.mark.parametrize(("schedule", "when", "seconds", "expected"), NAMES)
def test_execution_name(schedule: str, when: datetime, seconds: bool, expected: str) -> None:
    name = execution_name(schedule, when, seconds=seconds)
    assert len(name) <= 63
    digest = name.split("-")[-2] if "{hash}" in expected else ""
    assert name == expected.format(hash=digest)
    assert len(digest) in (0, 10)


def test_long_names_stay_distinct_and_label_safe() -> None:
    one, two = "x" * 70 + "-one", "x" * 70 + "-two"
    assert execution_name(one, at(10)) != execution_name(two, at(10))
    result = plan(spec(), at(10, 1), name=one)
    labels = result.create[0]["metadata"]["labels"]
    assert labels["koos.io/schedule"] == label_value(one) != label_value(two)
    assert len(labels["koos.io/schedule"]) <= 63


def test_seconds_schedules_when_allowed() -> None:
    result = plan(spec("*/2 * * * * *"), at(0, 5), allow_seconds=True)
    assert fired(result) == [at(0, 4)]  # catchUp Latest: 00:00:02 was missed
    assert result.create[0]["metadata"]["name"] == f"nightly-{int(at(0, 4).timestamp())}"
    assert result.wake_at == at(0, 6)
    refused = plan(spec("*/2 * * * * *"), at(0, 5))
    assert condition(refused, "Ready") == ("False", "InvalidSpec")


def test_daylight_saving_through_the_planner() -> None:
    fall = spec("30 1 * * *", timeZone="America/New_York")
    first = datetime(2025, 11, 2, 5, 30, tzinfo=UTC)  # 01:30 EDT
    done = plan(
        fall,
        first + timedelta(seconds=2),
        status=ScheduleStatus(last_schedule_time="2025-11-01T05:30:00Z"),
    )
    assert fired(done) == [first]
    second = plan(
        fall, datetime(2025, 11, 2, 6, 30, 5, tzinfo=UTC), status=done.status
    )  # 01:30 EST
    assert second.create == ()
    assert second.status.next_schedule_time == "2025-11-03T06:30:00Z"
    spring = spec("30 2 * * *", timeZone="America/New_York")
    skipped = plan(
        spring,
        datetime(2025, 3, 9, 8, tzinfo=UTC),
        status=ScheduleStatus(last_schedule_time="2025-03-08T07:30:00Z"),
    )
    assert skipped.create == () and counts(skipped) == (0, 0, 0)
    assert skipped.status.next_schedule_time == "2025-03-10T06:30:00Z"


def test_plans_are_frozen() -> None:
    result = plan(spec(), at(10, 1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.wake_at = None  # type: ignore[misc]
