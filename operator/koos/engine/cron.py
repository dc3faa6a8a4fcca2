"""When a Schedule fires: cron maths in a time zone, which due fires run, and their names.

A `Cron` reads its expression on the wall clock of its IANA zone and answers in UTC. croniter
walks naive local times (calendar arithmetic, independent of the process's TZ); each local
time is then placed in the zone:

- a local time that does not exist (the clock springs forward over it) is skipped: `30 2 * * *`
  in America/New_York does not fire on the day daylight saving starts;
- a local time that happens twice (the clock falls back over it) fires once, at its first
  occurrence (daylight-saving time): `30 1 * * *` fires at 05:30Z, not again at 06:30Z, and
  `*/15 * * * *` fires 01:00…01:45 once, then goes on at 02:00 standard time.

That map from local times to instants is increasing, so walks stop at the first fire past a
bound. Day-of-month and day-of-week follow cron: when both are restricted (neither is `*`), a
day matching either fires. startTime and endTime are inclusive bounds.

Expressions: 5 fields (minute hour day-of-month month day-of-week), croniter's extensions
(`L`, `#`, `?`, names such as MON-FRI) and the macros in `MACROS`; with `allow_seconds` (tests
only: minutes are too slow for them) also 6 fields, seconds first.

Which due fires run: `triage` applies suspend, startingDeadlineSeconds and catchUp, then
`concurrency` applies concurrencyPolicy to the Schedule's runs (`koos.engine.schedule` draws
the whole table and assembles the plan). Each fire's Execution is named `execution_name`: from
the Schedule and the fire's time alone, so the same fire always gets the same name.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from koos.api.execution import TERMINAL_PHASES
from koos.api.schedule import ScheduleSpec
from koos.engine.problem import Problem
from koos.engine.timefmt import rfc3339

__all__ = [
    "MACROS",
    "Cron",
    "Fire",
    "RunFacts",
    "concurrency",
    "cron_of",
    "cron_problem",
    "due_fires",
    "execution_name",
    "fire_times",
    "is_active",
    "next_fire",
    "parse_time",
    "timing_problems",
    "triage",
]

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
FIELDS = "minute hour day-of-month month day-of-week"
MAX_DUE = 10_000  # fires counted per plan; past it, the latest are found back from now
FEW = 16  # up to this many due fires are found one by one (`Cron.next`, cached)
NONE_DEADLINE = 60  # startingDeadlineSeconds under catchUp None when unset
# A walk gives up when the local times it meets have not existed for this long: the clock
# skips an hour or so (a whole day at most, Pacific/Apia in 2011), so an expression naming
# only skipped times (02:30 on the second Sunday of March in New York) never fires.
GAP_SPAN = timedelta(days=3660)
_REFERENCE = datetime(2000, 1, 1)  # validation looks for a first fire after this local time
_SECOND = timedelta(seconds=1)
MAX_NAME_LENGTH = 63
HASH_LENGTH = 10
_DNS = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NOT_DNS = re.compile(r"[^-a-z0-9]")

Outcome = Literal["run", "exists", "skipped", "missed"]


@dataclass(frozen=True)
class RunFacts:
    """One Execution of this Schedule (labelled koos.io/schedule=<name>)."""

    name: str
    phase: str | None  # None until its controller saw it, then Pending … Cancelled
    scheduled_time: datetime | None  # from the koos.io/scheduled-time annotation
    completion_time: datetime | None
    cancel_requested: bool = False


@dataclass(frozen=True)
class Fire:
    """One due fire and what becomes of it, with why when it does not run."""

    at: datetime
    outcome: Outcome = "run"
    why: str = ""
    name: str = ""  # its Execution's name (`execution_name`)


@functools.lru_cache(maxsize=4096)
def cron_problem(expression: str, *, allow_seconds: bool = False) -> str | None:
    """What is wrong with `expression` as a schedule, in a sentence, or None. Cached: every
    plan of every Schedule asks, and croniter's parsing is most of a plan's cost."""
    text = expression.strip()
    accepted = f"5 fields ({FIELDS})"
    if allow_seconds:
        accepted += ", 6 fields with seconds first (e.g. */2 * * * * *)"
    accepted += f" or a macro ({', '.join(MACROS)})"
    if text.startswith("@") and text.lower() not in MACROS:
        return f"{text!r} is not a macro koos knows; expected {accepted}"
    fields = len(text.split())
    if not text.startswith("@") and fields != 5 and not (allow_seconds and fields == 6):
        return f"{text!r} has {fields} fields; expected {accepted}"
    try:
        croniter(text, _REFERENCE, second_at_beginning=_has_seconds(text)).get_next(datetime)
    except CroniterBadDateError:
        return f"{text!r} names no date that exists (such as 30 February)"
    except (CroniterError, ValueError, KeyError) as error:
        return f"{text!r} is not a valid cron expression: {error}"
    return None


def _has_seconds(text: str) -> bool:
    return not text.startswith("@") and len(text.split()) == 6


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def parse_time(text: str) -> datetime:
    """An RFC 3339 time with its UTC offset, in UTC; ValueError says what is wrong."""
    example = "e.g. 2025-01-31T22:00:00Z or 2025-01-31T23:00:00+01:00"
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 time, {example}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset, {example}")
    return moment.astimezone(UTC)


def timing_problems(spec: ScheduleSpec, *, allow_seconds: bool = False) -> list[Problem]:
    """Problems of schedule, timeZone, startTime and endTime, each with its field path."""
    problems: list[Problem] = []
    if (cron := cron_problem(spec.schedule, allow_seconds=allow_seconds)) is not None:
        problems.append(Problem("spec.schedule", cron))
    if _zone(spec.time_zone) is None:
        example = "e.g. UTC, Europe/Berlin, America/New_York"
        problems.append(
            Problem("spec.timeZone", f"{spec.time_zone!r} is not an IANA time zone, {example}")
        )
    bounds: dict[str, datetime] = {}
    for path, text in (("spec.startTime", spec.start_time), ("spec.endTime", spec.end_time)):
        try:
            if text is not None:
                bounds[path] = parse_time(text)
        except ValueError as error:
            problems.append(Problem(path, str(error)))
    start, end = bounds.get("spec.startTime"), bounds.get("spec.endTime")
    if start is not None and end is not None and end < start:
        message = f"{spec.end_time} is before startTime {spec.start_time}: nothing would fire"
        problems.append(Problem("spec.endTime", message))
    return problems


def cron_of(spec: ScheduleSpec, *, allow_seconds: bool = False) -> Cron:
    """The `Cron` of a spec; ValueError with the problems when its timing is invalid."""
    problems = timing_problems(spec, allow_seconds=allow_seconds)
    zone = _zone(spec.time_zone)
    if problems or zone is None:
        raise ValueError("; ".join(str(p) for p in problems))
    text = spec.schedule.strip()
    return Cron(
        expression=text,
        zone=zone,
        start=parse_time(spec.start_time) if spec.start_time else None,
        end=parse_time(spec.end_time) if spec.end_time else None,
        seconds=_has_seconds(text),
    )


def fire_times(
    spec: ScheduleSpec,
    after: datetime,
    until: datetime,
    *,
    allow_seconds: bool = False,
    limit: int = 10000,
) -> list[datetime]:
    """The first `limit` fires later than `after`, not later than `until` and within
    [startTime, endTime], in UTC, ascending. ValueError when the timing is invalid."""
    return cron_of(spec, allow_seconds=allow_seconds).between(after, until, limit)


def next_fire(
    spec: ScheduleSpec, after: datetime, *, allow_seconds: bool = False
) -> datetime | None:
    """The first fire later than `after`; None past endTime. ValueError as `fire_times`."""
    return cron_of(spec, allow_seconds=allow_seconds).next(after)


@dataclass(frozen=True)
class Cron:
    """A valid cron `expression` read in `zone`, firing only within [`start`, `end`]."""

    expression: str
    zone: ZoneInfo
    start: datetime | None = None
    end: datetime | None = None
    seconds: bool = False  # 6 fields, seconds first

    def between(self, after: datetime, until: datetime | None, limit: int) -> list[datetime]:
        """The first `limit` fires later than `after` and not later than `until`, ascending."""
        last = self._last(until)
        fires: list[datetime] = []
        if limit <= 0 or (last is not None and last <= after):
            return fires
        begin = max(after, self.start - _SECOND) if self.start is not None else after
        local = begin.astimezone(self.zone).replace(tzinfo=None) - _SECOND
        for moment in self._walk(local, backward=False):
            if last is not None and moment > last:
                break
            if moment > after and (self.start is None or moment >= self.start):
                fires.append(moment)
                if len(fires) >= limit:
                    break
        return fires

    def next(self, after: datetime) -> datetime | None:
        """The first fire later than `after`, or None when there is none. Cached: when many
        Schedules share an expression (every one at midnight), their plans ask the same."""
        return _next_fire(self, after)

    def latest(self, after: datetime, until: datetime, count: int) -> list[datetime]:
        """The last `count` fires later than `after` and not later than `until`, ascending."""
        last = self._last(until) or until
        fires: list[datetime] = []
        if count <= 0 or last <= after:
            return fires
        local = last.astimezone(self.zone)
        # In the second pass of a repeated hour, the first passes of later local times (up to
        # the offset change) are earlier instants: start the walk back that much later.
        first, actual = local.replace(fold=0).utcoffset(), local.utcoffset()
        ahead = (
            max(first - actual, timedelta())
            if first is not None and actual is not None
            else timedelta()
        )
        for moment in self._walk(local.replace(tzinfo=None) + ahead + _SECOND, backward=True):
            if moment > last:
                continue
            if moment <= after or (self.start is not None and moment < self.start):
                break
            fires.append(moment)
            if len(fires) >= count:
                break
        return fires[::-1]

    def _last(self, until: datetime | None) -> datetime | None:
        if until is None or self.end is None:
            return self.end if until is None else until
        return min(until, self.end)

    def _walk(self, local: datetime, *, backward: bool) -> Iterator[datetime]:
        """Fires as instants in UTC, from the wall-clock time `local` on (or back)."""
        walker = croniter(self.expression, local, second_at_beginning=self.seconds)
        step = walker.get_prev if backward else walker.get_next
        gap: datetime | None = None  # the first of the latest local times that do not exist
        while True:
            try:
                local = step(datetime)
            except (CroniterBadDateError, ValueError, OverflowError):  # past year 1 or 9999
                return
            moment = _instant(local, self.zone)
            if moment is not None:
                gap = None
                yield moment
                continue
            gap = gap or local
            if abs(local - gap) > GAP_SPAN:
                return


@functools.lru_cache(maxsize=16384)
def _next_fire(cron: Cron, after: datetime) -> datetime | None:
    fires = cron.between(after, None, 1)
    return fires[0] if fires else None


def _instant(local: datetime, zone: ZoneInfo) -> datetime | None:
    """The first instant the wall clock of `zone` shows `local`, or None if it never does."""
    moment = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if moment.astimezone(zone).replace(tzinfo=None) != local:
        return None
    return moment


def execution_name(schedule: str, at: datetime, *, seconds: bool = False) -> str:
    """`<schedule>-<unix minutes of at>` (seconds with `seconds`); when that is longer than
    63 characters or not a DNS label, a DNS-safe prefix of the Schedule's name, 10 hex
    characters of its sha256 and the same suffix: distinct Schedules keep distinct names."""
    stamp = str(int(at.timestamp()) // (1 if seconds else 60))
    name = f"{schedule}-{stamp}"
    if len(name) <= MAX_NAME_LENGTH and _DNS.fullmatch(name):
        return name
    digest = hashlib.sha256(schedule.encode()).hexdigest()[:HASH_LENGTH]
    room = MAX_NAME_LENGTH - len(stamp) - HASH_LENGTH - 2
    prefix = _NOT_DNS.sub("-", schedule.lower())[:room].strip("-")
    return "-".join(part for part in (prefix, digest, stamp) if part)


def due_fires(
    cron: Cron, base: datetime, now: datetime, window: int
) -> tuple[list[datetime], bool]:
    """The fires after `base` up to `now`, and whether some went uncounted: past MAX_DUE, the
    latest `window` are looked for back from `now` and those between are not counted."""
    due: list[datetime] = []
    at = cron.next(base)  # a few fires, one by one from the cache of `Cron.next`
    while at is not None and at <= now and len(due) < FEW:
        due.append(at)
        at = cron.next(at)
    if at is None or at > now:
        return due, False
    due = cron.between(base, now, MAX_DUE)
    if len(due) < MAX_DUE:
        return due, False
    tail = cron.latest(due[-1], now, window + 1)
    return due + tail, len(tail) > window


def triage(
    spec: ScheduleSpec, due: list[datetime], now: datetime, schedule: str, *, seconds: bool
) -> list[Fire]:
    """Each due fire of `schedule`, named, and run, skipped or missed by suspend,
    startingDeadlineSeconds and catchUp."""
    deadline = spec.starting_deadline_seconds
    if deadline is None and spec.catch_up == "None":
        deadline = NONE_DEADLINE
    window = 1 + spec.max_catch_up if spec.catch_up == "All" else 1
    fires: list[Fire] = []
    for index, at in enumerate(due):
        older = index < len(due) - window
        if spec.suspend:
            fire = Fire(at, "skipped", "spec.suspend is true")
        elif deadline is not None and now - at > timedelta(seconds=deadline):
            fire = Fire(at, "missed", f"later than startingDeadlineSeconds {deadline}")
        elif older and spec.catch_up == "All":
            fire = Fire(at, "skipped", f"beyond maxCatchUp {spec.max_catch_up}")
        elif older:
            fire = Fire(at, "missed", f"a later fire is due, catchUp {spec.catch_up}")
        else:
            fire = Fire(at)
        fires.append(replace(fire, name=execution_name(schedule, at, seconds=seconds)))
    return fires


def concurrency(
    spec: ScheduleSpec, fires: list[Fire], runs: Sequence[RunFacts]
) -> tuple[list[Fire], tuple[str, ...]]:
    """Forbid skips a fire while a run is active; Replace runs only the latest fire due and
    cancels the runs active before it."""
    policy = spec.concurrency_policy
    running = sorted(run.name for run in runs if is_active(run))
    last = next((f for f in reversed(fires) if f.outcome in ("run", "exists")), None)
    out: list[Fire] = []
    for fire in fires:
        if fire.outcome == "run" and policy == "Replace" and last and fire is not last:
            why = f"replaced by the fire at {rfc3339(last.at)}, concurrencyPolicy Replace"
            fire = replace(fire, outcome="skipped", why=why)
        elif fire.outcome == "run" and policy == "Forbid" and running:
            why = f"concurrencyPolicy Forbid and {running[0]} is active"
            fire = replace(fire, outcome="skipped", why=why)
        if fire.outcome == "run":
            running.append(fire.name)
        out.append(fire)
    if policy != "Replace" or last is None:
        return out, ()
    cancel = sorted(
        run.name
        for run in runs
        if is_active(run)
        and not run.cancel_requested
        and run.name != last.name
        and (run.scheduled_time is None or run.scheduled_time < last.at)
    )
    return out, tuple(cancel)


def is_active(run: RunFacts) -> bool:
    return run.phase not in TERMINAL_PHASES
