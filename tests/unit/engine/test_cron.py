"""Cron maths in a time zone (`koos.engine.cron`, `fire_times`/`next_fire`), pure.

Every case states the local wall-clock times it expects and compares instants in UTC:
daylight saving in America/New_York and Europe/Berlin in both directions, macros,
day-of-month/day-of-week combinations, ends of months, leap days, start and end bounds,
seconds (tests only), validation of the timing fields, and walks back agreeing with walks on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from koos.api.schedule import ScheduleSpec
from koos.engine.cron import Cron, cron_problem, parse_time
from koos.engine.schedule import fire_times, next_fire, validate_schedule

NY = "America/New_York"
BERLIN = "Europe/Berlin"


def spec(schedule: str, zone: str = "UTC", **fields: Any) -> ScheduleSpec:
    template = {"spec": {"templateRef": {"name": "tpl"}}}
    return ScheduleSpec.model_validate(
        {"schedule": schedule, "timeZone": zone, "executionTemplate": template, **fields}
    )


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def local(
    zone: str, year: int, month: int, day: int, hour: int, minute: int, fold: int = 0
) -> datetime:
    """The instant the wall clock of `zone` shows this time (`fold=1`: its second occurrence)."""
    moment = datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold)
    return moment.astimezone(UTC)


DST_CASES = [
    pytest.param(
        "30 2 * * *", NY, utc(2025, 3, 8), utc(2025, 3, 11),
        [local(NY, 2025, 3, 8, 2, 30), local(NY, 2025, 3, 10, 2, 30)],
        id="new-york-spring-forward-skips-02:30-that-does-not-exist",
    ),
    pytest.param(
        "*/30 * * * *", NY, utc(2025, 3, 9, 5, 59), utc(2025, 3, 9, 8),
        [utc(2025, 3, 9, 6), utc(2025, 3, 9, 6, 30), utc(2025, 3, 9, 7), utc(2025, 3, 9, 7, 30),
         utc(2025, 3, 9, 8)],  # 01:00, 01:30 EST, then 03:00, 03:30, 04:00 EDT
        id="new-york-spring-forward-half-hourly",
    ),
    pytest.param(
        "30 1 * * *", NY, utc(2025, 11, 1), utc(2025, 11, 4),
        [utc(2025, 11, 1, 5, 30), utc(2025, 11, 2, 5, 30), utc(2025, 11, 3, 6, 30)],
        id="new-york-fall-back-01:30-fires-once-at-its-first-occurrence",
    ),
    pytest.param(
        "*/30 * * * *", NY, utc(2025, 11, 2, 4, 45), utc(2025, 11, 2, 7, 45),
        [utc(2025, 11, 2, 5), utc(2025, 11, 2, 5, 30), utc(2025, 11, 2, 7),
         utc(2025, 11, 2, 7, 30)],  # 01:00, 01:30 EDT; not again in EST; 02:00, 02:30 EST
        id="new-york-fall-back-half-hourly",
    ),
    pytest.param(
        "30 2 * * *", BERLIN, utc(2025, 3, 29), utc(2025, 4, 1),
        [utc(2025, 3, 29, 1, 30), utc(2025, 3, 31, 0, 30)],
        id="berlin-spring-forward-skips-02:30",
    ),
    pytest.param(
        "0 * * * *", BERLIN, utc(2025, 3, 30, 0, 30), utc(2025, 3, 30, 2, 30),
        [utc(2025, 3, 30, 1), utc(2025, 3, 30, 2)],  # 02:00 CET does not exist: 03:00 CEST
        id="berlin-spring-forward-hourly",
    ),
    pytest.param(
        "30 2 * * *", BERLIN, utc(2025, 10, 25), utc(2025, 10, 28),
        [utc(2025, 10, 25, 0, 30), utc(2025, 10, 26, 0, 30), utc(2025, 10, 27, 1, 30)],
        id="berlin-fall-back-02:30-fires-once-at-its-first-occurrence",
    ),
    pytest.param(
        "0 * * * *", BERLIN, utc(2025, 10, 25, 22, 30), utc(2025, 10, 26, 3),
        [utc(2025, 10, 25, 23), utc(2025, 10, 26, 0), utc(2025, 10, 26, 2),
         utc(2025, 10, 26, 3)],  # 01:00, 02:00 CEST; 02:00 CET is not a second fire
        id="berlin-fall-back-hourly",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("schedule", "zone", "after", "until", "expected"), DST_CASES)
def test_daylight_saving(
    schedule: str, zone: str, after: datetime, until: datetime, expected: list[datetime]
) -> None:
    assert fire_times(spec(schedule, zone), after, until) == expected


def test_a_second_look_from_inside_a_repeated_hour_does_not_fire_it_again() -> None:
    second_0130 = local(NY, 2025, 11, 2, 1, 30, fold=1)  # 06:30Z, after the 05:30Z fire
    assert second_0130 == utc(2025, 11, 2, 6, 30)
    after = fire_times(spec("30 1 * * *", NY), second_0130, utc(2025, 11, 4))
    assert after == [local(NY, 2025, 11, 3, 1, 30)]
    assert next_fire(spec("*/15 * * * *", NY), second_0130) == utc(2025, 11, 2, 7)


CALENDAR_CASES = [
    pytest.param("@yearly", "UTC", utc(2025, 6, 1), utc(2028, 1, 1),
                 [utc(2026, 1, 1), utc(2027, 1, 1), utc(2028, 1, 1)], id="yearly"),
    pytest.param("@annually", BERLIN, utc(2025, 6, 1), utc(2027, 6, 1),
                 [utc(2025, 12, 31, 23), utc(2026, 12, 31, 23)], id="annually-in-berlin"),
    pytest.param("@yearly", NY, utc(2025, 6, 1), utc(2026, 6, 1),
                 [utc(2026, 1, 1, 5)], id="yearly-in-new-york"),
    pytest.param("@monthly", "UTC", utc(2025, 1, 15), utc(2025, 4, 15),
                 [utc(2025, 2, 1), utc(2025, 3, 1), utc(2025, 4, 1)], id="monthly"),
    pytest.param("@weekly", "UTC", utc(2025, 1, 1), utc(2025, 1, 20),
                 [utc(2025, 1, 5), utc(2025, 1, 12), utc(2025, 1, 19)], id="weekly-on-sundays"),
    pytest.param("@daily", "UTC", utc(2025, 1, 1), utc(2025, 1, 3),
                 [utc(2025, 1, 2), utc(2025, 1, 3)], id="daily"),
    pytest.param("@midnight", BERLIN, utc(2025, 1, 1), utc(2025, 1, 3),
                 [utc(2025, 1, 1, 23), utc(2025, 1, 2, 23)], id="midnight-in-berlin"),
    pytest.param("@hourly", "UTC", utc(2025, 1, 1), utc(2025, 1, 1, 2),
                 [utc(2025, 1, 1, 1), utc(2025, 1, 1, 2)], id="hourly"),
    pytest.param("0 0 13 * 5", "UTC", utc(2026, 1, 31), utc(2026, 3, 1),
                 [utc(2026, 2, 6), utc(2026, 2, 13), utc(2026, 2, 20), utc(2026, 2, 27)],
                 id="friday-the-13th-fires-once"),
    pytest.param("0 0 13 * 5", "UTC", utc(2026, 1, 1), utc(2026, 1, 20),
                 [utc(2026, 1, 2), utc(2026, 1, 9), utc(2026, 1, 13), utc(2026, 1, 16)],
                 id="dom-or-dow-the-13th-a-tuesday-and-fridays"),
    pytest.param("0 0 10 * 1", "UTC", utc(2025, 4, 1), utc(2025, 4, 15),
                 [utc(2025, 4, 7), utc(2025, 4, 10), utc(2025, 4, 14)],
                 id="dom-or-dow-the-10th-a-thursday-and-mondays"),
    pytest.param("0 0 * * 1", "UTC", utc(2025, 4, 1), utc(2025, 4, 15),
                 [utc(2025, 4, 7), utc(2025, 4, 14)], id="dow-only"),
    pytest.param("0 0 9 * *", "UTC", utc(2025, 1, 1), utc(2025, 3, 1),
                 [utc(2025, 1, 9), utc(2025, 2, 9)], id="dom-only"),
    pytest.param("0 9 * * MON-FRI", "UTC", utc(2025, 1, 3), utc(2025, 1, 8),
                 [utc(2025, 1, 3, 9), utc(2025, 1, 6, 9), utc(2025, 1, 7, 9)], id="weekdays"),
    pytest.param("0 0 31 * *", "UTC", utc(2025, 1, 1), utc(2025, 6, 1),
                 [utc(2025, 1, 31), utc(2025, 3, 31), utc(2025, 5, 31)],
                 id="the-31st-only-in-months-that-have-one"),
    pytest.param("0 0 L * *", "UTC", utc(2025, 1, 1), utc(2025, 4, 1),
                 [utc(2025, 1, 31), utc(2025, 2, 28), utc(2025, 3, 31)], id="last-day-of-month"),
    pytest.param("0 0 L 2 *", "UTC", utc(2027, 1, 1), utc(2029, 1, 1),
                 [utc(2027, 2, 28), utc(2028, 2, 29)], id="last-day-of-february"),
    pytest.param("0 0 29 2 *", "UTC", utc(2025, 1, 1), utc(2033, 1, 1),
                 [utc(2028, 2, 29), utc(2032, 2, 29)], id="leap-day"),
    pytest.param("0 0 29 2 *", "UTC", utc(2096, 3, 1), utc(2105, 1, 1),
                 [utc(2104, 2, 29)], id="leap-day-not-in-2100"),
    pytest.param("0 12 * * *", NY, utc(2025, 12, 31, 18), utc(2026, 1, 2),
                 [utc(2026, 1, 1, 17)], id="year-end-in-new-york"),
]  # fmt: skip


@pytest.mark.parametrize(("schedule", "zone", "after", "until", "expected"), CALENDAR_CASES)
def test_calendar(
    schedule: str, zone: str, after: datetime, until: datetime, expected: list[datetime]
) -> None:
    assert fire_times(spec(schedule, zone), after, until) == expected


BOUNDS_CASES = [
    pytest.param({}, [utc(2025, 1, 1, h) for h in range(1, 9)], id="no-bounds"),
    pytest.param({"startTime": "2025-01-01T03:00:00Z"}, [utc(2025, 1, 1, h) for h in range(3, 9)],
                 id="start-is-inclusive"),
    pytest.param({"startTime": "2025-01-01T03:00:01Z"}, [utc(2025, 1, 1, h) for h in range(4, 9)],
                 id="nothing-before-start"),
    pytest.param({"endTime": "2025-01-01T05:00:00Z"}, [utc(2025, 1, 1, h) for h in range(1, 6)],
                 id="end-is-inclusive"),
    pytest.param({"startTime": "2025-01-01T04:00:00+01:00", "endTime": "2025-01-01T06:59:59+01:00"},
                 [utc(2025, 1, 1, h) for h in range(3, 6)], id="bounds-with-offsets"),
    pytest.param({"startTime": "2025-01-01T12:00:00Z"}, [], id="start-after-the-window"),
    pytest.param({"endTime": "2024-12-31T00:00:00Z"}, [], id="end-before-the-window"),
]  # fmt: skip


@pytest.mark.parametrize(("bounds", "expected"), BOUNDS_CASES)
def test_start_and_end_bound_the_fires(bounds: dict[str, str], expected: list[datetime]) -> None:
    assert fire_times(spec("@hourly", **bounds), utc(2025, 1, 1), utc(2025, 1, 1, 8)) == expected


def test_limit_and_strict_lower_bound() -> None:
    hourly = spec("@hourly")
    assert fire_times(hourly, utc(2025, 1, 1, 1), utc(2025, 1, 1, 5), limit=2) == [
        utc(2025, 1, 1, 2),
        utc(2025, 1, 1, 3),
    ]
    assert fire_times(hourly, utc(2025, 1, 1, 1), utc(2025, 1, 1, 1, 59)) == []
    assert fire_times(hourly, utc(2025, 1, 1, 0, 59, 59, 999999), utc(2025, 1, 1, 1)) == [
        utc(2025, 1, 1, 1)
    ]


def test_next_fire() -> None:
    assert next_fire(spec("0 3 * * *", BERLIN), utc(2025, 3, 30, 1)) == utc(2025, 3, 31, 1)
    assert next_fire(spec("@daily", startTime="2026-05-01T00:00:00Z"), utc(2025, 1, 1)) == utc(
        2026, 5, 1
    )
    assert next_fire(spec("@daily", endTime="2025-01-01T00:00:00Z"), utc(2025, 1, 1)) is None


def test_a_time_that_never_exists_never_fires() -> None:
    # 02:30 on the second Sunday of March: the hour New York skips every year.
    assert next_fire(spec("30 2 * 3 0#2", NY), utc(2025, 1, 1)) is None
    assert next_fire(spec("30 2 * 3 0#2", BERLIN), utc(2025, 1, 1)) == utc(2025, 3, 9, 1, 30)


def test_seconds_only_when_allowed() -> None:
    every_two = spec("*/2 * * * * *")
    fires = fire_times(every_two, utc(2025, 1, 1), utc(2025, 1, 1, 0, 0, 6), allow_seconds=True)
    assert fires == [utc(2025, 1, 1, 0, 0, s) for s in (2, 4, 6)]
    with pytest.raises(ValueError, match=r"spec\.schedule: .*6 fields"):
        fire_times(every_two, utc(2025, 1, 1), utc(2025, 1, 2))


def test_fire_times_of_an_invalid_spec_raise_with_the_field() -> None:
    with pytest.raises(ValueError, match=r"spec\.timeZone: 'Mars/Olympus'"):
        fire_times(spec("@daily", "Mars/Olympus"), utc(2025, 1, 1), utc(2025, 1, 2))


WALKS = [
    ("*/15 * * * *", NY, utc(2025, 11, 2, 3), utc(2025, 11, 2, 9)),
    ("*/15 * * * *", NY, utc(2025, 3, 9, 5), utc(2025, 3, 9, 9)),
    ("30 1 * * *", NY, utc(2025, 10, 30), utc(2025, 11, 2, 6, 45)),
    ("30 1 * * *", NY, utc(2025, 10, 30), utc(2025, 11, 2, 6, 15)),  # 01:15 EST, after 01:30 EDT
    ("*/20 * * * *", NY, utc(2025, 11, 2, 4), utc(2025, 11, 2, 6, 10)),
    ("0 * * * *", BERLIN, utc(2025, 10, 25, 20), utc(2025, 10, 26, 1, 30)),
    ("0 0 13 * 5", "UTC", utc(2025, 1, 1), utc(2026, 12, 31)),
    ("0 0 L * *", BERLIN, utc(2024, 1, 1), utc(2026, 1, 1)),
    ("*/7 3-5 * * 1,3", "Asia/Kolkata", utc(2025, 1, 1), utc(2025, 2, 1)),
]


@pytest.mark.parametrize(("schedule", "zone", "after", "until"), WALKS)
def test_walking_back_finds_the_fires_walking_on_finds(
    schedule: str, zone: str, after: datetime, until: datetime
) -> None:
    onward = fire_times(spec(schedule, zone), after, until)
    cron = Cron(schedule, ZoneInfo(zone))
    assert len(onward) > 3
    assert cron.latest(after, until, len(onward) + 5) == onward
    assert cron.latest(after, until, 3) == onward[-3:]
    assert cron.latest(onward[-2], until, 3) == onward[-1:]


PROBLEMS = [
    pytest.param({"schedule": "* * * *"}, False, "spec.schedule", "has 4 fields", id="4-fields"),
    pytest.param({"schedule": "0 0 * * * *"}, False, "spec.schedule", "has 6 fields",
                 id="seconds-not-allowed"),
    pytest.param({"schedule": "0 0 0 * * * *"}, True, "spec.schedule",
                 "6 fields with seconds first", id="7-fields"),
    pytest.param({"schedule": "61 * * * *"}, False, "spec.schedule", "not a valid cron expression",
                 id="minute-out-of-range"),
    pytest.param({"schedule": "0 0 * * FUNDAY"}, False, "spec.schedule", "not a valid cron",
                 id="bad-day-name"),
    pytest.param({"schedule": "@reboot"}, False, "spec.schedule", "not a macro", id="reboot"),
    pytest.param({"schedule": "0 0 30 2 *"}, False, "spec.schedule", "names no date",
                 id="30-february"),
    pytest.param({"schedule": "H * * * *"}, False, "spec.schedule", "not a valid cron",
                 id="hashed"),
    pytest.param({"timeZone": "Mars/Olympus"}, False, "spec.timeZone", "not an IANA time zone",
                 id="unknown-zone"),
    pytest.param({"timeZone": "../../etc/passwd"}, False, "spec.timeZone", "not an IANA",
                 id="zone-path"),
    pytest.param({"timeZone": ""}, False, "spec.timeZone", "not an IANA", id="empty-zone"),
    pytest.param({"startTime": "tomorrow"}, False, "spec.startTime", "not an RFC 3339 time",
                 id="start-unparseable"),
    pytest.param({"endTime": "2025-01-01T00:00:00"}, False, "spec.endTime", "no UTC offset",
                 id="end-without-offset"),
    pytest.param({"startTime": "2025-02-01T00:00:00Z", "endTime": "2025-01-01T00:00:00Z"}, False,
                 "spec.endTime", "before startTime 2025-02-01T00:00:00Z", id="end-before-start"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "seconds", "path", "words"), PROBLEMS)
def test_invalid_timing_names_the_field(
    fields: dict[str, str], seconds: bool, path: str, words: str
) -> None:
    problems = validate_schedule(spec(**{"schedule": "@daily", **fields}), allow_seconds=seconds)
    assert [p.path for p in problems] == [path]
    assert words in problems[0].message


@pytest.mark.parametrize(
    "schedule",
    ["@yearly", "@ANNUALLY", "@monthly", "@weekly", "@daily", "@midnight", "@hourly",
     "*/5 * * * *", "0 9 * * MON-FRI", "0 0 L * *", "0 0 * * 5#2", "0 0 ? * *", " 0 3 * * * "],
)  # fmt: skip
def test_valid_expressions(schedule: str) -> None:
    assert cron_problem(schedule) is None
    assert validate_schedule(spec(schedule, BERLIN)) == []


def test_seconds_are_read_first() -> None:
    assert cron_problem("*/2 * * * * *", allow_seconds=True) is None
    assert "seconds first" in (cron_problem("* * * *", allow_seconds=True) or "")
    assert "seconds" not in (cron_problem("* * * *") or "seconds")


def test_parse_time() -> None:
    assert parse_time("2025-03-30T03:00:00+02:00") == utc(2025, 3, 30, 1)
    assert parse_time("2025-03-30T01:00:00Z") == utc(2025, 3, 30, 1)
    assert parse_time("2025-03-30T01:00:00.5Z") == utc(2025, 3, 30, 1) + timedelta(seconds=0.5)
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_time("2025-03-30")
