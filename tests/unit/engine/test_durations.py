"""Durations as templates write them: Go style plus days; a bare number is refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from koos.engine.durations import MAX_DURATION, backoff_delay, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10s", timedelta(seconds=10)),
        ("500ms", timedelta(milliseconds=500)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1d2h3m4s5ms", timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("0s", timedelta()),
        (" 5m ", timedelta(minutes=5)),
    ],
)
def test_parse_duration_reads_go_style_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("30", "use a number and a unit, e.g. 30s"),
        ("0", "use a number and a unit"),
        ("", "empty duration"),
        ("abc", "use a number and a unit"),
        ("1 h", "use a number and a unit"),
        ("-1s", "use a number and a unit"),
        ("5 minutes", "use a number and a unit"),
        ("1w", "units: d, h, m, s, ms"),
        ("30m1h", "largest first"),
        ("1h1h", "give each unit once"),
        ("99999999999999d", "longer than the limit of 365d"),
    ],
)
def test_parse_duration_refuses_with_the_accepted_form(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="duration") as raised:
        parse_duration(text)
    assert fragment in str(raised.value)


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (timedelta(), "0s"),
        (timedelta(seconds=10), "10s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=2, seconds=1), "2d1s"),
        (timedelta(microseconds=999), "0s"),
        (-timedelta(minutes=5), "-5m"),
    ],
)
def test_format_duration_writes_the_shortest_text(duration: timedelta, expected: str) -> None:
    assert format_duration(duration) == expected


@pytest.mark.parametrize(
    "duration",
    [
        timedelta(hours=25, milliseconds=1),
        timedelta(minutes=90),
        timedelta(days=364, milliseconds=1),
    ],
)
def test_format_then_parse_round_trips(duration: timedelta) -> None:
    assert parse_duration(format_duration(duration)) == duration


# Issue 10, item 4: a duration past a year (or one whose date would overflow) is refused.
@pytest.mark.parametrize("text", ["100000000d", "366d", "8761h", "1e400s", "9" * 400 + "d"])
def test_parse_duration_refuses_durations_past_the_limit(text: str) -> None:
    with pytest.raises(ValueError, match=r"limit|invalid duration"):
        parse_duration(text)


def test_parse_duration_accepts_the_limit_itself() -> None:
    assert parse_duration("365d") == MAX_DURATION
    assert parse_duration(format_duration(MAX_DURATION)) == MAX_DURATION


@pytest.mark.parametrize(
    ("factor", "attempt", "expected"),
    [
        (2.0, 1, timedelta(seconds=10)),
        (2.0, 3, timedelta(seconds=40)),
        (2.0, 100, timedelta(minutes=10)),
        (100.0, 100, timedelta(minutes=10)),
        (1e300, 2, timedelta(minutes=10)),
        (1.0, 50, timedelta(seconds=10)),
    ],
)
def test_backoff_delay_never_overflows(factor: float, attempt: int, expected: timedelta) -> None:
    assert backoff_delay(timedelta(seconds=10), factor, attempt, timedelta(minutes=10)) == expected
