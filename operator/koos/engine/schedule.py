"""The Schedule planner: `plan_schedule(…, now) -> SchedulePlan`, pure and deterministic.

State of a Schedule (conditions Ready and Completed):

    spec invalid ───────────▶ Ready=False InvalidSpec       nothing fires, no wake-up
    templateRef to nothing ─▶ Ready=False TemplateNotFound  nothing fires; re-planned when
          │ fixed                                            Templates change
          ▼
    Ready=True Scheduled ◀── spec.suspend ──▶ Ready=True Suspended   fires counted skipped
          │ now ≥ endTime and no run active
          ▼
    Completed=True EndTimeReached                           no wake-up

`status.lastScheduleTime` is the marker: the latest fire handled (run, skipped or missed);
before the first one it is `created`. The due fires are those after the marker up to `now`
within [startTime, endTime] (`koos.engine.cron`), handled in order; each ends as one of:

    its Execution is among the runs already ─────────────▶ fired, not created again
    spec.suspend ────────────────────────────────────────▶ skipped
    now - fire > startingDeadlineSeconds ────────────────▶ missed
        (unset: 60 s under catchUp None, no deadline under Latest and All)
    older than the latest due fire, catchUp None/Latest ─▶ missed
    older than the latest and maxCatchUp more, All ──────▶ skipped
    concurrencyPolicy Forbid while a run is active ──────▶ skipped
    concurrencyPolicy Replace, a later fire runs too ────▶ skipped
    otherwise ───────────────────────────────────────────▶ fired: Execution created (Replace:
                                                            the runs active before it cancelled)

The marker then moves to the latest due fire. A suspended Schedule still wakes at each fire to
move it, so resuming never floods. While invalid or without its Template the marker holds:
once fixed, the fires since then are due and follow catchUp.

Invariants: an Execution's name is a function of the Schedule's name and the fire's time
(`execution_name`) and a fire whose Execution is among `runs` is not created again, so planning
twice from the same inputs, or after a restart before the status was written, creates nothing
twice; a finished run is deleted (history limits) only once the recorded marker has passed its
fire; counters only grow; a condition's lastTransitionTime moves only when its status flips;
when nothing happened the status stays as it was and there are no Events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from koos.api.common import Condition
from koos.api.schedule import ActiveExecution, ScheduleSpec, ScheduleStatus
from koos.engine.cron import (
    MAX_DUE,
    Fire,
    RunFacts,
    concurrency,
    cron_of,
    due_fires,
    execution_name,
    fire_times,
    is_active,
    next_fire,
    triage,
)
from koos.engine.facts import EventSpec
from koos.engine.schedule_spec import build_execution, validate_schedule
from koos.engine.timefmt import parse_rfc3339, rfc3339

__all__ = [
    "RunFacts",
    "SchedulePlan",
    "build_execution",
    "execution_name",
    "fire_times",
    "next_fire",
    "plan_schedule",
    "validate_schedule",
]

MESSAGE_LIMIT = 1024
_NEVER = datetime.min.replace(tzinfo=UTC)

State = tuple[Literal["True", "False"], str, str]  # a condition's status, reason, message


@dataclass(frozen=True)
class SchedulePlan:
    status: ScheduleStatus
    create: tuple[dict[str, Any], ...] = ()  # Execution manifests, deterministic names
    cancel: tuple[str, ...] = ()  # Executions to cancel (Replace): annotate koos.io/cancel
    delete: tuple[str, ...] = ()  # finished Executions beyond the history limits
    events: tuple[EventSpec, ...] = ()
    wake_at: datetime | None = None


def plan_schedule(
    *,
    name: str,
    namespace: str,
    uid: str,
    generation: int,
    created: datetime,
    spec: ScheduleSpec | None,
    spec_problems: Sequence[str],
    status: ScheduleStatus,
    runs: Sequence[RunFacts],
    template_exists: bool,
    now: datetime,
    allow_seconds: bool = False,
) -> SchedulePlan:
    """Which due fires to create, cancel for, skip or miss; what to delete; the new status."""
    problems = list(spec_problems)
    if spec is not None:
        problems += [str(p) for p in validate_schedule(spec, allow_seconds=allow_seconds)]
    if spec is None or problems:
        return _halted(
            status, generation, now, runs, "InvalidSpec", problems or ["spec: is required"]
        )
    if not template_exists:
        ref = spec.execution_template.spec.template_ref.name
        problem = (
            f'spec.executionTemplate.spec.templateRef.name: Template "{ref}" not found in '
            f'namespace "{namespace}": create it or fix the name; nothing fires until then'
        )
        return _halted(status, generation, now, runs, "TemplateNotFound", [problem])
    cron = cron_of(spec, allow_seconds=allow_seconds)
    last = _time(status.last_schedule_time)
    window = 1 + spec.max_catch_up if spec.catch_up == "All" else 1
    due, uncounted = due_fires(cron, last or created, now, window)
    known = {run.name for run in runs}
    fires = [
        replace(f, outcome="exists", why="") if f.name in known else f
        for f in triage(spec, due, now, name, seconds=allow_seconds)
    ]
    fires, cancel = concurrency(spec, fires, runs)
    created_now = [f for f in fires if f.outcome == "run"]
    marker = due[-1] if due else last
    active = _active(runs, created_now)
    end = cron.end
    # No fire lies between the latest due one (or, with none due, the base) and now, so
    # the next after it is the next after now — and the same for every Schedule sharing an
    # expression that fired at the same time (`Cron.next` is cached).
    upcoming = cron.next(marker or created)
    ready: State = ("True", "Suspended" if spec.suspend else "Scheduled", _describe(spec))
    completed: State = ("False", "Scheduling", f"Fires until endTime {spec.end_time}.")
    if end is None:
        completed = ("False", "Scheduling", "Fires with no endTime.")
    elif now >= end and active:
        text = f"endTime {spec.end_time} has passed; {len(active)} run(s) still active."
        completed = ("False", "RunsActive", text)
    elif now >= end:
        completed = ("True", "EndTimeReached", f"endTime {spec.end_time} has passed: done.")
    conditions = _conditions(status, generation, now, ready, completed)
    events = _events(fires, cancel, uncounted, spec) + _flips(status.conditions, conditions)
    count = Counter(f.outcome for f in fires)
    new = status.model_copy(
        update={
            "observed_generation": generation,
            "conditions": conditions,
            "last_schedule_time": rfc3339(marker) if marker else None,
            "last_successful_time": _last_success(status, runs),
            "next_schedule_time": rfc3339(upcoming) if upcoming else None,
            "active": active or None,
            "active_count": len(active),
            "fired": (status.fired or 0) + count["run"] + count["exists"],
            "skipped": (status.skipped or 0) + count["skipped"],
            "missed": (status.missed or 0) + count["missed"],
            "message": _message(events, status.message, ready),
        }
    )
    wake = [t for t in (upcoming, end) if t is not None and t > now]
    return SchedulePlan(
        status=new,
        create=tuple(
            build_execution(
                schedule=name, namespace=namespace, uid=uid, spec=spec, name=f.name, at=f.at
            )
            for f in created_now
        ),
        cancel=cancel,
        delete=_expired(spec, runs, last),
        events=events,
        wake_at=min(wake) if wake and completed[1] != "EndTimeReached" else None,
    )


def _halted(
    status: ScheduleStatus,
    generation: int,
    now: datetime,
    runs: Sequence[RunFacts],
    reason: str,
    problems: list[str],
) -> SchedulePlan:
    """An invalid Schedule, or one without its Template: nothing fires, the marker holds."""
    message = "\n".join(problems)
    state: State = ("False", reason, message)
    old = next((c for c in status.conditions or [] if c.type == "Ready"), None)
    changed = old is None or (old.status, old.reason, old.message) != state
    active = _active(runs, [])
    new = status.model_copy(
        update={
            "observed_generation": generation,
            "conditions": _conditions(status, generation, now, state, state),
            "next_schedule_time": None,
            "last_successful_time": _last_success(status, runs),
            "active": active or None,
            "active_count": len(active),
            "message": _short(message),
        }
    )
    events = (EventSpec("Warning", reason, _short(message)),) if changed else ()
    return SchedulePlan(status=new, events=events)


def _time(text: str | None) -> datetime | None:
    try:
        return parse_rfc3339(text) if text else None
    except ValueError:
        return None


def _active(runs: Sequence[RunFacts], created: list[Fire]) -> list[ActiveExecution]:
    found = [(r.scheduled_time or _NEVER, r.name) for r in runs if is_active(r)]
    found += [(f.at, f.name) for f in created]
    return [
        ActiveExecution(name=name, scheduled_time=None if at == _NEVER else rfc3339(at))
        for at, name in sorted(found)
    ]


def _describe(spec: ScheduleSpec) -> str:
    if spec.suspend:
        return "Suspended (spec.suspend): fires are counted as skipped until it is false."
    return f"Fires on {spec.schedule.strip()!r} in {spec.time_zone}."


def _summary(verb: str, fires: list[Fire]) -> str:
    """'Skipped 2 fires from T1 to T2 (why); 1 fire at T3 (another why).'"""
    groups: dict[str, list[Fire]] = {}
    for fire in fires:
        groups.setdefault(fire.why, []).append(fire)
    parts = []
    for why, group in groups.items():
        first, final = rfc3339(group[0].at), rfc3339(group[-1].at)
        span = f"{len(group)} fires from {first} to {final}" if group[1:] else f"1 fire at {first}"
        parts.append(f"{span} ({why})")
    return f"{verb} {'; '.join(parts)}."


def _events(
    fires: list[Fire], cancel: tuple[str, ...], uncounted: bool, spec: ScheduleSpec
) -> tuple[EventSpec, ...]:
    """One Event per kind of outcome in this plan: Fired, Replaced, Skipped, Missed."""
    events: list[EventSpec] = []
    if created := [f for f in fires if f.outcome == "run"]:
        names = ", ".join(f.name for f in created)
        times = ", ".join(rfc3339(f.at) for f in created)
        many = "s" if created[1:] else ""
        message = f"Created Execution{many} {names} for the fire{many} at {times}."
        events.append(EventSpec("Normal", "Fired", _short(message)))
    if cancel:
        message = f"Cancelling {', '.join(cancel)} (concurrencyPolicy Replace)."
        events.append(EventSpec("Normal", "Replaced", _short(message)))
    note = f" More than {MAX_DUE} fires were due: not all were counted." if uncounted else ""
    if skipped := [f for f in fires if f.outcome == "skipped"]:
        kind: Literal["Normal", "Warning"] = "Normal" if spec.suspend else "Warning"
        events.append(EventSpec(kind, "Skipped", _short(_summary("Skipped", skipped) + note)))
        note = ""
    if missed := [f for f in fires if f.outcome == "missed"]:
        events.append(EventSpec("Warning", "Missed", _short(_summary("Missed", missed) + note)))
    return tuple(events)


def _conditions(
    status: ScheduleStatus, generation: int, now: datetime, ready: State, completed: State
) -> list[Condition]:
    """Ready and Completed; lastTransitionTime moves only when a status flips."""
    out = []
    for kind, (value, reason, message) in (("Ready", ready), ("Completed", completed)):
        old = next((c for c in status.conditions or [] if c.type == kind), None)
        since = old.last_transition_time if old and old.status == value else rfc3339(now)
        out.append(
            Condition(
                type=kind,
                status=value,
                observed_generation=generation,
                last_transition_time=since,
                reason=reason,
                message=_short(message),
            )
        )
    return out


def _flips(old: list[Condition] | None, new: list[Condition]) -> tuple[EventSpec, ...]:
    """Events for Ready changing status or reason, and for Completed turning True."""
    before = {c.type: (c.status, c.reason) for c in old or []}
    return tuple(
        EventSpec("Normal", c.reason, c.message)
        for c in new
        if (c.type == "Ready" and before.get(c.type) != (c.status, c.reason))
        or (c.type == "Completed" and c.status == "True" and before.get(c.type, ("",))[0] != "True")
    )


def _message(events: tuple[EventSpec, ...], previous: str | None, ready: State) -> str:
    """What happened last: this plan's Events, else the previous message."""
    if events:
        return _short(" ".join(e.message for e in events))
    return previous or ready[2]


def _last_success(status: ScheduleStatus, runs: Sequence[RunFacts]) -> str | None:
    times = [r.completion_time for r in runs if r.phase == "Succeeded" and r.completion_time]
    if (previous := _time(status.last_successful_time)) is not None:
        times.append(previous)
    return rfc3339(max(times)) if times else None


def _expired(
    spec: ScheduleSpec, runs: Sequence[RunFacts], marker: datetime | None
) -> tuple[str, ...]:
    """Finished runs beyond the history limits (the newest are kept); a run whose fire the
    recorded marker has not passed is kept: deleting it could let its fire run again."""
    delete: list[str] = []
    for phases, limit in (
        (("Succeeded",), spec.successful_executions_history_limit),
        (("Failed", "Cancelled"), spec.failed_executions_history_limit),
    ):
        done = [r for r in runs if r.phase in phases]
        done.sort(
            key=lambda r: (r.completion_time or r.scheduled_time or _NEVER, r.name), reverse=True
        )
        for run in done[limit:]:
            fire = run.scheduled_time
            if fire is None or (marker is not None and fire <= marker):
                delete.append(run.name)
    return tuple(sorted(delete))


def _short(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
